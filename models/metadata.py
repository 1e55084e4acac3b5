"""A model file's metadata, ``genredream.json``: the schema, checked, and read without torch.

Metadata (``genredream.json``, a JSON object)
---------------------------------------------
========================  ===========================================================
key                       meaning
========================  ===========================================================
``name``                  str, the name ``genredream`` commands use (``--model NAME``)
``version``               str, e.g. ``"1.0.0"``
``labels``                list of unique non-empty str, one per output unit
``task``                  ``"genre"`` (one label per window) or ``"tags"`` (many)
``activation``            ``"softmax"`` or ``"sigmoid"``: what turns logits into scores
``sample_rate``           int, Hz, of the waveform the model (or its front end) takes
``window_seconds``        number > 0, the window length (5.0 for the seed systems)
``input``                 ``"waveform"`` (``[batch, samples]``) or ``"mel"`` (``[batch, n_mels, frames]``)
``mel``                   for mel input: :class:`genredream.engine.mel.MelConfig` as a dict
                          (``sr`` equal to ``sample_rate``); null/absent otherwise
``layers``                list of str, the names of the tensors ``features`` returns
``genre_labels``          optional list of str, the labels that are genres (a subset)
``licence``               str, licence of the weights
``provenance``            object: ``data``, ``accuracy``, ``split``, ... (free form)
========================  ===========================================================

Other keys (e.g. ``arch``) are kept and ignored.

Part of the model-file contract (:mod:`genredream.models.contract`). Reading it
needs no torch and loads no model (:mod:`genredream.models.registry` lists models so).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from genredream.engine.mel import MelConfig
from genredream.models.archive import META_NAME, ModelFileError, read_meta_json

__all__ = ["check_meta", "read_meta", "n_samples", "input_shape_of", "TASKS", "ACTIVATIONS", "INPUTS"]

TASKS = ("genre", "tags")
ACTIVATIONS = ("softmax", "sigmoid")
INPUTS = ("waveform", "mel")



def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _str_list(v, what: str, allow_empty: bool = False) -> list[str]:
    if not isinstance(v, list):
        raise ValueError(f"must be a list of strings, got {type(v).__name__}")
    if not v and not allow_empty:
        raise ValueError(f"must name at least one {what}")
    for i, s in enumerate(v):
        if not isinstance(s, str) or not s:
            raise ValueError(f"entry {i} must be a non-empty string, got {s!r}")
    return v


def check_meta(meta: Any, where: str = "metadata") -> dict:
    """Check a metadata dict against the schema; return it unchanged.

    Parameters
    ----------
    meta : dict
        Parsed ``genredream.json``.
    where : str
        Prefix for error messages (the file's path).

    Raises
    ------
    ModelFileError
        ``"<where>: invalid metadata: <field>: <why>"`` for the first problem.
    """

    def bad(key, why):
        return ModelFileError(f"{where}: invalid metadata: {key}: {why}")

    if not isinstance(meta, dict):
        raise bad(META_NAME, f"must hold a JSON object, got {type(meta).__name__}")
    required = ("name", "version", "labels", "task", "activation", "sample_rate", "window_seconds", "input", "layers", "licence", "provenance")
    for key in required:
        if key not in meta:
            raise bad(key, "missing (required)")
    for key in ("name", "version", "licence"):
        if not isinstance(meta[key], str) or not meta[key].strip():
            raise bad(key, f"must be a non-empty string, got {meta[key]!r}")
    try:
        labels = _str_list(meta["labels"], "label")
    except ValueError as e:
        raise bad("labels", str(e)) from None
    dup = sorted({s for s in labels if labels.count(s) > 1})
    if dup:
        raise bad("labels", f"must be unique; repeated: {dup}")
    for key, allowed in (("task", TASKS), ("activation", ACTIVATIONS), ("input", INPUTS)):
        if meta[key] not in allowed:
            raise bad(key, f"must be one of {list(allowed)}, got {meta[key]!r}")
    if not _is_int(meta["sample_rate"]) or meta["sample_rate"] <= 0:
        raise bad("sample_rate", f"must be a positive integer (Hz), got {meta['sample_rate']!r}")
    if not _is_number(meta["window_seconds"]) or meta["window_seconds"] <= 0:
        raise bad("window_seconds", f"must be a positive number of seconds, got {meta['window_seconds']!r}")
    mel = meta.get("mel")
    if meta["input"] == "mel":
        if not isinstance(mel, dict):
            raise bad("mel", f"required for input 'mel': a MelConfig dict, got {mel!r}")
        try:
            cfg = MelConfig.from_dict(mel)
        except (TypeError, ValueError) as e:
            raise bad("mel", str(e)) from None
        if cfg.sr != meta["sample_rate"]:
            raise bad("mel", f"sr ({cfg.sr}) differs from sample_rate ({meta['sample_rate']})")
        if cfg.frames_for(n_samples(meta)) < 1:
            raise bad("mel", "the window is shorter than one frame")
    elif mel is not None:
        raise bad("mel", "must be null or absent for input 'waveform'")
    try:
        _str_list(meta["layers"], "layer")
    except ValueError as e:
        raise bad("layers", str(e)) from None
    genre = meta.get("genre_labels")
    if genre is not None:
        try:
            _str_list(genre, "label", allow_empty=True)
        except ValueError as e:
            raise bad("genre_labels", str(e)) from None
        unknown = [g for g in genre if g not in labels]
        if unknown:
            raise bad("genre_labels", f"not in labels: {unknown}")
    if not isinstance(meta["provenance"], dict):
        raise bad("provenance", f"must be an object (data, accuracy, split, ...), got {type(meta['provenance']).__name__}")
    return meta


def n_samples(meta: dict) -> int:
    """Samples in one window of the model ``meta`` describes."""
    return int(round(meta["sample_rate"] * meta["window_seconds"]))


def input_shape_of(meta: dict, batch: int) -> list[int]:
    """Shape ``forward`` takes: ``[batch, samples]`` or ``[batch, n_mels, frames]``."""
    n = n_samples(meta)
    if meta["input"] == "waveform":
        return [batch, n]
    cfg = MelConfig.from_dict(meta["mel"])
    return [batch, cfg.n_mels, cfg.frames_for(n)]


def read_meta(path) -> dict:
    """Read and check ``genredream.json`` from a model file, without loading the model.

    Cheap (no torch): reads the zip's directory and one small entry, which is
    what :func:`genredream.models.registry.list_models` needs.

    Raises
    ------
    ModelFileError
        ``file not found``, ``not a TorchScript file``, ``truncated or corrupt``,
        ``missing genredream.json metadata`` or ``invalid metadata: <field>: <why>``.
    """
    path = Path(path)
    meta = read_meta_json(
        path,
        "a TorchScript file, but not a genredream model; save it with models.contract.save, "
        f"or torch.jit.save(m, path, _extra_files={{'{META_NAME}': ...}})",
    )
    return check_meta(meta, str(path))
