"""The bridge's subscribers, and everything it sends them: acks, errors, scores.

Subscribers are leases on ``host:port`` (:mod:`genredream.bridge.subscribers`).
A subscriber whose sends fail is dropped: on Linux the socket has
``IP_RECVERR`` set, so an ICMP "port unreachable" for a vanished client is
queued with the address it was meant for; the failed ``sendto`` (the kernel
reports a pending error on the *next* send, whoever it is for) reads that
queue, drops the subscribers it names and sends again. Errors are
rate-limited by a token bucket: a flood of garbage must not become a flood
of replies (the rest are counted as ``errors_suppressed``).
"""

from __future__ import annotations

import collections
import ipaddress
import os
import socket
import threading
import time

from genredream.bridge import protocol as P
from genredream.bridge.protocol import A, ProtocolError
from genredream.bridge.subscribers import DEFAULT_LEASE, MAX_SUBSCRIBERS, Subscriber, SubscriberTable

__all__ = ["Subscriber", "Replies", "AUDIO_FORMATS", "MAX_SUBSCRIBERS", "ipv4"]

#: What a subscriber may ask for as audio out, by the names a patch may use.
AUDIO_FORMATS = {"none": "none", "": "none", "0": "none", "b": "b", "blob": "b", "f": "f", "floats": "f", "float": "f",
                 "fn": "fn", "bi": "bi"}
#: Linux's IP_RECVERR (not exported by Python's socket module): ICMP errors queued with their address.
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)


def sys_has_recverr():
    """True where the kernel queues ICMP errors for unconnected UDP sockets (Linux)."""
    import sys

    return sys.platform.startswith("linux")


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

    ``reply``: the default subscribers, ``(host, port)`` or ``(host, port, audio)``
    (they never expire). ``lease``: seconds a subscription lasts without renewal.
    """

    def __init__(self, sock, reply=(), error_rate=50.0, lease=DEFAULT_LEASE, out_block=512):
        self.sock = sock
        self.table = SubscriberTable(lease)
        now = time.monotonic()
        for r in reply:
            r = tuple(r)
            self.table.add_default(Subscriber(ipv4(r[0]), int(r[1]), AUDIO_FORMATS[str(r[2]) if len(r) > 2 else "none"],
                                              frames=int(out_block), renewed=now))
        self._errq = None  # a non-blocking handle on the same socket, to read its error queue
        if sock.family == socket.AF_INET and sys_has_recverr():
            try:
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
                self._errq = socket.socket(fileno=os.dup(sock.fileno()))
                self._errq.setblocking(False)
            except OSError:
                self._errq = None
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

    @property
    def subs(self):
        """The subscribers, a tuple replaced whole (read without a lock)."""
        return self.table.subs

    def close(self):
        if self._errq is not None:
            self._errq.close()
            self._errq = None

    def reap(self):
        """Read the socket's queued send errors and drop the subscribers they name; returns how many went."""
        errq, failed = self._errq, set()
        if errq is None:
            return 0
        for _ in range(1024):
            try:
                _, _, _, addr = errq.recvmsg(1, 0, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if addr:
                failed.add(addr[:2])
        if not failed:
            return 0
        self.count("send_failures", len(failed))
        return self.table.drop(failed)

    def send(self, pkt, addr):
        for attempt in (0, 1):
            try:
                self.sock.sendto(pkt, addr)
            except OSError:
                # The error may be an earlier send's, reported now: read who failed, then try once more.
                dropped = self.reap()
                if attempt or not (dropped or self._errq is not None):
                    self.count("send_errors")
                    if not dropped:
                        self.table.drop([addr])
                    return
            else:
                self.count("packets_out")
                return

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
