"""The bridge's subscribers: a table of leases on ``host:port``.

A subscription lasts ``lease`` seconds from its last renewal (sending the
same ``/genredream/subscribe`` again renews it); the bridge sweeps expired
ones away (:meth:`SubscriberTable.expire`), and drops a subscriber whose
sends fail (:meth:`SubscriberTable.drop`, called by
:class:`genredream.bridge.replies.Replies`). When the table is full the
stalest leased subscription (oldest last renewal) gives way, never the
newcomer. Default subscribers (``--osc-reply``) never expire, are never
dropped nor evicted.

The table is a tuple replaced whole, so the threads that send (receive,
control worker, the engine's inference worker, audio out) read it without a
lock; every change is made under :attr:`SubscriberTable.lock`.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, replace

__all__ = ["Subscriber", "SubscriberTable", "MAX_SUBSCRIBERS", "DEFAULT_LEASE"]

MAX_SUBSCRIBERS = 32
#: Seconds a subscription lasts without renewal (``--osc-lease``).
DEFAULT_LEASE = 60.0


@dataclass(frozen=True)
class Subscriber:
    """One ``host:port`` that gets the replies.

    ``audio``: ``none``, ``b`` (blob, every channel), ``f`` (floats, mono), ``fn``
    (floats, every channel) or ``bi`` (indexed blob, every channel).
    ``rate``: Hz asked for dreamed audio, 0 = automatic (see
    :meth:`genredream.bridge.audio_out.AudioOut.rate_of`). ``frames``: frames
    per audio packet at most. ``origin``: the address the subscribe came from
    (whose declared audio rate "automatic" follows when host:port sends none).
    ``renewed``: ``time.monotonic()`` of the last renewal. ``permanent``: a
    default subscriber, never expires.
    """

    host: str
    port: int
    audio: str = "none"
    rate: int = 0
    frames: int = 512
    origin: tuple = ()
    renewed: float = 0.0
    permanent: bool = False

    @property
    def addr(self):
        return (self.host, self.port)

    def same_request(self, other):
        return (self.audio, self.rate, self.frames) == (other.audio, other.rate, other.frames)


class SubscriberTable:
    """Leased subscriptions, at most ``size``; ``lease`` seconds (0: never expire)."""

    def __init__(self, lease=DEFAULT_LEASE, size=MAX_SUBSCRIBERS):
        if lease < 0:
            raise ValueError(f"lease must be >= 0 seconds, got {lease}")
        self.lease = float(lease)
        self.size = int(size)
        self.subs = ()
        self.lock = threading.Lock()
        self.counters = collections.Counter()  # evicted, expired, dropped, renewed

    def add_default(self, sub):
        with self.lock:
            self.subs = tuple(s for s in self.subs if s.addr != sub.addr) + (replace(sub, permanent=True),)

    def subscribe(self, sub, now=None):
        """Add or renew ``sub``; returns ``(old, evicted)``: the subscription it replaced
        (or None) and the one that gave way to it (or None).

        Raises ``OverflowError`` only when the table is full of default subscribers.
        """
        now = time.monotonic() if now is None else now
        with self.lock:
            old = next((s for s in self.subs if s.addr == sub.addr), None)
            rest = tuple(s for s in self.subs if s.addr != sub.addr)
            evicted = None
            if len(rest) >= self.size:
                leased = [s for s in rest if not s.permanent]
                if not leased:
                    raise OverflowError(f"{self.size} default subscribers fill the table")
                evicted = min(leased, key=lambda s: s.renewed)
                rest = tuple(s for s in rest if s is not evicted)
                self.counters["evicted"] += 1
            new = replace(sub, renewed=now, permanent=bool(old and old.permanent))
            self.subs = rest + (new,)
            if old is not None:
                self.counters["renewed"] += 1
            return old, evicted

    def remove(self, addr):
        """Remove ``addr``; returns the table as it was before (empty tuple when it was not there)."""
        with self.lock:
            before = self.subs
            if all(s.addr != addr for s in before):
                return ()
            self.subs = tuple(s for s in before if s.addr != addr)
            return before

    def expire(self, now=None):
        """Remove the leases that ran out; returns them."""
        if not self.lease:
            return []
        now = time.monotonic() if now is None else now
        subs = self.subs
        if all(s.permanent or now - s.renewed < self.lease for s in subs):
            return []
        with self.lock:
            gone = [s for s in self.subs if not s.permanent and now - s.renewed >= self.lease]
            if gone:
                self.subs = tuple(s for s in self.subs if s not in gone)
                self.counters["expired"] += len(gone)
            return gone

    def drop(self, addrs):
        """Remove the leased subscribers at ``addrs`` (their sends failed); returns how many went."""
        addrs = set(addrs)
        if not any(s.addr in addrs and not s.permanent for s in self.subs):
            return 0
        with self.lock:
            gone = [s for s in self.subs if s.addr in addrs and not s.permanent]
            self.subs = tuple(s for s in self.subs if s not in gone)
            self.counters["dropped"] += len(gone)
            return len(gone)

    def ages(self, now=None):
        """``host:port:age_s`` for every subscriber (age: seconds since the last renewal), comma-separated."""
        now = time.monotonic() if now is None else now
        return ",".join(f"{s.host}:{s.port}:{max(0.0, now - s.renewed):.1f}" for s in self.subs)
