"""engine/ringbuffer.py: clock, conversions, repairs, overruns."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genredream.engine.ringbuffer import RingBuffer


def test_clock_and_latest_across_wraparound():
    rb = RingBuffer(1000)
    ref = np.arange(3500, dtype=np.float32) / 4096
    for i in range(0, 3500, 256):
        rb.write(ref[i : i + 256])
    assert rb.total_written == 3500
    got, end = rb.latest(1000)
    assert end == 3500
    np.testing.assert_array_equal(got, ref[2500:3500])
    got, end = rb.latest(7)
    np.testing.assert_array_equal(got, ref[-7:])


def test_latest_before_enough_samples_is_zero_padded():
    rb = RingBuffer(100)
    rb.write(np.ones(30, np.float32))
    got, end = rb.latest(50)
    assert end == 30
    np.testing.assert_array_equal(got, np.r_[np.zeros(20), np.ones(30)].astype(np.float32))


def test_pcm_and_multichannel_are_converted_and_downmixed():
    rb = RingBuffer(64)
    rb.write(np.array([-32768, 16384, 0], dtype=np.int16))
    np.testing.assert_array_equal(rb.latest(3)[0], [-1.0, 0.5, 0.0])
    rb.write(np.array([[2**31 - 1, -(2**31)], [2**30, 2**30]], dtype=np.int32))
    np.testing.assert_allclose(rb.latest(2)[0], [0.0, 0.5], atol=1e-9)
    rb.write(np.array([[0.2, 0.4, 0.6], [1.0, -1.0, 0.0]], dtype=np.float64))
    np.testing.assert_allclose(rb.latest(2)[0], [0.4, 0.0], atol=1e-7)
    assert rb.total_written == 7
    assert rb.latest(1)[0].dtype == np.float32


def test_nonfinite_samples_become_zero_and_are_counted():
    rb = RingBuffer(16)
    rb.write(np.array([0.5, np.nan, np.inf, -np.inf, 0.25], np.float32))
    np.testing.assert_array_equal(rb.latest(5)[0], [0.5, 0, 0, 0, 0.25])
    assert rb.nonfinite_repaired == 3
    rb.write(np.array([[0.1, np.nan], [0.2, 0.2]], np.float32))  # one bad channel spoils a frame
    np.testing.assert_allclose(rb.latest(2)[0], [0.0, 0.2])
    assert rb.nonfinite_repaired == 4


def test_samples_beyond_32_full_scale_are_clipped_and_counted_and_over_0dbfs_flagged():
    """Issue 16.6: 1e30 must not reach the float32 cast (Inf) or anything downstream."""
    rb = RingBuffer(16)
    rb.write(np.array([1e30, -3e38, 40.0, 2.0, -1.5, 0.5, 1.0], np.float32))
    np.testing.assert_array_equal(rb.latest(7)[0], [32, -32, 32, 2.0, -1.5, 0.5, 1.0])
    assert rb.out_of_range_repaired == 3 and rb.over_full_scale == 5 and rb.nonfinite_repaired == 0
    rb.write(np.array([[1e300, 1e300]]))  # float64 frames: the average is clipped, not cast to Inf
    assert rb.latest(1)[0][0] == 32 and rb.out_of_range_repaired == 4
    rb.write(np.array([[3e38, 3e38]], np.float32))  # a float32 sum would overflow to Inf
    assert rb.latest(1)[0][0] == 32 and rb.nonfinite_repaired == 0


def test_read_since_detects_and_counts_overruns():
    rb = RingBuffer(100)
    rb.write(np.arange(250, dtype=np.float32) / 256)  # sample k is k/256: exact, and inside +-32
    data, start = rb.read_since(120)
    assert start == 150 and rb.overruns == 1 and rb.samples_lost == 30
    np.testing.assert_array_equal(data, np.arange(150, 250) / 256)
    data, start = rb.read_since(240, max_n=4)
    assert start == 240 and rb.overruns == 1
    np.testing.assert_array_equal(data, np.array([240, 241, 242, 243]) / 256)
    with pytest.raises(ValueError, match="future"):
        rb.read_since(251)


def test_read_into_does_not_allocate_and_reports_partial_reads():
    rb = RingBuffer(8)
    rb.write(np.arange(12, dtype=np.float32))
    out = np.full(6, -1, np.float32)
    start, n = rb.read_into(2, out)  # 2..3 are gone
    assert (start, n) == (4, 6) and rb.overruns == 1 and rb.samples_lost == 2
    np.testing.assert_array_equal(out, np.arange(4, 10))
    out[:] = -1
    start, n = rb.read_into(10, out)
    assert (start, n) == (10, 2)
    np.testing.assert_array_equal(out, [10, 11, -1, -1, -1, -1])


def test_block_larger_than_capacity_keeps_the_newest():
    rb = RingBuffer(10)
    rb.write(np.arange(25, dtype=np.float32))
    assert rb.total_written == 25
    np.testing.assert_array_equal(rb.latest(10)[0], np.arange(15, 25))


@pytest.mark.parametrize(
    "block,word",
    [
        (np.zeros(4, np.int8), "dtype"),
        (np.zeros((2, 2, 2), np.float32), "shape"),
        (np.zeros((4, 0), np.float32), "shape"),
    ],
)
def test_bad_blocks_raise_before_storing(block, word):
    rb = RingBuffer(16)
    with pytest.raises(ValueError, match=word):
        rb.write(block)
    assert rb.total_written == 0


@pytest.mark.parametrize("cap", [0, -3, 2.5])
def test_bad_capacity(cap):
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(cap)


@settings(max_examples=50, deadline=None)
@given(cap=st.integers(1, 300), sizes=st.lists(st.integers(0, 500), min_size=1, max_size=30))
def test_property_latest_equals_tail_of_everything_written(cap, sizes):
    rb = RingBuffer(cap)
    rng = np.random.default_rng(cap)
    written = []
    for n in sizes:
        b = rng.standard_normal(n).astype(np.float32)
        rb.write(b)
        written.append(b)
    allw = np.concatenate(written)
    assert rb.total_written == allw.size
    n = min(cap, max(1, allw.size))
    got, end = rb.latest(n)
    expect = np.r_[np.zeros(max(0, n - allw.size), np.float32), allw[-n:] if allw.size else []]
    np.testing.assert_array_equal(got, expect[-n:])


def test_concurrent_producer_consumer_sees_a_consistent_stream():
    """A real writer thread against a reader: every read equals the known ramp."""
    rb = RingBuffer(4096)
    total = 256 * 800
    stop = threading.Event()

    def producer():
        for i in range(0, total, 256):
            rb.write((np.arange(i, i + 256) % 65536 / 65536).astype(np.float32))  # exact, inside +-32
        stop.set()

    bad = []
    t = threading.Thread(target=producer)
    t.start()
    cursor = 0
    while not stop.is_set() or cursor < rb.total_written:
        data, start = rb.read_since(cursor)
        expect = (np.arange(start, start + data.size) % 65536 / 65536).astype(np.float32)
        if not np.array_equal(data, expect):
            bad.append(start)
        cursor = start + data.size
    t.join()
    assert not bad
    assert cursor == total
