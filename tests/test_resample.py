"""engine/resample.py: streamed blocks equal one-shot soxr."""

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from genredream.engine.resample import StreamingResampler


@settings(max_examples=40, deadline=None)
@given(
    rates=st.sampled_from([(48000, 22050), (44100, 16000), (22050, 48000), (48000, 8000), (16000, 44100), (44100, 44100)]),
    n=st.integers(1, 40000),
    sizes=st.lists(st.integers(1, 8192), min_size=1, max_size=10),
)
def test_streaming_equals_one_shot(rates, n, sizes):
    sr_in, sr_out = rates
    y = (np.random.default_rng(n).standard_normal(n) * 0.3).astype(np.float32)
    ref = soxr.resample(y, sr_in, sr_out) if sr_in != sr_out else y
    rs = StreamingResampler(sr_in, sr_out)
    parts, i, k = [], 0, 0
    while i < n:
        parts.append(rs.process(y[i : i + sizes[k % len(sizes)]]))
        i += sizes[k % len(sizes)]
        k += 1
    parts.append(rs.flush())
    out = np.concatenate(parts)
    assert out.dtype == np.float32
    assert out.size == ref.size
    assert np.abs(out - ref).max() <= 1e-5 if out.size else True
    assert rs.delay == 0.0 and rs.samples_out == out.size


def test_delay_is_what_the_stream_still_owes():
    rs = StreamingResampler(48000, 16000)
    got = rs.process(np.zeros(4800, np.float32)).size
    assert rs.delay > 0
    assert got + rs.delay == pytest.approx(1600, abs=1)
    tail = rs.flush().size
    assert got + tail == 1600


def test_sine_keeps_its_frequency():
    sr_in, sr_out, f = 44100, 22050, 1000.0
    y = np.sin(2 * np.pi * f * np.arange(sr_in) / sr_in).astype(np.float32)
    rs = StreamingResampler(sr_in, sr_out)
    out = np.concatenate([rs.process(y[i : i + 512]) for i in range(0, y.size, 512)] + [rs.flush()])
    spec = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    assert np.argmax(spec) * sr_out / out.size == pytest.approx(f, abs=2)


@pytest.mark.parametrize("kw,word", [(dict(in_rate=0, out_rate=16000), "in_rate"), (dict(in_rate=16000, out_rate=float("nan")), "out_rate"), (dict(in_rate=1, out_rate=2, quality="best"), "quality")])
def test_bad_arguments(kw, word):
    with pytest.raises(ValueError, match=word):
        StreamingResampler(**kw)


def test_bad_blocks():
    rs = StreamingResampler(48000, 16000)
    with pytest.raises(ValueError, match="1-D"):
        rs.process(np.zeros((10, 2), np.float32))
    rs.flush()
    with pytest.raises(RuntimeError, match="reset"):
        rs.process(np.zeros(10, np.float32))
