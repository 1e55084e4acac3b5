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

#: The real-music default when it is installed; otherwise the first shipped model is used.
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

    The file is streamed (:class:`genredream.models.tag.windows.FileWindows`, the
    windows and inputs described above, the same as `tag` computes): memory does
    not grow with the file's length.

    Parameters
    ----------
    path : path of an audio file
    model : models.contract.LoadedModel

    Returns
    -------
    dict: ``{"model", "labels", "activation", "level_db", "low_energy", "windows": [{"start_s", "end_s",
    "level_db", "low_energy", "scores": {label: p}}], "mean": {label: p}}`` with raw activations (softmax or
    sigmoid as the model's metadata says); levels in dBFS, low energy below
    :data:`genredream.models.data.LOW_ENERGY_DB` (the mark `run` puts on its windows).
    """
    import torch

    from genredream.models.data import LOW_ENERGY_DB, AudioFileError, check_length, check_path, file_damage
    from genredream.models.inputs import InputSpec
    from genredream.models.tag.windows import FileWindows

    meta = model.meta
    spec = InputSpec(meta)
    check_path(path)  # "no such file" before any decoder's words
    probs, batch = [], []

    def run(batch):
        with torch.no_grad():
            logits = model.module(torch.from_numpy(np.ascontiguousarray(np.stack(batch), dtype=np.float32)))
            probs.append((torch.sigmoid(logits) if meta["activation"] == "sigmoid" else torch.softmax(logits, dim=1)).numpy())

    try:
        fw = FileWindows(path, [spec])
        for _, _, _, x in fw:
            batch.append(x)
            if len(batch) == batch_size:
                run(batch)
                batch = []
    except AudioFileError:
        # Cut off mid-stream, or a decoder's whole-file path: decoded whole, up to the damage (as `run` does), or refused
        # with both decoders' reasons.
        fw, probs, batch = _Decoded(path, spec), [], []
        for x in fw.inputs():
            batch.append(x)
            if len(batch) == batch_size:
                run(batch)
                batch = []
    if batch:
        run(batch)
    # under MIN_SECONDS: refused, never looped into a confident score
    check_length(round(fw.duration_s * fw.sample_rate), fw.sample_rate, path)
    duration = fw.duration_s
    probs = np.concatenate(probs).astype(float)
    labels = list(meta["labels"])
    ws = float(meta["window_seconds"])
    windows = []
    for s, p in zip(fw.starts[0], probs):
        start = spec.seconds(s)
        end = min(start + ws, max(fw.model_seconds[0], ws))
        level = fw.level_db(start, end)
        windows.append({"start_s": round(start, 3), "end_s": round(end, 3), "level_db": round(level, 2),
                        "low_energy": level < LOW_ENERGY_DB, "scores": dict(zip(labels, p.tolist()))})
    level = fw.level_db()
    return {
        "model": meta["name"],
        "labels": labels,
        "activation": meta["activation"],
        "genre_labels": meta.get("genre_labels") or labels,
        "duration_s": round(duration, 3),
        # the file's RMS level; below LOW_ENERGY_DB its scores describe (near) silence
        "level_db": round(level, 2),
        "low_energy": level < LOW_ENERGY_DB,
        # shorter than a window: repeated to fill it (the scores describe a loop of the file)
        "looped_to_window": duration < ws,
        # a cut-off file is scored up to the damage; this says so (None for a sound file)
        "damaged": file_damage(path, duration),
        "windows": windows,
        "mean": dict(zip(labels, probs.mean(axis=0).tolist())),
    }


class _Decoded:
    """The whole-file path, for what :class:`~genredream.models.tag.windows.FileWindows` cannot stream:
    the same windows and inputs from samples decoded at once, with the same attributes."""

    def __init__(self, path, spec):
        from genredream.models.data import fit_length, load_audio

        self.spec = spec
        self.audio = load_audio(path, spec.sample_rate)  # up to the damage, or AudioFileError naming both decoders
        self.sample_rate = spec.sample_rate
        self.duration_s = self.audio.size / spec.sample_rate
        self.model_seconds = [self.duration_s]
        self._padded, _ = fit_length(self.audio, spec.window_samples)
        self.starts = [[]]

    def inputs(self):
        from genredream.models.data import consecutive_starts

        feats = self.spec.song_features(self._padded)
        for s in consecutive_starts(self.spec.units(feats), self.spec.length):
            self.starts[0].append(int(s))
            yield self.spec.window(feats, int(s))

    def level_db(self, start_s=0.0, end_s=None):
        x = self.audio[int(start_s * self.sample_rate) : None if end_s is None else int(end_s * self.sample_rate)]
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
        return float(20 * np.log10(max(rms, 1e-10)))


def display_scores(scores, genre_labels, all_tags, activation):
    """What the table shows: genre labels only, renormalised, for sigmoid tag models."""
    if all_tags or activation == "softmax":
        return dict(scores)
    g = {k: scores[k] for k in genre_labels if k in scores}
    total = sum(g.values()) or 1.0
    return {k: v / total for k, v in g.items()}
