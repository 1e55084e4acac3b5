"""`genredream tag PATH... --out FILE`: tag a music library by genre, one row per file."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

__all__ = ["add_arguments", "main"]

_EPILOG = """\
examples:
  genredream tag ~/Music --out library.csv
  genredream tag ~/Music --out library.parquet --models musicnn-msd musicnn-mtt --per-window windows.parquet
  genredream tag ~/Music --out library.csv --resume          # after Ctrl-C: only what is not done yet
  genredream tag /shared/music --out tags.parquet --ray auto  # on a running Ray cluster (docs/tagging.md)

Windows are 5 s, as every genredream model takes them. By default they
are `genredream classify`'s: end to end, the last one ending with the file,
and the rows equal classify's scores. --overlap 0.5 overlaps them by half
(a 2.5 s hop: twice the windows, more time); on 100 songs of 60 s it moved
the genre models' song accuracy by at most one song (docs/tagging.md,
"Testing the choice").
"""


def add_arguments(p: argparse.ArgumentParser):
    from genredream.models.classify import DEFAULT_MODEL

    p.description = "Tag audio files and folders (searched recursively) by genre: one row per file, written as .csv, .jsonl or .parquet."
    p.epilog = _EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--out", required=True, metavar="FILE", help="output: .csv, .jsonl or .parquet (by extension)")
    p.add_argument("--per-window", metavar="FILE", help="also write every window's scores here (.csv, .jsonl or .parquet)")
    p.add_argument("--models", nargs="+", metavar="MODEL", help=f"model names or .pt files (default {DEFAULT_MODEL}); the first gives top_genre")
    p.add_argument("--overlap", type=float, default=0.0, help="fraction of a window shared with the next (default 0: classify's windows; 0.5: a 2.5 s hop)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all local cores)")
    p.add_argument("--resume", action="store_true", help="keep the rows already in --out (same path, size and mtime) and tag the rest")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out instead of refusing")
    p.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run on Ray Data: a local Ray without ADDRESS, or join the cluster at ADDRESS (e.g. auto, ray://head:10001)",
    )
    p.add_argument(
        "--ray-upload", action="store_true",
        help="with --ray: send the files' bytes through Ray's object store (for workers without the files on shared storage)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _progress(total_files, total_bytes, quiet):
    """A rich progress bar on stderr: files, hours of audio, x real time, ETA (by bytes still to read)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class Bar:
        def __init__(self):
            self.t0 = time.monotonic()
            self.audio_s = 0.0
            self.bytes = 0
            self.errors = 0
            self.p = Progress(
                TextColumn("[bold]tag"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files  {task.fields[hours]} h audio  {task.fields[speed]}x real time  {task.fields[errors]}  ETA {task.fields[eta]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=quiet,
                refresh_per_second=4,
            )
            self.task = self.p.add_task("tag", total=total_files, hours="0.00", speed="-", errors="", eta="-")

        def __enter__(self):
            self.p.__enter__()
            return self

        def __exit__(self, *a):
            return self.p.__exit__(*a)

        def update(self, row):
            self.audio_s += row.get("duration_s") or 0.0
            self.bytes += row["size"]
            self.errors += bool(row.get("error"))
            el = max(1e-9, time.monotonic() - self.t0)
            left = el * (total_bytes - self.bytes) / self.bytes if self.bytes else None
            eta = "-" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
            self.p.update(
                self.task, advance=1, hours=f"{self.audio_s / 3600:.2f}", speed=f"{self.audio_s / el:.1f}",
                errors=f"[red]{self.errors} errors[/]" if self.errors else "", eta=eta,
            )

    return Bar()


def main(args) -> int:
    from genredream.models.tag.local import local_cores, start_fork_server

    workers = local_cores() if args.workers is None else args.workers
    if args.ray is None and workers > 1:
        # First, before the rest of this process's start-up (rich, the
        # output writers, Numba, the models' metadata, the folder walk, about
        # a second of the other core): the workers' fork server imports
        # torch, 2-3 s of one core, meanwhile. A usage error found below
        # leaves it unused; it ends with the command.
        start_fork_server()

    from rich.console import Console

    from genredream.models.tag.output import Journal, check_format, file_columns, read_rows, window_columns, write_rows

    err = Console(stderr=True)

    def usage(msg):
        err.print(f"[red]genredream tag:[/] {msg}")
        return 2

    try:
        check_format(args.out)
        if args.per_window:
            check_format(args.per_window)
    except ValueError as e:
        return usage(e)
    if args.ray_upload and args.ray is None:
        return usage("--ray-upload goes with --ray")
    if not 0.0 <= args.overlap < 1.0:
        return usage(f"--overlap must be at least 0 and below 1, got {args.overlap}")
    if workers < 1:
        return usage(f"--workers must be at least 1, got {workers}")

    from genredream.models.archive import ModelFileError
    from genredream.models.classify import default_model
    from genredream.models.metadata import read_meta
    from genredream.models.registry import resolve_model
    from genredream.models.tag.files import find_audio

    try:
        refs = list(args.models) if args.models else [str(default_model())]
        paths = [str(resolve_model(r)) for r in refs]
        metas = [read_meta(p) for p in paths]
    except ModelFileError as e:
        return usage(e)
    names = [m["name"] for m in metas]
    if len(set(names)) != len(names):
        return usage(f"--models names the same model twice: {names}")
    fcols, wcols = file_columns(metas), window_columns(metas)
    outs = [Path(args.out)] + ([Path(args.per_window)] if args.per_window else [])
    existing = [o for o in outs for f in (o, Journal(o).path) if f.exists()]
    if existing and not (args.resume or args.force):
        return usage(f"{existing[0]} exists: pass --resume to continue it or --force to overwrite it")

    if args.ray is not None:
        try:
            import ray  # noqa: F401
        except ImportError:
            return usage("--ray needs Ray: pip install 'genredream[ray]'")

    skipped = []
    entries, missing = find_audio(args.paths, skipped)
    if missing:
        return usage(f"no such file or folder: {', '.join(missing)}")
    if skipped:  # FIFOs, sockets, broken links: never read (a FIFO would block), but said
        shown = "; ".join(f"{p} ({why})" for p, why in skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        err.print(f"[yellow]skipped {len(skipped)} entries that are not audio files:[/] {shown}", highlight=False)
    if args.force and not args.resume:
        for o in outs:
            Journal(o).remove()
    journal, wjournal = Journal(args.out), (Journal(args.per_window) if args.per_window else None)

    # --resume: rows of the output and of an interrupted run's journal whose
    # file is unchanged (same path, size, mtime) stay; failed files are retried.
    kept = {}
    if args.resume:
        for r in read_rows(args.out, fcols) + read_rows(journal.path, fcols):
            kept[r["path"]] = r
    current = {e.path: e for e in entries}
    done_keys = {(r["path"], r["size"], r["mtime_ns"]) for r in kept.values() if not r.get("error")}
    todo = [e for e in entries if e.key not in done_keys]
    for e in todo:
        kept.pop(e.path, None)
    wkept = []
    if args.resume and args.per_window:
        wkept = [r for r in read_rows(args.per_window, wcols) + read_rows(wjournal.path, wcols) if r["path"] not in {e.path for e in todo}]
    if not entries:
        err.print(f"genredream tag: no audio files under {', '.join(args.paths)}")
    elif args.resume and len(todo) < len(entries):
        err.print(f"resuming: {len(entries) - len(todo)} of {len(entries)} files already tagged")

    new, wnew = [], []
    bar = _progress(len(todo), sum(e.size for e in todo), args.quiet or not todo)

    def on_row(row, wins):
        # Kept in memory before the journal: a Ctrl-C between the two must not leave a row the
        # journal showed out of the output that finish() writes from memory (and the journal removed).
        new.append(row)
        wnew.extend(wins)
        journal.append([row])
        if wjournal is not None and wins:
            wjournal.append(wins)
        bar.update(row)

    def finish():
        rows = sorted(list(kept.values()) + new, key=lambda r: r["path"])
        write_rows(args.out, rows, fcols)
        journal.remove()
        if args.per_window:
            order = {n: i for i, n in enumerate(names)}
            wrows = sorted(wkept + wnew, key=lambda r: (r["path"], order.get(r["model"], len(order)), r["window"]))
            write_rows(args.per_window, wrows, wcols)
            wjournal.remove()

    t0 = time.monotonic()
    status = 0
    try:
        with bar:
            if todo and args.ray is not None:
                from genredream.models.tag.ray_run import run_ray

                run_ray(refs, todo, args.overlap, bool(args.per_window), args.ray or None, workers, on_row, upload=args.ray_upload)
            elif todo:
                from genredream.models.tag.local import run_local
                from genredream.models.tag.tagger import Tagger

                run_local(functools.partial(Tagger, paths, overlap=args.overlap, per_window=bool(args.per_window)), todo, workers, on_row)
    except KeyboardInterrupt as e:
        from genredream.engine import interrupt

        interrupt.calm()  # the rows are written now: a second signal must not cut that short
        finish()
        err.print(f"interrupted: {len(new)} new rows kept in {args.out}; run again with --resume to tag the rest")
        return interrupt.exit_code(e)  # 130 for Ctrl-C, 143 for SIGTERM
    except Exception as e:
        finish()
        err.print(f"[red]genredream tag:[/] {e}")
        return 1
    finish()
    el = time.monotonic() - t0
    errors = sum(1 for r in new if r.get("error"))
    damaged = sum(1 for r in new if r.get("damaged"))
    quiet = sum(1 for r in new if r.get("low_energy"))
    audio = sum(r.get("duration_s") or 0.0 for r in new)
    err.print(
        f"tagged {len(new) - errors} files ({audio / 3600:.2f} h of audio) in {el:.1f} s, {audio / max(el, 1e-9):.1f}x real time"
        + (f"; [red]{errors} could not be read[/] (see the error column)" if errors else "")
        + (f"; [yellow]{damaged} damaged[/], tagged up to the damage (see the damaged column)" if damaged else "")
        + (f"; {quiet} near silence (low_energy: no top genre)" if quiet else "")
        + f" -> {args.out}"
    )
    return 0
