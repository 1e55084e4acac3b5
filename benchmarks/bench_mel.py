"""Streaming and offline mel against librosa, measured in the same run."""

import os
import subprocess
import sys
import textwrap

import librosa
import numpy as np
import pytest

from genredream.engine.mel import StreamingMel, melspectrogram

SR, N_FFT, HOP, N_MELS = 22050, 2048, 512, 128


@pytest.fixture(scope="module")
def thirty_seconds():
    return (0.3 * np.random.default_rng(0).standard_normal(30 * SR)).astype(np.float32)


def _info(benchmark, pair, role, target=None, budget_s=None, **more):
    benchmark.extra_info.update(pair=pair, role=role, **more)
    if target:
        benchmark.extra_info["target"] = target
    if budget_s:
        benchmark.extra_info["budget_s"] = budget_s


def test_stream_hop_ours(benchmark, thirty_seconds):
    """One new 512-sample hop -> one new mel frame, through StreamingMel.push."""
    sm = StreamingMel(SR, N_FFT, HOP, N_MELS)
    sm.push(thirty_seconds[: 10 * SR])  # a stream already running
    pos = [10 * SR]

    def one_hop():
        i = pos[0]
        if i + HOP > thirty_seconds.size:
            i = 10 * SR
        pos[0] = i + HOP
        return sm.push(thirty_seconds[i : i + HOP])

    out = benchmark(one_hop)
    assert out.shape == (N_MELS, 1)
    _info(benchmark, "mel: one new hop (22050 Hz, n_fft 2048, 128 mels)", "ours", ">= 50x faster", HOP / SR)


def test_stream_hop_librosa(benchmark, thirty_seconds):
    """librosa's answer for the same new frame: melspectrogram of the last n_fft samples."""
    last = thirty_seconds[-N_FFT:]
    out = benchmark(librosa.feature.melspectrogram, y=last, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, center=False)
    assert out.shape == (N_MELS, 1)
    _info(benchmark, "mel: one new hop (22050 Hz, n_fft 2048, 128 mels)", "reference", budget_s=HOP / SR, label="librosa.feature.melspectrogram(last n_fft)")


def test_stream_hop_librosa_cached_basis(benchmark, thirty_seconds):
    """A stricter reference: librosa's stft of the last n_fft samples with the mel basis built once."""
    last = thirty_seconds[-N_FFT:]
    basis = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)

    def frame():
        return basis @ (np.abs(librosa.stft(last, n_fft=N_FFT, hop_length=HOP, center=False)) ** 2)

    out = benchmark(frame)
    assert out.shape == (N_MELS, 1)
    _info(benchmark, "mel: one new hop, librosa with a cached basis", "reference", budget_s=HOP / SR, label="basis @ |librosa.stft(last n_fft)|^2")


def test_stream_hop_ours_vs_cached(benchmark, thirty_seconds):
    sm = StreamingMel(SR, N_FFT, HOP, N_MELS)
    sm.push(thirty_seconds[: 10 * SR])
    block = thirty_seconds[10 * SR : 10 * SR + HOP]
    benchmark(sm.push, block)
    _info(benchmark, "mel: one new hop, librosa with a cached basis", "ours", budget_s=HOP / SR)


def test_offline_30s_ours(benchmark, thirty_seconds):
    melspectrogram(thirty_seconds[:SR])  # compiled (or loaded from cache) before timing
    out = benchmark(melspectrogram, thirty_seconds, sr=SR)
    assert out.shape == (N_MELS, 1 + thirty_seconds.size // HOP)
    _info(benchmark, "mel: offline, 30 s at 22050 Hz", "ours", ">= 2x faster", 30.0)


def test_offline_30s_librosa(benchmark, thirty_seconds):
    out = benchmark(librosa.feature.melspectrogram, y=thirty_seconds, sr=SR)
    assert out.shape == (N_MELS, 1 + thirty_seconds.size // HOP)
    _info(benchmark, "mel: offline, 30 s at 22050 Hz", "reference", budget_s=30.0, label="librosa.feature.melspectrogram")


_FIRST_CALL = textwrap.dedent(
    """
    import time, numpy as np
    t0 = time.perf_counter()
    from genredream.engine.mel import melspectrogram, StreamingMel
    t1 = time.perf_counter()
    melspectrogram(np.zeros(22050 * 3, np.float32))
    StreamingMel().push(np.zeros(4096, np.float32))
    t2 = time.perf_counter()
    print(t1 - t0, t2 - t1)
    """
)


def test_numba_first_call(benchmark, tmp_path):
    """First call in a new process: compiling from scratch vs loading Numba's cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))

    def first_call():
        out = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True)
        return [float(x) for x in out.stdout.split()]

    cold = first_call()  # empty cache dir: compiles and writes the cache
    warm = benchmark.pedantic(first_call, rounds=3, iterations=1)
    benchmark.extra_info.update(
        pair="mel: first call in a new process",
        role="ours",
        cold_compile_s=round(cold[1], 3),
        warm_cached_s=round(warm[1], 3),
        import_s=round(warm[0], 3),
        note="times a whole subprocess; the figures that matter are cold_compile_s vs warm_cached_s",
    )
    assert warm[1] < cold[1]
