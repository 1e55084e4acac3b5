"""The audio thread's one job: writing a device block into the ring."""

import numpy as np

from genredream.engine.ringbuffer import RingBuffer

BLOCK, SR = 256, 48000


def test_ring_write_256_stereo(benchmark):
    rb = RingBuffer(SR * 6)
    block = (0.1 * np.random.default_rng(0).standard_normal((BLOCK, 2))).astype(np.float32)
    rb.write(block)
    benchmark(rb.write, block)
    assert rb.nonfinite_repaired == 0
    benchmark.extra_info.update(
        pair="ring write: 256-frame stereo float32 block", role="ours", budget_s=BLOCK / SR,
        # Judged against the NumPy reference timed in the same run (12.8x when this was set; 5x leaves room
        # for a noisy machine); 5 us is shown as information.
        target=">= 5x the NumPy reference (5 us: information)", target_min_ratio=5.0, target_abs_s=5e-6,
    )


def test_ring_write_256_stereo_numpy_reference(benchmark):
    """What the same work costs written with NumPy (it allocates temporaries)."""
    buf = np.zeros(SR * 6, np.float32)
    block = (0.1 * np.random.default_rng(0).standard_normal((BLOCK, 2))).astype(np.float32)
    pos = [0]

    def write():
        mono = block.mean(axis=1)
        mono[~np.isfinite(mono)] = 0
        i = pos[0] % buf.size
        n = min(BLOCK, buf.size - i)
        buf[i : i + n] = mono[:n]
        buf[: BLOCK - n] = mono[n:]
        pos[0] += BLOCK

    benchmark(write)
    benchmark.extra_info.update(pair="ring write: 256-frame stereo float32 block", role="reference", budget_s=BLOCK / SR, label="numpy mean + masked copy")
