"""`genredream classify FILE`: genre scores of a file, window by window and overall.

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

import argparse
import json
import sys

import numpy as np

__all__ = ["classify_file", "add_arguments", "main", "DEFAULT_MODEL"]

#: The real-music default once it is installed (issue: musicnn port); until
#: then the first shipped model is used.
DEFAULT_MODEL = "musicnn-msd"


def add_arguments(p: argparse.ArgumentParser):
    p.description = "Genre scores of an audio file (wav, flac, ogg, mp3, au), per 5-second window and overall."
    p.add_argument("file", help="audio file")
    p.add_argument("--model", default=None, help=f"model name or .pt path (default {DEFAULT_MODEL}; see `genredream models`)")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    p.add_argument("--all-tags", action="store_true", help="show every tag, not only genres (tag models)")
    p.add_argument("--top", type=int, default=5, help="labels to show per window in the table (default 5)")


def default_model():
    from genredream.models.contract import ModelFileError
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


def main(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from genredream.models.contract import ModelFileError, load
    from genredream.models.registry import resolve_model
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
        tab.add_row(f"{w['start_s']:.1f}-{w['end_s']:.1f} s", "  ".join(f"{k} {v:.0%}" for k, v in top))
    d = display_scores(result["mean"], gl, args.all_tags, act)
    top = sorted(d.items(), key=lambda kv: -kv[1])[: args.top]
    tab.add_row("[bold]whole file[/]", "[bold]" + "  ".join(f"{k} {v:.0%}" for k, v in top) + "[/]")
    con.print(tab)
    return 0
