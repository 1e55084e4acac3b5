"""The streaming dream's output: its change, back at the input rate, sample-exact, on every channel.

Output, sample-exact
--------------------
The dreamer writes into ``engine.output`` (a :class:`~genredream.engine.ringbuffer.RingBuffer`
at the *input* rate) such that ``engine.output[j]`` is input sample ``j``
dreamed: ``dry[j] + mix * dream[j]``, where ``dream`` is the change the
dreamer made at the model rate, resampled back to the input rate (so the
input's content above the model's Nyquist passes dry). After the job of the
hop boundary ``B`` (input samples) ``engine.output.total_written == B - lag``
exactly. :attr:`Dreamer.latency_samples` adds to ``lag`` one hop (until the
next emission), one hop for the job to finish (the engine's own deadline)
and a device block: an audio callback that plays ``engine.output[k -
latency_samples]`` at its output sample ``k`` always finds the sample there.

This module is the part of :class:`genredream.engine.dream.stream.Dreamer`
that does it (:class:`InputRateOutput`, a mixin: it reads the dreamer's
clocks and emitted dream, laid out by ``Dreamer.prepare`` and
``Dreamer.attach``).
"""

from __future__ import annotations

import math

import numpy as np

from genredream.engine.resample import StreamingResampler

__all__ = ["InputRateOutput", "forward_lag", "BACK_EDGE"]

#: Model samples kept at each end of a segment resampled back to the input
#: rate in one shot (soxr HQ needs about 100; checked in tests/test_dream.py).
BACK_EDGE = 256


def forward_lag(in_rate, model_rate, hop_in, seconds=6.0, blocks=(64, 1024)):
    """Model-rate samples the engine's streaming resampler still owes at a hop boundary (measured maximum).

    soxr releases its output in internal chunks, so at a boundary the
    model-rate stream trails the input by a varying amount; the maximum is
    the same for any block size (checked for 64 to 4096) and repeats within
    a few seconds.
    """
    if in_rate == model_rate:
        return 0
    worst = 0.0
    for block in blocks:
        r = StreamingResampler(in_rate, model_rate)
        x = np.zeros(block, np.float32)
        n_in = n_out = 0
        nb = hop_in
        while n_in < seconds * in_rate:
            take = min(block, nb - n_in)
            n_out += r.process(x[:take]).size
            n_in += take
            if n_in == nb:
                worst = max(worst, n_in * model_rate / in_rate - n_out)
                nb += hop_in
    return int(math.ceil(worst))


class InputRateOutput:
    """Writes the dreamer's emitted dream into ``engine.output`` (and ``engine.output_ch``) at the input rate."""

    def _model_index(self, j):
        """Model-rate time of input index ``j`` (float)."""
        return (j - self._in_off) * self._p / self._q

    def _dream_at_input(self, o, end):
        """The emitted dream for input indices ``[o, end)`` (float32) and how many of them were not ready.

        Passthrough when the rates agree. Otherwise the emitted model-rate
        dream from a grid point (a multiple of the rates' alignment period)
        :data:`BACK_EDGE` samples before ``o`` is resampled in one shot
        (``soxr.resample``, HQ): on such a segment soxr's output sample ``k``
        is input index ``grid + k`` exactly, and away from its ends (by
        ``BACK_EDGE`` model samples) it equals streaming resampling of the
        whole signal to about 1e-6. So the newest ``BACK_EDGE`` emitted samples
        wait for the next hop, which the reported lag includes.
        """
        import soxr

        n = end - o
        out = np.zeros(n, np.float32)
        lo = max(o, self._out_start)
        if lo >= end or self._emitted <= self._h_start:
            return out, 0
        if self._passthrough:
            m_lo, m_hi = lo - self._in_off, min(end - self._in_off, self._emitted)
            if m_hi > m_lo:
                out[lo - o : m_hi + self._in_off - o] = self._hist[m_lo - self._h_start : m_hi - self._h_start]
            return out, max(0, end - (self._emitted + self._in_off))
        p, q = self._p, self._q
        s = max(self._h_start, int(math.floor((self._model_index(lo) - BACK_EDGE) / p)) * p)
        seg = soxr.resample(self._hist[s - self._h_start :], self.sample_rate, self._in_rate, quality="HQ")
        base = self._in_off + (s // p) * q
        ready_m = self._emitted if self._final else self._emitted - BACK_EDGE
        ready = min(base + seg.size, self._in_off + int(math.floor(ready_m * q / p)))
        hi = min(end, ready)
        if hi > lo:
            out[lo - o : hi - o] = seg[lo - base : hi - base]
        return out, max(0, end - max(lo, ready))

    def _write(self, engine, end, mix, final=False):
        out_ring = engine.output
        o = out_ring.total_written
        n = end - o
        if n <= 0:
            return
        dry = self.read_input(engine, o, n)
        dream, late = self._dream_at_input(o, end)
        if late > 0:  # at the end of a file, the few samples the resampler still held pass dry
            self.counters["tail_dry_samples" if final else "late_samples"] += late
        if mix == 0.0:  # dry, sample for sample (no clipping either: depth 0 and mix 0 are bypasses)
            change = None
            out = dry.astype(np.float32, copy=True)
        else:
            change = np.float32(mix) * dream
            out = np.clip(dry + change, -1.0, 1.0).astype(np.float32)
        out_ring.write(out)
        frames = self._write_channels(engine, o, n, change, dry)
        # Forget the model-rate dream the next write no longer needs.
        keep_from = int(math.floor((self._model_index(end) - 2 * BACK_EDGE) / self._p)) * self._p
        if self._h_start < keep_from <= self._emitted:  # stays on the grid
            cut = keep_from - self._h_start
            self._hist = self._hist[cut:]
            self._h_start += cut
        self.to_sinks(engine, out if frames is None else frames, o)

    def _write_channels(self, engine, o, n, change, mid):
        """The input's channels with the mid's change added to each (engine/channels.py), into ``engine.output_ch``.

        Returns the frames written (float32 ``[n, channels]``), or None for a
        mono engine. Input frames from before the engine kept channels (or
        already gone) are the mid on every channel.
        """
        ring, out_ring = getattr(engine, "ring_ch", None), getattr(engine, "output_ch", None)
        if ring is None or out_ring is None:
            return None
        dry, missing = ring.read(o, n)
        if missing:
            dry[:missing] = mid[:missing, None]
            self.counters["channel_frames_from_mid"] += missing
        frames = dry if change is None else np.clip(dry + change[:, None], -1.0, 1.0).astype(np.float32)
        if out_ring.total_written < o:  # something else wrote engine.output meanwhile: silence there, counted
            self.counters["channel_frames_silent"] += o - out_ring.total_written
            out_ring.write(np.zeros((o - out_ring.total_written, 1), np.float32))
        skip = out_ring.total_written - o
        if skip < n:
            out_ring.write(frames[skip:])
        return frames
