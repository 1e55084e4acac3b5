"""Pieces every architecture shares: the module base class and the metadata builder.

Not an architecture itself (hence the underscore): each family lives in its
own file (``geng.py``, ``zheng.py``, ...), and :mod:`genredream.models.archs` lists them.

TorchScript note: no ``from __future__ import annotations`` in the arch
modules, because TorchScript reads class-level annotations such as
``labels: List[str]`` and cannot resolve them once they are strings.
"""

import math
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

from genredream.engine.mel import MelConfig

from ..torch_mel import TorchMel

#: Every model sees the engine's 5-second window (the engine's window: docs/architecture.md).
WINDOW_SECONDS = 5.0

#: Version of freshly built (untrained) models; train.py bumps it per release.
INITIAL_VERSION = "0.1.0"


def window_samples(sample_rate: int, window_seconds: float = WINDOW_SECONDS) -> int:
    """Samples in one window: ``round(sample_rate * window_seconds)``."""
    return int(round(sample_rate * window_seconds))


def check_labels(labels) -> List[str]:
    """Labels as a list of unique non-empty strings (raises ValueError otherwise)."""
    if isinstance(labels, str) or not hasattr(labels, "__iter__"):
        raise ValueError(f"labels must be a list of strings, got {labels!r}")
    out = list(labels)
    if len(out) < 2:
        raise ValueError(f"labels must name at least 2 classes, got {out!r}")
    for lab in out:
        if not isinstance(lab, str) or not lab:
            raise ValueError(f"every label must be a non-empty string, got {lab!r}")
    dup = sorted({lab for lab in out if out.count(lab) > 1})
    if dup:
        raise ValueError(f"labels must be unique; repeated: {dup}")
    return out


class GenreNet(nn.Module):
    """Base of all architectures: labels, window and layer names as attributes.

    Subclasses implement ``forward(x) -> logits [batch, n_labels]`` and
    ``features(x) -> List[Tensor]`` (marked ``@torch.jit.export``), and mel
    models also ``frontend(wave) -> mel``.

    The feature names are both in the model file's metadata (``layers``, the
    authoritative copy the engine reads without running anything) and here,
    as the scripted method :meth:`layer_names`, so a scripted module is
    self-describing too.
    """

    # Python-side helpers TorchScript must not try to compile.
    __jit_unused_properties__ = ["n_samples"]

    labels: List[str]
    layers: List[str]
    sample_rate: int
    window_seconds: float
    input_kind: str

    def __init__(self, labels: List[str], sample_rate: int, input_kind: str, layers: List[str]):
        super().__init__()
        self.labels = check_labels(labels)
        self.sample_rate = int(sample_rate)
        self.window_seconds = float(WINDOW_SECONDS)
        self.input_kind = input_kind
        self.layers = list(layers)

    @torch.jit.export
    def layer_names(self) -> List[str]:
        """Names of the tensors :meth:`features` returns, in order."""
        return self.layers

    @property
    def n_samples(self) -> int:
        return window_samples(self.sample_rate, self.window_seconds)


class MelNet(GenreNet):
    """Base of mel-input architectures: holds the :class:`TorchMel` front end.

    ``forward`` and ``features`` take the scaled mel ``[batch, n_mels, frames]``
    the engine's front end produces for this config; :meth:`frontend` computes
    it from a waveform in torch, so ``forward(frontend(wave))`` is
    differentiable end to end.
    """

    n_mels: int
    n_frames: int

    def __init__(self, labels: List[str], mel: MelConfig, layers: List[str]):
        if not isinstance(mel, MelConfig):
            raise TypeError(f"mel must be an engine.mel.MelConfig, got {type(mel).__name__}")
        super().__init__(labels, mel.sr, "mel", layers)
        self.mel_config = mel
        self.mel = TorchMel(mel)
        self.n_mels = int(mel.n_mels)
        self.n_frames = mel.frames_for(self.n_samples)

    __jit_ignored_attributes__ = ["mel_config"]

    @torch.jit.export
    def frontend(self, wave: Tensor) -> Tensor:
        """Scaled mel of a waveform batch.

        Parameters
        ----------
        wave : Tensor, float32, shape [batch, samples]
            Samples at ``sample_rate`` Hz in [-1, 1].

        Returns
        -------
        Tensor, float32, shape [batch, n_mels, 1 + samples // hop_length]
        """
        return self.mel(wave)


def glorot_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every conv and dense layer.

    Keras' defaults, which the Keras-built seed systems used (Lidy & Schindler
    2016, Sec. 2.3 state it explicitly; Zheng used Keras defaults).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def flat_size(stack: nn.Module, shape: List[int]) -> int:
    """Number of features ``stack`` produces per example for an input of ``shape`` (no batch dim)."""
    with torch.no_grad():
        was = stack.training
        stack.eval()
        out = stack(torch.zeros([1] + list(shape)))
        stack.train(was)
    return int(math.prod(out.shape[1:]))


def make_meta(
    arch: str,
    module: GenreNet,
    paper: str,
    mel: Optional[MelConfig] = None,
    notes: str = "",
) -> Dict[str, Any]:
    """Model-file metadata for a freshly built (untrained) ``module``.

    The keys are the ones :func:`genredream.models.contract.validate` checks (see
    :mod:`genredream.models.contract`); ``provenance`` says the weights are untrained
    until train.py fills in data, accuracy and split.
    """
    return {
        "name": arch,
        "version": INITIAL_VERSION,
        "arch": arch,
        "labels": list(module.labels),
        "task": "genre",
        "activation": "softmax",
        "sample_rate": int(module.sample_rate),
        "window_seconds": float(module.window_seconds),
        "input": module.input_kind,
        "mel": None if mel is None else mel.to_dict(),
        "layers": list(module.layers),
        "genre_labels": list(module.labels),
        "licence": "MIT",
        "provenance": {
            "paper": paper,
            "trained": False,
            "data": None,
            "accuracy": None,
            "split": None,
            "notes": notes,
        },
    }
