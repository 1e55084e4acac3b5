"""The Python audio callback: a sounddevice stream feeding the engine, and its output.

The audio callback (:meth:`DuplexRunner._duplex_callback`) is the one piece
of genredream that runs on the audio driver's clock (docs/architecture.md,
"Threading rules"). What it does, per block of ``frames``:

1. ``engine.write(indata)``: the input block is copied (averaged to mono)
   into the engine's input ring and timestamped;
2. ``outdata`` is filled from the output ring :attr:`DuplexRunner.engine_out`
   (float32 mono, written by a dreamer) at absolute index
   ``frames_out - output_delay``; with more than one input channel, from
   the engine's frame ring ``engine.output_ch`` instead (the input's
   channels, each with the dream's change: engine/channels.py), channel for
   channel (the mean for a mono output, cycled for more outputs than inputs). Output sample ``k`` is thus
   ``engine_out[k - output_delay]``: the output clock is the input clock.
   Where that ring has nothing yet (no dreamer, or before its first hop),
   the block is *dry* (the input copied through; averaged to mono and fanned
   out when the input and output channel counts differ) or *silence*,
   as ``when_late`` says, and the block is counted as late;
3. the status flags (input overflow, output underflow, ...) are counted;
4. its own duration (``time.perf_counter`` at start and end) goes into a
   preallocated ring of durations.

What may *not* happen in the callback: allocating arrays (every buffer is
preallocated; the work is done by Numba kernels or in place), taking a lock,
printing, logging, or calling torch. The front end and the models run on the
engine's worker threads (:meth:`genredream.engine.runtime.Engine.start`). There is no
resampling here: the engine runs at the device's rate and resamples per
model, off the callback.

The C callback (engine/io/cring.py, the default) subclasses this runner; the
Python callback stays to measure against (BENCHMARKS.md) and for the tests
that check the callback's own contract. Device lookup: engine/io/devices.py.
"""

from __future__ import annotations

import gc
import sys
import time

import numpy as np

from genredream.engine.io.callback_kernels import (
    CALLBACKS,
    C_IN_OVER,
    C_IN_UNDER,
    C_OUT_OVER,
    C_OUT_UNDER,
    C_PRIMING,
    DURATIONS,
    FRAMES_IN,
    FRAMES_OUT,
    LATE_BLOCKS,
    N_COUNTERS,
    N_DURATIONS,
    OVERSIZED,
    XRUNS,
    account,
    record,
    render_duplex,
    render_duplex_frames,
    render_mono,
    render_out_frames,
    status_flags,
)
from genredream.engine.io.devices import DeviceError, capabilities, check_settings, import_sounddevice, list_devices, resolve_device
from genredream.engine.ringbuffer import RingBuffer

__all__ = ["DuplexRunner", "DeviceError"]


# -- the runner ---------------------------------------------------------------------


class DuplexRunner:
    """A sounddevice stream feeding an :class:`genredream.engine.runtime.Engine`, and its output.

    Parameters
    ----------
    engine : engine.runtime.Engine
        Its ``sample_rate`` must be the device rate (the engine resamples per
        model, off the callback).
    device : None, int or str
        Input device (see :func:`resolve_device`); None for the default.
    output_device : None, int or str
        Output device. None: the input device if it has outputs (one duplex
        stream), else no output. A different device opens a separate
        OutputStream whose dry signal is the input ring, ``2 * blocksize``
        samples behind (two devices run on two clocks).
    channels : int or None
        Input channels (averaged to mono by the ring). None: up to 2.
        Output channels are up to 2 of the output device's.
    samplerate : int or None
        Hz; None for the device's default. Must equal ``engine.sample_rate``.
    blocksize : int
        Frames per callback (fixed, so every buffer can be preallocated).
    when_late : {"dry", "silence"}
        What the output plays where :attr:`engine_out` has no samples yet.
    output_delay : int
        Output sample ``k`` plays ``engine_out[k - output_delay]``: the
        head start a dreamer gets.
    engine_out : RingBuffer, optional
        The output ring (float32 mono). Default: ``engine.output`` (the
        engine's dreamed stream, indexed by input sample) if the engine has
        one, else an empty ring of 10 s. A dreamer writes behind the input
        clock, so dreamed audio is heard only with an ``output_delay`` of at
        least its own latency; until then every block is the fallback.

    Attributes
    ----------
    counters : np.ndarray, int64
        Updated in place by the callback; read them with :attr:`xruns`,
        :meth:`stats`.
    durations : np.ndarray, float64
        Ring of callback durations in seconds (the newest
        ``min(n, len)`` are valid; see :meth:`callback_durations`). With
        separate input and output streams, both callbacks' durations and
        counts go here.
    """

    def __init__(self, engine, device=None, output_device=None, channels=None, samplerate=None, blocksize=256, when_late="dry", output_delay=0, engine_out=None):
        if when_late not in ("dry", "silence"):
            raise ValueError(f"when_late must be 'dry' or 'silence', got {when_late!r}")
        if int(blocksize) != blocksize or blocksize < 1:
            raise ValueError(f"blocksize must be a positive integer of frames, got {blocksize!r}")
        sd = self._sd = import_sounddevice()
        devices = list_devices()
        self.device = resolve_device(device, "input", devices)
        info = sd.query_devices(self.device)
        self.samplerate = int(samplerate or round(info["default_samplerate"]))
        if self.samplerate != engine.sample_rate:
            raise ValueError(f"the engine runs at {engine.sample_rate} Hz but the device stream at {self.samplerate} Hz; build the engine at the device rate")
        self.channels = int(channels) if channels is not None else min(2, info["max_input_channels"])
        check_settings(sd, self.device, "input", self.channels, self.samplerate)
        if output_device is None:
            self.output_device = self.device if info["max_output_channels"] > 0 else None
        else:
            self.output_device = resolve_device(output_device, "output", devices)
        self.duplex = self.output_device == self.device
        if self.output_device is not None:
            out_info = sd.query_devices(self.output_device)
            self.out_channels = min(2, out_info["max_output_channels"])
            check_settings(sd, self.output_device, "output", self.out_channels, self.samplerate)
        else:
            self.out_channels = 0
        self.engine = engine
        self.blocksize = int(blocksize)
        self.when_late = when_late
        self._dry = when_late == "dry"
        self.output_delay = int(output_delay)
        if engine_out is None:
            # The engine's dreamed stream (output[j] = input sample j dreamed), when it has one.
            engine_out = getattr(engine, "output", None)
        self.engine_out = engine_out if engine_out is not None else RingBuffer(10 * self.samplerate)
        self.dry_lag = 2 * self.blocksize
        # Stereo in, stereo out (engine/channels.py): the engine keeps the
        # input's channels and a dreamer gives them back in engine.output_ch.
        if self.channels > 1 and getattr(engine, "set_channels", None) is not None and engine_out is getattr(engine, "output", None):
            engine.set_channels(self.channels)
        self._out_ch = getattr(engine, "output_ch", None) if engine_out is getattr(engine, "output", None) else None
        self._in_ch = getattr(engine, "ring_ch", None) if self._out_ch is not None else None
        n_ch = self._out_ch.channels if self._out_ch is not None else 1
        self._frames_buf = np.zeros((self.blocksize, n_ch), dtype=np.float32)
        self._dry_frames = np.zeros((self.blocksize, n_ch), dtype=np.float32)
        # Everything the callback touches, allocated once.
        self.counters = np.zeros(N_COUNTERS, dtype=np.int64)
        self.durations = np.zeros(DURATIONS, dtype=np.float64)
        self._mono = np.zeros(self.blocksize, dtype=np.float32)
        self._dry_buf = np.zeros(self.blocksize, dtype=np.float32)
        self._streams = []
        self._old_switch = None
        self._gc_frozen = False
        self._warm_up()

    # -- the callbacks (audio thread) ------------------------------------------

    def _duplex_callback(self, indata, outdata, frames, time_info, status):
        t0 = time.perf_counter()
        self.engine.write(indata)
        if frames > self.blocksize:  # never with a fixed blocksize; guard, not a path
            outdata.fill(0)
            self.counters[OVERSIZED] += 1
            account(self.counters, status_flags(status), frames, frames, True)
            return
        n = 0
        pos = self.counters[FRAMES_OUT] - self.output_delay
        if self._out_ch is not None and pos >= 0:
            n = self._out_ch.read_into(pos, self._frames_buf[:frames])
            if n:  # the input's channels, dreamed
                render_duplex_frames(indata, outdata, self._frames_buf, n, self._dry)
                account(self.counters, status_flags(status), frames, frames, n < frames)
                record(self.durations, self.counters, t0, time.perf_counter())
                return
        if pos >= 0:
            pos, n = self.engine_out.read_into(pos, self._mono[:frames])
        render_duplex(indata, outdata, self._mono, n, self._dry)
        account(self.counters, status_flags(status), frames, frames, n < frames)
        record(self.durations, self.counters, t0, time.perf_counter())

    def _input_callback(self, indata, frames, time_info, status):
        t0 = time.perf_counter()
        self.engine.write(indata)
        account(self.counters, status_flags(status), frames, 0, False)
        record(self.durations, self.counters, t0, time.perf_counter())

    def _output_callback(self, outdata, frames, time_info, status):
        t0 = time.perf_counter()
        if frames > self.blocksize:
            outdata.fill(0)
            self.counters[OVERSIZED] += 1
            account(self.counters, status_flags(status), 0, frames, True)
            return
        n = 0
        pos = self.counters[FRAMES_OUT] - self.output_delay
        if self._out_ch is not None and pos >= 0:
            n = self._out_ch.read_into(pos, self._frames_buf[:frames])
            if n:  # the input's channels, dreamed; dry from the input's frame ring
                n_dry = 0
                dpos = self.counters[FRAMES_OUT] - self.dry_lag
                if self._dry and n < frames and dpos >= 0:
                    n_dry = self._in_ch.read_into(dpos, self._dry_frames[:frames])
                render_out_frames(outdata, self._frames_buf, n, self._dry_frames, n_dry)
                account(self.counters, status_flags(status), 0, frames, n < frames)
                record(self.durations, self.counters, t0, time.perf_counter())
                return
        if pos >= 0:
            pos, n = self.engine_out.read_into(pos, self._mono[:frames])
        n_dry = 0
        if self._dry and n < frames:
            dpos = self.counters[FRAMES_OUT] - self.dry_lag
            if dpos >= 0:
                dpos, n_dry = self.engine.ring.read_into(dpos, self._dry_buf[:frames])
        render_mono(outdata, self._mono, n, self._dry_buf, n_dry)
        account(self.counters, status_flags(status), 0, frames, n < frames)
        record(self.durations, self.counters, t0, time.perf_counter())

    # -- control (main thread) ---------------------------------------------------

    def _warm_up(self):
        """Compile every kernel the callback calls, for the exact array types it sees.

        A Numba kernel compiles on its first call with a new argument type;
        that must never happen on the audio thread. sounddevice hands the
        callback C-contiguous float32 [frames, channels] arrays (writable;
        the read-only variant is compiled too, in case). The engine's own
        ring is not touched: its clock must count device samples only.
        """
        scratch = RingBuffer(4 * self.blocksize)
        for ch in {self.channels, max(1, self.out_channels)}:
            a = np.zeros((self.blocksize, ch), np.float32)
            ro = a.copy()
            ro.flags.writeable = False
            scratch.write(a)
            scratch.write(ro)
        out = np.zeros((self.blocksize, max(1, self.out_channels)), np.float32)
        for ind in (np.zeros((self.blocksize, self.channels), np.float32),):
            ro = ind.copy()
            ro.flags.writeable = False
            for x in (ind, ro):
                render_duplex(x, out, self._mono, 0, True)
                render_duplex(x, out, self._mono, 0, False)
        render_mono(out, self._mono, 0, self._dry_buf, 0)
        scratch.read_into(0, self._mono)
        for ind in (np.zeros((self.blocksize, self.channels), np.float32),):
            ro = ind.copy()
            ro.flags.writeable = False
            for x in (ind, ro):
                for n in (0, self.blocksize // 2, self.blocksize):
                    render_duplex_frames(x, out, self._frames_buf, n, True)
                    render_duplex_frames(x, out, self._frames_buf, n, False)
        for n in (0, self.blocksize // 2, self.blocksize):
            render_out_frames(out, self._frames_buf, n, self._dry_frames, self.blocksize)
        if self._out_ch is not None:
            from genredream.engine.channels import FrameRing

            fr = FrameRing(4 * self.blocksize, self._out_ch.channels)
            a = np.zeros((self.blocksize, self.channels), np.float32)
            ro = a.copy()
            ro.flags.writeable = False
            fr.write(a)
            fr.write(ro)  # engine.write's frame ring, for both array types the callback may see
            fr.read_into(0, self._frames_buf)
        c = np.zeros_like(self.counters)
        account(c, 0, 1, 1, False)
        record(np.zeros(4), c, 0.0, 1.0)
        # The engine's write path, minus its clock: the ring kernels above, and
        # the arrival log is plain array assignment.

    def open(self):
        """Open the stream(s) (not started). Raises DeviceError with the device's capabilities."""
        sd = self._sd
        kw = dict(samplerate=self.samplerate, blocksize=self.blocksize, dtype="float32")
        try:
            if self.duplex:
                self._streams = [sd.Stream(device=(self.device, self.device), channels=(self.channels, self.out_channels), callback=self._duplex_callback, **kw)]
            else:
                self._streams = [sd.InputStream(device=self.device, channels=self.channels, callback=self._input_callback, **kw)]
                if self.output_device is not None:
                    self._streams.append(sd.OutputStream(device=self.output_device, channels=self.out_channels, callback=self._output_callback, **kw))
        except sd.PortAudioError as e:
            self.close()
            raise DeviceError(f"could not open the audio stream ({e}): {capabilities(sd, self.device, 'input')}") from e
        return self

    def start(self, switch_interval=0.0005):
        """Start the stream(s) (opening them if needed).

        ``switch_interval`` (seconds) lowers Python's GIL switch interval
        while the stream runs (restored by :meth:`stop`): the callback needs
        the GIL, and the default 5 ms a busy worker thread may keep it is
        longer than a 64-frame block.

        It also freezes the garbage collector's view of the heap: a full
        collection walks every object (torch and the models make about
        200 000) with the GIL held, measured at 107 ms here, about 20 blocks of
        256 frames, and came at random moments as xruns while our callback
        itself took 0.15 ms. After ``gc.freeze()`` the objects alive at start
        are never scanned again; what the engine allocates per hop is young
        and cheap to collect. :meth:`stop` unfreezes.
        """
        if not self._streams:
            self.open()
        if switch_interval:
            self._old_switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._old_switch, switch_interval))
        gc.collect()
        gc.freeze()
        self._gc_frozen = True
        for s in self._streams:
            s.start()
        return self

    @property
    def active(self):
        return bool(self._streams) and all(s.active for s in self._streams)

    def stop(self):
        """Stop and close the stream(s); counters and durations stay readable."""
        self.close()
        if self._gc_frozen:
            gc.unfreeze()
            self._gc_frozen = False
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None

    def close(self):
        for s in self._streams:
            try:
                s.stop()
            finally:
                s.close()
        self._streams = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- reporting ---------------------------------------------------------------------

    @property
    def xruns(self):
        """Callbacks whose status reported an input overflow/underflow or output underflow/overflow."""
        return int(self.counters[XRUNS])

    @property
    def frames_in(self):
        return int(self.counters[FRAMES_IN])

    @property
    def frames_out(self):
        return int(self.counters[FRAMES_OUT])

    def callback_durations(self):
        """The recorded callback durations (seconds), oldest first (a copy)."""
        n = int(self.counters[N_DURATIONS])
        if n <= self.durations.size:
            return self.durations[:n].copy()
        i = n % self.durations.size
        return np.concatenate([self.durations[i:], self.durations[:i]])

    def stats(self):
        """Counters and callback duration percentiles (also as fractions of the block period)."""
        c = self.counters
        period = self.blocksize / self.samplerate
        d = self.callback_durations()
        pct = {}
        for q in (50, 99, 100):
            v = float(np.percentile(d, q)) if d.size else float("nan")
            key = "max" if q == 100 else f"p{q}"
            pct[f"callback_{key}_s"] = v
            pct[f"callback_{key}_fraction"] = v / period
        return {
            "device": self.device,
            "output_device": self.output_device,
            "samplerate": self.samplerate,
            "blocksize": self.blocksize,
            "block_period_s": period,
            "channels_in": self.channels,
            "channels_out": self.out_channels,
            "callbacks": int(c[CALLBACKS]),
            "frames_in": int(c[FRAMES_IN]),
            "frames_out": int(c[FRAMES_OUT]),
            "xruns": int(c[XRUNS]),
            "input_underflow": int(c[C_IN_UNDER]),
            "input_overflow": int(c[C_IN_OVER]),
            "output_underflow": int(c[C_OUT_UNDER]),
            "output_overflow": int(c[C_OUT_OVER]),
            "priming_output": int(c[C_PRIMING]),
            "late_blocks": int(c[LATE_BLOCKS]),
            "oversized_blocks": int(c[OVERSIZED]),
            "durations_recorded": int(d.size),
            **pct,
        }

    def summary_lines(self):
        st = self.stats()
        flags = ", ".join(f"{k.replace('_', ' ')} {st[k]}" for k in ("input_overflow", "input_underflow", "output_underflow", "output_overflow") if st[k])
        return [
            f"audio: {st['frames_in']} samples in, {st['frames_out']} out, {st['callbacks']} callbacks of {st['blocksize']} frames at {st['samplerate']} Hz; "
            f"xruns {st['xruns']}" + (f" ({flags})" if flags else "") + f"; blocks without dreamed audio ({self.when_late}) {st['late_blocks']}",
            f"callback: p50 {st['callback_p50_s'] * 1e6:.0f} us ({st['callback_p50_fraction']:.1%} of the {st['block_period_s'] * 1e3:.2f} ms block), "
            f"p99 {st['callback_p99_s'] * 1e6:.0f} us ({st['callback_p99_fraction']:.1%}), max {st['callback_max_s'] * 1e6:.0f} us",
        ]
