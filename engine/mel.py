"""Mel spectrograms in Numba kernels, offline and streaming.

The offline function :func:`melspectrogram` agrees with
``librosa.feature.melspectrogram`` called with the same arguments (librosa's
defaults: centred frames, zero padding, periodic Hann window, slaney mel
scale and norm). :class:`StreamingMel` produces exactly the same frames from a
signal that arrives in blocks of any size, computing each frame once.

Why Numba plus rocket-fft: the FFT is pocketfft (the one NumPy uses), called
from inside compiled loops through rocket-fft, so framing, windowing, the FFT,
the power and the mel weighting run as one pass per frame with no temporary
arrays of the whole spectrogram. The mel weighting uses each band's non-zero
bin range only (a slaney filter covers a few bins), which is most of the
speed-up over a dense ``mel_basis @ power`` product.

All arrays are ``float32`` unless stated; sample rates in Hz; frames are
columns (``[n_mels, frames]``) as in librosa.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit, prange

# The filterbank and the scalings live in mel_filters.py; re-exported here, where callers look for them.
from genredream.engine.mel_filters import (
    SCALINGS,
    apply_scaling,
    check_mel,
    check_sr,
    hz_to_mel,
    log10_scale,
    logc_scale,
    mel_filterbank,
    mel_to_hz,
    power_to_db,
)

__all__ = [
    "MelConfig",
    "StreamingMel",
    "apply_scaling",
    "hz_to_mel",
    "mel_filterbank",
    "mel_to_hz",
    "melspectrogram",
    "power_to_db",
    "log10_scale",
    "logc_scale",
    "SCALINGS",
]


# ---------------------------------------------------------------------------
# argument checks, gathered so every entry point names the argument the same way


def _check_fft(n_fft, hop_length):
    if int(n_fft) != n_fft or n_fft < 2:
        raise ValueError(f"n_fft must be an integer >= 2, got {n_fft!r}")
    if int(hop_length) != hop_length or hop_length < 1:
        raise ValueError(f"hop_length must be a positive integer, got {hop_length!r}")
    if hop_length > n_fft:
        raise ValueError(
            f"hop_length ({hop_length}) must not exceed n_fft ({n_fft}): samples between frames would be skipped"
        )


def _check_power(power):
    if not (power > 0 and math.isfinite(power)):
        raise ValueError(f"power must be a positive number (1 for magnitude, 2 for power), got {power!r}")


def _as_signal(y, name="y"):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D mono signal, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{name} must be floating point samples in [-1, 1], got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or Inf samples")
    return np.ascontiguousarray(y, dtype=np.float32)


def _band_ranges(fb):
    """Each band's first and one-past-last non-zero bin, so kernels skip the zeros."""
    n_mels = fb.shape[0]
    lo = np.zeros(n_mels, dtype=np.int64)
    hi = np.zeros(n_mels, dtype=np.int64)
    for m in range(n_mels):
        nz = np.flatnonzero(fb[m])
        if nz.size:
            lo[m], hi[m] = nz[0], nz[-1] + 1
    return lo, hi


def _periodic_hann(n):
    # librosa's default window is scipy's hann with sym=False (periodic).
    k = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)


# ---------------------------------------------------------------------------
# kernels


@njit(cache=True, nogil=True)
def _frame_mel(src, start, window, fb, lo, hi, power, out, col):
    """One frame: window src[start:start+n_fft], rfft, |X|**power, mel -> out[:, col]."""
    n_fft = window.shape[0]
    buf = np.empty(n_fft, dtype=np.float64)
    for i in range(n_fft):
        buf[i] = src[start + i] * window[i]
    spec = np.fft.rfft(buf)
    n_bins = spec.shape[0]
    pw = np.empty(n_bins, dtype=np.float64)
    if power == 2.0:
        for k in range(n_bins):
            pw[k] = spec[k].real * spec[k].real + spec[k].imag * spec[k].imag
    else:
        for k in range(n_bins):
            pw[k] = (spec[k].real * spec[k].real + spec[k].imag * spec[k].imag) ** (0.5 * power)
    for m in range(fb.shape[0]):
        acc = 0.0
        for k in range(lo[m], hi[m]):
            acc += fb[m, k] * pw[k]
        out[m, col] = acc


@njit(cache=True, nogil=True)
def _frames_serial(src, n_frames, hop, window, fb, lo, hi, power, out, col0):
    for t in range(n_frames):
        _frame_mel(src, t * hop, window, fb, lo, hi, power, out, col0 + t)


@njit(cache=True, nogil=True, parallel=True)
def _frames_parallel(src, n_frames, hop, window, fb, lo, hi, power, out):
    for t in prange(n_frames):
        _frame_mel(src, t * hop, window, fb, lo, hi, power, out, t)


# Below this many frames the thread start-up of the parallel kernel costs more
# than it saves (measured: about 64 frames of n_fft 2048 on 2 cores).
_PARALLEL_MIN_FRAMES = 64


class _Basis:
    """Window, filterbank and band ranges for one configuration, built once."""

    _cache: dict = {}

    def __init__(self, sr, n_fft, n_mels, fmin, fmax, htk, norm):
        self.window = _periodic_hann(int(n_fft))
        self.fb = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm).astype(np.float64)
        self.lo, self.hi = _band_ranges(self.fb)

    @classmethod
    def get(cls, sr, n_fft, n_mels, fmin, fmax, htk, norm):
        key = (float(sr), int(n_fft), int(n_mels), float(fmin), None if fmax is None else float(fmax), bool(htk), norm)
        basis = cls._cache.get(key)
        if basis is None:
            if len(cls._cache) > 64:  # bounded: configurations are few in practice
                cls._cache.clear()
            basis = cls._cache[key] = cls(sr, n_fft, n_mels, fmin, fmax, htk, norm)
        return basis


def melspectrogram(
    y,
    sr=22050,
    n_fft=2048,
    hop_length=512,
    n_mels=128,
    fmin=0.0,
    fmax=None,
    power=2.0,
    center=True,
    htk=False,
    norm="slaney",
):
    """Mel spectrogram of a whole signal, equal to librosa's with the same arguments.

    Parameters
    ----------
    y : np.ndarray, float, shape [samples]
        Mono signal, nominally in [-1, 1]. Must be finite.
    sr : float
        Sample rate in Hz.
    n_fft, hop_length : int
        Frame length and hop in samples (``hop_length <= n_fft``).
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Band edges in Hz; ``fmax=None`` means ``sr / 2``.
    power : float
        Exponent of the magnitude: 2 for power, 1 for magnitude.
    center : bool
        If True, frame ``t`` is centred on sample ``t * hop_length``, the
        signal padded with ``n_fft // 2`` zeros at both ends (librosa's
        default ``pad_mode="constant"``).
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        Filter normalisation.

    Returns
    -------
    np.ndarray, float32, shape [n_mels, frames]
        ``frames = 1 + len(y) // hop_length`` when centred, else
        ``1 + (len(y) - n_fft) // hop_length``.
    """
    check_sr(sr)
    _check_fft(n_fft, hop_length)
    check_mel(sr, n_mels, fmin, fmax)
    _check_power(power)
    y = _as_signal(y)
    if y.size == 0:
        raise ValueError("y is empty: a mel spectrogram needs at least one sample")
    n_fft, hop_length = int(n_fft), int(hop_length)
    if center:
        pad = n_fft // 2
        src = np.zeros(y.size + 2 * pad, dtype=np.float32)
        src[pad : pad + y.size] = y
    else:
        if y.size < n_fft:
            raise ValueError(f"y has {y.size} samples, fewer than n_fft ({n_fft}), and center=False")
        src = y
    n_frames = 1 + (src.size - n_fft) // hop_length
    basis = _Basis.get(sr, n_fft, n_mels, fmin, fmax, htk, norm)
    out = np.empty((int(n_mels), n_frames), dtype=np.float64)
    if n_frames >= _PARALLEL_MIN_FRAMES:
        _frames_parallel(src, n_frames, hop_length, basis.window, basis.fb, basis.lo, basis.hi, float(power), out)
    else:
        _frames_serial(src, n_frames, hop_length, basis.window, basis.fb, basis.lo, basis.hi, float(power), out, 0)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------
# configuration shared by models and the engine


@dataclass(frozen=True)
class MelConfig:
    """Everything that makes two mel front ends the same (hashable: the engine
    shares one :class:`StreamingMel` between models with equal configs)."""

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    htk: bool = False
    norm: str | None = "slaney"
    scaling: str = "power"

    def __post_init__(self):
        check_sr(self.sr)
        _check_fft(self.n_fft, self.hop_length)
        check_mel(self.sr, self.n_mels, self.fmin, self.fmax)
        _check_power(self.power)
        if self.norm not in ("slaney", None):
            raise ValueError(f"norm must be 'slaney' or None, got {self.norm!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        fields = cls.__dataclass_fields__
        unknown = set(d) - set(fields)
        if unknown:
            raise ValueError(f"unknown mel config keys {sorted(unknown)}; known: {sorted(fields)}")
        return cls(**d)

    def frames_for(self, n_samples):
        """Number of centred frames for ``n_samples`` samples."""
        return 1 + int(n_samples) // self.hop_length

    def melspectrogram(self, y):
        """Unscaled mel of ``y`` with this configuration (float32 [n_mels, frames])."""
        return melspectrogram(
            y, self.sr, self.n_fft, self.hop_length, self.n_mels, self.fmin, self.fmax, self.power, True, self.htk, self.norm
        )


# ---------------------------------------------------------------------------
# streaming


class StreamingMel:
    """Centred mel frames from a signal that arrives in blocks.

    The output of all :meth:`push` calls followed by :meth:`flush` equals
    :func:`melspectrogram` (``center=True``) of the concatenated signal: the
    stream starts with ``n_fft // 2`` implicit zeros, exactly like librosa's
    centre padding, and :meth:`flush` supplies the zeros after the end.

    A frame becomes complete ``n_fft // 2`` samples after its centre, so the
    mel lags the audio by that much (the front end's inherent latency).

    It also keeps the newest ``keep_frames`` frames in a ring written twice
    (at ``i`` and ``i + keep_frames``) so that :meth:`latest` is a view of a
    contiguous slice: handing the model window over costs no copy of history.

    Not thread-safe: one thread pushes and reads (the engine's front-end
    worker), which keeps the audio callback free of this work.

    Parameters
    ----------
    sr, n_fft, hop_length, n_mels, fmin, fmax, power, htk, norm
        As :func:`melspectrogram`.
    keep_frames : int
        How many recent frames :meth:`latest` can return.
    """

    def __init__(
        self,
        sr=22050,
        n_fft=2048,
        hop_length=512,
        n_mels=128,
        fmin=0.0,
        fmax=None,
        power=2.0,
        htk=False,
        norm="slaney",
        keep_frames=512,
    ):
        check_sr(sr)
        _check_fft(n_fft, hop_length)
        check_mel(sr, n_mels, fmin, fmax)
        _check_power(power)
        if int(keep_frames) != keep_frames or keep_frames < 1:
            raise ValueError(f"keep_frames must be a positive integer, got {keep_frames!r}")
        self.sr, self.n_fft, self.hop_length, self.n_mels = sr, int(n_fft), int(hop_length), int(n_mels)
        self.power = float(power)
        self.keep_frames = int(keep_frames)
        self._basis = _Basis.get(sr, n_fft, n_mels, fmin, fmax, htk, norm)
        # Staging holds the unconsumed tail plus one chunk of new samples; a
        # block larger than the chunk is processed in pieces.
        self._chunk = max(8192, 4 * self.hop_length)
        self._stage = np.zeros(self.n_fft + self._chunk, dtype=np.float32)
        self._scratch = np.empty((self.n_mels, self._chunk // self.hop_length + 2), dtype=np.float64)
        self._hist = np.zeros((self.n_mels, 2 * self.keep_frames), dtype=np.float32)
        self.reset()

    @classmethod
    def from_config(cls, cfg: MelConfig, keep_frames=512):
        return cls(cfg.sr, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.fmin, cfg.fmax, cfg.power, cfg.htk, cfg.norm, keep_frames)

    def reset(self):
        """Start a new stream (the next sample is sample 0)."""
        # The stream's first n_fft // 2 samples are the centre padding.
        self._fill = self.n_fft // 2
        self._stage[: self._fill] = 0.0
        self.samples_in = 0
        self.frames_out = 0
        self._finished = False
        self._hist_pos = 0
        self._hist_count = 0

    def push(self, block):
        """Feed samples; return the frames that became complete.

        Parameters
        ----------
        block : np.ndarray, float, shape [n]
            New mono samples (n may be 0). Must be finite: the engine repairs
            NaN/Inf before this stage (see :mod:`genredream.engine.ringbuffer`).

        Returns
        -------
        np.ndarray, float32, shape [n_mels, k]
            The ``k >= 0`` new frames, oldest first (unscaled mel).
        """
        if self._finished:
            raise RuntimeError("push after flush: call reset() to start a new stream")
        block = _as_signal(block, "block")
        outs = []
        pos = 0
        while pos < block.size:
            take = min(self._chunk, block.size - pos)
            outs.append(self._consume(block[pos : pos + take]))
            pos += take
        self.samples_in += block.size
        if not outs:
            return np.zeros((self.n_mels, 0), dtype=np.float32)
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)

    def flush(self):
        """End the stream: return the last frames, which need the end padding.

        After this, :meth:`push` raises until :meth:`reset`.
        """
        if self._finished:
            return np.zeros((self.n_mels, 0), dtype=np.float32)
        # The stream already began with the left padding, so the right padding
        # completes exactly librosa's frame count.
        tail = self._consume(np.zeros(self.n_fft // 2, dtype=np.float32))
        self._finished = True
        return tail

    def _consume(self, x):
        n = x.size
        self._stage[self._fill : self._fill + n] = x
        self._fill += n
        if self._fill < self.n_fft:
            return np.zeros((self.n_mels, 0), dtype=np.float32)
        k = 1 + (self._fill - self.n_fft) // self.hop_length
        b = self._basis
        _frames_serial(self._stage, k, self.hop_length, b.window, b.fb, b.lo, b.hi, self.power, self._scratch, 0)
        out = self._scratch[:, :k].astype(np.float32)
        used = k * self.hop_length
        rest = self._fill - used
        self._stage[:rest] = self._stage[used : self._fill]
        self._fill = rest
        self.frames_out += k
        self._remember(out)
        return out

    def _remember(self, frames):
        kf = self.keep_frames
        k = frames.shape[1]
        if k >= kf:
            frames = frames[:, k - kf :]
            k = kf
        for j in range(k):  # k is a handful per hop: a loop beats index arithmetic
            p = self._hist_pos
            self._hist[:, p] = frames[:, j]
            self._hist[:, p + kf] = frames[:, j]
            self._hist_pos = (p + 1) % kf
        self._hist_count = min(kf, self._hist_count + k)

    def latest(self, n):
        """A read-only view of the newest ``n`` frames, float32 [n_mels, n].

        The view is valid until the next :meth:`push`; copy it to keep it.
        """
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if n > self.keep_frames:
            raise ValueError(f"n ({n}) exceeds keep_frames ({self.keep_frames})")
        if n > self._hist_count:
            raise ValueError(f"only {self._hist_count} frames are available, asked for {n}")
        end = self._hist_pos + self.keep_frames
        view = self._hist[:, end - n : end]
        view.flags.writeable = False
        return view
