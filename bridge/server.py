"""The OSC bridge: a UDP server feeding an :class:`genredream.engine.runtime.Engine`.

Threads (none of them is the engine's audio path):

* **receive** (:meth:`OscBridge._recv_loop`, this module): one thread owns the socket and
  reads with ``recvfrom(65536)``, so a datagram larger than
  :data:`genredream.bridge.protocol.MAX_DATAGRAM` is seen whole and rejected, never
  silently truncated. It does as little as possible so that control always
  gets through, even on a flooded socket: a datagram whose address starts
  with ``/genredream/audio/in``, and every bundle, is put on a bounded queue
  for the audio worker (when that queue is full the datagram is rejected as
  ``overloaded``); every other datagram (control: status, ping, subscribe,
  dream parameters...) is scanned, decoded and answered here at once.
* **audio** (:meth:`genredream.bridge.audio_in.AudioIn.loop`): each queued datagram is scanned
  strictly, then parsed with python-osc (:func:`genredream.bridge.protocol.decode`);
  bundles are unpacked at once, whatever their time tag (never a sleep).
  Audio samples are repaired (:mod:`genredream.engine.sanitize`: NaN/Inf zeroed, beyond
  +-32 clipped, counted) before anything else touches them, go through the
  jitter buffer (:class:`genredream.bridge.jitter.JitterBuffer`), are resampled to the
  engine's rate (soxr; mono: :class:`genredream.engine.resample.StreamingResampler`,
  more channels: :class:`genredream.engine.channels.FrameResampler`, and the engine
  keeps them, :meth:`Engine.set_channels`) and handed to :meth:`Engine.write` (5 ms queue timeout, so a gap in the
  stream is released on time even when the sender pauses).
* **control worker** (:mod:`genredream.bridge.handlers`): model load/unload/list and hop changes (loading
  validates a model: seconds), then their ack or error.
* **audio out** (:mod:`genredream.bridge.audio_out`): polls the dreamer's output ring (``engine.output``, and
  ``engine.output_ch`` when the input has channels) and sends
  ``/genredream/audio/out`` (blob, every channel), ``/audio/out/f`` (floats,
  mono: the channels' mean, for patches that read one signal) or
  ``/audio/out/fn`` (floats, every channel) to each subscriber that asked for audio.
* scores (:mod:`genredream.bridge.replies`, encoded by
  :func:`genredream.bridge.protocol.encode_result`) are sent from the engine's inference worker (a sink): one
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

Subscribers are ``host port`` pairs, leased (:mod:`genredream.bridge.subscribers`:
``lease`` seconds from the last ``/genredream/subscribe``; dropped when sends
to them fail; the stalest gives way when the table is full). A subscriber
host must be the sender's own address, loopback, or a host in ``allow``: the
server does not send its replies to third parties on a stranger's request.
"""

from __future__ import annotations

import collections
import socket
import sys
import threading
import time

from genredream.bridge import protocol as P
from genredream.bridge.audio_in import AUDIO_PREFIX, AUDIO_QUEUE, AUDIO_SPEED, AudioIn
from genredream.bridge.audio_out import AudioOut
from genredream.bridge.handlers import DREAM_PARAMS, ControlHandlers
from genredream.bridge.protocol import ProtocolError
from genredream.bridge.replies import Replies, Subscriber
from genredream.bridge.status import bridge_status
from genredream.engine.supervise import Supervisor

__all__ = ["OscBridge", "Subscriber", "DREAM_PARAMS", "AUDIO_SPEED"]

_NTP_EPOCH = 2208988800  # seconds from 1900 to 1970


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
    lease : float
        Seconds a subscription lasts without renewal (0: forever);
        the ``reply`` subscribers never expire.
    """

    def __init__(self, engine, host="127.0.0.1", port=P.DEFAULT_PORT, allow=None, reply=(), audio_in=True,
                 jitter_depth=4, jitter_wait=0.03, error_rate=50.0, out_block=512, rcvbuf=1 << 20, source_idle=1.0,
                 audio_queue=AUDIO_QUEUE, switch_interval=0.0005, audio_speed=AUDIO_SPEED,
                 control_port=None, sock=None, lease=60.0):
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
        self.supervisor = getattr(engine, "supervisor", None) or Supervisor()
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
        # The collaborators, one per job (each module's docstring says what it owns).
        self.replies = Replies(self._sock, reply, error_rate, lease=lease, out_block=self.out_block)
        self.inlet = AudioIn(self, jitter_depth, jitter_wait, source_idle, audio_queue, audio_speed)
        self.outlet = AudioOut(self, out_block)
        self.control = ControlHandlers(self)
        self._handlers = {**self.inlet.handlers(), **self.control.handlers()}

    # -- what callers read ---------------------------------------------------------

    @property
    def subscribers(self):
        return self.replies.subs

    @property
    def jitter(self):
        return self.inlet.jitter

    @property
    def f_format(self):
        """(rate, channels) of ``/audio/in/f``, as set by ``/audio/in/format``."""
        return self.inlet.f_format

    @property
    def source_idle(self):
        return self.inlet.source_idle

    @property
    def audio_speed(self):
        return self.inlet.audio_speed

    @property
    def out_counters(self):
        return self.replies.counters

    # -- lifecycle ---------------------------------------------------------------

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
        self.engine.sinks.append(self.replies.on_result)
        self.supervisor.listeners.append(self.replies.error)
        sup = self.supervisor
        # Each loop looks its turn up on its object at every call, so a fault injected there takes effect.
        self._threads = [
            sup.spawn("osc-recv", self._recv_loop),
            sup.spawn("osc-audio", self.inlet.loop, reset=self.inlet.reset),
            sup.spawn("osc-control", self.control.work_loop),
            sup.spawn("osc-send", self.outlet.loop, reset=self.outlet.reset),
        ]
        if self._csock is not None:
            self._threads.append(sup.spawn("osc-control-recv", self._control_recv_loop))
        return self

    def stop(self):
        if not self._running:
            return
        self._running = False
        self.control.work.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        for lst, fn in ((self.engine.sinks, self.replies.on_result), (self.supervisor.listeners, self.replies.error)):
            try:
                lst.remove(fn)
            except ValueError:
                pass
        self.replies.close()
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
                self.counters["recv_errors"] += 1  # an ICMP error for an earlier send, reported here
                self.replies.reap()  # whose address it was: that subscriber is dropped
                continue
            handle(data, addr)

    def _control_recv_loop(self):
        self._receive(self._csock, lambda data, addr: self._route_control(data, addr))

    def _reject(self, code, message):
        """Count a datagram refused before dispatch, and say why (rate-limited)."""
        with self._acct:
            self.counters["packets"] += 1
            self.counters["rejected"] += 1
            self.counters["rejected_" + code] += 1
        self.replies.error(code, message)

    def _route_control(self, data, addr):
        """The control port's work: control messages only; audio and bundles are refused."""
        if data.startswith(AUDIO_PREFIX) or P.is_bundle(data):
            self._reject("wrong_port", "the control port takes control messages only: send audio and bundles to the main port")
            return
        self.handle_datagram(data, addr)

    def route(self, data, addr):
        """The receive thread's work: queue audio and bundles, handle control at once."""
        if data.startswith(AUDIO_PREFIX) or P.is_bundle(data):
            if not self.inlet.admit(data, addr):
                self._reject("overloaded", f"audio arrives faster than {self.audio_speed or 0:g}x real time or than the server "
                                           "can handle it; packet dropped")
            return
        self.handle_datagram(data, addr)

    # -- dispatch ------------------------------------------------------------------

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
            self.replies.error(*reply)
        if self._deferred:  # replies that report the counters, sent once this datagram is counted
            for fn in self._deferred:
                fn()
            self._deferred.clear()

    # -- status and results ------------------------------------------------------------

    def status(self):
        """The bridge's and engine's state as a dict (also sent as /genredream/status)."""
        return bridge_status(self)

    def status_packets(self):
        return P.encode_kv(P.A.STATUS, [], list(self.status().items()))

    def result_packets(self, res):
        """The messages for one :class:`genredream.engine.runtime.Result`, scores first."""
        return P.encode_result(res)
