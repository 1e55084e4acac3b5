"""The bridge's subscribers, and everything it sends them: acks, errors, scores.

Subscribers are ``host port [audio]`` triples, kept as a tuple that is
replaced whole, so the threads that send (receive, control worker, the
engine's inference worker, audio out) read it without a lock. Errors are
rate-limited by a token bucket: a flood of garbage must not become a flood
of replies (the rest are counted as ``errors_suppressed``).
"""

from __future__ import annotations

import collections
import ipaddress
import threading
import time
from dataclasses import dataclass

from genredream.bridge import protocol as P
from genredream.bridge.protocol import A, ProtocolError

__all__ = ["Subscriber", "Replies", "AUDIO_FORMATS", "MAX_SUBSCRIBERS", "ipv4"]

#: What a subscriber may ask for as audio out, by the names a patch may use.
AUDIO_FORMATS = {"none": "none", "": "none", "0": "none", "b": "b", "blob": "b", "f": "f", "floats": "f", "float": "f", "fn": "fn"}
MAX_SUBSCRIBERS = 32


@dataclass(frozen=True)
class Subscriber:
    host: str
    port: int
    audio: str = "none"  # "none", "b" (blob, every channel), "f" (floats, mono) or "fn" (floats, every channel)

    @property
    def addr(self):
        return (self.host, self.port)


def ipv4(host):
    """An IPv4 literal (``localhost`` allowed), without DNS: the receive thread must not block."""
    if host in ("localhost", ""):
        return "127.0.0.1"
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        raise ProtocolError("bad_args", f"host must be an IPv4 address such as 127.0.0.1, got {host!r}") from None


class Replies:
    """Sends on the bridge's socket to its subscribers, and counts what it sent.

    ``reply``: the default subscribers, ``(host, port)`` or ``(host, port, audio)``.
    """

    def __init__(self, sock, reply=(), error_rate=50.0):
        self.sock = sock
        self.subs = ()  # tuple of Subscriber, replaced whole (read by other threads without a lock)
        for r in reply:
            r = tuple(r)
            self.subs += (Subscriber(ipv4(r[0]), int(r[1]), AUDIO_FORMATS[str(r[2]) if len(r) > 2 else "none"]),)
        self.counters = collections.Counter()
        self._lock = threading.Lock()
        # error replies: a token bucket
        self._err_rate = float(error_rate)
        self._err_tokens = float(error_rate)
        self._err_time = time.monotonic()

    def count(self, key, n=1):
        with self._lock:
            self.counters[key] += n

    def counts(self):
        """A copy of the counters, taken under their lock."""
        with self._lock:
            return dict(self.counters)

    def send(self, pkt, addr):
        try:
            self.sock.sendto(pkt, addr)
        except OSError:
            self.count("send_errors")
        else:
            self.count("packets_out")

    def send_all(self, pkt, subs=None):
        for s in self.subs if subs is None else subs:
            self.send(pkt, s.addr)

    def ack(self, address, *values):
        self.send_all(P.encode(A.ACK, address, *values))

    def error(self, code, message):
        now = time.monotonic()
        self._err_tokens = min(self._err_rate, self._err_tokens + (now - self._err_time) * self._err_rate)
        self._err_time = now
        if self._err_tokens < 1:
            self.count("errors_suppressed")
            return
        self._err_tokens -= 1
        if self.subs:
            self.send_all(P.encode(A.ERROR, code, P.clip(message)))

    def on_result(self, res):
        """The engine's sink: one ``sendto`` per message and subscriber, no queue in between."""
        subs = self.subs
        if not subs:
            return
        for pkt in P.encode_result(res):
            self.send_all(pkt, subs)
