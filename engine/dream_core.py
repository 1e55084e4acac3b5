"""The gradient-ascent core of audio deep dream, shared by the offline command and the streaming Dreamer.

Geng, Ren & Ogihara (2017) modify a genre CNN's input clip "in order to
maximize the objective function which is the sum of a particular
convolutional layer or all convolutional layers", by gradient ascent, and
note that "more constraints might be necessary to reduce the noises". This
module holds what both ``genredream dream`` (:mod:`genredream.engine.dream_cli`) and the
streaming :class:`genredream.engine.dream.Dreamer` need:

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

Constraints that make the result usable
---------------------------------------
* **Normalised steps**: each step adds ``step_size * g / rms(g)``: every step
  changes the dreamed samples by ``step_size`` RMS (full scale = 1),
  whatever the gradient's scale (silence, a loud passage, another layer).
* **Range**: after every step the signal is clipped to [-1, 1].
* **Spectral mask** (the noise-reducing constraint, :class:`SpectralMask`):
  the gradient is weighted in the STFT domain by the *original's*
  magnitude, ``M = (clip(dB - dB_max + R, 0, R) / R) ** 2`` with a range
  ``R`` of 60 dB: the dream grows where the music already has energy and not
  in the bins it leaves empty, which is where the broadband hiss and the
  stride-8 comb of a raw-waveform net's gradient would go. Weighting the
  STFT with a non-negative mask keeps the step an ascent direction. A silent
  window has a flat mask (no constraint). ``mask_range=0`` turns it off.
* **Seamless tiling** (offline): a file longer than the model's window is
  tiled with windows at 50 % overlap; each window's gradient is weighted by
  a Hann window before the windows are added (overlap-add, which sums to a
  constant), so window edges leave no seams. Optional **jitter** moves the
  tiling by a random (seeded) offset each step: fewer traces of a strided
  network's grid, but less gain of the objective measured on any one grid
  (a geng dream is specific to its stride-512 grid: with jitter, conv3's
  gain nearly vanishes), so it is off by default.
* **Dither** (model input only): a fixed, seeded ``1e-4`` RMS noise is added
  to what the model sees, never to the output, so digital silence still has
  a gradient to follow (a mel front end's gradient at exact zero is zero):
  silence in gives silence plus dream out, and never NaN.

Everything is deterministic for a seed (CPU float32; the same number of
torch threads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "DreamError",
    "Objective",
    "SpectralMask",
    "DreamResult",
    "load_dream_model",
    "make_objective",
    "model_input",
    "ascent_step",
    "dream_offline",
    "evaluate_objective",
    "window_starts",
    "probabilities",
    "DEFAULT_STEP_SIZE",
    "DEFAULT_MASK_RANGE_DB",
    "DEFAULT_DITHER",
]

#: RMS (full scale) of one step's change to the dreamed samples.
DEFAULT_STEP_SIZE = 0.003
#: Dynamic range of the spectral mask in dB (0 turns the mask off).
DEFAULT_MASK_RANGE_DB = 60.0
#: RMS of the fixed noise added to the model's input (about -80 dBFS).
DEFAULT_DITHER = 1e-4


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
    from genredream.models.contract import LoadedModel, ModelFileError, has_method, validate
    from genredream.models.registry import resolve_model

    if isinstance(model, LoadedModel):
        lm = model
    else:
        try:
            lm = validate(resolve_model(model))
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
# the noise-reducing constraint


class SpectralMask:
    """Weights a gradient in the STFT domain by the original signal's magnitude.

    Parameters
    ----------
    sr : int
        Sample rate (Hz) of the signals; the STFT frame is the power of two
        nearest 32 ms (256 at 8 kHz, 512 at 16 kHz), hop a quarter frame,
        periodic Hann window.
    range_db : float
        Bins more than ``range_db`` below the loudest bin get weight 0, the
        loudest 1, quadratic in dB between. 0 disables the mask.

    Notes
    -----
    ``apply(g, M) = istft(M * stft(g))``. With a Hann window at 75 %
    overlap the STFT is a tight frame, so ``<g, apply(g, M)>`` is a sum of
    ``M |G|^2 >= 0``: the masked gradient is still an ascent direction.
    """

    def __init__(self, sr, range_db=DEFAULT_MASK_RANGE_DB):
        self.range_db = float(range_db)
        self.n_fft = int(2 ** round(math.log2(0.032 * sr)))
        self.hop = self.n_fft // 4
        self.window = torch.hann_window(self.n_fft, periodic=True)

    @property
    def enabled(self):
        return self.range_db > 0

    def _stft(self, x):
        return torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant", return_complex=True)

    def weights(self, original):
        """Mask ``[bins, frames]`` from the original (float32 Tensor ``[n]``), or None when disabled."""
        if not self.enabled or original.numel() < 2:
            return None
        with torch.no_grad():
            mag = self._stft(original.float()).abs()
            db = 20.0 * torch.log10(mag + 1e-9)
            rel = torch.clamp(db - db.max() + self.range_db, 0.0, self.range_db) / self.range_db
            return rel * rel

    def apply(self, g, weights):
        """The gradient ``g`` (Tensor ``[n]``) weighted by ``weights`` (same length as the original)."""
        if weights is None:
            return g
        return torch.istft(self._stft(g) * weights, self.n_fft, self.hop, window=self.window, center=True, length=g.shape[-1])


# ---------------------------------------------------------------------------
# one step


def ascent_step(lm, objective, dry, delta, dith, live, weights, step_size, mask=None, mask_w=None, mask_from=0):
    """One normalised gradient-ascent step on the live part of one window, in place.

    Parameters
    ----------
    lm : LoadedModel
    objective : Objective
    dry, delta, dith : Tensor, float32, shape [W]
        The window at the model rate: the original, the dream's change so far
        (updated in place), and the fixed input dither. The model sees
        ``dry + delta + dith``.
    live : int
        First sample of the window being dreamed; ``[0, live)`` is frozen context.
    weights : Tensor, float32, shape [W - live]
        Time weights of the live samples (fades toward the frozen boundary and
        the newest sample, so nothing jumps where the dream starts or stops).
    step_size : float
        RMS (full scale) of the step over the live samples.
    mask : SpectralMask, optional
        With ``mask_w`` (its weights for the original over ``[mask_from, W)``).

    Returns
    -------
    float
        The objective before the step.
    """
    x = (dry + delta + dith).detach().requires_grad_(True)
    obj = objective(lm, x[None])[0]
    (g,) = torch.autograd.grad(obj, x)
    obj = obj.detach()
    g = g[mask_from:]
    if mask is not None and mask_w is not None:
        g = mask.apply(g, mask_w)
    gl = g[live - mask_from :] * weights
    rms = float(torch.sqrt(torch.mean(gl * gl)))
    if rms > 0 and math.isfinite(rms):
        with torch.no_grad():
            d = delta[live:] + (step_size / rms) * gl
            delta[live:] = torch.clamp(dry[live:] + d, -1.0, 1.0) - dry[live:]
    return float(obj)


# ---------------------------------------------------------------------------
# offline


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
    w = lm.n_samples
    x = np.zeros(max(w, len(wave)), np.float32)
    x[: len(wave)] = wave
    starts = window_starts(x.size, w, int(stride or w // 2))
    vals = []
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            xb = torch.from_numpy(np.stack([x[s : s + w] for s in starts[i : i + batch]]))
            vals.append(objective(lm, xb).double().numpy())
    return float(np.concatenate(vals).mean())


@dataclass
class DreamResult:
    """What :func:`dream_offline` returns.

    Attributes
    ----------
    dreamed : np.ndarray, float32, shape [n]
        The dreamed signal at the model rate, in [-1, 1], not normalised.
    objective_per_step : list of float
        The objective at each step, before its update (mean over that step's windows).
    before, after : float
        :func:`evaluate_objective` of the original and the dreamed signal.
    """

    dreamed: np.ndarray
    objective_per_step: list = field(default_factory=list)
    before: float = float("nan")
    after: float = float("nan")


def dream_offline(
    lm,
    wave,
    objective,
    steps=20,
    step_size=DEFAULT_STEP_SIZE,
    seed=0,
    mask_range=DEFAULT_MASK_RANGE_DB,
    dither=DEFAULT_DITHER,
    jitter=False,
    batch=4,
    progress=None,
):
    """Dream a whole signal: gradient ascent on the sum of the objective over windows that tile it.

    Parameters
    ----------
    lm : LoadedModel
        From :func:`load_dream_model`.
    wave : array, float, shape [n]
        Mono samples at ``lm.sample_rate`` in [-1, 1]; any length (a file
        shorter than the model's window is dreamed inside one window of
        silence).
    objective : Objective
        From :func:`make_objective`.
    steps : int
        Gradient steps (every sample is in about two windows at each step).
    step_size : float
        RMS change per step over the signal (full scale 1).
    seed : int
        Seeds the dither (and the jitter): equal seeds give equal output.
    mask_range : float
        Spectral mask range in dB (0: no mask).
    dither : float
        RMS of the fixed noise added to the model's input only.
    jitter : bool
        A new random tiling offset every step (default: a fixed tiling; see
        the module docstring for why).
    batch : int
        Windows per forward/backward pass (memory against speed).
    progress : callable(step, objective), optional

    Returns
    -------
    DreamResult
    """
    if int(steps) != steps or steps < 0:
        raise DreamError(f"steps must be a non-negative integer, got {steps!r}")
    if not (math.isfinite(step_size) and step_size >= 0):
        raise DreamError(f"step size must be a finite number >= 0, got {step_size!r}")
    wave = np.nan_to_num(np.asarray(wave, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0).clip(-1, 1)
    n = wave.size
    w = lm.n_samples
    stride = max(1, w // 2)
    rng = np.random.default_rng(seed)
    # Layout: [w zeros | signal | w + stride zeros]; only the signal is dreamed.
    total = w + n + w + stride
    dry = torch.zeros(total)
    dry[w : w + n] = torch.from_numpy(wave)
    dith = torch.from_numpy((dither * rng.standard_normal(total)).astype(np.float32)) if dither > 0 else torch.zeros(total)
    delta = torch.zeros(total)
    mask = SpectralMask(lm.sample_rate, mask_range)
    mask_w = mask.weights(dry[w : w + n]) if n else None
    # Periodic Hann: at 50 % overlap the tapers sum to 1 everywhere (overlap-add).
    taper = torch.hann_window(w, periodic=True) if 2 * stride == w else torch.ones(w)
    result = DreamResult(dreamed=wave.copy())
    result.before = evaluate_objective(lm, wave, objective, batch) if n else float("nan")
    if n == 0:
        result.after = result.before
        return result
    for k in range(int(steps)):
        r = int(rng.integers(0, stride)) if jitter else 0
        # Windows whose tapers sum to one over the whole signal [w, w + n):
        # the first one's falling half covers its start, the last one's rising half its end.
        s = w - stride - (stride if r else 0) + r
        starts = []
        while True:
            starts.append(s)
            if s + stride >= w + n:
                break
            s += stride
        v = dry + delta + dith
        grad = torch.zeros(total)
        vals = []
        for i in range(0, len(starts), batch):
            sb = starts[i : i + batch]
            xb = torch.stack([v[s : s + w] for s in sb]).requires_grad_(True)
            obj = objective(lm, xb)
            (gb,) = torch.autograd.grad(obj.sum(), xb)
            gb = gb * taper
            for j, s in enumerate(sb):
                grad[s : s + w] += gb[j]
            vals.extend(obj.detach().double().tolist())
        g = mask.apply(grad[w : w + n], mask_w)
        rms = torch.sqrt(torch.mean(g * g))
        if float(rms) > 0 and math.isfinite(float(rms)):
            with torch.no_grad():
                d = delta[w : w + n] + (step_size / rms) * g
                delta[w : w + n] = torch.clamp(dry[w : w + n] + d, -1.0, 1.0) - dry[w : w + n]
        val = float(np.mean(vals))
        result.objective_per_step.append(val)
        if progress is not None:
            progress(k, val)
    result.dreamed = (dry[w : w + n] + delta[w : w + n]).numpy().astype(np.float32)
    result.after = evaluate_objective(lm, result.dreamed, objective, batch)
    return result
