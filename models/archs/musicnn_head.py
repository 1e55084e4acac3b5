"""A genre head on musicnn's body: the user's genres from the tagger's features.

The body is a shipped musicnn tagger (``musicnn-msd`` or ``musicnn-mtt``,
frozen); the head is a small classifier on one of its back-end embeddings:

* ``penultimate``: the 200-unit dense layer after its batch norm, the
  embedding Essentia's musicnn classifier heads use;
* ``pooled``: the batch-normed max and mean over time of the front end and
  mid end, ``[B, 1506]``, what the penultimate layer reads.

The head standardises its input with the training embeddings' mean and
standard deviation (buffers, saved in the file), then is a linear layer or
one hidden layer (ReLU) and a linear layer. Which one a user gets is decided
by measurement (``docs/heads.md``).

Why a subclass of :class:`~genredream.models.archs.musicnn.Musicnn` and not a wrapper:
the engine runs musicnn through its frame-branch methods and a compiled step
around them (``models/incremental/runner.py``, ``models/incremental/step.py``). Here only
``_logits`` changes, which ``forward``, ``features`` and ``stream_tail`` all
reach, so the file is one TorchScript module that streams, validates and
dreams exactly like the shipped musicnn, at the same cost plus one small
matrix product.
"""

from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from ._common import make_meta
from .musicnn import MEL, MUSICNN_LAYERS, PAPER, Musicnn

__all__ = ["MusicnnHead", "EMBEDDINGS", "EMBEDDING_LAYERS", "embedding_size", "build_head", "make_head_meta"]

#: The shipped taggers a head can sit on (model names in models/pretrained).
EMBEDDINGS = ("musicnn-msd", "musicnn-mtt")

#: The embeddings a head can read, and their sizes for the shipped shape.
EMBEDDING_LAYERS = {"penultimate": 200, "pooled": 1506}


def embedding_size(layer: str) -> int:
    if layer not in EMBEDDING_LAYERS:
        raise ValueError(f"unknown embedding layer {layer!r}; known: {', '.join(EMBEDDING_LAYERS)}")
    return EMBEDDING_LAYERS[layer]


def build_head(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    """``Linear`` (``hidden == 0``) or ``Linear -> ReLU -> Linear``: the last module is the output layer."""
    if hidden > 0:
        return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
    return nn.Sequential(nn.Linear(n_in, n_out))


class GenreHead(nn.Module):
    """Standardise, then :func:`build_head`. ``[B, n_in] -> logits [B, n_out]``."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 0):
        super().__init__()
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))
        self.net = build_head(n_in, n_out, hidden)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net((e - self.in_mean) / self.in_std)


class MusicnnHead(Musicnn):
    """musicnn's body with a genre head on ``embedding_layer`` (see the module docstring).

    ``forward(x)`` -> genre logits ``[B, len(labels)]``; ``features(x)``: the
    body's layers (:data:`MUSICNN_LAYERS`), so dreaming targets the same
    layers as on musicnn; the frame-branch methods are musicnn's.
    """

    use_pooled: bool

    def __init__(self, labels: List[str], embedding_layer: str = "penultimate", hidden: int = 0):
        super().__init__(labels, MEL)
        self.embedding_layer = embedding_layer
        self.use_pooled = embedding_layer == "pooled"
        self.hidden = int(hidden)
        # The tagger's 50-tag output layer is not part of a head file.
        self.out = nn.Identity()
        self.head = GenreHead(embedding_size(embedding_layer), len(self.labels), self.hidden)

    __jit_ignored_attributes__ = ["mel_config", "embedding_layer", "hidden"]

    def _logits(self, pooled: torch.Tensor, penultimate: torch.Tensor) -> torch.Tensor:
        if self.use_pooled:
            return self.head(pooled)
        return self.head(penultimate)

    def load_body(self, body_state: Dict[str, torch.Tensor]) -> None:
        """Copy a tagger's weights (its ``state_dict``) into the body; the tagger's output layer is dropped."""
        state = {k: v for k, v in body_state.items() if not k.startswith("out.")}
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("head.")]
        if missing or unexpected:
            raise ValueError(f"not a musicnn body: missing {missing[:5]}, unexpected {unexpected[:5]}")


def make_head_meta(net: MusicnnHead, embedding: str, body_licence: str) -> Dict[str, Any]:
    """Metadata of a head file: a genre classifier (softmax) at musicnn's input, under the body's licence."""
    meta = make_meta("musicnn-head", net, PAPER, MEL, notes=f"genre head on {embedding}'s {net.embedding_layer} embedding")
    meta["licence"] = body_licence
    meta["layers"] = list(MUSICNN_LAYERS)
    meta["head"] = {"embedding": embedding, "layer": net.embedding_layer, "hidden": net.hidden}
    return meta


def from_state(labels: List[str], head: Dict[str, Any], state: Dict[str, torch.Tensor]) -> Tuple[MusicnnHead, Dict[str, Any]]:
    """Rebuild an eager :class:`MusicnnHead` from a head file's ``head`` metadata and ``state_dict``."""
    net = MusicnnHead(labels, head["layer"], int(head["hidden"]))
    net.load_state_dict(state)
    return net, head
