"""`genredream evaluate MODEL DATA`: accuracy of a model on a folder-per-genre collection.

The evaluation is :func:`genredream.models.evaluate.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.description = "Accuracy of a model file on a folder-per-genre collection (e.g. songs rendered with another seed)."
    p.add_argument("model", help="model name or .pt path")
    p.add_argument("data", help="collection folder: DATA/<genre>/<audio files>")
    p.add_argument("--plot", help="write the confusion matrix PNG here")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")


def main(args) -> int:
    from genredream.models.contract import ModelFileError
    from genredream.models.registry import resolve_model
    from genredream.models.data import CollectionError
    from genredream.models.evaluate import evaluate

    try:
        r = evaluate(resolve_model(args.model), args.data, plot=args.plot)
    except (ModelFileError, CollectionError) as e:
        print(f"genredream evaluate: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"{r['model']} on {r['data']}: {r['window_accuracy']:.1%} of {r['windows']} windows, {r['song_accuracy']:.1%} of {r['songs']} songs")
        scored = {g: a for g, a in r["per_class_accuracy"].items() if a is not None}
        for g, a in scored.items():
            print(f"  {g:>12}: {a:.0%}")
        if len(scored) < len(r["per_class_accuracy"]):
            print(f"  ({len(r['per_class_accuracy']) - len(scored)} other labels of the model have no songs in the collection)")
        if r["unknown_genres"]:
            print(f"  left out (genres the model does not know): {', '.join(r['unknown_genres'])}")
    return 0
