"""Channels: a frames x channels ring on the input clock, and how a dream is applied to each channel.

The engine analyses and dreams one signal, the **mid** (the mean of the
input's channels: what :class:`genredream.engine.ringbuffer.RingBuffer` stores). To give
back the input's channels, the engine keeps the input frames as they came in
a :class:`FrameRing` (:meth:`genredream.engine.runtime.Engine.set_channels`), and the
dreamer adds the change it made to the mid to every channel:

    out_c[j] = in_c[j] + mix * change[j]

Why the mid and not each channel: one dream per hop instead of one per
channel (the per-hop budget is already spent on one), the classifiers score
the mid anyway, and the same change on every channel leaves the side signal
``in_L - in_R`` exactly as it was: the stereo image and the mono fold-down
of the input are kept, and nothing dreamed cancels when a PA sums to mono.
Two independent dreams would decorrelate the channels (a phasey, wide image
that moves with every hop). See docs/dream.md.

The ring's write runs on the audio thread: one compiled pass into
preallocated storage, no allocation, no lock (as RingBuffer).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FrameRing", "FrameResampler", "read_channels", "to_frames"]


@njit(cache=True)
def _store(buf, state, block, scale):
    """Frames in: as many channels as the ring copied; any other count: their mean on every channel."""
    cap, ch = buf.shape
    n, bc = block.shape
    pos = state[0] % cap
    for i in range(n):
        if bc == ch:
            for c in range(ch):
                v = np.float32(block[i, c] * scale)
                buf[pos, c] = v if np.isfinite(v) else np.float32(0.0)
        else:
            acc = 0.0
            for c in range(bc):
                acc += block[i, c]
            v = np.float32(acc * scale / bc)
            if not np.isfinite(v):
                v = np.float32(0.0)
            for c in range(ch):
                buf[pos, c] = v
        pos += 1
        if pos == cap:
            pos = 0
    state[0] += n


@njit(cache=True)
def _copy(buf, start, out):
    cap = buf.shape[0]
    pos = start % cap
    for i in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[i, c] = buf[pos, c]
        pos += 1
        if pos == cap:
            pos = 0


_SCALES = {np.dtype(np.int16): 1.0 / 32768.0, np.dtype(np.int32): 1.0 / 2147483648.0, np.dtype(np.float32): 1.0, np.dtype(np.float64): 1.0}


class FrameRing:
    """A float32 ``[capacity, channels]`` ring with an absolute clock that may start at ``start``.

    ``start`` lets a ring made mid-stream share the clock of the engine's
    mono ring: its first frame is absolute index ``start``. NaN/Inf samples
    are stored as 0 (the mono ring counts them).
    """

    def __init__(self, capacity, channels, start=0):
        if int(channels) != channels or not 1 <= channels <= 64:
            raise ValueError(f"channels must be an integer from 1 to 64, got {channels!r}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), np.float32)
        self._state = np.array([int(start)], np.int64)
        self.first = int(start)  # the oldest index this ring ever held

    @property
    def total_written(self):
        return int(self._state[0])

    @property
    def oldest_available(self):
        return max(self.first, self.total_written - self.capacity)

    def write(self, block):
        """Frames ``[n, c]`` (or mono ``[n]``) in: audio-thread safe."""
        scale = _SCALES.get(block.dtype)
        if scale is None:
            raise ValueError(f"block dtype must be int16, int32, float32 or float64, got {block.dtype}")
        _store(self._buf, self._state, block.reshape(-1, 1) if block.ndim == 1 else block, scale)

    def read(self, start, n):
        """Frames ``[start, start + n)`` as float32 ``[n, channels]``, and how many of the first ones were not there (zeros)."""
        out = np.zeros((int(n), self.channels), np.float32)
        lo = max(start, self.oldest_available)
        hi = min(start + n, self.total_written)
        if hi > lo:
            _copy(self._buf, lo, out[lo - start : hi - start])
        return out, max(0, min(lo, start + n) - start)

    def read_into(self, start, out):
        """Fill ``out`` (float32 ``[m, channels]``) from ``start`` without allocating; returns how many frames were copied.

        For the audio thread: frames not yet written (or already gone) are
        not copied; the count says how many of the first frames are valid.
        """
        end = int(self._state[0])
        if start < self.first or start < end - self.capacity or start >= end:
            return 0
        n = min(out.shape[0], end - start)
        _copy(self._buf, start, out[:n])
        return n


class FrameResampler:
    """Streaming soxr (HQ) resampling of ``[n, channels]`` frames, as engine.resample.StreamingResampler does for mono."""

    def __init__(self, in_rate, out_rate, channels):
        import soxr

        self.in_rate, self.out_rate, self.channels = float(in_rate), float(out_rate), int(channels)
        self.passthrough = self.in_rate == self.out_rate
        self._stream = None if self.passthrough else soxr.ResampleStream(self.in_rate, self.out_rate, self.channels, dtype="float32", quality="HQ")

    def process(self, frames):
        x = np.ascontiguousarray(frames, np.float32).reshape(-1, self.channels)
        return x.copy() if self.passthrough else self._stream.resample_chunk(x, last=False)

    def flush(self):
        if self.passthrough:
            return np.zeros((0, self.channels), np.float32)
        return self._stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)


def to_frames(x):
    """``x`` as float32 ``[n, channels]`` (a mono ``[n]`` becomes ``[n, 1]``)."""
    x = np.asarray(x, np.float32)
    return x.reshape(-1, 1) if x.ndim == 1 else x


def read_channels(path):
    """Decode a file keeping its channels: (float32 ``[n, channels]``, sample rate).

    libsndfile (wav, flac, ogg, au, mp3) keeps the channels; a file only the
    fallback decoder reads (models.data.load_audio, at 44.1 kHz) comes back
    mono ``[n, 1]``.

    Raises
    ------
    models.data.AudioFileError
        Unreadable, empty or non-finite audio.
    """
    import soundfile as sf

    from genredream.models.data import AudioFileError, load_audio

    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception:
        return load_audio(path, 44100).reshape(-1, 1), 44100
    if y.size == 0:
        raise AudioFileError(f"{path}: decodes to no samples")
    if not np.all(np.isfinite(y)):
        raise AudioFileError(f"{path}: contains NaN or Inf samples")
    return np.ascontiguousarray(y, np.float32), int(sr)
