"""The dream's perceptual parametrisation: a time-varying EQ (and a texture layer) on the signal's STFT.

Olah et al. ("Feature Visualization", Distill 2017) show that the
parametrisation decides what an optimiser can find. The change here is a
**time-varying EQ**: log-gains on a grid of ``bands`` mel-spaced bands x
``grid_s`` seconds, bilinearly interpolated onto the STFT of the signal and
bounded to +-``max_db`` dB (``max_db * tanh``), plus optionally a
**texture** layer: noise-like content (the original's STFT phase, so it
keeps its time structure) shaped by a second, coarse envelope, which can
add energy where the EQ has nothing to boost (cymbals, distortion, a pad).
The STFT is inverted with the original phase: the change is a filter, not a
hiss.

:class:`EqParam` is a whole signal (the offline dream,
:mod:`genredream.engine.dream.transfer`); :class:`StreamingEq` the same
parametrisation on an absolute time grid, ascended one hop at a time (the
streaming :class:`genredream.engine.dream.stream.Dreamer`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genredream.engine.dream.objective import target_logits
from genredream.models.rng import generator

__all__ = ["EqParam", "StreamingEq", "DEFAULT_MAX_DB", "DEFAULT_TEXTURE_DB", "DEFAULT_BANDS", "DEFAULT_GRID_S", "DEFAULT_LIVE_LR"]

#: Bound of the EQ's gains (dB, either way).
DEFAULT_MAX_DB = 12.0
#: Level bound of the texture layer relative to each frame's loudest bin (dB; None: EQ only).
DEFAULT_TEXTURE_DB = -20.0
#: Bands and time grid of the EQ.
DEFAULT_BANDS = 24
DEFAULT_GRID_S = 0.25
#: Streaming: change of the EQ's tanh parameters per step (normalised gradient; 0.6 ~ 6.5 dB at 12 dB on the first step).
DEFAULT_LIVE_LR = 0.6


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
            gen = generator(0)
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
# streaming: the same parametrisation, one hop at a time


class StreamingEq:
    """The EQ dream of a live stream: parameters on an absolute time grid, ascended a hop at a time.

    The streaming :class:`genredream.engine.dream.stream.Dreamer` keeps a window of the stream
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
            gen = generator(int(start) % (2**31))
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
