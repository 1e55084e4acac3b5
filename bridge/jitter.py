"""A small jitter buffer: audio packets by sequence number, back in order.

UDP delivers audio packets lost, duplicated and out of order. The buffer
holds up to ``depth`` packets that arrived ahead of a missing one; the
missing packet is given up (a *gap*, zero-filled by the caller so the
engine's sample clock stays exact) when more than ``depth`` packets wait
behind it, or when the oldest waiting packet has waited ``max_wait``
seconds. Both rules are checked on every :meth:`JitterBuffer.push` and by
:meth:`JitterBuffer.poll`, which the receive loop calls when the socket is
quiet; nothing here sleeps or blocks.

A new stream's first packets are held the same way (``depth`` packets or
``max_wait``), so that even its first two packets may arrive swapped.

Sequence numbers are compared modulo 2**32, so a sender's int32 counter may
wrap. A sequence number far *behind* the next expected one (more than
``restart_back``) means the client restarted: the stream restarts cleanly
(no flood of "duplicates", no gap fill). A jump far *ahead* (more than
``max_gap`` packets missing) restarts it too, rather than zero-filling
seconds of audio for one corrupt or stale number.

Events returned (in stream order):

* ``("data", seq, item)``: the packet, in order;
* ``("gap", seq, n)``: ``n`` packets from ``seq`` on were lost;
* ``("restart", seq, None)``: a new stream starts at ``seq``; what came before
  has been emitted.

Counters (:attr:`JitterBuffer.counters`): ``received``, ``emitted``,
``lost`` (packets zero-filled), ``gaps`` (gap events), ``duplicates``,
``late`` (arrived after being zero-filled), ``reordered`` (arrived after a
higher sequence number and were put back in order), ``restarts``.
"""

from __future__ import annotations

import collections

__all__ = ["JitterBuffer"]

_MOD = 1 << 32


def seq_diff(a, b):
    """``a - b`` modulo 2**32, as a signed number in [-2**31, 2**31)."""
    return ((a - b + (1 << 31)) % _MOD) - (1 << 31)


class JitterBuffer:
    """Reorder packets by sequence number; detect loss, duplicates and restarts.

    Parameters
    ----------
    depth : int
        Packets that may wait behind a missing one before it is declared lost.
    max_wait : float
        Seconds a waiting packet may wait before the gap ahead of it is declared lost.
    max_gap : int
        A forward jump with more missing packets than this restarts the stream.
    restart_back : int
        A sequence number more than this far behind restarts the stream.
    """

    def __init__(self, depth=4, max_wait=0.03, max_gap=64, restart_back=64):
        if depth < 0 or max_wait < 0 or max_gap < 1 or restart_back < 1:
            raise ValueError("depth and max_wait must be >= 0, max_gap and restart_back >= 1")
        self.depth, self.max_wait, self.max_gap, self.restart_back = int(depth), float(max_wait), int(max_gap), int(restart_back)
        self.counters = collections.Counter()
        self._pending = {}  # seq -> (item, arrival time)
        self._expected = None
        self._highest = None
        self._starting = True  # nothing emitted yet in this stream: an earlier seq may still become its start
        self._filled = collections.deque(maxlen=4 * (max_gap + depth))
        self._filled_set = set()

    @property
    def expected(self):
        """The next sequence number the stream needs (None before the first packet)."""
        return self._expected

    @property
    def waiting(self):
        return len(self._pending)

    def reset(self):
        """Forget the stream (what is pending is dropped, not emitted)."""
        self._pending.clear()
        self._expected = self._highest = None
        self._starting = True
        self._filled.clear()
        self._filled_set.clear()

    def push(self, seq, item, now):
        """Add a packet; return the events it releases."""
        seq = int(seq) % _MOD
        self.counters["received"] += 1
        out = []
        if self._expected is None:
            self._expected = self._highest = seq
        d = seq_diff(seq, self._expected)
        if self._starting and -self.restart_back <= d < 0:
            self._expected, d = seq, 0  # the stream's first packets arrived swapped
        if d < -self.restart_back or d > self.max_gap + self.depth:
            out += self._restart(seq)
        elif d < 0:
            if seq in self._filled_set:
                self.counters["late"] += 1
            else:
                self.counters["duplicates"] += 1
            return out
        if seq in self._pending:
            self.counters["duplicates"] += 1
            return out
        if seq_diff(seq, self._highest) < 0:
            self.counters["reordered"] += 1
        else:
            self._highest = seq
        self._pending[seq] = (item, now)
        self._drain(now, out)
        return out

    def poll(self, now):
        """Release what waited too long behind a gap (call when the socket is quiet)."""
        out = []
        if self._pending:
            self._drain(now, out)
        return out

    def flush(self):
        """Emit everything pending, gaps zero-filled, as if the stream ended."""
        out = []
        self._starting = False
        while self._pending:
            self._give_up(out)
            self._emit_ready(out)
        return out

    # -- internals ------------------------------------------------------------

    def _restart(self, seq):
        out = self.flush()
        self.counters["restarts"] += 1
        self._expected = self._highest = seq
        self._starting = True
        self._filled.clear()
        self._filled_set.clear()
        out.append(("restart", seq, None))
        return out

    def _emit_ready(self, out):
        while self._expected in self._pending:
            item, _ = self._pending.pop(self._expected)
            out.append(("data", self._expected, item))
            self.counters["emitted"] += 1
            self._expected = (self._expected + 1) % _MOD

    def _give_up(self, out):
        """Declare the packets up to the oldest pending one lost."""
        nxt = min(self._pending, key=lambda s: seq_diff(s, self._expected))
        n = seq_diff(nxt, self._expected)
        if n > 0:
            out.append(("gap", self._expected, n))
            self.counters["lost"] += n
            self.counters["gaps"] += 1
            for k in range(n):
                s = (self._expected + k) % _MOD
                if len(self._filled) == self._filled.maxlen:
                    self._filled_set.discard(self._filled[0])
                self._filled.append(s)
                self._filled_set.add(s)
        self._expected = nxt

    def _drain(self, now, out):
        if self._starting:
            # Hold a new stream's first packets for `depth` packets or `max_wait`,
            # so that a swap of its very first packets is still put in order.
            if len(self._pending) <= self.depth and now - min(t for _, t in self._pending.values()) < self.max_wait:
                return
            self._starting = False
        self._emit_ready(out)
        while self._pending and (
            len(self._pending) > self.depth or now - min(t for _, t in self._pending.values()) >= self.max_wait
        ):
            self._give_up(out)
            self._emit_ready(out)
