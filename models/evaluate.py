"""`genredream evaluate MODEL DATA`: accuracy of a model file on a labelled collection.

Used to measure the shipped models on songs rendered with a different seed
than their training corpus: consecutive 5-second windows of every song,
window accuracy, song accuracy (mean of window probabilities), per-class
accuracy, and a confusion-matrix PNG. Genres of the collection that the
model does not know are reported and left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["evaluate", "add_arguments", "main"]


def evaluate(model_path, data, plot=None, progress=False):
    """Evaluate a model file on a folder-per-genre collection.

    Returns
    -------
    dict with window_accuracy, song_accuracy, per_class_accuracy, confusion
    (windows; rows true, columns predicted, in the model's label order),
    songs, windows, skipped_files, unknown_genres.
    """
    import torch

    from genredream.models.contract import load
    from genredream.models.data import consecutive_starts, decode_songs, scan
    from genredream.models.inputs import InputSpec
    from genredream.models.train import confusion, plot_confusion

    m = load(model_path)
    labels = list(m.meta["labels"])
    spec = InputSpec(m.meta)
    coll = scan(data)
    unknown = [g for g in coll.genres if g not in labels]
    songs = [s for s in coll.songs if s.genre in labels]
    rep = decode_songs(songs, labels, spec.sample_rate, spec.window_samples)
    y_win, p_win, y_song, p_song = [], [], [], []
    with torch.no_grad():
        for d in rep.decoded:
            f = spec.song_features(d.audio)
            starts = consecutive_starts(spec.units(f), spec.length)
            x = torch.from_numpy(spec.batch([f] * len(starts), starts))
            probs = torch.softmax(m.module(x), 1).numpy() if m.meta["activation"] == "softmax" else torch.sigmoid(m.module(x)).numpy()
            y_win += [d.label] * len(starts)
            p_win += probs.argmax(1).tolist()
            y_song.append(d.label)
            p_song.append(int(probs.mean(0).argmax()))
    n = len(labels)
    cm = confusion(y_win, p_win, n)
    out = {
        "model": m.meta["name"],
        "model_file": str(model_path),
        "data": str(Path(data).resolve()),
        "songs": len(rep.decoded),
        "windows": len(y_win),
        "window_accuracy": float(np.mean(np.array(y_win) == np.array(p_win))) if y_win else None,
        "song_accuracy": float(np.mean(np.array(y_song) == np.array(p_song))) if y_song else None,
        "per_class_accuracy": {g: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, g in enumerate(labels)},
        "confusion": cm.tolist(),
        "labels": labels,
        "skipped_files": rep.skipped,
        "unknown_genres": unknown,
    }
    if plot:
        plot_confusion(cm, labels, plot, f"{out['model']} on {Path(data).name}: window accuracy {out['window_accuracy']:.1%}")
    return out


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

    try:
        r = evaluate(resolve_model(args.model), args.data, plot=args.plot)
    except (ModelFileError, CollectionError) as e:
        print(f"genredream evaluate: {e}")
        return 2
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        print(f"{r['model']} on {r['data']}: {r['window_accuracy']:.1%} of {r['windows']} windows, {r['song_accuracy']:.1%} of {r['songs']} songs")
        for g, a in r["per_class_accuracy"].items():
            print(f"  {g:>12}: {'n/a' if a is None else f'{a:.0%}'}")
        if r["unknown_genres"]:
            print(f"  left out (genres the model does not know): {', '.join(r['unknown_genres'])}")
    return 0
