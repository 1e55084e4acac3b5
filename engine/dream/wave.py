"""Geng et al.'s dream: gradient ascent on the samples themselves, with the constraints that make it usable.

The waveform parametrisation of the seed paper (Geng, Ren & Ogihara 2017):
each step changes the samples along the objective's gradient
(:mod:`genredream.engine.dream.objective`). It is the dream for a layer
objective, for ``away``, and for ``--param wave``; toward a target the
default is the transfer dream (:mod:`genredream.engine.dream.transfer`),
because a waveform change that fools one network is mostly adversarial
(docs/dream.md). The paper notes that "more constraints might be necessary
to reduce the noises"; these are they:

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

from genredream.engine.dream.objective import DreamError, evaluate_objective

__all__ = [
    "SpectralMask",
    "ascent_step",
    "DreamResult",
    "dream_offline",
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
# one step (the streaming Dreamer's)


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
# a whole signal


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
