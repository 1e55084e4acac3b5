"""Single-producer single-consumer float32 ring with an absolute sample clock.

The producer is the audio callback: :meth:`RingBuffer.write` converts the
device's block (int16/int32 PCM or float, mono or interleaved frames x
channels) to float32 mono in one compiled pass, straight into preallocated
storage. It never allocates an array, never takes a lock and never waits.
Samples that are NaN or Inf are written as 0, samples beyond +-32 full scale
are clipped to it, and both are counted (the rule of :mod:`genredream.engine.sanitize`),
so one bad sample from a driver or a plug-in cannot poison every spectrogram
downstream. Samples above 0 dBFS are kept and counted.

The consumer (the engine's front-end worker) asks for the newest ``n``
samples, or for everything since an absolute index it remembers. Asking for
samples that have already been overwritten is an overrun: it is counted and
the caller is told where the data it got really starts, never given stale
samples silently.

Why this is safe without a lock: both kernels are compiled with the GIL held
(``nogil=False``), so a write and a read never interleave, and a Python
sounddevice callback holds the GIL anyway. The clock is updated after the
samples are stored.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from genredream.engine.sanitize import LIMIT

__all__ = ["RingBuffer"]

# Layout of the shared counters array (int64, so the kernels update it in place).
_WRITTEN, _NONFINITE, _OVERRUNS, _LOST, _OUT_OF_RANGE, _OVER_FS = range(6)


@njit(cache=True)
def _store_frames(buf, state, block, scale):
    cap = buf.shape[0]
    pos = state[_WRITTEN] % cap
    bad = 0
    big = 0
    over = 0
    n, ch = block.shape
    inv = scale / ch
    for i in range(n):
        acc = 0.0  # float64: the sum of float32 channels cannot overflow here
        for c in range(ch):
            acc += block[i, c]
        a = acc * inv
        if not np.isfinite(a):
            # One bad channel spoils the average; zero the frame and count it once.
            a = 0.0
            bad += 1
        elif a > 1.0 or a < -1.0:
            over += 1
            if a > LIMIT:  # clipped before the float32 cast, which would overflow to Inf
                a = LIMIT
                big += 1
            elif a < -LIMIT:
                a = -LIMIT
                big += 1
        buf[pos] = np.float32(a)
        pos += 1
        if pos == cap:
            pos = 0
    state[_NONFINITE] += bad
    state[_OUT_OF_RANGE] += big
    state[_OVER_FS] += over
    state[_WRITTEN] += n


@njit(cache=True)
def _copy_out(buf, start, out):
    cap = buf.shape[0]
    pos = start % cap
    for i in range(out.shape[0]):
        out[i] = buf[pos]
        pos += 1
        if pos == cap:
            pos = 0


_SCALES = {
    np.dtype(np.int16): 1.0 / 32768.0,
    np.dtype(np.int32): 1.0 / 2147483648.0,
    np.dtype(np.float32): 1.0,
    np.dtype(np.float64): 1.0,
}


class RingBuffer:
    """A float32 mono ring of ``capacity`` samples with an absolute clock.

    Parameters
    ----------
    capacity : int
        Samples kept, e.g. ``window + margin`` seconds times the sample rate.

    Attributes
    ----------
    total_written : int
        Samples ever written (int64 clock): the absolute index one past the
        newest sample.
    nonfinite_repaired : int
        Samples (or frames) that arrived as NaN/Inf and were stored as 0.
    out_of_range_repaired : int
        Samples beyond +-32 full scale, stored clipped to it.
    over_full_scale : int
        Samples beyond +-1 (above 0 dBFS), clipped ones included.
    overruns : int
        Reads that asked for samples already overwritten.
    samples_lost : int
        How many samples those reads missed in all.
    """

    def __init__(self, capacity):
        if int(capacity) != capacity or capacity < 1:
            raise ValueError(f"capacity must be a positive integer number of samples, got {capacity!r}")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._state = np.zeros(6, dtype=np.int64)

    # -- producer ---------------------------------------------------------

    def write(self, block):
        """Copy a block in (audio-thread safe: no allocation, no lock, no wait).

        Parameters
        ----------
        block : np.ndarray, shape [frames] or [frames, channels]
            int16 or int32 PCM (full scale = 1.0), or float32/float64 in
            [-1, 1]. Channels are averaged to mono. A block larger than the
            capacity keeps only its newest ``capacity`` samples (the clock
            still advances by the full length).

        Raises
        ------
        ValueError
            For a dtype or shape the ring cannot take: a programming error of
            the caller, raised before anything is stored.
        """
        scale = _SCALES.get(block.dtype)
        if scale is None:
            raise ValueError(f"block dtype must be int16, int32, float32 or float64, got {block.dtype}")
        if block.ndim == 1:
            # A mono block is a one-channel frame block (a view, no copy).
            _store_frames(self._buf, self._state, block.reshape(-1, 1), scale)
        elif block.ndim == 2 and block.shape[1] >= 1:
            _store_frames(self._buf, self._state, block, scale)
        else:
            raise ValueError(f"block must have shape [frames] or [frames, channels], got {block.shape}")

    # -- consumer ---------------------------------------------------------

    @property
    def total_written(self):
        return int(self._state[_WRITTEN])

    @property
    def nonfinite_repaired(self):
        return int(self._state[_NONFINITE])

    @property
    def out_of_range_repaired(self):
        return int(self._state[_OUT_OF_RANGE])

    @property
    def over_full_scale(self):
        return int(self._state[_OVER_FS])

    @property
    def overruns(self):
        return int(self._state[_OVERRUNS])

    @property
    def samples_lost(self):
        return int(self._state[_LOST])

    @property
    def oldest_available(self):
        """Absolute index of the oldest sample still in the ring."""
        return max(0, self.total_written - self.capacity)

    def latest(self, n):
        """Copy of the newest ``n`` samples and the absolute index one past the last.

        Parameters
        ----------
        n : int
            ``1 <= n <= capacity``.

        Returns
        -------
        samples : np.ndarray, float32, shape [n]
            Oldest first. Before ``n`` samples have ever been written the
            front is zero-filled: the stream is taken to be silent before it
            started, so a 5-second window exists from the first block on.
        end_index : int
            ``total_written`` at the moment of the copy.
        """
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if n > self.capacity:
            raise ValueError(f"n ({n}) exceeds the ring's capacity ({self.capacity})")
        end = self.total_written
        out = np.zeros(int(n), dtype=np.float32)
        have = min(int(n), end)
        if have:
            _copy_out(self._buf, end - have, out[n - have :])
        return out, end

    def read_since(self, start, max_n=None):
        """Everything written since absolute index ``start`` (a consumer's own cursor).

        Parameters
        ----------
        start : int
            Absolute index of the first wanted sample (``<= total_written``).
        max_n : int, optional
            Return at most this many samples (the oldest ones).

        Returns
        -------
        samples : np.ndarray, float32
        start_index : int
            Where ``samples`` really starts: larger than ``start`` after an
            overrun, which is then counted in :attr:`overruns` and
            :attr:`samples_lost`.
        """
        end = self.total_written
        if start > end:
            raise ValueError(f"start ({start}) is in the future: only {end} samples have been written")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        oldest = max(0, end - self.capacity)
        if start < oldest:
            self._state[_OVERRUNS] += 1
            self._state[_LOST] += oldest - start
            start = oldest
        n = end - start
        if max_n is not None:
            n = min(n, int(max_n))
        out = np.empty(n, dtype=np.float32)
        if n:
            _copy_out(self._buf, start, out)
        return out, start

    def read_into(self, start, out):
        """Fill ``out`` (float32 [n]) from absolute index ``start`` without allocating.

        For a consumer on the audio thread (the output side). Returns the
        index the copy really started at (moved forward on an overrun, which
        is counted); samples not yet written are left untouched in ``out``
        and the count actually copied is the second value returned.
        """
        end = int(self._state[_WRITTEN])
        oldest = end - self.capacity
        if oldest < 0:
            oldest = 0
        if start < oldest:
            self._state[_OVERRUNS] += 1
            self._state[_LOST] += oldest - start
            start = oldest
        n = min(out.shape[0], end - start)
        if n > 0:
            _copy_out(self._buf, start, out[:n])
        else:
            n = 0
        return start, n

    def counters(self):
        """The ring's counters as a dict (for status reports)."""
        return {
            "total_written": self.total_written,
            "nonfinite_repaired": self.nonfinite_repaired,
            "out_of_range_repaired": self.out_of_range_repaired,
            "over_full_scale": self.over_full_scale,
            "overruns": self.overruns,
            "samples_lost": self.samples_lost,
        }
