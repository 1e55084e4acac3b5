"""The OSC bridge: a UDP server feeding an :class:`genredream.engine.runtime.Engine`.

Threads (none of them is the engine's audio path):

* **receive** (:meth:`OscBridge._recv_loop`): one thread owns the socket and
  reads with ``recvfrom(65536)``, so a datagram larger than
  :data:`genredream.bridge.protocol.MAX_DATAGRAM` is seen whole and rejected, never
  silently truncated. It does as little as possible so that control always
  gets through, even on a flooded socket: a datagram whose address starts
  with ``/genredream/audio/in``, and every bundle, is put on a bounded queue
  for the audio worker (when that queue is full the datagram is rejected as
  ``overloaded``); every other datagram (control: status, ping, subscribe,
  dream parameters...) is scanned, decoded and answered here at once.
* **audio** (:meth:`OscBridge._audio_loop`): each queued datagram is scanned
  strictly, then parsed with python-osc (:func:`genredream.bridge.protocol.decode`);
  bundles are unpacked at once, whatever their time tag (never a sleep).
  Audio samples are repaired (:mod:`genredream.engine.sanitize`: NaN/Inf zeroed, beyond
  +-32 clipped, counted) before anything else touches them, go through the
  jitter buffer (:class:`genredream.bridge.jitter.JitterBuffer`), are resampled to the
  engine's rate (soxr; mono: :class:`genredream.engine.resample.StreamingResampler`,
  more channels: :class:`genredream.engine.channels.FrameResampler`, and the engine
  keeps them, :meth:`Engine.set_channels`) and handed to :meth:`Engine.write` (5 ms queue timeout, so a gap in the
  stream is released on time even when the sender pauses).
* **control worker**: model load/unload/list and hop changes (loading
  validates a model: seconds), then their ack or error.
* **audio out**: polls the dreamer's output ring (``engine.output``, and
  ``engine.output_ch`` when the input has channels) and sends
  ``/genredream/audio/out`` (blob, every channel), ``/audio/out/f`` (floats,
  mono: the channels' mean, for patches that read one signal) or
  ``/audio/out/fn`` (floats, every channel) to each subscriber that asked for audio.
* scores are sent from the engine's inference worker (a sink): one
  ``sendto`` per message and subscriber, no queue in between.

Every thread runs under the engine's supervisor (:mod:`genredream.engine.supervise`):
a failure is logged with its traceback, counted (``worker_errors``), sent to
the subscribers as ``/genredream/error internal ...`` and the thread is
restarted; a thread failing again and again is disabled
(``/genredream/error worker_disabled ...``) and shown in status.

Every datagram is counted once, as ``accepted`` or ``rejected`` (with a
``rejected_<code>`` counter for the reason), so ``packets == accepted +
rejected`` at every quiet moment. Errors are answered with
``/genredream/error code message`` to the subscribers, at most
``error_rate`` per second (the rest are counted as ``errors_suppressed``: a
flood of garbage must not become a flood of replies).

Subscribers are ``host port`` pairs. A subscriber host must be the sender's
own address, loopback, or a host in ``allow``: the server does not send its
replies to third parties on a stranger's request.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from genredream.bridge import protocol as P
from genredream.bridge.jitter import JitterBuffer
from genredream.bridge.protocol import A, ProtocolError, as_float, as_int
from genredream.engine.sanitize import repair_inplace
from genredream.engine.supervise import Supervisor

__all__ = ["OscBridge", "Subscriber", "DREAM_PARAMS"]

#: OSC address -> keyword of ``engine.transform.set_params`` (engine/dream/stream.py) and the argument type.
#: A keyword the dreamer does not list in ``engine.dream.PARAMS`` is answered ``unsupported``
#: (today: the dream latency, fixed when the dreamer starts by ``--dream-latency``).
DREAM_PARAMS = {
    A.DREAM: ("enabled", "bool"),
    A.DREAM_LAYER: ("layer", "str_or_int"),
    A.DREAM_TARGET: ("target", "str_or_none"),
    A.DREAM_AWAY: ("away", "bool"),
    A.DREAM_STEPS: ("steps", "int"),
    A.DREAM_STEP_SIZE: ("step_size", "float"),
    A.DREAM_MIX: ("mix", "float"),
    A.DREAM_LATENCY: ("latency_ms", "float"),
    A.DREAM_DEPTH: ("depth", "float"),
}

_AUDIO_FORMATS = {"none": "none", "": "none", "0": "none", "b": "b", "blob": "b", "f": "f", "floats": "f", "float": "f", "fn": "fn"}
_NTP_EPOCH = 2208988800  # seconds from 1900 to 1970
_MAX_SUBSCRIBERS = 32
_AUDIO_PREFIX = A.AUDIO_IN.encode()
#: Datagrams (audio and bundles) that may wait for the audio worker: a burst as
#: large as the socket buffer held before the queue existed (2048 packets of
#: 512 floats are 4 MB, 22 s at 48 kHz); only a sustained flood fills it.
_AUDIO_QUEUE = 2048
#: Audio is taken up to this many times real time (a sender catching up after a
#: stall, or a file streamed fast), with a burst of 5 s; beyond, a flood of audio
#: would only make the audio worker and the front end burn the CPU the receive
#: thread needs to answer control, so it is rejected at once as ``overloaded``.
AUDIO_SPEED = 4.0
_AUDIO_BURST_S = 5.0  # seconds of audio a sender may send at once (catching up after a stall)
_BLOB_HEAD = P.encode(A.AUDIO_IN, 0, 48000, 1, b"\0\0\0\0")[:32]  # address and ",iiib" type tags


@dataclass(frozen=True)
class Subscriber:
    host: str
    port: int
    audio: str = "none"  # "none", "b" (blob, every channel), "f" (floats, mono) or "fn" (floats, every channel)

    @property
    def addr(self):
        return (self.host, self.port)


def _ipv4(host):
    """An IPv4 literal (``localhost`` allowed), without DNS: the receive thread must not block."""
    if host in ("localhost", ""):
        return "127.0.0.1"
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        raise ProtocolError("bad_args", f"host must be an IPv4 address such as 127.0.0.1, got {host!r}") from None


class OscBridge:
    """OSC in and out for an engine.

    Parameters
    ----------
    engine : engine.runtime.Engine
        Started (or run) by the caller; the bridge adds a sink and feeds ``write``.
    host : str
        Address to listen on (default loopback: listening beyond it is a choice).
    port : int
        UDP port (0: any free port; see :attr:`port`).
    allow : iterable of str, optional
        Only datagrams from these hosts are used (names resolved once, here).
    reply : iterable of (host, port) or (host, port, audio), optional
        Default subscribers (Max's ``[udpsend]`` cannot receive on its own port).
    audio_in : bool
        Accept OSC audio (False when a device or file feeds the engine).
    jitter_depth, jitter_wait : int, float
        See :class:`genredream.bridge.jitter.JitterBuffer`.
    error_rate : float
        Error replies per second at most (burst of as many).
    out_block : int
        Samples per audio-out packet at most (<= 1024).
    source_idle : float
        Seconds without audio after which another sender may take over the
        audio input (before that, its packets are refused as ``busy``).
    rcvbuf : int
        The socket's receive buffer (bytes; Linux doubles it). A compromise:
        a control message that arrives on a flooded socket waits behind
        everything buffered before it (4 MB, the old value, held ~8000 small
        datagrams: 0.5 s at the rate the receive thread reads them under
        load), while a burst of audio must fit while the receive thread is
        descheduled (128 KB lost packets of a 2 s burst on a loaded machine).
        1 MB holds ~5 s of 512-frame packets. Control that must answer under
        any flood goes to ``control_port``.
    audio_queue : int
        Audio datagrams (and bundles) that may wait for the audio worker;
        beyond, they are rejected as ``overloaded``.
    audio_speed : float or None
        Audio is taken up to this many times real time (burst: 5 s); the
        rest is rejected as ``overloaded`` on arrival. None: no limit (the
        message-rate benchmark measures the server's own capacity so).
    control_port : int, optional
        A second UDP port for control only (0: any free port; see
        :attr:`control_port`). Its own thread reads it, and no audio is taken
        there, so status and ping answer even when the main port is flooded
        beyond what the receive thread can read (the kernel then drops
        datagrams on the main port at random, control ones included).
    switch_interval : float
        Python's GIL switch interval while the bridge runs (seconds; the
        smaller of this and the current one): how long a busy worker may
        keep the receive thread waiting.
    """

    def __init__(self, engine, host="127.0.0.1", port=P.DEFAULT_PORT, allow=None, reply=(), audio_in=True,
                 jitter_depth=4, jitter_wait=0.03, error_rate=50.0, out_block=512, rcvbuf=1 << 20, source_idle=1.0,
                 audio_queue=_AUDIO_QUEUE, switch_interval=0.0005, audio_speed=AUDIO_SPEED,
                 control_port=None, sock=None):
        if not (0 <= int(port) <= 65535):
            raise ValueError(f"port must be 0..65535, got {port}")
        if not (1 <= out_block <= P.MAX_FRAMES):
            raise ValueError(f"out_block must be 1..{P.MAX_FRAMES}, got {out_block}")
        self.engine = engine
        self.switch_interval = float(switch_interval)
        self._old_switch = None
        self.host = host
        self.audio_in = bool(audio_in)
        self.out_block = int(out_block)
        self.allow = None if allow is None else {socket.gethostbyname(h) for h in allow}
        self.counters = collections.Counter()
        self._acct = threading.Lock()  # the accounting counters are updated by the receive and audio threads
        self._tls = threading.local()
        self._audio_q = queue.Queue(maxsize=int(audio_queue))
        self.audio_speed = None if audio_speed is None else float(audio_speed)
        self._ab_tokens = _AUDIO_BURST_S  # audio budget in seconds (see _audio_budget)
        self._ab_time = time.monotonic()
        self.supervisor = getattr(engine, "supervisor", None) or Supervisor()
        self.out_counters = collections.Counter()
        self._out_lock = threading.Lock()
        self.jitter = JitterBuffer(depth=jitter_depth, max_wait=jitter_wait)
        self._subs = ()  # tuple of Subscriber, replaced whole (read by other threads without a lock)
        for r in reply:
            r = tuple(r)
            self._subs += (Subscriber(_ipv4(r[0]), int(r[1]), _AUDIO_FORMATS[str(r[2]) if len(r) > 2 else "none"]),)
        # audio in
        self._src = None
        self._src_time = 0.0
        self.source_idle = float(source_idle)
        self._rs = None
        self._last_fmt = None
        self.f_format = (engine.sample_rate, 1)  # rate, channels of /audio/in/f
        # error replies: a token bucket
        self._err_rate = float(error_rate)
        self._err_tokens = float(error_rate)
        self._err_time = time.monotonic()
        # socket (``sock``: one already bound, e.g. by bridge.early.EarlyPort while the models loaded)
        self._sock = sock if sock is not None else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if sock is None:
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(rcvbuf))
            except OSError:
                pass
            self._sock.bind((host, int(port)))
        self._sock.settimeout(0.005)
        self.port = self._sock.getsockname()[1]
        self._csock = None
        self.control_port = None
        if control_port is not None:
            self._csock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self._csock.bind((host, int(control_port)))
            except OSError:
                self._csock.close()
                self._sock.close()
                raise
            self._csock.settimeout(0.05)
            self.control_port = self._csock.getsockname()[1]
        self._running = False
        self._threads = []
        self._work = queue.Queue()
        self._out_cursor = None
        self._out_seq = 0
        self._handlers = {
            A.AUDIO_IN: self._on_audio_in,
            A.AUDIO_IN_F: self._on_audio_in_f,
            A.AUDIO_IN_FORMAT: self._on_audio_format,
            A.SUBSCRIBE: self._on_subscribe,
            A.UNSUBSCRIBE: self._on_unsubscribe,
            A.MODEL_LOAD: self._on_model_load,
            A.MODEL_UNLOAD: self._on_model_unload,
            A.MODEL_LIST: self._on_model_list,
            A.WINDOW: self._on_window,
            A.HOP: self._on_hop,
            A.STATUS: self._on_status,
            A.PING: self._on_ping,
        }
        for address in DREAM_PARAMS:
            self._handlers[address] = self._on_dream

    # -- lifecycle ---------------------------------------------------------------

    @property
    def subscribers(self):
        return self._subs

    def start(self):
        if self._running:
            return self
        self._running = True
        # The receive thread needs the GIL for every datagram: with Python's default
        # 5 ms switch interval a busy worker (the front end on a flood of audio) holds
        # it for 5 ms after each recvfrom, so only ~200 datagrams/s get through and
        # control waits behind a full socket. 0.5 ms, as the audio device does
        # (engine/io/device.py), restored by stop().
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._old_switch, self.switch_interval))
        self.engine.sinks.append(self._on_result)
        self.supervisor.listeners.append(self._on_worker_error)
        sup = self.supervisor
        self._threads = [
            sup.spawn("osc-recv", self._recv_loop),
            sup.spawn("osc-audio", self._audio_loop, reset=self._reset_audio),
            sup.spawn("osc-control", self._work_loop),
            sup.spawn("osc-send", self._out_loop, reset=self._reset_out),
        ]
        if self._csock is not None:
            self._threads.append(sup.spawn("osc-control-recv", self._control_recv_loop))
        return self

    def stop(self):
        if not self._running:
            return
        self._running = False
        self._work.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        for lst, fn in ((self.engine.sinks, self._on_result), (self.supervisor.listeners, self._on_worker_error)):
            try:
                lst.remove(fn)
            except ValueError:
                pass
        self._sock.close()
        if self._csock is not None:
            self._csock.close()
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- receive -----------------------------------------------------------------

    def _recv_loop(self):
        # looked up per datagram, not bound once: a handler replaced on the instance takes effect
        self._receive(self._sock, lambda data, addr: self.route(data, addr))

    def _receive(self, sock, handle):
        """Read datagrams from ``sock`` and hand each to ``handle`` until the bridge stops."""
        while self._running:
            try:
                data, addr = sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                if not self._running:
                    break
                self.counters["recv_errors"] += 1  # e.g. ICMP port unreachable reported on Windows
                continue
            handle(data, addr)

    def _audio_seconds(self, data):
        """Seconds of audio a queued datagram holds, read from its header without decoding it."""
        if data.startswith(_BLOB_HEAD) and len(data) >= 48:
            rate = int.from_bytes(data[36:40], "big", signed=True)
            ch = int.from_bytes(data[40:44], "big", signed=True)
            if P.MIN_RATE <= rate <= P.MAX_RATE and 1 <= ch <= P.MAX_CHANNELS:
                return (len(data) - 48) / (4.0 * ch * rate)
        rate, ch = self.f_format  # /audio/in/f (and bundles, format messages): floats at the /f format
        return len(data) / (4.0 * ch * rate)

    def _audio_budget(self, data):
        """A token bucket in seconds of audio (receive thread): True when this datagram fits."""
        if self.audio_speed is None:
            return True
        now = time.monotonic()
        self._ab_tokens = min(_AUDIO_BURST_S, self._ab_tokens + (now - self._ab_time) * self.audio_speed)
        self._ab_time = now
        need = self._audio_seconds(data)
        if self._ab_tokens < need:
            return False
        self._ab_tokens -= need
        return True

    def _control_recv_loop(self):
        self._receive(self._csock, lambda data, addr: self._route_control(data, addr))

    def _route_control(self, data, addr):
        """The control port's work: control messages only; audio and bundles are refused."""
        if data.startswith(_AUDIO_PREFIX) or P.is_bundle(data):
            with self._acct:
                self.counters["packets"] += 1
                self.counters["rejected"] += 1
                self.counters["rejected_wrong_port"] += 1
            self._error("wrong_port", "the control port takes control messages only: send audio and bundles to the main port")
            return
        self.handle_datagram(data, addr)

    def route(self, data, addr):
        """The receive thread's work: queue audio and bundles, handle control at once."""
        if data.startswith(_AUDIO_PREFIX) or P.is_bundle(data):
            try:
                if not self._audio_budget(data):
                    raise queue.Full
                self._audio_q.put_nowait((data, addr))
            except queue.Full:
                with self._acct:
                    self.counters["packets"] += 1
                    self.counters["rejected"] += 1
                    self.counters["rejected_overloaded"] += 1
                self._error("overloaded", f"audio arrives faster than {self.audio_speed or 0:g}x real time or than the server "
                                          "can handle it; packet dropped")
            return
        self.handle_datagram(data, addr)

    def _audio_loop(self):
        q = self._audio_q
        while self._running:
            try:
                data, addr = q.get(timeout=0.005)
            except queue.Empty:
                self._release_late()
                continue
            self.handle_datagram(data, addr)
            if self.jitter.waiting:
                self._release_late()

    def _reset_audio(self):
        """After a failure of the audio worker: a new stream (the engine's clock is untouched)."""
        self.jitter.reset()
        self._rs = None
        self._last_fmt = None

    def _reset_out(self):
        self._out_cursor = None

    def _on_worker_error(self, code, message):
        self._error(code, message)

    @property
    def _deferred(self):
        d = getattr(self._tls, "deferred", None)
        if d is None:
            d = self._tls.deferred = []
        return d

    def handle_datagram(self, data, addr):
        """Handle one datagram now, on the calling thread (public for tests and benchmarks)."""
        c = self.counters
        outcome = reply = None
        try:
            if self.allow is not None and addr[0] not in self.allow:
                raise ProtocolError("not_allowed", f"sender {addr[0]} is not in --osc-allow")
            if len(data) > P.MAX_DATAGRAM:
                raise ProtocolError("oversized", f"datagram of {len(data)} bytes exceeds {P.MAX_DATAGRAM}")
            if P.is_bundle(data):
                when, elements = P.split_bundle(data)
                c["bundles"] += 1
                if when and when - _NTP_EPOCH > time.time():
                    c["bundles_future"] += 1  # handled now: the server never sleeps on a time tag
                msgs = [P.decode(el) for el in elements]
            else:
                msgs = [P.decode(data)]
            for address, tags, args in msgs:
                handler = self._handlers.get(address)
                if handler is None:
                    raise ProtocolError("unknown_address", f"unknown address {address[:200]!r} (see docs/osc.md)")
                c["messages"] += 1
                handler(address, tags, args, addr)
        except ProtocolError as e:
            outcome = e.code
            if e.code != "not_allowed":  # a stranger gets no answer, and neither do the subscribers
                reply = (e.code, e.message)
        except Exception as e:  # a bug in a handler must not stop the server
            outcome = "internal"
            reply = ("internal", f"{type(e).__name__}: {e}")
        with self._acct:  # counted once handled (packets == accepted + rejected at every quiet moment), before any reply
            c["packets"] += 1
            if outcome is None:
                c["accepted"] += 1
            else:
                c["rejected"] += 1
                c["rejected_" + outcome] += 1
        if reply is not None:
            self._error(*reply)
        if self._deferred:  # replies that report the counters, sent once this datagram is counted
            for fn in self._deferred:
                fn()
            self._deferred.clear()

    # -- audio in ------------------------------------------------------------------

    def _on_audio_in(self, address, tags, args, addr):
        if len(args) != 4 or tags[3] != "b":
            raise ProtocolError("bad_args", f"{address} takes seq rate channels blob (,iiib), got ,{tags}")
        seq = as_int(args[0], "seq")
        rate = as_int(args[1], "rate")
        ch = as_int(args[2], "channels")
        blob = args[3]
        self._check_format(rate, ch)
        if len(blob) % (4 * ch) or not blob:
            raise ProtocolError("bad_args", f"{address}: blob of {len(blob)} bytes is not whole float32 frames of {ch} channels")
        frames = len(blob) // (4 * ch)
        if frames > P.MAX_FRAMES:
            raise ProtocolError("bad_args", f"{address}: {frames} frames per packet, at most {P.MAX_FRAMES}")
        self._audio_packet(addr, seq, rate, ch, self._repaired(np.frombuffer(blob, ">f4").astype(np.float32)))

    def _on_audio_in_f(self, address, tags, args, addr):
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
        self._audio_packet(addr, seq, rate, ch, self._repaired(samples))

    def _on_audio_format(self, address, tags, args, addr):
        if len(args) not in (1, 2):
            raise ProtocolError("bad_args", f"{address} takes rate [channels]")
        rate = as_int(args[0], "rate")
        ch = as_int(args[1], "channels") if len(args) > 1 else 1
        self._check_format(rate, ch)
        self.f_format = (rate, ch)
        self._ack(address, rate, ch)

    def _repaired(self, samples):
        """NaN/Inf zeroed, beyond +-32 clipped, counted on the engine: before the channel
        average and the resampler, so neither can overflow (engine/sanitize.py)."""
        counts = getattr(self.engine, "source_repairs", None)
        if counts is None:
            counts = self._repair_counts = getattr(self, "_repair_counts", None) or np.zeros(3, np.int64)
        repair_inplace(samples, counts)
        return samples

    @staticmethod
    def _check_format(rate, ch):
        if not (P.MIN_RATE <= rate <= P.MAX_RATE):
            raise ProtocolError("bad_args", f"sample rate {rate} Hz is outside {P.MIN_RATE}..{P.MAX_RATE}")
        if not (1 <= ch <= P.MAX_CHANNELS):
            raise ProtocolError("bad_args", f"channel count {ch} is outside 1..{P.MAX_CHANNELS}")

    def _audio_packet(self, addr, seq, rate, ch, samples):
        if not self.audio_in:
            raise ProtocolError("unavailable", "OSC audio in is off: the engine is fed by a device or a file")
        now = time.monotonic()
        if addr != self._src:
            if self._src is not None and now - self._src_time < self.source_idle:
                raise ProtocolError("busy", f"audio is already coming from {self._src[0]}:{self._src[1]}; one sender at a time")
            if self._src is not None:
                self._apply(self.jitter.flush())
                self._end_stream()
                self.jitter.reset()
                self.counters["audio_sources"] += 1
            self._src = addr
        self._src_time = now
        self.counters["audio_packets"] += 1
        self._apply(self.jitter.push(seq, (rate, ch, samples), now))

    def _release_late(self):
        if self.jitter.waiting:
            self._apply(self.jitter.poll(time.monotonic()))

    def _apply(self, events):
        for kind, _seq, x in events:
            if kind == "data":
                rate, ch, samples = x
                self._last_fmt = (rate, ch, samples.size // ch)
                self._feed(rate, ch, samples)
            elif kind == "gap":
                if self._last_fmt is None:  # the first packets of a stream lost: nothing to size them by
                    continue
                rate, ch, frames = self._last_fmt
                self._feed(rate, ch, np.zeros(frames * ch * x, np.float32))
                self.counters["gap_samples"] += frames * x
            else:  # restart
                self._end_stream()

    def _feed(self, rate, ch, samples):
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

    # -- control ---------------------------------------------------------------------

    def _on_subscribe(self, address, tags, args, addr):
        if len(args) not in (2, 3) or tags[0] != "s":
            raise ProtocolError("bad_args", f"{address} takes host port [audio: none|b|f]")
        host = _ipv4(args[0] or addr[0])
        port = as_int(args[1], "port")
        if not (1 <= port <= 65535):
            raise ProtocolError("bad_args", f"port must be 1..65535, got {port}")
        audio = _AUDIO_FORMATS.get(str(args[2]) if len(args) > 2 else "none")
        if audio is None:
            raise ProtocolError("bad_args", f"audio must be none, b or f, got {args[2]!r}")
        if host != addr[0] and not host.startswith("127.") and not (self.allow and host in self.allow):
            raise ProtocolError("denied", f"a sender may subscribe itself, loopback or an allowed host, not {host}")
        subs = tuple(s for s in self._subs if s.addr != (host, port))
        if len(subs) >= _MAX_SUBSCRIBERS:
            raise ProtocolError("full", f"{_MAX_SUBSCRIBERS} subscribers at most")
        # One subscription per host:port, and the newest wins: say so when it changes what is sent.
        old = next((s.audio for s in self._subs if s.addr == (host, port)), None)
        self._subs = subs + (Subscriber(host, port, audio),)
        if old is not None and old != audio:
            self.counters["subscriptions_replaced"] += 1
            self._ack(address, host, port, audio,
                      f"warning: replaces this host:port's subscription with audio {old}; audio out is now {audio}")
        else:
            self._ack(address, host, port, audio)

    def _on_unsubscribe(self, address, tags, args, addr):
        if len(args) != 2 or tags[0] != "s":
            raise ProtocolError("bad_args", f"{address} takes host port")
        host, port = _ipv4(args[0] or addr[0]), as_int(args[1], "port")
        gone = [s for s in self._subs if s.addr == (host, port)]
        if not gone:
            raise ProtocolError("not_found", f"{host}:{port} is not subscribed")
        before = self._subs
        self._subs = tuple(s for s in before if s.addr != (host, port))
        self._send_all(P.encode(A.ACK, address, host, port), before)  # the leaving subscriber hears it too

    def _on_model_load(self, address, tags, args, addr):
        if len(args) not in (1, 2) or set(tags) != {"s"}:
            raise ProtocolError("bad_args", f"{address} takes name_or_path [as_name]")

        def job():
            from genredream.engine.runtime import ModelLoadError

            try:
                name = self.engine.load_model(args[0], name=args[1] if len(args) > 1 else None)
            except ModelLoadError as e:
                self._control_error("model_load", str(e))
            else:
                self._ack(address, name)

        self._work.put(job)

    def _on_model_unload(self, address, tags, args, addr):
        if len(args) != 1 or tags != "s":
            raise ProtocolError("bad_args", f"{address} takes a model name")

        def job():
            try:
                warning = self.engine.unload_model(args[0])
            except KeyError as e:
                self._control_error("not_found", str(e.args[0]))
            else:
                self._ack(address, args[0], *(("warning: " + warning,) if warning else ()))

        self._work.put(job)

    def _on_model_list(self, address, tags, args, addr):
        if args:
            raise ProtocolError("bad_args", f"{address} takes no arguments")

        def job():
            from genredream.models.contract import list_models

            loaded = list(self.engine.models)
            available = sorted({m["name"] for m in list_models() if not m["error"] and m["name"]})
            for pkt in _chunked(A.MODEL_LIST, loaded) + _chunked(A.AVAILABLE, available):
                self._send_all(pkt)
            self._ack(address, len(loaded), len(available))

        self._work.put(job)

    def _on_window(self, address, tags, args, addr):
        if len(args) != 1:
            raise ProtocolError("bad_args", f"{address} takes seconds")
        w = as_float(args[0], "window")
        if abs(w - self.engine.window) > 1e-9:
            raise ProtocolError(
                "unsupported",
                f"the window is fixed at {self.engine.window:g} s by the models' input length; restart with --window to change it",
            )
        self._ack(address, w)

    def _on_hop(self, address, tags, args, addr):
        if len(args) != 1:
            raise ProtocolError("bad_args", f"{address} takes seconds")
        hop = as_float(args[0], "hop")
        if not (0 < hop <= self.engine.window):
            raise ProtocolError("bad_args", f"hop must be > 0 and at most the window ({self.engine.window:g} s), got {hop:g}")

        if getattr(self.engine, "transform", None) is not None:
            raise ProtocolError("unsupported", f"{address}: the dreamer is laid out for a {self.engine.hop:g} s hop; restart with --hop to change it")

        def job():
            self._ack(address, _set_hop(self.engine, hop))

        self._work.put(job)

    def _on_dream(self, address, tags, args, addr):
        key, kind = DREAM_PARAMS[address]
        if len(args) != 1:
            raise ProtocolError("bad_args", f"{address} takes one value")
        v = args[0]
        if kind == "bool":
            v = bool(as_int(v, key))
        elif kind == "int":
            v = as_int(v, key)
        elif kind == "float":
            v = as_float(v, key)
        elif kind == "str_or_none":
            if not isinstance(v, str):
                raise ProtocolError("bad_args", f"{address} takes a string (empty: none)")
            v = v or None
        elif kind == "str_or_int" and not isinstance(v, str):
            v = as_int(v, key)
        dreamer = getattr(self.engine, "transform", None)
        if dreamer is None:
            raise ProtocolError("unavailable", f"{address}: this engine is not dreaming (start it with --dream)")
        if key not in _dreamer_params(dreamer):
            raise ProtocolError("unsupported", f"{address}: the dreamer cannot change {key} while running (set it at start: --dream-latency)")
        try:
            applied = dreamer.set_params(**{key: v})
        except (TypeError, ValueError, KeyError) as e:  # DreamError is a ValueError, and names the layers or labels
            raise ProtocolError("bad_args", f"{address}: {e}") from None
        if isinstance(applied, dict) and key in applied:
            v = applied[key]  # e.g. a layer index resolved to its name
        self._ack(address, "" if v is None else (int(v) if isinstance(v, bool) else v))

    def _on_status(self, address, tags, args, addr):
        self._deferred.append(lambda: self._send_status(addr))

    def _send_status(self, addr):
        subs = self._subs
        for pkt in self.status_packets():
            self._send_all(pkt, subs)
            if all(s.addr != addr for s in subs):
                self._send(pkt, addr)  # the asker hears it even when it has not subscribed

    def _on_ping(self, address, tags, args, addr):
        self._send(P.encode(A.PONG, *args), addr)

    def _work_loop(self):
        while True:
            job = self._work.get()
            if job is None:
                return
            try:
                job()
            except Exception as e:
                self._control_error("internal", f"{type(e).__name__}: {e}")

    # -- status ------------------------------------------------------------------------

    def status(self):
        """The bridge's and engine's state as a dict (also sent as /genredream/status)."""
        est = self.engine.status()
        lat = est.get("latency_ms", {})
        j = self.jitter.counters
        c = self.counters
        with self._out_lock:
            oc = dict(self.out_counters)
        # xruns: counted by the audio device's callback; a device runner publishes them on the
        # engine (engine.counters["xruns"], or an ``xruns`` attribute/callable). OSC audio has none.
        xr = est.get("xruns", self.engine.counters.get("xruns", 0)) or getattr(self.engine, "xruns", 0)
        xr = xr() if callable(xr) else xr
        dream = est.get("dream") or {}
        return {
            "models": ",".join(self.engine.models),
            "sample_rate": self.engine.sample_rate,
            "channels": int(getattr(self.engine, "channels", 1)),
            "window": float(self.engine.window),
            "hop": float(self.engine.hop),
            "latency_p50_ms": _num(lat.get("p50")),
            "latency_p99_ms": _num(lat.get("p99")),
            "packets": c["packets"],
            "accepted": c["accepted"],
            "rejected": c["rejected"],
            "lost": j["lost"],
            "reordered": j["reordered"],
            "duplicates": j["duplicates"],
            "late": j["late"],
            "restarts": j["restarts"],
            "xruns": int(xr or 0),
            # "SCHED_FIFO 5": the audio callback's thread is real-time; "no: <why>" warns the performer; "" without a device.
            "audio_rt": _audio_rt(est.get("audio_realtime")),
            "audio_packets": c["audio_packets"],
            "stream_s": float(est.get("stream_s", 0.0)),
            "results": int(est.get("results", 0)),
            "skipped_windows": int(est.get("skipped_windows", 0)),
            "dream": str(dream.get("model") or ""),
            # 1 while the dreamer changes the audio (attached and enabled); "dream" names its model either way
            "dreaming": int(bool(dream) and bool(_dream_enabled(self.engine))),
            "dream_rtf_p50": _num(dream.get("rtf_p50")),
            "dream_depth": _num((dream.get("params") or {}).get("depth")),  # -1: no depth set (steps and mix as given)
            "subscribers": len(self._subs),
            "packets_out": oc.get("packets_out", 0),
            "audio_out_packets": oc.get("audio_out_packets", 0),
            "errors_suppressed": oc.get("errors_suppressed", 0),
            "nonfinite_repaired": int(est.get("nonfinite_repaired", 0)),
            "out_of_range_repaired": int(est.get("out_of_range_repaired", 0)),
            "over_full_scale": int(est.get("over_full_scale", 0)),
            "last_result_age_s": _num(est.get("last_result_age_s")),
            "overloaded": c["rejected_overloaded"],
            "worker_errors": int(self.supervisor.errors),
            # workers not running (comma-separated "name:state"), "" when all are well
            "workers_down": ",".join(f"{n}:{st}" for n, st in self.supervisor.status().items()
                                     if st not in ("running", "idle") and not (st == "stopped" and not self._running)),
            **{"worker_" + n: st for n, st in self.supervisor.status().items()},
        }

    def status_packets(self):
        return P.encode_kv(A.STATUS, [], list(self.status().items()))

    # -- out ---------------------------------------------------------------------------

    def _count(self, key, n=1):
        with self._out_lock:
            self.out_counters[key] += n

    def _send(self, pkt, addr):
        try:
            self._sock.sendto(pkt, addr)
        except OSError:
            self._count("send_errors")
        else:
            self._count("packets_out")

    def _send_all(self, pkt, subs=None):
        for s in self._subs if subs is None else subs:
            self._send(pkt, s.addr)

    def _ack(self, address, *values):
        self._send_all(P.encode(A.ACK, address, *values))

    def _error(self, code, message):
        now = time.monotonic()
        self._err_tokens = min(self._err_rate, self._err_tokens + (now - self._err_time) * self._err_rate)
        self._err_time = now
        if self._err_tokens < 1:
            self._count("errors_suppressed")
            return
        self._err_tokens -= 1
        if self._subs:
            self._send_all(P.encode(A.ERROR, code, _clip(message)))

    def _control_error(self, code, message):
        self.counters["control_errors"] += 1
        self._error(code, message)

    def result_packets(self, res):
        """The messages for one :class:`genredream.engine.runtime.Result`, scores first."""
        if res.error:
            return [P.encode(A.ERROR, "model_error", _clip(res.error))]
        model = res.model
        part = P.address_part(model)
        pkts = P.encode_kv(A.SCORES, [model], list(zip(res.labels, (float(s) for s in res.scores))))
        score = dict(zip(res.labels, res.scores))
        for label in res.genre_labels:
            if label in score:
                pkts.append(P.encode(f"{A.SCORES}/{part}/{P.address_part(label)}", float(score[label])))
        top, top_score = res.top
        pkts.append(P.encode(A.TOP, model, top, float(top_score)))
        hi, lo = P.split_index(res.end_index)
        pkts.append(P.encode(A.WINDOW + "/end", model, res.seq, hi, lo, float(res.end_s), float(res.level_db), int(res.low_energy),
                             int(getattr(res, "partial", False))))
        pkts.append(P.encode(A.LATENCY, model, _num(res.latency_ms)))
        return pkts

    def _on_result(self, res):
        subs = self._subs
        if not subs:
            return
        for pkt in self.result_packets(res):
            self._send_all(pkt, subs)

    def _out_loop(self):
        while self._running:
            self._out_once()

    def _out_once(self):
        """One turn of the audio-out thread: send what the dreamer wrote since the last turn."""
        rate = self.engine.sample_rate
        ring = getattr(self.engine, "output", None)  # the dreamer's output ring, at the input rate
        subs = [s for s in self._subs if s.audio != "none"]
        if ring is None or not subs:
            self._out_cursor = None
            time.sleep(0.005)
            return
        if self._out_cursor is None:
            self._out_cursor = ring.total_written
        # The input's channels (engine.output_ch), on the same clock, when the engine keeps them.
        fr = getattr(self.engine, "output_ch", None)
        end = ring.total_written
        if fr is not None and fr.first <= self._out_cursor:
            end = min(end, fr.total_written)  # the dreamer writes the mono ring first
        if end <= self._out_cursor:
            time.sleep(0.002)
            return
        data, start = ring.read_since(self._out_cursor, max_n=end - self._out_cursor)
        if start > self._out_cursor:
            self._count("audio_out_overruns")
            self._count("audio_out_samples_lost", start - self._out_cursor)
        self._out_cursor = start + data.size
        frames = None
        if fr is not None and fr.oldest_available <= start and fr.total_written >= start + data.size:
            frames, _ = fr.read(start, data.size)
        ch = 1 if frames is None else frames.shape[1]
        # Every packet stays under 8192 bytes: 5 bytes a float sample (tag and value).
        step = max(1, min(self.out_block, 1500 // ch))
        for i in range(0, data.size, step):
            chunk = data[i : i + step]
            fch = chunk[:, None] if frames is None else frames[i : i + step]
            blob = f = fn = None
            for s in subs:
                if s.audio == "b":
                    blob = blob or P.encode(A.AUDIO_OUT, self._out_seq, rate, ch, fch.astype(">f4").tobytes())
                    self._send(blob, s.addr)
                elif s.audio == "fn":
                    fn = fn or P.encode_floats(A.AUDIO_OUT_FN, [self._out_seq, ch], fch.ravel())
                    self._send(fn, s.addr)
                else:
                    f = f or P.encode_floats(A.AUDIO_OUT_F, [self._out_seq], chunk)  # the dreamed mid: mono patches keep working
                    self._send(f, s.addr)
            self._out_seq = (self._out_seq + 1) & 0x7FFFFFFF
            self._count("audio_out_packets")
            self._count("audio_out_samples", chunk.size)


def _dream_enabled(engine):
    d = getattr(engine, "transform", None)
    if d is None:
        return False
    try:
        return bool(d.params().get("enabled", True))
    except Exception:  # a dreamer without params(): attached means dreaming
        return True


def _dreamer_params(dreamer):
    """The keywords ``dreamer.set_params`` accepts (``engine.dream.PARAMS``, or the dreamer's own ``PARAMS``)."""
    own = getattr(dreamer, "PARAMS", None)
    if own is not None:
        return own
    try:
        from genredream.engine.dream import PARAMS
    except ImportError:
        return tuple(k for k, _ in DREAM_PARAMS.values())
    return PARAMS


def _set_hop(engine, hop):
    """Change the engine's hop; returns the hop applied (seconds, rounded to whole samples).

    The next window ends one new hop after what has been processed.
    """
    engine.set_hop(hop)
    return float(engine.hop)


def _chunked(address, names):
    out, cur, size = [], [], len(address) + 8
    for n in names:
        add = len(n.encode()) + 5
        if cur and size + add + len(cur) + 8 > P.MAX_PACKET:
            out.append(P.encode(address, *cur))
            cur, size = [], len(address) + 8
        cur.append(n)
        size += add
    out.append(P.encode(address, *cur))
    return out


def _audio_rt(r):
    """The audio thread's scheduling in one OSC string (see engine/io/rt.py)."""
    if not r:
        return ""
    if r.get("audio_priority") is not None:
        return f"{r['audio_policy']} {r['audio_priority']}"
    return "no: " + str(r.get("audio_how"))


def _num(v):
    """A float for Pd/Max: NaN and None (unknown) are sent as -1."""
    if v is None:
        return -1.0
    v = float(v)
    return v if math.isfinite(v) else -1.0


def _clip(s, n=400):
    s = str(s)
    return s if len(s) <= n else s[: n - 3] + "..."
