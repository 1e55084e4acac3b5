"""The mel scale, the mel filterbank and the scalings applied after it (numpy).

Built once per configuration, never per frame: :mod:`genredream.engine.mel`'s
kernels take the filterbank from here, and the models' torch front end
(:mod:`genredream.models.torch_mel`) the same filters and scalings. Each
agrees with librosa's function of the same name called with the same
arguments (``tests/test_mel.py`` compares them). Import them from
:mod:`genredream.engine.mel`, which re-exports them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "SCALINGS",
    "apply_scaling",
    "check_mel",
    "check_sr",
    "hz_to_mel",
    "log10_scale",
    "logc_scale",
    "mel_filterbank",
    "mel_to_hz",
    "power_to_db",
]

SCALINGS = ("power", "db", "log10", "logC")


# ---------------------------------------------------------------------------
# argument checks, shared with engine/mel.py so every entry point names the argument the same way


def check_sr(sr):
    if not (isinstance(sr, (int, float, np.integer, np.floating)) and sr > 0 and math.isfinite(sr)):
        raise ValueError(f"sr must be a positive number of Hz, got {sr!r}")


def check_mel(sr, n_mels, fmin, fmax):
    if int(n_mels) != n_mels or n_mels < 1:
        raise ValueError(f"n_mels must be a positive integer, got {n_mels!r}")
    if fmin < 0:
        raise ValueError(f"fmin must be >= 0 Hz, got {fmin!r}")
    fmax = sr / 2.0 if fmax is None else float(fmax)
    if fmax > sr / 2.0 + 1e-9:
        raise ValueError(f"fmax ({fmax} Hz) must not exceed the Nyquist frequency sr/2 ({sr / 2.0} Hz)")
    if fmax <= fmin:
        raise ValueError(f"fmax ({fmax} Hz) must be greater than fmin ({fmin} Hz)")
    return fmax


# ---------------------------------------------------------------------------
# mel scale and filterbank (numpy: built once per configuration, not per frame)

# Slaney's auditory-toolbox mel scale: linear below 1 kHz (3 mels per 200 Hz),
# logarithmic above with 27 steps per factor of 6.4. Same constants as
# librosa.core.convert.hz_to_mel (Slaney 1998, Auditory Toolbox Tech. Rep. 1998-010).
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq, htk=False):
    """Hz to mels (slaney by default, or HTK's 2595 log10(1 + f/700)). Returns float64."""
    f = np.asarray(freq, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    lin = f / _F_SP
    with np.errstate(divide="ignore"):
        log = _MIN_LOG_MEL + np.log(np.maximum(f, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(mels, htk=False):
    """Mels to Hz, the inverse of :func:`hz_to_mel`. Returns float64."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    lin = _F_SP * m
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log, lin)


def mel_filterbank(sr, n_fft, n_mels=128, fmin=0.0, fmax=None, htk=False, norm="slaney"):
    """Triangular mel filters, equal to ``librosa.filters.mel`` with the same arguments.

    Parameters
    ----------
    sr : float
        Sample rate in Hz.
    n_fft : int
        FFT size; the filters cover its ``1 + n_fft // 2`` bins.
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Lowest and highest edge in Hz; ``fmax=None`` means ``sr / 2``.
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        "slaney" divides each triangle by its width in Hz (constant energy per
        band); None leaves peaks at 1.

    Returns
    -------
    np.ndarray, float32, shape [n_mels, 1 + n_fft // 2]
    """
    check_sr(sr)
    if int(n_fft) != n_fft or n_fft < 2:
        raise ValueError(f"n_fft must be an integer >= 2, got {n_fft!r}")
    fmax = check_mel(sr, n_mels, fmin, fmax)
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    n_bins = 1 + int(n_fft) // 2
    fftfreqs = np.fft.rfftfreq(int(n_fft), 1.0 / float(sr))
    mel_pts = np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), int(n_mels) + 2)
    mel_f = mel_to_hz(mel_pts, htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : int(n_mels) + 2] - mel_f[: int(n_mels)]))[:, None]
    assert weights.shape == (int(n_mels), n_bins)
    return weights.astype(np.float32)


# ---------------------------------------------------------------------------
# scalings the models use


def power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0):
    """10 log10(S / ref), floored at ``amin`` and clipped ``top_db`` below the peak, as librosa's.

    ``ref`` may be a number or a callable applied to ``S`` (``np.max``).
    Returns float32 with the shape of ``S``.
    """
    S = np.asarray(S, dtype=np.float32)
    if amin <= 0:
        raise ValueError(f"amin must be > 0, got {amin!r}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"top_db must be >= 0 or None, got {top_db!r}")
    ref_value = ref(S) if callable(ref) else ref
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    log_spec -= 10.0 * np.log10(np.maximum(amin, np.abs(ref_value)))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec.astype(np.float32)


def log10_scale(S, eps=1e-10):
    """log10(max(S, eps)): Lidy & Schindler's logarithmic mel (2016, section 2)."""
    return np.log10(np.maximum(np.asarray(S, dtype=np.float32), eps)).astype(np.float32)


def logc_scale(S, C=10000.0):
    """log10(1 + C S), musicnn's compression (Pons & Serra 2019, C = 10 000).

    Computed in float32: the musicnn package's float16 version overflows for
    mel values above about 6.55 (see docs/musicnn.md, "float16").
    """
    return np.log10(1.0 + C * np.asarray(S, dtype=np.float32)).astype(np.float32)


def apply_scaling(S, scaling):
    """Apply a named scaling from :data:`SCALINGS` to a mel spectrogram."""
    if scaling == "power":
        return np.asarray(S, dtype=np.float32)
    if scaling == "db":
        return power_to_db(S)
    if scaling == "log10":
        return log10_scale(S)
    if scaling == "logC":
        return logc_scale(S)
    raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
