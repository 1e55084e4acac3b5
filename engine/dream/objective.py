"""What a dream ascends: the objectives, and the measures of a dream, on a model that can dream.

Geng, Ren & Ogihara (2017) modify a genre CNN's input clip "in order to
maximize the objective function which is the sum of a particular
convolutional layer or all convolutional layers", by gradient ascent. Both
of their objectives stay available here, beside the target objectives:

Objectives (:class:`Objective`, built and checked by :func:`make_objective`)
---------------------------------------------------------------------------
All are per window, from a waveform batch ``[B, samples]`` at the model's
rate; mel models go through their differentiable torch ``frontend()`` first.

* ``layer NAME``: the **mean** of the named layer's activations (one of
  the model's ``features()``, named by its metadata ``layers``). The paper's
  sum, divided by the layer's size: the ascent direction is the same, and
  values stay comparable between layers and window lengths.
* ``all``: the sum over layers of each layer's mean: the paper's "all
  convolutional layers", each layer weighted equally (a raw sum would be the
  largest layer's alone: geng's conv1 has 80 times conv3's elements).
* ``target LABEL``: ``log p(LABEL)`` ("make it more jazz"), or with
  ``away`` ``log (1 - p(LABEL))`` (make it less so); ``p`` is the model's
  softmax or sigmoid, as its metadata says.

The measures: :func:`evaluate_objective` (an objective over a whole
signal, as the engine's windows see it), :func:`target_logits` and
:func:`judge_score` (a target's logit, the figure the transfer benchmark and
``genredream dream --judge`` report).

Used by every dream: the waveform ascent (:mod:`genredream.engine.dream.wave`),
the transfer dream (:mod:`genredream.engine.dream.transfer`), the streaming
:class:`genredream.engine.dream.stream.Dreamer` and ``genredream dream``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "DreamError",
    "Objective",
    "load_dream_model",
    "make_objective",
    "model_input",
    "probabilities",
    "window_starts",
    "evaluate_objective",
    "target_logits",
    "label_index",
    "judge_score",
]


class DreamError(ValueError):
    """A dream that cannot run as asked (unknown layer or label, unusable model); the message says what to do."""


# ---------------------------------------------------------------------------
# the model


def load_dream_model(model):
    """A model that can dream: a :class:`genredream.models.contract.LoadedModel`, checked.

    Parameters
    ----------
    model : str, path or LoadedModel
        A model name (``genredream models``), a ``.pt`` path, or an already
        loaded model (e.g. one the engine runs).

    Returns
    -------
    LoadedModel
        With its parameters frozen (``requires_grad=False``: dreaming
        differentiates with respect to the audio only, and skipping the
        weight gradients saves about a tenth of the backward pass).

    Raises
    ------
    DreamError
        The file cannot be loaded or validated, or the module lacks
        ``features()`` (or ``frontend()`` for a mel model): said at load,
        never at the first hop.
    """
    from genredream.models.contract import LoadedModel, ModelFileError, has_method
    from genredream.models.registry import resolve_model
    from genredream.models.validated import validate_once

    if isinstance(model, LoadedModel):
        lm = model
    else:
        try:
            # Validated once per file content, as the engine loads models (models/validated.py): the
            # full check runs musicnn 26 times, about 7 s of CPU per model, more than a 15 s clip's dream.
            lm, _ = validate_once(resolve_model(model))
        except ModelFileError as e:
            raise DreamError(f"cannot dream with {model}: {e}") from None
    need = ["features"] + (["frontend"] if lm.input == "mel" else [])
    for name in need:
        if not has_method(lm.module, name):
            why = "the per-layer activations dreaming ascends" if name == "features" else "the differentiable mel front end"
            raise DreamError(
                f"cannot dream with {lm.name} ({lm.path}): the model has no {name}() method ({why}); "
                "export it with models.contract.save and mark the method @torch.jit.export"
            )
    for p in lm.module.parameters():
        p.requires_grad_(False)
    return lm


def model_input(lm, wave):
    """What ``forward``/``features`` take for a waveform batch ``[B, samples]`` (mel models: ``frontend(wave)``)."""
    return lm.module.frontend(wave) if lm.input == "mel" else wave


def probabilities(lm, wave):
    """Scores (softmax or sigmoid, per the metadata) of a waveform batch, float64 numpy ``[B, labels]``."""
    with torch.no_grad():
        z = lm.module(model_input(lm, torch.as_tensor(wave, dtype=torch.float32)))
        p = torch.sigmoid(z) if lm.meta["activation"] == "sigmoid" else torch.softmax(z, dim=1)
    return p.double().numpy()


# ---------------------------------------------------------------------------
# objectives


@dataclass(frozen=True)
class Objective:
    """What a dream ascends, per window.

    Attributes
    ----------
    kind : {"layer", "all", "target"}
    name : str
        The layer name, ``"all"``, or the target label.
    index : int
        Index of the layer in ``features()`` or of the label in the logits (-1 for all).
    away : bool
        Target mode only: push away from the label instead of toward it.
    activation : {"softmax", "sigmoid"}
    """

    kind: str
    name: str
    index: int = -1
    away: bool = False
    activation: str = "softmax"

    def __call__(self, lm, wave):
        """Objective of each window of ``wave`` (``[B, samples]``, model rate): Tensor ``[B]``."""
        x = model_input(lm, wave)
        if self.kind == "target":
            z = lm.module(x)
            c = self.index
            if self.activation == "sigmoid":
                zc = z[:, c]
                return torch.nn.functional.logsigmoid(-zc if self.away else zc)
            logp = torch.log_softmax(z, dim=1)
            if not self.away:
                return logp[:, c]
            others = torch.cat([logp[:, :c], logp[:, c + 1 :]], dim=1)
            return torch.logsumexp(others, dim=1)  # log(1 - p_c), stably
        feats = lm.module.features(x)
        if self.kind == "layer":
            return feats[self.index].flatten(1).mean(1)
        total = feats[0].flatten(1).mean(1)
        for f in feats[1:]:
            total = total + f.flatten(1).mean(1)
        return total

    def describe(self):
        if self.kind == "target":
            return f"{'away from' if self.away else 'toward'} {self.name!r} (log {'1 - ' if self.away else ''}p)"
        if self.kind == "all":
            return "all layers (sum of each layer's mean activation)"
        return f"layer {self.name!r} (mean activation)"


def make_objective(lm, layer=None, target=None, away=False):
    """Check a dream request against the model and return its :class:`Objective`.

    Parameters
    ----------
    lm : LoadedModel
    layer : str or int, optional
        A name from the model's ``layers``, its index, or ``"all"`` (default
        when no target is given).
    target : str, optional
        A label of the model (exclusive with ``layer``).
    away : bool
        With ``target``: push away from it.

    Raises
    ------
    DreamError
        For an unknown layer (the message lists the layers) or label (it
        lists the labels), or both a layer and a target.
    """
    layers = list(lm.meta["layers"])
    labels = list(lm.meta["labels"])
    if target is not None and layer not in (None, "all"):
        raise DreamError(f"choose a layer ({layer!r}) or a target ({target!r}), not both")
    if target is not None:
        if target not in labels:
            folded = [lab for lab in labels if lab.lower() == str(target).lower()]
            if len(folded) != 1:
                raise DreamError(f"unknown target label {target!r} for {lm.name}; its labels: {', '.join(labels)}")
            target = folded[0]
        return Objective("target", target, labels.index(target), bool(away), lm.meta["activation"])
    if away:
        raise DreamError("--away needs a target label (--target LABEL)")
    if layer is None or (isinstance(layer, str) and layer.lower() == "all"):
        return Objective("all", "all", -1)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not 0 <= layer < len(layers):
            raise DreamError(f"layer index {layer} out of range for {lm.name}; its layers: {', '.join(f'{i} {n}' for i, n in enumerate(layers))}, or all")
        return Objective("layer", layers[int(layer)], int(layer))
    if layer not in layers:
        folded = [n for n in layers if n.lower() == str(layer).lower()]
        if len(folded) != 1:
            raise DreamError(f"unknown layer {layer!r} for {lm.name}; its layers: {', '.join(layers)}, or all")
        layer = folded[0]
    return Objective("layer", layer, layers.index(layer))


# ---------------------------------------------------------------------------
# measures


def window_starts(n, w, stride):
    """Starts of windows of ``w`` covering ``[0, n)`` every ``stride``, the last one aligned to the end (n >= w)."""
    if n <= w:
        return [0]
    starts = list(range(0, n - w + 1, stride))
    if starts[-1] != n - w:
        starts.append(n - w)
    return starts


def evaluate_objective(lm, wave, objective, batch=4, stride=None):
    """The objective of a signal: its mean over windows every ``stride`` samples (the last aligned to the end).

    Parameters
    ----------
    wave : array, float32, shape [n]
        At the model's rate; shorter than a window: zero-padded at the end.
    stride : int, optional
        Samples between windows; default half a window. The engine scores a
        window every hop: ``stride = hop * sample_rate`` measures the
        objective as the running engine sees it.

    Returns
    -------
    float
        No dither, no gradient: the value a listener's copy of the file has.
    """
    return _mean_over_windows(lm, wave, lambda xb: objective(lm, xb), batch, stride)


def _mean_over_windows(lm, wave, per_window, batch=4, stride=None):
    """Mean of ``per_window(xb)`` (Tensor ``[B]``) over ``lm``'s windows of ``wave`` every ``stride`` (default half a window)."""
    w = lm.n_samples
    x = np.zeros(max(w, len(wave)), np.float32)
    x[: len(wave)] = wave
    starts = window_starts(x.size, w, int(stride or w // 2))
    vals = []
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            xb = torch.from_numpy(np.stack([x[s : s + w] for s in starts[i : i + batch]]))
            vals.append(per_window(xb).double().numpy())
    return float(np.concatenate(vals).mean())


def target_logits(lm, x, index):
    """The target's logit (log-odds) for each window of ``x`` (``[B, samples]``, the model's rate): Tensor ``[B]``.

    Sigmoid models: the raw logit. Softmax models: ``log p - log(1 - p)``
    (shift-invariant, comparable with a sigmoid model's).
    """
    z = lm.module(model_input(lm, x))
    if lm.meta["activation"] == "sigmoid":
        return z[:, index]
    others = torch.cat([z[:, :index], z[:, index + 1 :]], dim=1)
    return z[:, index] - torch.logsumexp(others, dim=1)


def label_index(lm, label):
    """Index of ``label`` in the model's labels (case and hyphens folded when unambiguous), or None."""
    labels = list(lm.meta["labels"])
    if label in labels:
        return labels.index(label)
    folded = [i for i, lab in enumerate(labels) if lab.lower() == str(label).lower().replace("-", "")
              or lab.lower().replace("-", "") == str(label).lower().replace("-", "")]
    return folded[0] if len(folded) == 1 else None


def judge_score(lm, wave, label, batch=4):
    """The target's mean logit (log-odds) over windows at half-window stride of a signal at ``lm``'s rate.

    The measure of a dream: what a network that took no part in it thinks
    of the target. Shorter than a window: zero-padded.
    """
    idx = label_index(lm, label)
    if idx is None:
        raise DreamError(f"{lm.name} has no label {label!r}; its labels: {', '.join(lm.meta['labels'])}")
    return _mean_over_windows(lm, wave, lambda xb: target_logits(lm, xb, idx), batch)
