"""Accuracy of a model file on a labelled collection (`genredream evaluate`, engine/cli/evaluate.py).

Used to measure the shipped models on songs rendered with a different seed
than their training corpus: consecutive 5-second windows of every song,
window accuracy, song accuracy (mean of window probabilities), per-class
accuracy, and a confusion-matrix PNG. Genres of the collection that the
model does not know are reported and left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["evaluate"]


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
    if len(unknown) == len(coll.genres):  # nothing to score: say so before decoding a single file
        from genredream.models.data import CollectionError

        shown = ", ".join(labels[:20]) + (f" ... ({len(labels)} in all)" if len(labels) > 20 else "")
        raise CollectionError(f"{data}: no folder is named after a label of {m.meta['name']} (folders: {', '.join(coll.genres)}; "
                              f"its labels: {shown}). Name each folder after the label its songs should get.")
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
    if not y_win:
        from genredream.models.data import CollectionError

        raise CollectionError(f"{data}: none of its {len(songs)} songs in the model's genres could be decoded"
                              + (f" (skipped: {len(rep.skipped)})" if rep.skipped else ""))
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
