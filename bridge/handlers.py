"""The bridge's control messages: subscribe, models, window and hop, dream parameters, status, ping.

Each handler takes ``(address, tags, args, addr)``, answers with an ack, and
raises :class:`genredream.bridge.protocol.ProtocolError` for bad input (the
bridge's dispatch counts and reports it). Work that takes seconds (loading a
model validates it; a hop change) runs on the control worker
(:meth:`ControlHandlers.work_loop`), never on the receive thread.
"""

from __future__ import annotations

import queue

from genredream.bridge import protocol as P
from genredream.bridge.protocol import A, ProtocolError, as_float, as_int
from genredream.bridge.replies import AUDIO_FORMATS, Subscriber, ipv4

__all__ = ["ControlHandlers", "DREAM_PARAMS", "dream_enabled"]

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


class ControlHandlers:
    """Control messages for an :class:`genredream.bridge.server.OscBridge`."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.engine = bridge.engine
        self.replies = bridge.replies
        self.work = queue.Queue()

    def handlers(self):
        h = {
            A.SUBSCRIBE: self.on_subscribe,
            A.UNSUBSCRIBE: self.on_unsubscribe,
            A.MODEL_LOAD: self.on_model_load,
            A.MODEL_UNLOAD: self.on_model_unload,
            A.MODEL_LIST: self.on_model_list,
            A.WINDOW: self.on_window,
            A.HOP: self.on_hop,
            A.STATUS: self.on_status,
            A.PING: self.on_ping,
        }
        for address in DREAM_PARAMS:
            h[address] = self.on_dream
        return h

    def _control_error(self, code, message):
        self.bridge.counters["control_errors"] += 1
        self.replies.error(code, message)

    def work_loop(self):
        """The control worker: jobs queued by the handlers, until a None."""
        while True:
            job = self.work.get()
            if job is None:
                return
            try:
                job()
            except Exception as e:
                self._control_error("internal", f"{type(e).__name__}: {e}")

    # -- subscribers --------------------------------------------------------------------

    def on_subscribe(self, address, tags, args, addr):
        try:
            self._subscribe(address, tags, args, addr)
        except ProtocolError as e:
            # The refused asker hears why even when it is not (yet) a subscriber.
            if all(s.addr != addr for s in self.replies.subs):
                self.replies.send(P.encode(A.ERROR, e.code, P.clip(e.message)), addr)
            raise

    def _subscribe(self, address, tags, args, addr):
        r = self.replies
        if not (2 <= len(args) <= 5) or tags[0] != "s":
            raise ProtocolError("bad_args", f"{address} takes host port [audio: none|b|f|fn|bi] [rate] [frames]")
        host = ipv4(args[0] or addr[0])
        port = as_int(args[1], "port")
        if not (1 <= port <= 65535):
            raise ProtocolError("bad_args", f"port must be 1..65535, got {port}")
        audio = AUDIO_FORMATS.get(str(args[2]) if len(args) > 2 else "none")
        if audio is None:
            raise ProtocolError("bad_args", f"audio must be none, b, f, fn or bi, got {args[2]!r}")
        rate = as_int(args[3], "rate") if len(args) > 3 else 0
        if rate and not (P.MIN_RATE <= rate <= P.MAX_RATE):
            raise ProtocolError("bad_args", f"rate must be 0 (automatic) or {P.MIN_RATE}..{P.MAX_RATE} Hz, got {rate}")
        frames = as_int(args[4], "frames") if len(args) > 4 else self.bridge.out_block
        if not (1 <= frames <= P.MAX_FRAMES):
            raise ProtocolError("bad_args", f"frames must be 1..{P.MAX_FRAMES}, got {frames}")
        allow = self.bridge.allow
        if host != addr[0] and not host.startswith("127.") and not (allow and host in allow):
            raise ProtocolError("denied", f"a sender may subscribe itself, loopback or an allowed host, not {host}")
        sub = Subscriber(host, port, audio, rate, frames, origin=tuple(addr[:2]))
        try:
            old, evicted = r.table.subscribe(sub)
        except OverflowError as e:
            raise ProtocolError("full", str(e)) from None
        if evicted is not None:
            r.send(P.encode(A.ERROR, "evicted", f"the subscriber table is full; {evicted.host}:{evicted.port}, "
                                                "the longest without renewal, gave way (subscribe again to come back)"),
                   evicted.addr)
        sub = next(s for s in r.subs if s.addr == sub.addr)
        lease = 0.0 if sub.permanent else r.table.lease  # the lease it holds from now (0: never expires)
        ack = (address, host, port, audio, self.bridge.outlet.rate_of(sub), frames, float(lease))
        # One subscription per host:port, and the newest wins: say so when it changes what is sent.
        if old is not None and not old.same_request(sub):
            self.bridge.counters["subscriptions_replaced"] += 1
            r.ack(*ack, f"warning: replaces this host:port's subscription (audio {old.audio}, rate {old.rate}, "
                        f"frames {old.frames}); audio out is now {audio}")
        else:
            r.ack(*ack)

    def on_unsubscribe(self, address, tags, args, addr):
        r = self.replies
        if len(args) != 2 or tags[0] != "s":
            raise ProtocolError("bad_args", f"{address} takes host port")
        host, port = ipv4(args[0] or addr[0]), as_int(args[1], "port")
        before = r.table.remove((host, port))
        if not before:
            raise ProtocolError("not_found", f"{host}:{port} is not subscribed")
        r.send_all(P.encode(A.ACK, address, host, port), before)  # the leaving subscriber hears it too

    # -- models ---------------------------------------------------------------------------

    def on_model_load(self, address, tags, args, addr):
        if len(args) not in (1, 2) or set(tags) != {"s"}:
            raise ProtocolError("bad_args", f"{address} takes name_or_path [as_name]")

        def job():
            from genredream.engine.runtime import ModelLoadError

            try:
                name = self.engine.load_model(args[0], name=args[1] if len(args) > 1 else None)
            except ModelLoadError as e:
                self._control_error("model_load", str(e))
            else:
                self.replies.ack(address, name)

        self.work.put(job)

    def on_model_unload(self, address, tags, args, addr):
        if len(args) != 1 or tags != "s":
            raise ProtocolError("bad_args", f"{address} takes a model name")

        def job():
            try:
                warning = self.engine.unload_model(args[0])
            except KeyError as e:
                self._control_error("not_found", str(e.args[0]))
            else:
                self.replies.ack(address, args[0], *(("warning: " + warning,) if warning else ()))

        self.work.put(job)

    def on_model_list(self, address, tags, args, addr):
        if args:
            raise ProtocolError("bad_args", f"{address} takes no arguments")

        def job():
            from genredream.models.registry import list_models

            loaded = list(self.engine.models)
            available = sorted({m["name"] for m in list_models() if not m["error"] and m["name"]})
            for pkt in P.encode_names(A.MODEL_LIST, loaded) + P.encode_names(A.AVAILABLE, available):
                self.replies.send_all(pkt)
            self.replies.ack(address, len(loaded), len(available))

        self.work.put(job)

    # -- window, hop, dream -----------------------------------------------------------------

    def on_window(self, address, tags, args, addr):
        if len(args) != 1:
            raise ProtocolError("bad_args", f"{address} takes seconds")
        w = as_float(args[0], "window")
        if abs(w - self.engine.window) > 1e-9:
            raise ProtocolError(
                "unsupported",
                f"the window is fixed at {self.engine.window:g} s by the models' input length; restart with --window to change it",
            )
        self.replies.ack(address, w)

    def on_hop(self, address, tags, args, addr):
        if len(args) != 1:
            raise ProtocolError("bad_args", f"{address} takes seconds")
        hop = as_float(args[0], "hop")
        if not (0 < hop <= self.engine.window):
            raise ProtocolError("bad_args", f"hop must be > 0 and at most the window ({self.engine.window:g} s), got {hop:g}")

        if getattr(self.engine, "transform", None) is not None:
            raise ProtocolError("unsupported", f"{address}: the dreamer is laid out for a {self.engine.hop:g} s hop; restart with --hop to change it")

        def job():
            self.replies.ack(address, _set_hop(self.engine, hop))

        self.work.put(job)

    def on_dream(self, address, tags, args, addr):
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
        self.replies.ack(address, "" if v is None else (int(v) if isinstance(v, bool) else v))

    # -- status, ping -------------------------------------------------------------------------

    def on_status(self, address, tags, args, addr):
        # sent once this datagram is counted, so the status reports it
        self.bridge._deferred.append(lambda: self._send_status(addr))

    def _send_status(self, addr):
        r = self.replies
        subs = r.subs
        for pkt in self.bridge.status_packets():
            r.send_all(pkt, subs)
            if all(s.addr != addr for s in subs):
                r.send(pkt, addr)  # the asker hears it even when it has not subscribed

    def on_ping(self, address, tags, args, addr):
        self.replies.send(P.encode(A.PONG, *args), addr)


def dream_enabled(engine):
    """True while a dreamer is attached and enabled."""
    d = getattr(engine, "transform", None)
    if d is None:
        return False
    params = getattr(d, "params", None)
    if params is None:  # a transform without params(): attached means dreaming
        return True
    return bool(params().get("enabled", True))  # an error in params() is the dreamer's, and is not hidden


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
