"""engine/mel.py against librosa, the numerical reference, and streaming against offline."""

import warnings

import librosa
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genredream.engine import mel

CONFIGS = [
    dict(sr=22050),
    dict(sr=16000, n_fft=512, hop_length=256, n_mels=96),  # musicnn
    dict(sr=44100, n_fft=3072, hop_length=1536, n_mels=40),  # Lidy & Schindler
    dict(sr=22050, htk=True, norm=None),
    dict(sr=22050, power=1.0, fmin=50.0, fmax=8000.0),
    dict(sr=8000, n_fft=1023, hop_length=300, n_mels=64),  # odd n_fft
]


def close_to_librosa(ours, ref):
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    tol = 1e-4 * np.abs(ref).max() + 1e-7
    err = np.abs(ours.astype(np.float64) - ref).max()
    assert err <= tol, f"max |ours - librosa| = {err:.3g} > {tol:.3g}"


def signals(sr, rng):
    t = np.arange(int(1.3 * sr)) / sr
    return {
        "noise": (0.3 * rng.standard_normal(int(1.3 * sr))).astype(np.float32),
        "sine": (0.8 * np.sin(2 * np.pi * 441.0 * t)).astype(np.float32),
        "chirp": librosa.chirp(fmin=60, fmax=sr / 2.5, sr=sr, duration=1.0).astype(np.float32),
        "silence": np.zeros(int(0.7 * sr), dtype=np.float32),
        "short": (0.5 * rng.standard_normal(300)).astype(np.float32),  # shorter than n_fft
        "one_sample": np.array([0.25], dtype=np.float32),
    }


def librosa_mel(y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_fft too large for input": intended here
        return librosa.feature.melspectrogram(y=y, **kw)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_offline_matches_librosa(cfg):
    rng = np.random.default_rng(7)
    for name, y in signals(cfg["sr"], rng).items():
        close_to_librosa(mel.melspectrogram(y, **cfg), librosa_mel(y, **cfg))


def test_not_centred_matches_librosa():
    y = np.random.default_rng(1).standard_normal(10000).astype(np.float32)
    close_to_librosa(mel.melspectrogram(y, center=False), librosa_mel(y, sr=22050, center=False))


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(22050, 2048, 128, 0.0, None), (16000, 512, 96, 0.0, 8000.0), (44100, 3072, 40, 20.0, 16000.0)])
def test_filterbank_matches_librosa(htk, norm, sr, n_fft, n_mels, fmin, fmax):
    ours = mel.mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-9)


def test_scalings_match_librosa():
    S = mel.melspectrogram(np.random.default_rng(2).standard_normal(20000).astype(np.float32))
    np.testing.assert_allclose(mel.power_to_db(S), librosa.power_to_db(S), atol=1e-3)
    np.testing.assert_allclose(mel.power_to_db(S, ref=np.max), librosa.power_to_db(S, ref=np.max), atol=1e-3)
    # musicnn's compression, and Lidy & Schindler's log10, written out independently.
    np.testing.assert_allclose(mel.logc_scale(S), np.log10(1 + 10000 * S.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(mel.log10_scale(S), np.log10(np.maximum(S.astype(np.float64), 1e-10)), rtol=1e-5, atol=1e-5)
    # Loud mel values must not overflow (musicnn's float16 trap).
    assert np.isfinite(mel.logc_scale(np.array([1e4], dtype=np.float32))).all()


def stream(y, sizes, **cfg):
    sm = mel.StreamingMel(**cfg)
    parts, i, k = [], 0, 0
    while i < y.size:
        n = sizes[k % len(sizes)]
        parts.append(sm.push(y[i : i + n]))
        i += n
        k += 1
    parts.append(sm.flush())
    return np.concatenate(parts, axis=1), sm


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_streaming_equals_offline_librosa(cfg):
    y = signals(cfg["sr"], np.random.default_rng(3))["noise"]
    out, sm = stream(y, [1, 511, 512, 4096, 8192, 37], **cfg)
    close_to_librosa(out, librosa_mel(y, **cfg))
    assert sm.frames_out == out.shape[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 30000),
    sizes=st.lists(st.integers(1, 8192), min_size=1, max_size=20),
    seed=st.integers(0, 2**31 - 1),
)
def test_streaming_any_block_split(n, sizes, seed):
    """Any signal, any split into blocks of 1..8192: push* + flush == offline."""
    y = (np.random.default_rng(seed).standard_normal(n) * 0.5).astype(np.float32)
    out, _ = stream(y, sizes)
    close_to_librosa(out, mel.melspectrogram(y).astype(np.float64))


def test_each_frame_computed_once_and_only_complete_frames():
    sm = mel.StreamingMel()
    assert sm.push(np.zeros(1023, np.float32)).shape == (128, 0)  # centre 0 needs n_fft//2 = 1024 samples
    assert sm.push(np.zeros(1, np.float32)).shape == (128, 1)
    assert sm.push(np.zeros(511, np.float32)).shape == (128, 0)
    assert sm.push(np.zeros(1, np.float32)).shape == (128, 1)
    assert sm.push(np.zeros(0, np.float32)).shape == (128, 0)


def test_latest_is_a_view_of_the_newest_frames():
    y = np.random.default_rng(4).standard_normal(22050 * 3).astype(np.float32)
    sm = mel.StreamingMel(keep_frames=100)
    for i in range(0, y.size, 512):
        sm.push(y[i : i + 512])
    full = mel.melspectrogram(y)
    got = sm.latest(100)
    assert not got.flags.writeable and not got.flags.owndata
    close_to_librosa(got, full[:, sm.frames_out - 100 : sm.frames_out].astype(np.float64))
    with pytest.raises(ValueError, match="keep_frames"):
        sm.latest(101)


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(n_fft=256, hop_length=512), "hop_length"),
        (dict(fmax=20000.0), "fmax"),
        (dict(n_mels=0), "n_mels"),
        (dict(sr=-1), "sr"),
        (dict(power=0), "power"),
        (dict(norm="l2"), "norm"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, word):
    y = np.zeros(4096, np.float32)
    with pytest.raises(ValueError, match=word):
        mel.melspectrogram(y, **kwargs)
    if "norm" not in kwargs:
        with pytest.raises(ValueError, match=word):
            mel.StreamingMel(**kwargs)


def test_bad_signals_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="empty"):
        mel.melspectrogram(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        mel.melspectrogram(np.array([0.0, np.nan] * 2000, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        mel.melspectrogram(np.zeros((100, 2), np.float32))
    sm = mel.StreamingMel()
    with pytest.raises(ValueError, match="NaN"):
        sm.push(np.array([np.inf], np.float32))
    sm.flush()
    with pytest.raises(RuntimeError, match="reset"):
        sm.push(np.zeros(3, np.float32))


def test_mel_config_round_trip_and_checks():
    cfg = mel.MelConfig(sr=16000, n_fft=512, hop_length=256, n_mels=96, scaling="logC")
    assert mel.MelConfig.from_dict(cfg.to_dict()) == cfg
    assert hash(cfg) == hash(mel.MelConfig.from_dict(cfg.to_dict()))
    assert cfg.frames_for(80000) == 313
    with pytest.raises(ValueError, match="scaling"):
        mel.MelConfig(scaling="cubic")
    with pytest.raises(ValueError, match="unknown mel config keys"):
        mel.MelConfig.from_dict({"sr": 16000, "nfft": 512})
