"""The dream that transfers: a perceptual parametrisation, an ensemble, and robustness to transformations.

Geng et al.'s dream (:mod:`genredream.engine.dream_core`) changes the samples
themselves; ascending one network that way finds an adversarial change: the
dreaming model's score rises ten times more than another network's (issue
13). Three ideas from the feature-visualisation and adversarial literature
make a change that other networks (and listeners) hear too:

* **Parametrise the change in a perceptual space** (Olah et al., "Feature
  Visualization", Distill 2017: the parametrisation decides what the
  optimiser can find). Here the change is a **time-varying EQ**: log-gains
  on a grid of ``bands`` mel-spaced bands x ``grid_s`` seconds, bilinearly
  interpolated onto the STFT of the signal and bounded to +-``max_db`` dB
  (``max_db * tanh``), plus optionally a **texture** layer: noise-like
  content (the original's STFT phase, so it keeps its time structure)
  shaped by a second, coarse envelope, which can add energy where the EQ
  has nothing to boost (cymbals, distortion, a pad). The STFT is inverted
  with the original phase: the change is a filter, not a hiss.
* **An ensemble** of networks (the shipped musicnn-msd and musicnn-mtt by
  default): the sum of their target logits. A direction several networks
  agree on is less specific to any one of them.
* **Expectation over transformation** (Athalye et al. 2018): every step
  scores random crops of the dreamed signal (random time shift), at a
  random gain, with a little noise added and a small random speed change
  (pitch and time together, by resampling), so the optimum is a change that
  survives them: the ones a different network's front end, a loudspeaker
  or a listener apply anyway.

The objective is the target's logit (log-odds: a sigmoid model's raw logit,
a softmax model's ``log p - log(1 - p)``): unlike ``log p`` it does not
saturate once a model is sure, so the ensemble keeps pushing the members
that are not. Adam (Kingma & Ba 2015) on the EQ parameters: the step in dB
does not depend on the gradient's scale.

The strength of the dream is ``max_db`` (how far the EQ may go) with
``steps`` and ``lr`` (how far it goes). Deterministic for a seed (CPU, the
same torch threads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genredream.engine.dream_core import DreamError, load_dream_model, model_input

__all__ = [
    "EqParam",
    "Ensemble",
    "TransferResult",
    "dream_transfer",
    "target_logits",
    "judge_score",
    "DEFAULT_ENSEMBLE",
    "DEFAULT_STEPS",
    "DEFAULT_MAX_DB",
    "DEFAULT_TEXTURE_DB",
    "StreamingEq",
    "DEFAULT_LIVE_LR",
]

#: The dreaming models when none are named (both musicnn taggers ship with the repository).
DEFAULT_ENSEMBLE = ("musicnn-msd", "musicnn-mtt")
#: Adam steps of the offline dream.
DEFAULT_STEPS = 6
#: Bound of the EQ's gains (dB, either way).
DEFAULT_MAX_DB = 12.0
#: Adam's learning rate on the EQ's tanh parameters (0.4: about 4.5 dB a step at first at 12 dB):
#: few strong steps, so that the offline dream runs faster than real time.
DEFAULT_LR = 0.4
#: Random crops scored per step and model.
DEFAULT_CROPS = 3
#: Level bound of the texture layer relative to each frame's loudest bin (dB; None: EQ only).
DEFAULT_TEXTURE_DB = -20.0
#: Bands and time grid of the EQ.
DEFAULT_BANDS = 24
DEFAULT_GRID_S = 0.25


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _interp_matrix(positions, centres):
    """Linear interpolation weights ``[len(positions), len(centres)]``, flat beyond the end centres."""
    positions = np.clip(np.asarray(positions, np.float64), centres[0], centres[-1])
    m = np.zeros((positions.size, centres.size), np.float32)
    j = np.clip(np.searchsorted(centres, positions, side="right") - 1, 0, centres.size - 2)
    t = (positions - centres[j]) / (centres[j + 1] - centres[j])
    m[np.arange(positions.size), j] = 1.0 - t
    m[np.arange(positions.size), j + 1] = t
    return m


class EqParam:
    """The change as a time-varying EQ (and optionally a texture layer) on the STFT of ``dry``.

    Parameters
    ----------
    dry : Tensor, float32, shape [n]
        The original signal at ``sr``.
    sr : int
    bands : int
        Mel-spaced band centres from 0 Hz to Nyquist.
    grid_s : float
        Seconds between the EQ's time points.
    max_db : float
        The EQ's gains stay within +-max_db dB.
    texture_db : float or None
        With a number: a second layer, noise-like content with the
        original's phase, its level on the same band x time grid, at most
        ``texture_db`` dB relative to the loudest bin of the original at
        that frame (None: EQ only).

    Attributes
    ----------
    params : list of Tensor
        What the optimiser changes (zeros: no change).
    """

    def __init__(self, dry, sr, bands=DEFAULT_BANDS, grid_s=DEFAULT_GRID_S, max_db=DEFAULT_MAX_DB, texture_db=None):
        self.sr = int(sr)
        self.n = int(dry.numel())
        self.n_fft = int(2 ** round(math.log2(0.064 * sr)))
        self.hop = self.n_fft // 4
        self.window = torch.hann_window(self.n_fft, periodic=True)
        self.max_db = float(max_db)
        with torch.no_grad():
            self.X = torch.stft(dry.float(), self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant", return_complex=True)
        n_bins, n_frames = self.X.shape
        mel_bins = _hz_to_mel(np.arange(n_bins) * sr / self.n_fft)
        centres = np.linspace(0.0, _hz_to_mel(sr / 2), int(bands))
        self.Bf = torch.from_numpy(_interp_matrix(mel_bins, centres))  # [F, bands]
        frame_t = np.arange(n_frames) * self.hop / sr
        n_grid = max(2, int(math.ceil(self.n / sr / grid_s)) + 1)
        grid_t = np.arange(n_grid) * grid_s
        self.Bt = torch.from_numpy(_interp_matrix(frame_t, grid_t).T.copy())  # [grid, T]
        self.eq = torch.zeros(int(bands), n_grid, requires_grad=True)
        self.params = [self.eq]
        self.texture_db = None if texture_db is None else float(texture_db)
        if self.texture_db is not None:
            mag = self.X.abs()
            # Phase of the original (a unit phasor; random where the original is silent).
            gen = torch.Generator().manual_seed(0)
            rnd = torch.polar(torch.ones_like(mag), 2 * math.pi * torch.rand(mag.shape, generator=gen))
            self.phase = torch.where(mag > 1e-7, self.X / mag.clamp_min(1e-12), rnd)
            # Reference level per frame: the loudest bin (texture is relative to the music's loudness).
            self.ref = mag.amax(0, keepdim=True).clamp_min(1e-4)
            self.tex = torch.full((int(bands), n_grid), -4.0, requires_grad=True)  # sigmoid(-4): 2 % of the bound
            self.params.append(self.tex)

    def gains_db(self):
        """The EQ in dB on the STFT grid ``[F, T]``."""
        return self.max_db * (self.Bf @ torch.tanh(self.eq) @ self.Bt)

    def render(self):
        """The changed signal, Tensor ``[n]`` (differentiable in :attr:`params`)."""
        Y = self.X * torch.pow(10.0, self.gains_db() / 20.0)
        if self.texture_db is not None:
            level = 10.0 ** (self.texture_db / 20.0) * (self.Bf @ torch.sigmoid(self.tex) @ self.Bt)
            Y = Y + level * self.ref * self.phase
        return torch.istft(Y, self.n_fft, self.hop, window=self.window, center=True, length=self.n)


# ---------------------------------------------------------------------------
# models and scores


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


def _label_index(lm, label):
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
    from genredream.engine.dream_core import window_starts

    idx = _label_index(lm, label)
    if idx is None:
        raise DreamError(f"{lm.name} has no label {label!r}; its labels: {', '.join(lm.meta['labels'])}")
    w = lm.n_samples
    x = np.zeros(max(w, len(wave)), np.float32)
    x[: len(wave)] = wave
    starts = window_starts(x.size, w, w // 2)
    vals = []
    with torch.no_grad():
        for i in range(0, len(starts), batch):
            xb = torch.from_numpy(np.stack([x[s : s + w] for s in starts[i : i + batch]]))
            vals.append(target_logits(lm, xb, idx).double().numpy())
    return float(np.concatenate(vals).mean())


class Ensemble:
    """The dreaming models that have the target label, and its index in each.

    All members must share one sample rate (the dream runs at it).
    """

    def __init__(self, models, target):
        if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
            models = [models]
        self.models = [load_dream_model(m) for m in models]
        if not self.models:
            raise DreamError("no dreaming model")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise DreamError(f"a model is named twice in the ensemble: {', '.join(names)}")
        rates = {m.sample_rate for m in self.models}
        if len(rates) != 1:
            raise DreamError(f"the dreaming models must share a sample rate; got {', '.join(f'{m.name} {m.sample_rate} Hz' for m in self.models)}")
        self.sample_rate = rates.pop()
        self.target = target
        # Members without the label sit this dream out (musicnn-mtt has no jazz); none with it is an error.
        have = [(m, _label_index(m, target)) for m in self.models]
        if all(i is None for _, i in have):
            labels = sorted({lab for m in self.models for lab in m.meta["labels"]})
            raise DreamError(f"unknown target label {target!r} for {', '.join(names)}; their labels: {', '.join(labels)}")
        self.models = [m for m, i in have if i is not None]
        self.indices = [i for _, i in have if i is not None]
        # Crop length: musicnn (any length) sees its own 3 s patches; fixed-window models their window.
        self.crop = max(self._crop_of(m) for m in self.models)

    @staticmethod
    def _crop_of(lm):
        return int(round(3.0 * lm.sample_rate)) if lm.name.startswith("musicnn") else lm.n_samples

    @property
    def names(self):
        return [m.name for m in self.models]

    def objective(self, xb):
        """Sum over models of the target's mean logit over the batch ``[B, samples]``."""
        total = 0.0
        for m, i in zip(self.models, self.indices):
            x = xb if xb.shape[1] <= m.n_samples or m.name.startswith("musicnn") else xb[:, : m.n_samples]
            if x.shape[1] < m.n_samples and not m.name.startswith("musicnn"):
                x = torch.nn.functional.pad(x, (0, m.n_samples - x.shape[1]))
            total = total + target_logits(m, x, i).mean()
        return total

    def score(self, wave):
        """Each member's :func:`judge_score` of the target (dict name -> logit)."""
        return {m.name: judge_score(m, wave, self.target) for m in self.models}


# ---------------------------------------------------------------------------
# expectation over transformation


def _transform(y, crop, n_crops, rng, gain_db=6.0, noise_db=-40.0, speed=0.03):
    """``n_crops`` random crops of ``y`` (``[n]``) at a random gain, speed and noise: ``[n_crops, crop]``."""
    n = y.numel()
    out = []
    for _ in range(n_crops):
        s = float(rng.uniform(1 - speed, 1 + speed)) if speed > 0 else 1.0
        span = min(n, int(math.ceil(crop * s)) + 2)
        a = int(rng.integers(0, max(1, n - span + 1)))
        seg = y[a : a + span]
        if s != 1.0:  # resampling by linear interpolation: pitch and tempo move together
            m = int(min(crop, math.floor((seg.numel() - 1) / s)))
            pos = torch.arange(m, dtype=torch.float32) * s
            i0 = pos.floor().long().clamp(max=seg.numel() - 2)
            frac = pos - i0
            seg = seg[i0] * (1 - frac) + seg[i0 + 1] * frac
        seg = seg[:crop]
        if seg.numel() < crop:
            seg = torch.nn.functional.pad(seg, (0, crop - seg.numel()))
        g = 10 ** (float(rng.uniform(-gain_db, gain_db)) / 20)
        rms = float(torch.sqrt(torch.mean(seg.detach() ** 2)) + 1e-6)
        noise = torch.from_numpy(rng.standard_normal(crop).astype(np.float32)) * (rms * 10 ** (noise_db / 20))
        out.append(g * seg + noise)
    return torch.stack(out)


# ---------------------------------------------------------------------------
# offline


@dataclass
class TransferResult:
    """What :func:`dream_transfer` returns.

    Attributes
    ----------
    dreamed : np.ndarray, float32, shape [n]
        The dreamed signal at the ensemble's rate (not normalised; may exceed [-1, 1] before the caller's normalisation).
    objective_per_step : list of float
        The ensemble's objective (sum of target logits, transformed crops) at each step.
    before, after : dict
        Each dreaming model's :func:`judge_score` of the target, original and dreamed.
    """

    dreamed: np.ndarray
    objective_per_step: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)


def dream_transfer(
    ensemble,
    wave,
    steps=DEFAULT_STEPS,
    max_db=DEFAULT_MAX_DB,
    lr=DEFAULT_LR,
    bands=DEFAULT_BANDS,
    grid_s=DEFAULT_GRID_S,
    texture_db=DEFAULT_TEXTURE_DB,
    crops=DEFAULT_CROPS,
    eot=True,
    seed=0,
    progress=None,
):
    """Dream a whole signal toward the ensemble's target with the EQ parametrisation and EoT.

    Parameters
    ----------
    ensemble : Ensemble
    wave : array, float, shape [n]
        Mono samples at ``ensemble.sample_rate``.
    steps : int
        Adam steps.
    max_db : float
        Strength: the EQ's bound in dB (0: no change).
    lr : float
        Adam's learning rate on the tanh parameters.
    bands, grid_s : int, float
        The EQ's resolution.
    texture_db : float, optional
        Add the texture layer (see :class:`EqParam`).
    crops : int
        Random crops scored per step and model (3 s for musicnn, the window for others).
    eot : bool
        Random gain, speed and noise on every crop (False: crops only).
    seed : int

    Returns
    -------
    TransferResult
    """
    if int(steps) != steps or steps < 0:
        raise DreamError(f"steps must be a non-negative integer, got {steps!r}")
    if not (math.isfinite(max_db) and 0 <= max_db <= 40):
        raise DreamError(f"the EQ bound must be from 0 to 40 dB, got {max_db!r}")
    wave = np.nan_to_num(np.asarray(wave, dtype=np.float32)).clip(-1, 1)
    n = wave.size
    res = TransferResult(dreamed=wave.copy())
    res.before = ensemble.score(wave) if n else {}
    if n == 0 or steps == 0 or max_db == 0:
        res.after = dict(res.before)
        return res
    sr = ensemble.sample_rate
    crop = ensemble.crop
    dry = torch.from_numpy(wave)
    pad = max(0, crop - n)
    if pad:
        dry = torch.nn.functional.pad(dry, (0, pad))
    param = EqParam(dry, sr, bands=bands, grid_s=grid_s, max_db=max_db, texture_db=texture_db)
    opt = torch.optim.Adam(param.params, lr=lr)
    rng = np.random.default_rng(seed)
    k = max(1, int(crops))
    for step in range(int(steps)):
        opt.zero_grad()
        y = param.render()
        if eot:
            xb = _transform(y, crop, k, rng)
        else:
            starts = rng.integers(0, max(1, y.numel() - crop + 1), size=k)
            xb = torch.stack([y[int(s) : int(s) + crop] for s in starts])
        obj = ensemble.objective(xb)
        (-obj).backward()
        opt.step()
        res.objective_per_step.append(float(obj.detach()))
        if progress is not None:
            progress(step, res.objective_per_step[-1])
    with torch.no_grad():
        res.dreamed = param.render()[:n].numpy().astype(np.float32)
    res.after = ensemble.score(res.dreamed)
    return res


# ---------------------------------------------------------------------------
# streaming: the same parametrisation, one hop at a time


#: Streaming: change of the EQ's tanh parameters per step (normalised gradient; 0.6 ~ 6.5 dB at 12 dB on the first step).
DEFAULT_LIVE_LR = 0.6


class StreamingEq:
    """The EQ dream of a live stream: parameters on an absolute time grid, ascended a hop at a time.

    The streaming :class:`genredream.engine.dream.Dreamer` keeps a window of the stream
    (frozen, already emitted context, then the live part). Each hop,
    :meth:`step` renders the window through the EQ (the grid points at or
    after the live part's start are the parameters; earlier ones stay as
    they were when their audio was emitted), ascends the model's target
    logit ``K`` times with a random gain each step (the streaming EoT), and
    returns the change for the live samples. Grid points keep their values
    from hop to hop (a warm start), so a sample's EQ is refined for as long
    as it stays live.

    Parameters
    ----------
    sr : int
        The model's rate.
    bands, grid_s, max_db : as :class:`EqParam`
    lr : float
        Step of the tanh parameters per gradient step (the gradient is
        normalised to unit RMS).
    """

    def __init__(self, sr, bands=DEFAULT_BANDS, grid_s=DEFAULT_GRID_S, max_db=DEFAULT_MAX_DB, lr=DEFAULT_LIVE_LR, seed=0, texture_db=DEFAULT_TEXTURE_DB):
        self.texture_db = texture_db
        self.sr = int(sr)
        self.bands = int(bands)
        self.grid_m = int(round(grid_s * sr))
        self.max_db = float(max_db)
        self.lr = float(lr)
        self.n_fft = int(2 ** round(math.log2(0.064 * sr)))
        self.hop = self.n_fft // 4
        self.window = torch.hann_window(self.n_fft, periodic=True)
        self.points = {}  # absolute grid index -> tanh parameters [bands] (float32 numpy)
        self.rng = np.random.default_rng(seed)
        self._bf = None

    def _Bf(self, n_bins):
        if self._bf is None or self._bf.shape[0] != n_bins:
            mel_bins = _hz_to_mel(np.arange(n_bins) * self.sr / self.n_fft)
            centres = np.linspace(0.0, _hz_to_mel(self.sr / 2), self.bands)
            self._bf = torch.from_numpy(_interp_matrix(mel_bins, centres))
        return self._bf

    def step(self, lm, index, dry, dith, start, live, k, max_db=None):
        """``k`` steps on one window; returns (change of the live samples, Tensor ``[W - live]``; objective per step).

        Parameters
        ----------
        lm : LoadedModel
        index : int
            The target's index in the model's logits.
        dry, dith : Tensor, float32, shape [W]
            The window (the original) and the model input's dither.
        start : int
            Absolute model-rate index of the window's first sample.
        live : int
            First live sample of the window.
        """
        if max_db is not None:
            self.max_db = float(max_db)
        w = dry.numel()
        X = torch.stft(dry, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant", return_complex=True)
        Bf = self._Bf(X.shape[0])
        j_lo = (start) // self.grid_m
        j_hi = -(-(start + w) // self.grid_m)
        js = list(range(j_lo, j_hi + 1))
        frame_t = start + np.arange(X.shape[1]) * self.hop
        Bt = torch.from_numpy(_interp_matrix(frame_t.astype(np.float64), np.array(js, np.float64) * self.grid_m).T.copy())
        # Per grid point: the EQ's tanh parameters, then (texture) the texture envelope's logits.
        texture = self.texture_db is not None and self.max_db > 0
        init = np.concatenate([np.zeros(self.bands, np.float32), np.full(self.bands, -4.0, np.float32)])
        P = torch.from_numpy(np.stack([self.points.get(j, init) for j in js], axis=1))
        trainable = torch.tensor([j * self.grid_m >= start + live for j in js])
        objs = []
        if texture:
            mag = X.abs()
            gen = torch.Generator().manual_seed(int(start) % (2**31))
            rnd = torch.polar(torch.ones_like(mag), 2 * math.pi * torch.rand(mag.shape, generator=gen))
            phase = torch.where(mag > 1e-7, X / mag.clamp_min(1e-12), rnd)
            ref = mag.amax(0, keepdim=True).clamp_min(1e-4) * (10.0 ** (self.texture_db / 20.0))

        def render(P):
            Y = X * torch.pow(10.0, (self.max_db / 20.0) * (Bf @ torch.tanh(P[: self.bands]) @ Bt))
            if texture:
                Y = Y + (Bf @ torch.sigmoid(P[self.bands :]) @ Bt) * ref * phase
            return torch.istft(Y, self.n_fft, self.hop, window=self.window, center=True, length=w)

        for _ in range(int(k)):
            Pv = P.clone().requires_grad_(True)
            g = 10 ** (float(self.rng.uniform(-6.0, 6.0)) / 20)
            obj = target_logits(lm, (g * render(Pv) + dith)[None], index)[0]
            (grad,) = torch.autograd.grad(obj, Pv)
            grad = grad * trainable
            if not texture:
                grad[self.bands :] = 0.0
            # Each part's gradient normalised to unit RMS over the live points (as Adam would, per parameter scale).
            parts = []
            for part, lo, hi in ((grad[: self.bands], -3.0, 3.0), (grad[self.bands :], -8.0, 4.0)):
                rms = float(torch.sqrt(torch.mean(part[:, trainable] ** 2))) if bool(trainable.any()) else 0.0
                parts.append((self.lr / rms) * part if rms > 0 and math.isfinite(rms) else torch.zeros_like(part))
            P = torch.cat([(P[: self.bands] + parts[0]).clamp(-3.0, 3.0), (P[self.bands :] + parts[1]).clamp(-8.0, 4.0)])
            objs.append(float(obj.detach()))
        for c, j in enumerate(js):
            if trainable[c]:
                self.points[j] = P[:, c].detach().numpy().astype(np.float32)
        for j in [j for j in self.points if j < j_lo - 2]:
            del self.points[j]
        with torch.no_grad():
            change = (render(P) - dry)[live:]
        return change, objs
