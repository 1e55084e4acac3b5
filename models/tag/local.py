"""The embedded executor: worker processes on this machine, one torch thread each.

Tagging is a map over files with no communication between them, so it
scales with processes, not threads: one torch thread per process avoids
the threads of several processes fighting for the same cores. The models
are loaded once, in the parent, before the workers fork (they share the
weights copy-on-write and start at once; a spawned worker would import
torch and load the models again, the start-up the issue measured at
several seconds). Workers draw files from a queue one at a time, so a long
file does not hold up a worker's share of short ones, and send each row
back as soon as it is finished.

Workers ignore SIGINT: Ctrl-C reaches the parent, which stops them and
keeps every row already received.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal

__all__ = ["local_cores", "run_local"]


def local_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _worker(tagger, tasks, results):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        tagger.torch.set_num_threads(1)
        for row, wins in tagger.tag(iter(tasks.get, None)):
            results.put(("row", row, wins))
    except Exception as e:  # reported by the parent, which keeps the rows it has
        results.put(("fatal", f"{type(e).__name__}: {e}", None))
    results.put(("done", None, None))


def run_local(tagger, entries, workers, on_row):
    """Tag ``entries`` with ``workers`` processes; ``on_row(row, window_rows)`` in this process as rows arrive.

    With one worker (or one file) the job runs in this process: no fork, the
    same rows.
    """
    entries = list(entries)
    workers = max(1, min(int(workers), len(entries)))
    if workers == 1:
        tagger.torch.set_num_threads(1)
        for row, wins in tagger.tag(entries):
            on_row(row, wins)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for e in entries:
        tasks.put(e)
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(tagger, tasks, results), daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    done, fatal = 0, None
    try:
        while done < workers:
            try:
                kind, a, b = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a tagging worker died (exit code {dead[0].exitcode}); the rows finished so far are kept") from None
                continue
            if kind == "row":
                on_row(a, b)
            elif kind == "fatal":
                fatal = a
            else:
                done += 1
        if fatal:
            raise RuntimeError(f"a tagging worker failed: {fatal}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
