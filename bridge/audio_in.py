"""OSC audio in: ``/genredream/audio/in`` (blob), ``/audio/in/f`` (floats) and their format.

The receive thread only checks a datagram against the audio budget
(:meth:`AudioIn.admit`) and queues it; the audio worker (:meth:`AudioIn.loop`)
decodes it through the bridge's dispatch. Samples are repaired
(:mod:`genredream.engine.sanitize`) before anything else touches them, go through
the jitter buffer (:class:`genredream.bridge.jitter.JitterBuffer`), are resampled
to the engine's rate (soxr) and handed to :meth:`Engine.write`. One sender at a
time: another may take over once the first has been silent ``source_idle`` seconds.

Two things the audio out needs are kept here: the rate each address declared
for its own audio (:attr:`AudioIn.declared`: the rate of its blobs, or its
``/audio/in/format``), so dreamed audio goes back at the sender's rate; and
where each sender's stream sits on the engine's clock (:attr:`AudioIn.segments`),
so ``bi`` packets can say which of the sender's own frames they are.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import NamedTuple

import numpy as np

from genredream.bridge import protocol as P
from genredream.bridge.jitter import JitterBuffer
from genredream.bridge.protocol import A, ProtocolError, as_int
from genredream.engine.sanitize import repair_inplace

__all__ = ["AudioIn", "AUDIO_SPEED", "AUDIO_QUEUE", "AUDIO_PREFIX"]

AUDIO_PREFIX = A.AUDIO_IN.encode()
#: Datagrams (audio and bundles) that may wait for the audio worker: a burst as
#: large as the socket buffer held before the queue existed (2048 packets of
#: 512 floats are 4 MB, 22 s at 48 kHz); only a sustained flood fills it.
AUDIO_QUEUE = 2048
#: Audio is taken up to this many times real time (a sender catching up after a
#: stall, or a file streamed fast), with a burst of 5 s; beyond, a flood of audio
#: would only make the audio worker and the front end burn the CPU the receive
#: thread needs to answer control, so it is rejected at once as ``overloaded``.
AUDIO_SPEED = 4.0
_AUDIO_BURST_S = 5.0  # seconds of audio a sender may send at once (catching up after a stall)
_BLOB_HEAD = P.encode(A.AUDIO_IN, 0, 48000, 1, b"\0\0\0\0")[:32]  # address and ",iiib" type tags
#: Addresses whose declared rate is remembered (the least recently heard are forgotten first).
_DECLARED = 256


class Segment(NamedTuple):
    """A stretch of one sender's stream at one rate, placed on the engine's clock.

    The engine's input sample ``engine_start`` is the sender's frame ``sender_start``
    (counted from the first frame of its stream's sequence 0), and from there on
    engine sample ``engine_start + j`` is the sender's time ``sender_start + j * rate / engine_rate``.
    """

    addr: tuple
    engine_start: int
    sender_start: int
    rate: int


class AudioIn:
    """The audio half of an :class:`genredream.bridge.server.OscBridge`: queue, budget, jitter, resampling."""

    def __init__(self, bridge, jitter_depth=4, jitter_wait=0.03, source_idle=1.0, audio_queue=AUDIO_QUEUE,
                 audio_speed=AUDIO_SPEED):
        self.bridge = bridge
        self.engine = bridge.engine
        self.counters = bridge.counters
        self.queue = queue.Queue(maxsize=int(audio_queue))
        self.audio_speed = None if audio_speed is None else float(audio_speed)
        self._ab_tokens = _AUDIO_BURST_S  # audio budget in seconds (see admit)
        self._ab_time = time.monotonic()
        self.jitter = JitterBuffer(depth=jitter_depth, max_wait=jitter_wait)
        self._src = None
        self._src_time = 0.0
        self.source_idle = float(source_idle)
        self._rs = None
        self._last_fmt = None
        self.f_format = (self.engine.sample_rate, 1)  # rate, channels of /audio/in/f
        self.declared = collections.OrderedDict()  # (host, port) -> Hz of its own audio in
        self._declared_lock = threading.Lock()
        self.segments = ()  # the newest few Segment, a tuple replaced whole (read by the audio-out thread)
        self._stream_frames = None  # the current stream's frames so far, in the sender's count (None: no stream)

    def handlers(self):
        return {A.AUDIO_IN: self.on_audio_in, A.AUDIO_IN_F: self.on_audio_in_f, A.AUDIO_IN_FORMAT: self.on_audio_format}

    # -- receive thread --------------------------------------------------------------

    def _seconds(self, data, addr=None):
        """Seconds of audio a queued datagram holds, read from its header without decoding it.

        A blob's header also declares its sender's rate, at once: a subscribe that follows
        the first packet finds it, though the packet still waits in the audio queue."""
        if data.startswith(_BLOB_HEAD) and len(data) >= 48:
            rate = int.from_bytes(data[36:40], "big", signed=True)
            ch = int.from_bytes(data[40:44], "big", signed=True)
            if P.MIN_RATE <= rate <= P.MAX_RATE and 1 <= ch <= P.MAX_CHANNELS:
                if addr is not None and self.declared.get(tuple(addr[:2])) != rate:
                    self.declare(addr, rate)
                return (len(data) - 48) / (4.0 * ch * rate)
        rate, ch = self.f_format  # /audio/in/f (and bundles, format messages): floats at the /f format
        return len(data) / (4.0 * ch * rate)

    def _budget(self, data, addr=None):
        """A token bucket in seconds of audio (receive thread): True when this datagram fits."""
        need = self._seconds(data, addr)
        if self.audio_speed is None:
            return True
        now = time.monotonic()
        self._ab_tokens = min(_AUDIO_BURST_S, self._ab_tokens + (now - self._ab_time) * self.audio_speed)
        self._ab_time = now
        if self._ab_tokens < need:
            return False
        self._ab_tokens -= need
        return True

    def admit(self, data, addr):
        """Queue an audio datagram or bundle for the worker; False when it is over budget or the queue is full."""
        try:
            if not self._budget(data, addr):
                raise queue.Full
            self.queue.put_nowait((data, addr))
        except queue.Full:
            return False
        return True

    # -- the audio worker ------------------------------------------------------------

    def loop(self):
        q = self.queue
        bridge = self.bridge
        while bridge._running:
            try:
                data, addr = q.get(timeout=0.005)
            except queue.Empty:
                self.release_late()
                continue
            bridge.handle_datagram(data, addr)
            if self.jitter.waiting:
                self.release_late()

    def reset(self):
        """After a failure of the audio worker: a new stream (the engine's clock is untouched)."""
        self.jitter.reset()
        self._rs = None
        self._last_fmt = None
        self._stream_frames = None

    def declare(self, addr, rate):
        """Remember ``rate`` as the rate of ``addr``'s own audio (bounded: the oldest are forgotten)."""
        d = self.declared
        addr = tuple(addr[:2])
        with self._declared_lock:  # the receive thread and the audio worker both declare
            d[addr] = rate
            d.move_to_end(addr)
            while len(d) > _DECLARED:
                d.popitem(last=False)

    def declared_rate(self, *addrs):
        """The rate the first of ``addrs`` that declared one declared, or None."""
        for a in addrs:
            r = self.declared.get(tuple(a[:2])) if a else None
            if r:
                return r
        return None

    # -- handlers (called by the bridge's dispatch) -------------------------------------

    def on_audio_in(self, address, tags, args, addr):
        if len(args) != 4 or tags[3] != "b":
            raise ProtocolError("bad_args", f"{address} takes seq rate channels blob (,iiib), got ,{tags}")
        seq = as_int(args[0], "seq")
        rate = as_int(args[1], "rate")
        ch = as_int(args[2], "channels")
        blob = args[3]
        _check_format(rate, ch)
        if len(blob) % (4 * ch) or not blob:
            raise ProtocolError("bad_args", f"{address}: blob of {len(blob)} bytes is not whole float32 frames of {ch} channels")
        frames = len(blob) // (4 * ch)
        if frames > P.MAX_FRAMES:
            raise ProtocolError("bad_args", f"{address}: {frames} frames per packet, at most {P.MAX_FRAMES}")
        self._packet(addr, seq, rate, ch, self._repaired(np.frombuffer(blob, ">f4").astype(np.float32)))
        if self.declared.get(tuple(addr[:2])) != rate:
            self.declare(addr, rate)

    def on_audio_in_f(self, address, tags, args, addr):
        if len(args) < 2 or any(t not in "if" for t in tags):
            raise ProtocolError("bad_args", f"{address} takes seq then samples as floats (,ff...), got ,{tags[:16]}")
        seq = as_int(args[0], "seq")
        rate, ch = self.f_format
        n = len(args) - 1
        if n % ch:
            raise ProtocolError("bad_args", f"{address}: {n} samples are not whole frames of {ch} channels")
        if n // ch > P.MAX_FRAMES:
            raise ProtocolError("bad_args", f"{address}: {n // ch} frames per packet, at most {P.MAX_FRAMES}")
        # float64 -> float32 may overflow to Inf (a 1e300 double): the repair below zeroes it.
        with np.errstate(over="ignore"):
            samples = np.array(args[1:], dtype=np.float64).astype(np.float32)
        self._packet(addr, seq, rate, ch, self._repaired(samples))
        if self.declared.get(tuple(addr[:2])) != rate:
            self.declare(addr, rate)

    def on_audio_format(self, address, tags, args, addr):
        if len(args) not in (1, 2):
            raise ProtocolError("bad_args", f"{address} takes rate [channels]")
        rate = as_int(args[0], "rate")
        ch = as_int(args[1], "channels") if len(args) > 1 else 1
        _check_format(rate, ch)
        self.f_format = (rate, ch)
        self.declare(addr, rate)
        self.bridge.replies.ack(address, rate, ch)

    # -- from packets to the engine ------------------------------------------------------

    def _repaired(self, samples):
        """NaN/Inf zeroed, beyond +-32 clipped, counted on the engine: before the channel
        average and the resampler, so neither can overflow (engine/sanitize.py)."""
        counts = getattr(self.engine, "source_repairs", None)
        if counts is None:
            counts = self._repair_counts = getattr(self, "_repair_counts", None) or np.zeros(3, np.int64)
        repair_inplace(samples, counts)
        return samples

    def _packet(self, addr, seq, rate, ch, samples):
        if not self.bridge.audio_in:
            raise ProtocolError("unavailable", "OSC audio in is off: the engine is fed by a device or a file")
        now = time.monotonic()
        if addr != self._src:
            if self._src is not None and now - self._src_time < self.source_idle:
                raise ProtocolError("busy", f"audio is already coming from {self._src[0]}:{self._src[1]}; one sender at a time")
            if self._src is not None:
                self._apply(self.jitter.flush())
                self._end_stream()
                self._stream_frames = None  # a new sender's count is its own
                self.jitter.reset()
                self.counters["audio_sources"] += 1
            self._src = addr
        self._src_time = now
        self.counters["audio_packets"] += 1
        self._apply(self.jitter.push(seq, (rate, ch, samples, addr), now))

    def release_late(self):
        """Hand on what the jitter buffer has waited for long enough (a gap is released on time)."""
        if self.jitter.waiting:
            self._apply(self.jitter.poll(time.monotonic()))

    def _apply(self, events):
        for kind, seq, x in events:
            if kind == "data":
                rate, ch, samples, addr = x
                frames = samples.size // ch
                if self._stream_frames is None:
                    # A stream's count starts at its sequence 0: packets before the first that
                    # arrived count with its length (a sender that joins mid-stream keeps its count).
                    self._stream_frames = seq * frames
                self._last_fmt = (rate, ch, frames, addr)
                self._feed(rate, ch, samples, addr)
                self._stream_frames += frames
            elif kind == "gap":
                if self._last_fmt is None:  # the first packets of a stream lost: nothing to size them by
                    continue
                rate, ch, frames, addr = self._last_fmt
                self._feed(rate, ch, np.zeros(frames * ch * x, np.float32), addr)
                self._stream_frames += frames * x
                self.counters["gap_samples"] += frames * x
            else:  # restart: the new stream's count starts at its own sequence numbers
                self._end_stream()
                self._stream_frames = None

    def _feed(self, rate, ch, samples, addr):
        from genredream.engine.channels import FrameResampler
        from genredream.engine.resample import StreamingResampler

        if self._rs is None or self._rs.in_rate != rate or getattr(self._rs, "channels", 1) != ch:
            if self._rs is not None:
                self._write(self._rs.flush())
                self.counters["format_changes"] += 1
            # The engine keeps the sender's channels, so dreamed audio goes back with them (engine/channels.py).
            set_channels = getattr(self.engine, "set_channels", None)
            if set_channels is not None:
                set_channels(ch)
            self._rs = StreamingResampler(rate, self.engine.sample_rate) if ch == 1 else FrameResampler(rate, self.engine.sample_rate, ch)
            # From here the engine's clock is this sender's stream at this rate (soxr keeps them aligned).
            seg = Segment(tuple(addr[:2]), int(self.engine.ring.total_written), int(self._stream_frames), int(rate))
            self.segments = (self.segments + (seg,))[-8:]
        self._write(self._rs.process(samples if ch == 1 else samples.reshape(-1, ch)))
        self.counters["frames_in"] += samples.size // ch

    def _end_stream(self):
        if self._rs is not None:
            self._write(self._rs.flush())
        self._rs = None
        self._last_fmt = None

    def _write(self, y):
        if y.shape[0]:
            self.engine.write(y)


def _check_format(rate, ch):
    if not (P.MIN_RATE <= rate <= P.MAX_RATE):
        raise ProtocolError("bad_args", f"sample rate {rate} Hz is outside {P.MIN_RATE}..{P.MAX_RATE}")
    if not (1 <= ch <= P.MAX_CHANNELS):
        raise ProtocolError("bad_args", f"channel count {ch} is outside 1..{P.MAX_CHANNELS}")
