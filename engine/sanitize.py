"""Repair of input samples: NaN/Inf zeroed, huge values clipped, both counted.

Every way audio enters the engine (the device callback and files through
:meth:`genredream.engine.ringbuffer.RingBuffer.write`, OSC blobs and floats in
``bridge/audio_in.py`` before they are averaged and resampled) passes through
the same rule, before any arithmetic that could overflow:

* a sample that is NaN or +-Inf becomes 0 (counted as *non-finite*);
* a sample beyond +-:data:`LIMIT` (32 full scale, +30 dBFS) is clipped to it
  (counted as *out of range*);
* a sample beyond +-1 (above 0 dBFS; clipped ones included) is kept, since float audio from a DAW
  may carry headroom, but counted (*over full scale*) so it can be flagged.

Why 32 bounds everything downstream by construction: after the clip every
sample has ``|x| <= 32``. The resampler is a linear filter whose gain is
below 2, so its output stays under 64. A mel frame is a windowed FFT of at
most 4096 samples: ``|X| <= 64 * 4096 = 2.6e5``, its power ``<= 7e10`` and a
mel band (a weighted sum of at most 2049 bins, weights <= 1) ``<= 1.5e14``.
The RMS level of a 30 s window at 192 kHz sums at most ``5.8e6 * 64**2 =
2.4e10``. All are far below float32's 3.4e38, so no overflow, and therefore
no Inf or NaN, can arise after this point.

The kernel works in place on a float32 array and allocates nothing, so the
audio callback's path (the ring's own kernel applies the same rule) stays
allocation-free.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["LIMIT", "NONFINITE", "OUT_OF_RANGE", "OVER_FULL_SCALE", "repair_inplace", "new_counts"]

#: Samples beyond +-LIMIT (full scale 1.0) are clipped to it.
LIMIT = 32.0

# Slots of a counts array (int64[3]).
NONFINITE, OUT_OF_RANGE, OVER_FULL_SCALE = range(3)


def new_counts():
    """A zeroed counts array for :func:`repair_inplace`."""
    return np.zeros(3, dtype=np.int64)


@njit(cache=True)
def repair_inplace(x, counts):
    """Repair a float32 1-D array in place; add what was found to ``counts``.

    Returns the number of samples changed (non-finite + out of range).
    """
    lim = np.float32(LIMIT)
    bad = 0
    big = 0
    over = 0
    for i in range(x.shape[0]):
        v = x[i]
        if not np.isfinite(v):
            x[i] = np.float32(0.0)
            bad += 1
        elif v > 1.0 or v < -1.0:
            over += 1
            if v > lim:
                x[i] = lim
                big += 1
            elif v < -lim:
                x[i] = -lim
                big += 1
    counts[NONFINITE] += bad
    counts[OUT_OF_RANGE] += big
    counts[OVER_FULL_SCALE] += over
    return bad + big
