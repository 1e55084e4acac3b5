"""`genredream classify FILE`: genre scores of a file, per window and overall, as a table or JSON.

The scoring is :func:`genredream.models.classify.classify_file`.
"""

from __future__ import annotations

import argparse
import json
import sys

from genredream.models.classify import DEFAULT_MODEL

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.description = "Genre scores of an audio file (wav, flac, ogg, mp3, au), per 5-second window and overall."
    p.add_argument("file", help="audio file")
    p.add_argument("--model", default=None, help=f"model name or .pt path (default {DEFAULT_MODEL}; see `genredream models`)")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    p.add_argument("--all-tags", action="store_true", help="show every tag, not only genres (tag models)")
    p.add_argument("--top", type=int, default=5, help="labels to show per window in the table (default 5)")


def main(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from genredream.models.contract import ModelFileError, load
    from genredream.models.registry import resolve_model
    from genredream.models.classify import classify_file, default_model, display_scores
    from genredream.models.data import AudioFileError

    err = Console(stderr=True)
    try:
        path = resolve_model(args.model) if args.model else default_model()
        model = load(path)
        result = classify_file(args.file, model)
    except (ModelFileError, AudioFileError) as e:
        err.print(f"[red]genredream classify:[/] {e}")
        return 2
    d = result["damaged"]
    if d is not None:
        whole = f" of {d['declared_s']:.1f} s" if d["declared_s"] else ""
        err.print(f"[yellow]warning:[/] {args.file} is damaged: {d['reason']}; scored the {d['decoded_s']:.1f} s{whole} that could be decoded", highlight=False)
    if result["low_energy"]:
        err.print(f"[yellow]warning:[/] {args.file} is near silence ({result['level_db']:.0f} dBFS): its scores describe "
                  "no music", highlight=False)
    if result["looped_to_window"]:
        err.print(f"note: {args.file} is {result['duration_s']:.1f} s, shorter than the model's {model.meta['window_seconds']:g} s window: "
                  "it was repeated to fill it", highlight=False)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return 0
    con = Console()
    gl, act = result["genre_labels"], result["activation"]
    title = f"{args.file} — model {result['model']}" + (" (genre tags, renormalised)" if act == "sigmoid" and not args.all_tags else "")
    tab = Table(title=title)
    tab.add_column("window")
    tab.add_column(f"top {args.top}")
    for w in result["windows"]:
        d = display_scores(w["scores"], gl, args.all_tags, act)
        top = sorted(d.items(), key=lambda kv: -kv[1])[: args.top]
        quiet = f"  [dim](low energy, {w['level_db']:.0f} dBFS)[/]" if w["low_energy"] else ""
        tab.add_row(f"{w['start_s']:.1f}-{w['end_s']:.1f} s", "  ".join(f"{k} {v:.0%}" for k, v in top) + quiet)
    d = display_scores(result["mean"], gl, args.all_tags, act)
    top = sorted(d.items(), key=lambda kv: -kv[1])[: args.top]
    quiet = f"  (low energy, {result['level_db']:.0f} dBFS)" if result["low_energy"] else ""
    tab.add_row("[bold]whole file[/]", "[bold]" + "  ".join(f"{k} {v:.0%}" for k, v in top) + quiet + "[/]")
    con.print(tab)
    return 0
