"""Differentiable mel front end in torch, equal to :mod:`genredream.engine.mel`.

:class:`TorchMel` computes the same centred, zero-padded, periodic-Hann mel
spectrogram as :func:`genredream.engine.mel.melspectrogram` followed by
:func:`genredream.engine.mel.apply_scaling`, but in torch, so that a dreamer can take
gradients from a mel model's logits back to the waveform. Every mel model in
:mod:`genredream.models.archs` exposes one as its ``frontend`` method, and the engine's
streaming Numba front end and this module must agree (``tests/test_torch_mel.py``
checks it for every architecture's config).

Why float64 inside: the engine accumulates each frame in float64 (its Numba
kernel windows and transforms in double precision); doing the same here keeps
the two within about 1e-7 of the spectrogram's peak instead of the ~1e-5 a
float32 FFT of a 2048-point frame gives. The result is cast to float32, the
dtype every model consumes. For a 5 s window the double-precision STFT costs
a few milliseconds on one core, small next to the network.
"""

from typing import Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genredream.engine.mel import SCALINGS, MelConfig, mel_filterbank

__all__ = ["TorchMel"]

class TorchMel(nn.Module):
    """Waveform -> scaled mel spectrogram, differentiable and TorchScript-able.

    Parameters
    ----------
    config : engine.mel.MelConfig
        Sample rate, FFT size, hop, mel bands, power, filter options and the
        scaling (one of :data:`genredream.engine.mel.SCALINGS`).

    Notes
    -----
    Steps, each equal to the engine's (``engine/mel.py``):

    1. pad ``n_fft // 2`` zeros at both ends (librosa's ``center=True`` with
       ``pad_mode="constant"``; ``torch.stft(center=True)`` would reflect),
    2. frames every ``hop_length`` samples, periodic Hann window, one-sided FFT,
    3. ``|X| ** power``,
    4. the slaney/HTK triangular filterbank from :func:`genredream.engine.mel.mel_filterbank`
       (the very same float32 matrix, applied in float64),
    5. the scaling: ``"power"`` (none), ``"db"`` (``10 log10(max(S, 1e-10))``
       clipped 80 dB below the window's peak, per batch item, as librosa's
       ``power_to_db`` on one window), ``"log10"`` (``log10(max(S, 1e-10))``),
       ``"logC"`` (``log10(1 + 10000 S)``).

    Examples
    --------
    >>> from engine.mel import MelConfig
    >>> mel = TorchMel(MelConfig(sr=22050, n_fft=2048, hop_length=512, n_mels=128, scaling="db"))
    >>> mel(torch.zeros(2, 110250)).shape
    torch.Size([2, 128, 216])
    """

    # TorchScript reads these class annotations (hence no ``from __future__
    # import annotations`` in this module: it would turn them into strings).
    __jit_ignored_attributes__ = ["config"]
    # Constants of the engine's scalings (engine/mel.py): librosa's power_to_db
    # defaults, the log10 floor, and musicnn's compression constant. Class
    # constants because TorchScript cannot close over module globals.
    DB_AMIN: Final[float] = 1e-10
    DB_TOP: Final[float] = 80.0
    LOG10_EPS: Final[float] = 1e-10
    LOGC_C: Final[float] = 10000.0
    # |X|**power for power != 2 goes through sqrt-like powers whose derivative
    # is infinite at 0 (a silent frame); flooring |X|^2 here changes values by
    # at most 1e-15 (for power 1) and keeps the gradient finite.
    POW_FLOOR: Final[float] = 1e-30

    sr: int
    n_fft: int
    hop_length: int
    n_mels: int
    power: float
    scaling: str

    def __init__(self, config: MelConfig):
        super().__init__()
        if not isinstance(config, MelConfig):
            raise TypeError(f"config must be an engine.mel.MelConfig, got {type(config).__name__}")
        if config.scaling not in SCALINGS:  # MelConfig checks too; kept for subclasses
            raise ValueError(f"scaling must be one of {SCALINGS}, got {config.scaling!r}")
        self.config = config
        self.sr = int(config.sr)
        self.n_fft = int(config.n_fft)
        self.hop_length = int(config.hop_length)
        self.n_mels = int(config.n_mels)
        self.power = float(config.power)
        self.scaling = str(config.scaling)
        k = torch.arange(self.n_fft, dtype=torch.float64)
        # Periodic Hann (scipy's hann(sym=False)), librosa's default window.
        self.register_buffer("window", 0.5 - 0.5 * torch.cos(2.0 * torch.pi * k / self.n_fft), persistent=True)
        fb = mel_filterbank(config.sr, config.n_fft, config.n_mels, config.fmin, config.fmax, config.htk, config.norm)
        # Kept float32 (the engine's own values, half the bytes in a model file)
        # and widened per call: the widening is exact.
        self.register_buffer("fb", torch.from_numpy(fb), persistent=True)

    def n_frames(self, n_samples: int) -> int:
        """Centred frame count for ``n_samples`` samples: ``1 + n_samples // hop_length``."""
        return 1 + n_samples // self.hop_length

    def forward(self, wave: Tensor) -> Tensor:
        """Mel spectrogram of a batch of mono signals.

        Parameters
        ----------
        wave : Tensor, float, shape [batch, samples]
            Samples at ``config.sr`` Hz, nominally in [-1, 1].

        Returns
        -------
        Tensor, float32, shape [batch, n_mels, 1 + samples // hop_length]
            Scaled by ``config.scaling``; differentiable with respect to ``wave``.
        """
        if wave.dim() != 2:
            raise ValueError("wave must be [batch, samples]")
        pad = self.n_fft // 2
        x = F.pad(wave.to(torch.float64), [pad, pad], mode="constant", value=0.0)
        spec = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )  # [batch, 1 + n_fft // 2, frames]
        p = spec.real * spec.real + spec.imag * spec.imag
        if self.power != 2.0:
            p = torch.clamp(p, min=self.POW_FLOOR) ** (0.5 * self.power)
        mel = torch.matmul(self.fb.to(torch.float64), p)  # [n_mels, bins] @ [batch, bins, frames]
        return self._scale(mel).to(torch.float32)

    def _scale(self, s: Tensor) -> Tensor:
        if self.scaling == "db":
            db = 10.0 * torch.log10(torch.clamp(s, min=self.DB_AMIN))
            # top_db relative to each window's own peak, as power_to_db on a
            # single [n_mels, frames] window (what the engine hands a model).
            peak = torch.amax(db, dim=(1, 2), keepdim=True)
            return torch.maximum(db, peak - self.DB_TOP)
        if self.scaling == "log10":
            return torch.log10(torch.clamp(s, min=self.LOG10_EPS))
        if self.scaling == "logC":
            return torch.log10(1.0 + self.LOGC_C * s)
        return s

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"sr={c.sr}, n_fft={c.n_fft}, hop_length={c.hop_length}, n_mels={c.n_mels}, "
            f"fmin={c.fmin}, fmax={c.fmax}, power={c.power}, scaling={c.scaling!r}"
        )

