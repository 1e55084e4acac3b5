"""The OSC port, bound before the models load: status answers "loading", audio is kept.

`genredream run --osc-port N` takes seconds to import torch and load its
models. A port bound only after that would lose the first packets of a
Max or Pd patch and leave ``/genredream/status`` unanswered. :class:`EarlyPort` binds the port first (a port in use is
reported before anything is loaded), answers ``/genredream/status`` with
``state loading`` (and ``/genredream/ping``) at once, and keeps every other
datagram, audio included, in arrival order, up to :data:`MAX_KEPT`
(counted beyond that). When the engine is ready, :meth:`EarlyPort.handover`
gives the same socket, and the datagrams kept, to the bridge
(:class:`genredream.bridge.server.OscBridge`): no datagram falls between the two.

Imports nothing heavy: it runs before torch is imported.
"""

from __future__ import annotations

import collections
import socket
import threading
import time

from genredream.bridge import protocol as P
from genredream.bridge.protocol import A

__all__ = ["EarlyPort", "MAX_KEPT"]

#: Datagrams kept while loading: 20 000 packets of 512 samples is 3.5 min of 48 kHz audio.
MAX_KEPT = 20000


class EarlyPort:
    """A bound UDP socket answering "loading" until :meth:`handover`."""

    def __init__(self, host, port, max_kept=MAX_KEPT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        self.sock.bind((host, int(port)))  # OSError (port in use) goes to the caller, before any loading
        self.sock.settimeout(0.005)
        self.port = self.sock.getsockname()[1]
        self.kept = collections.deque()
        self.max_kept = int(max_kept)
        self.counters = collections.Counter()
        self._t0 = time.monotonic()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="genredream-osc-early", daemon=True)
        self._thread.start()

    def _loop(self):
        while self._running:
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                if not self._running:
                    break
                continue
            self._handle(data, addr)

    def _handle(self, data, addr):
        if not P.is_bundle(data):
            try:
                address, _, args = P.decode(data)
            except Exception:
                address = None  # the bridge will reject and count it, with its reason
            if address == A.STATUS:
                self.counters["status_answered"] += 1
                for pkt in P.encode_kv(A.STATUS, [], [("state", "loading"), ("seconds", round(time.monotonic() - self._t0, 3)), ("kept", len(self.kept))]):
                    self._send(pkt, addr)
                return
            if address == A.PING:
                self._send(P.encode(A.PONG, *args), addr)
                return
        if len(self.kept) >= self.max_kept:
            self.counters["dropped"] += 1
            return
        self.kept.append((data, addr))

    def _send(self, pkt, addr):
        try:
            self.sock.sendto(pkt, addr)
        except OSError:
            self.counters["send_errors"] += 1

    def handover(self):
        """Stop answering; return ``(socket, [(datagram, address), ...])`` kept in arrival order."""
        self._running = False
        self._thread.join(timeout=5)
        kept = list(self.kept)
        self.kept.clear()
        return self.sock, kept

    def close(self):
        self._running = False
        self._thread.join(timeout=5)
        self.sock.close()
