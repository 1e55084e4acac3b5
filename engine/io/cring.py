"""The audio callback in C: rtmixer's PortAudio callback, two lock-free rings, a Python pump.

Why: a Python audio callback (:class:`genredream.engine.io.duplex.DuplexRunner`) needs
the GIL on every block, so anything else that holds it (``torch.jit.load``,
compiling a step, the garbage collector, a worker's Python code, or simply
Python's 5 ms thread switch interval) makes the block late: an xrun (BENCHMARKS.md, "xruns: 15 s dreaming at
64 frames under JACK with 4 hot model loads", compares this Python callback
with the C one).

Here the callback is rtmixer's (python-rtmixer, by the author of
python-sounddevice): C compiled with CFFI, never touching Python. Per block
it copies the device input into a PortAudio ring (``PaUtilRingBuffer``,
single reader, single writer, lock-free) and the device output from a
second one. A Python thread, the *pump*, moves samples between those rings
and the engine's:

* input: everything the C ring holds goes to ``engine.write`` (its clock
  counts device samples, exactly as before) and into a multichannel
  history the dry fallback reads;
* output: output frame ``p`` of the device is ``engine_out[p - output_delay]``
  (the dream), where ``output_delay`` = the dream's own latency + the
  ring's *lead*. The pump keeps the C output ring ``lead`` frames ahead of
  what the callback has played, counted in samples (never wall time): frames
  written minus the ring's fill is the frames played.

The lead is what absorbs a Python stall: the callback plays from what is
already in the ring while Python is stopped for up to ``lead`` seconds,
and the input ring (at least 1 s and 4 leads deep) holds what arrives
meanwhile. It costs exactly ``lead`` of extra output latency (default
:data:`DEFAULT_LEAD_S`, 0.3 s, chosen by ``--ring-lead`` between
:data:`MIN_LEAD_S` and :data:`MAX_LEAD_S`); the dream already lags the
input by about a hop (0.5 s), so a dreamed output goes from ~0.6 s to
~0.9 s behind the input by default.

``--when-late dry|silence``: where the dream has no sample for a frame the
pump must write, it writes the input itself, delayed by the same
``output_delay`` (so dry and dreamed stay aligned), or silence. With a
dreamer attached the pump first waits for the dream while the ring still
holds more than a low-water mark (half the lead, at least four
blocks: the other half still absorbs a stall then), so a dream that is briefly late after a stall still arrives in
time; only below that mark does it write the fallback, counted in
``late_blocks`` (and in ``dream_late_blocks`` once the dream had begun).

Xruns are counted from PortAudio's status flags (rtmixer's stats, fetched
from the callback every 100 ms) and from the ring fill levels: rtmixer ends
a ring action when its ring runs empty (output) or full (input); the pump
counts that (``output_ring_empty``, ``input_ring_full``), starts the action
again and, on the output side, re-fills the lead first.

Channels are generic: the rings carry interleaved frames of the stream's
own channel counts; a mono dreamed stream is fanned out to every output
channel, the dry fallback keeps the input's channels (averaged and fanned
out when the counts differ). rtmixer works wherever PortAudio does (JACK,
ALSA, CoreAudio, WASAPI, ASIO).

PortAudio's xrun flags, the check of the callback thread's scheduling and the
summary lines are in engine/io/cring_stats.py.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

import numpy as np

from genredream.engine.io.callback_kernels import (
    FRAMES_IN,
    FRAMES_OUT,
    LATE_BLOCKS,
    XRUNS,
)
from genredream.engine.io.cring_stats import add_portaudio_stats, check_realtime, summary_lines
from genredream.engine.io.devices import DeviceError, capabilities
from genredream.engine.io.duplex import DuplexRunner
from genredream.engine.io import rt as rtsched

log = logging.getLogger("genredream.audio")

__all__ = ["CRingRunner", "DEFAULT_LEAD_S", "MIN_LEAD_S", "MAX_LEAD_S"]

#: Default output lead (s): absorbs a Python stall of about this long.
DEFAULT_LEAD_S = 0.3
#: Limits of ``--ring-lead``: under 20 ms Python's own scheduling jitter
#: empties the ring; over 2 s the performer hears the change too late.
MIN_LEAD_S, MAX_LEAD_S = 0.02, 2.0
_STATS_EVERY_S = 0.1
#: SCHED_FIFO priority of the pump thread where allowed: the lowest, below every
#: JACK client thread (jack2: the server's priority minus 5, 5 for jackd -R);
#: at 5 a busy pump kept JACK's clients waiting (engine/io/rt.py says why).
PUMP_RT_PRIORITY = 1


def _pow2(n):
    """The smallest power of two >= n (PortAudio's ring sizes must be powers of two)."""
    return 1 << max(0, int(n) - 1).bit_length()


def _rtmixer():
    try:
        import rtmixer
    except ImportError as e:  # pragma: no cover - a broken install
        raise DeviceError(f"the C audio callback needs python-rtmixer: pip install 'rtmixer>=0.1.7' ({e})") from e
    return rtmixer


class CRingRunner(DuplexRunner):
    """Like :class:`genredream.engine.io.duplex.DuplexRunner`, with rtmixer's C callback.

    Takes the same parameters, plus ``lead_s`` (seconds the output ring is
    kept ahead of the device; see the module's docstring). ``output_delay``
    is the dream's latency; the lead is added to it (:attr:`output_delay`
    is the total). Counters and :meth:`stats` keep the Python runner's
    names; the callback's own duration is not measured here (it is C; see
    benchmarks/bench_callback.py), and these are added: ``output_ring_empty``,
    ``input_ring_full``, ``dream_late_blocks``, ``fallback_frames``,
    ``min_output_fill`` (frames), ``lead_frames``, ``output_delay``.
    """

    callback_kind = "c"

    def __init__(self, engine, *args, lead_s=DEFAULT_LEAD_S, **kw):
        lead_s = float(lead_s)
        if not (MIN_LEAD_S <= lead_s <= MAX_LEAD_S):
            raise ValueError(f"the ring lead must be between {MIN_LEAD_S:g} and {MAX_LEAD_S:g} s, got {lead_s:g} s")
        self._rt = _rtmixer()
        super().__init__(engine, *args, **kw)
        b = self.blocksize
        self.lead = int(-(-round(lead_s * self.samplerate) // b) * b)  # whole blocks
        self.low_water = max(4 * b, self.lead // 2)
        self.dream_delay = self.output_delay
        self.output_delay = self.dream_delay + self.lead
        rt = self._rt
        n_in = _pow2(max(self.samplerate, 4 * self.lead, 16 * b))
        # The C rings' pages are written once here, so the callback never takes a first-touch fault.
        self.in_ring = rt.RingBuffer(4 * self.channels, buffer=rtsched.touched(4 * self.channels * n_in))
        self._in_buf = np.zeros((n_in, self.channels), np.float32)
        co = self.out_channels
        if co:
            n_out = _pow2(self.lead + 16 * b)
            self.out_ring = rt.RingBuffer(4 * co, buffer=rtsched.touched(4 * co * n_out))
            self._out_buf = np.zeros((n_out, co), np.float32)
            self._wet = np.zeros(n_out, np.float32)
        else:
            self.out_ring = None
        # The input's history (all channels) for the dry fallback, output_delay behind.
        self._hist = np.zeros((_pow2(self.output_delay + n_in + 2 * self.lead + 16 * b), self.channels), np.float32)
        self._hist_n = 0
        self._w_out = 0  # frames ever written to the output ring (the output clock)
        self._base_out = 0  # device output frames played before the current play action
        self.extra = dict(output_ring_empty=0, input_ring_full=0, dream_late_blocks=0, fallback_frames=0, min_output_fill=None)
        self._rec = self._play = None
        self._pending_stats = {}
        self._last_stats = 0.0
        self._pump_thread = None
        self._stop_pump = threading.Event()
        self._pump_error = None
        self._pump_tid = self._pump_rt_priority = None
        self._mem_locked = False
        self._rt_check = None
        #: What real-time scheduling and memory locking the audio path got (engine/io/rt.py).
        self.realtime = dict(audio_thread=None, audio_policy=None, audio_priority=None, audio_how="not checked yet",
                             pump_priority=None, memory_locked=False, memory=None, kernel_preemption=None, warnings=[])

    # -- streams ---------------------------------------------------------------

    def open(self):
        rt, sd = self._rt, self._sd
        kw = dict(samplerate=self.samplerate, blocksize=self.blocksize)
        try:
            if self.duplex:
                s = rt.MixerAndRecorder(device=(self.device, self.device), channels=(self.channels, self.out_channels), **kw)
                self._streams, self._in_stream, self._out_stream = [s], s, s
            else:
                self._in_stream = rt.Recorder(device=self.device, channels=self.channels, **kw)
                self._streams = [self._in_stream]
                self._out_stream = None
                if self.output_device is not None:
                    self._out_stream = rt.Mixer(device=self.output_device, channels=self.out_channels, **kw)
                    self._streams.append(self._out_stream)
        except sd.PortAudioError as e:
            self.close()
            raise DeviceError(f"could not open the audio stream ({e}): {capabilities(sd, self.device, 'input')}") from e
        return self

    def _start_play(self):
        """Pre-fill the lead (the fallback, or the dream where it exists) and hand the ring to C."""
        self._base_out = self._played()
        self._w_out = self._base_out
        self.out_ring.flush()
        self._fill(self._base_out, self._base_out + self.lead, force=True)
        self._play = self._out_stream.play_ringbuffer(self.out_ring)

    def _played(self):
        """Device output frames played so far (exact while the play action runs)."""
        if self._play is None:
            return self._w_out
        return self._base_out + int(self._play.done_frames)

    def start(self, switch_interval=None):
        """Start the stream(s) and the pump. The GIL switch interval is left alone: C needs no GIL."""
        if not self._streams:
            self.open()
        gc.collect()
        gc.freeze()  # fewer long collections to absorb (see DuplexRunner.start)
        self._gc_frozen = True
        # Locked before the stream starts: faulting in every mapped page (about 0.5 s
        # for 600 MB) is kernel work that, done while the stream ran, made jackd's own
        # driver miss deadlines in the hot-swap test (a kernel without preemption).
        why = rtsched.lock_memory()
        self._mem_locked = why is None
        self.realtime.update(memory_locked=self._mem_locked, memory=why or "locked (mlockall)", kernel_preemption=rtsched.kernel_preemption())
        if why:
            self._warn(f"memory {why}")
        # Both ring actions are queued before the stream starts, so the first
        # callback already records and plays: input frame i and output frame i
        # are the same callback's (duplex), and the clocks start together.
        self._rec = self._in_stream.record_ringbuffer(self.in_ring)
        if self._out_stream is not None:
            self._start_play()
        self._stop_pump.clear()
        self._pump_thread = threading.Thread(target=self._pump_loop, name="genredream-audio-pump", daemon=True)
        for s in self._streams:
            s.start()
        self._pump_thread.start()
        self._rt_check = threading.Thread(target=check_realtime, args=(self,), name="genredream-rt-check", daemon=True)
        self._rt_check.start()
        return self

    def _warn(self, msg):
        self.realtime["warnings"].append(msg)
        log.warning("audio: %s", msg)

    @property
    def active(self):
        return bool(self._streams) and all(s.active for s in self._streams) and self._pump_error is None

    def stop(self):
        """Stop the streams, then the pump; the input still in the C ring goes to the engine."""
        streams = list(self._streams)
        for s in streams:
            try:
                s.stop()
            except Exception:
                pass
        self._stop_pump.set()
        if self._pump_thread is not None:
            self._pump_thread.join(timeout=5)
            self._pump_thread = None
        if streams:
            self._move_input()
            for s in streams:
                self._collect_stats(s, final=True)
            if self.out_ring is not None and self._play is not None:
                self.counters[FRAMES_OUT] = self._played()
        for s in streams:
            try:
                s.close()
            except Exception:
                pass
        self._streams = []
        if self._rt_check is not None:
            self._rt_check.join(timeout=5)  # it may be locking memory right now
            self._rt_check = None
        if self._mem_locked:
            rtsched.unlock_memory()
            self._mem_locked = False
        if self._gc_frozen:
            gc.unfreeze()
            self._gc_frozen = False

    def close(self):
        for s in self._streams:
            try:
                s.close()
            except Exception:
                pass
        self._streams = []

    # -- the pump (a Python thread; the callback never waits for it) ----------------

    def _realtime_pump(self):
        """Ask the OS to run the pump before ordinary threads (Linux, when allowed).

        SCHED_FIFO at :data:`PUMP_RT_PRIORITY`, below every JACK client
        thread (engine/io/rt.py), reset on fork: on a busy machine a sleeping
        pump then wakes on time. It still takes the GIL like any Python thread
        (the lead absorbs that). Without the right (rtprio limit or
        CAP_SYS_NICE) the pump runs as an ordinary thread; stats say which.
        """
        self._pump_tid = threading.get_native_id()
        why = rtsched.realtime_this_thread(PUMP_RT_PRIORITY)
        self._pump_rt_priority = PUMP_RT_PRIORITY if why is None else None

    def _pump_loop(self):
        poll = max(0.002, min(0.005, self.blocksize / self.samplerate))
        self._realtime_pump()
        try:
            while not self._stop_pump.is_set():
                self._pump_once()
                self._stop_pump.wait(poll)
        except Exception as e:  # reported by .active and stats; the C callback keeps running
            self._pump_error = f"{type(e).__name__}: {e}"

    def _pump_once(self):
        now = time.monotonic()
        if now - self._last_stats >= _STATS_EVERY_S:
            self._last_stats = now
            for s in self._streams:
                self._collect_stats(s)
        self._move_input()
        if self._rec is not None and self._rec not in self._in_stream.actions:
            # rtmixer ends a record action whose ring is full: the pump was
            # stalled longer than the ring holds. Count it and record again.
            self.extra["input_ring_full"] += 1
            self.counters[XRUNS] += 1
            self._rec = self._in_stream.record_ringbuffer(self.in_ring)
        if self.out_ring is not None:
            self._top_up()

    def _move_input(self):
        n = self.in_ring.readinto(self._in_buf)
        if n:
            blk = self._in_buf[:n]
            self.engine.write(blk)
            h, m = self._hist, self._hist.shape[0]
            i = self._hist_n % m
            k = min(n, m - i)
            h[i : i + k] = blk[:k]
            if k < n:
                h[: n - k] = blk[k:]
            self._hist_n += n
            self.counters[FRAMES_IN] += n

    def _top_up(self):
        if self._play not in self._out_stream.actions:
            # The C ring ran empty: rtmixer ended the play action and the
            # device got silence. Count it, re-fill the lead, play again.
            self._base_out += int(self._play.done_frames)
            self.extra["output_ring_empty"] += 1
            self.counters[XRUNS] += 1
            self._play = None
            behind = self.counters[FRAMES_IN] + self.in_ring.read_available if self.duplex else self._base_out
            self._w_out = max(self._base_out, behind)
            self._start_play()
            return
        played = self._played()
        self.counters[FRAMES_OUT] = played
        fill = self._w_out - played
        mf = self.extra["min_output_fill"]
        if mf is None or fill < mf:
            self.extra["min_output_fill"] = fill
        target = played + self.lead
        if self.duplex:
            # The dry fallback for output frame p is input frame p - output_delay: write only
            # frames whose input the pump has moved. Blocks the callback played since the
            # input was moved (their input is still in the C ring) wait for the next pass;
            # written early, they played silence where the input belonged.
            target = min(target, self._hist_n + self.output_delay)
        self._fill(self._w_out, target, played=played)

    def _fill(self, p, target, force=False, played=None):
        """Write output frames [p, target) to the C ring: the dream, else (maybe) the fallback."""
        out, wet = self._out_buf, self._wet
        # Wait for the dream only where one is coming: a dreamer is attached
        # (or the caller gave its own output ring).
        dreaming = self.engine_out is not getattr(self.engine, "output", None) or getattr(self.engine, "transform", None) is not None
        while p < target:
            n = min(target - p, out.shape[0], self.out_ring.write_available)
            if n <= 0:
                break
            src = p - self.output_delay
            k = 0
            end = self.engine_out.total_written
            if src >= 0:
                k = max(0, min(n, end - src))
                if k:
                    start, k = self.engine_out.read_into(src, wet[:k])
                    if start != src:  # overwritten already (a stall longer than the output ring): fall back
                        k = 0
                    out[:k] = wet[:k, None]
            stop = False
            if k < n:
                # The dream has nothing for p+k: wait for it while the ring
                # holds more than the low-water mark, else play the fallback.
                # A dream more than a lead behind is not catching up in time
                # (e.g. a dreamer started mid-set, with a longer latency than
                # this stream's delay): fall back at once, keeping the ring full.
                wait = not force and dreaming and src + k >= 0 and end >= src + k - self.lead
                if wait:
                    limit = played + self.low_water
                    m = min(n, limit - p) - k
                    if m <= 0:
                        n, stop = k, True
                    else:
                        m = min(n - k, -(-m // self.blocksize) * self.blocksize)
                        n, stop = k + m, True
                if n > k:
                    self._fallback(src + k, out[k:n])
                    m = n - k
                    blocks = -(-m // self.blocksize)
                    self.counters[LATE_BLOCKS] += blocks
                    self.extra["fallback_frames"] += m
                    if dreaming and src + k >= 0 and self.engine_out.total_written > 0:
                        self.extra["dream_late_blocks"] += blocks
            if n:
                w = self.out_ring.write(out[:n])
                p += w
            if stop or n == 0:
                break
        self._w_out = p

    def _fallback(self, src, dst):
        """Dry input (aligned with the dream: ``output_delay`` behind) or silence, into ``dst``."""
        if not self._dry:
            dst.fill(0)
            return
        n = dst.shape[0]
        h, m = self._hist, self._hist.shape[0]
        lo = max(src, self._hist_n - m, 0)
        hi = min(src + n, self._hist_n)
        dst.fill(0)  # before the stream began, or not arrived (never in a duplex stream)
        if hi <= lo:
            return
        seg = np.empty((hi - lo, h.shape[1]), np.float32)
        i = lo % m
        k = min(hi - lo, m - i)
        seg[:k] = h[i : i + k]
        seg[k:] = h[: hi - lo - k]
        d = dst[lo - src : hi - src]
        if seg.shape[1] == d.shape[1]:
            d[:] = seg
        else:
            d[:] = seg.mean(axis=1, keepdims=True)

    # -- stats --------------------------------------------------------------------

    def _collect_stats(self, stream, final=False):
        """Add rtmixer's PortAudio status counts (fetched from the callback) to ours."""
        act = self._pending_stats.get(id(stream))
        if act is not None and act not in stream.actions:
            add_portaudio_stats(self.counters, act.stats)
            act = self._pending_stats[id(stream)] = None
        if final:
            self._pending_stats.pop(id(stream), None)
            if not stream.active:
                add_portaudio_stats(self.counters, stream.stats)
            return
        if act is None:
            self._pending_stats[id(stream)] = stream.fetch_and_reset_stats()

    def stats(self):
        st = super().stats()
        st.update(self.extra)
        st.update(callback="c", lead_frames=self.lead, lead_s=self.lead / self.samplerate, output_delay=self.output_delay, low_water_frames=self.low_water, pump_error=self._pump_error, pump_realtime=self._pump_rt_priority is not None)
        r = self.realtime
        st.update(audio_realtime=r["audio_priority"] is not None, realtime=dict(r, warnings=list(r["warnings"])))
        if st["min_output_fill"] is None:
            st["min_output_fill"] = self.lead
        return st

    def summary_lines(self):
        """The summary's lines: counts, rings, real-time scheduling, warnings (engine/io/cring_stats.py)."""
        return summary_lines(self)

