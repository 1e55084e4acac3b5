"""Genre scores of a file, window by window and overall (`genredream classify`, engine/cli/classify.py).

The file is decoded at the model's rate and cut into consecutive 5-second
windows (the last one aligned to the file's end), each scored exactly as the
engine scores its window (:class:`genredream.models.inputs.InputSpec`). The mean over
windows is the file's score. Files shorter than :data:`genredream.models.data.MIN_SECONDS`
(1 s) are refused; files between that and a window are repeat-padded.

For tag models (musicnn) the display shows the genre tags only, renormalised
to sum to 1 so they read as shares; the JSON keeps the raw sigmoid values and
``--all-tags`` shows every tag.
"""

from __future__ import annotations

import numpy as np

__all__ = ["classify_file", "default_model", "display_scores", "DEFAULT_MODEL"]

#: The real-music default once it is installed (issue: musicnn port); until
#: then the first shipped model is used.
DEFAULT_MODEL = "musicnn-msd"


def default_model():
    from genredream.models.archive import ModelFileError  # not contract: that imports torch (2 s) where only a name is needed
    from genredream.models.registry import list_models, resolve_model

    try:
        return resolve_model(DEFAULT_MODEL)
    except ModelFileError:
        shipped = [m for m in list_models() if m["error"] is None]
        if not shipped:
            raise ModelFileError("no models are installed: train one with `genredream train` and pass --model FILE.pt") from None
        return shipped[0]["path"]


def classify_file(path, model, batch_size=16):
    """Scores of every window of ``path`` and their mean.

    Parameters
    ----------
    path : path of an audio file
    model : models.contract.LoadedModel

    Returns
    -------
    dict: ``{"model", "labels", "activation", "windows": [{"start_s", "end_s", "scores": {label: p}}], "mean": {label: p}}``
    with raw activations (softmax or sigmoid as the model's metadata says).
    """
    import torch

    from genredream.models.data import check_length, consecutive_starts, file_damage, fit_length, load_audio
    from genredream.models.inputs import InputSpec

    meta = model.meta
    spec = InputSpec(meta)
    audio = load_audio(path, spec.sample_rate)
    check_length(audio.size, spec.sample_rate, path)  # under MIN_SECONDS: refused, never looped into a confident score
    duration = audio.size / spec.sample_rate
    audio, _ = fit_length(audio, spec.window_samples)
    feats = spec.song_features(audio)
    starts = consecutive_starts(spec.units(feats), spec.length)
    probs = []
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            x = torch.from_numpy(spec.batch([feats] * len(starts[i : i + batch_size]), starts[i : i + batch_size]))
            logits = model.module(x)
            probs.append((torch.sigmoid(logits) if meta["activation"] == "sigmoid" else torch.softmax(logits, dim=1)).numpy())
    probs = np.concatenate(probs).astype(float)
    labels = list(meta["labels"])
    windows = [
        {
            "start_s": round(spec.seconds(s), 3),
            "end_s": round(min(spec.seconds(s) + float(meta["window_seconds"]), max(duration, float(meta["window_seconds"]))), 3),
            "scores": dict(zip(labels, p.tolist())),
        }
        for s, p in zip(starts, probs)
    ]
    return {
        "model": meta["name"],
        "labels": labels,
        "activation": meta["activation"],
        "genre_labels": meta.get("genre_labels") or labels,
        "duration_s": round(duration, 3),
        # shorter than a window: repeated to fill it (the scores describe a loop of the file)
        "looped_to_window": duration < float(meta["window_seconds"]),
        # a cut-off file is scored up to the damage; this says so (None for a sound file)
        "damaged": file_damage(path, duration),
        "windows": windows,
        "mean": dict(zip(labels, probs.mean(axis=0).tolist())),
    }


def display_scores(scores, genre_labels, all_tags, activation):
    """What the table shows: genre labels only, renormalised, for sigmoid tag models."""
    if all_tags or activation == "softmax":
        return dict(scores)
    g = {k: scores[k] for k in genre_labels if k in scores}
    total = sum(g.values()) or 1.0
    return {k: v / total for k, v in g.items()}
