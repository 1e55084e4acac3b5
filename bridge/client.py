"""A small OSC client for the bridge: send audio and control, receive replies.

For scripts, tests and benchmarks (Max and Pd users have their own patches)::

    from genredream.bridge.client import OscClient
    with OscClient(server_port=9137) as c:
        c.subscribe()                       # replies to this client's own port
        c.send_audio(seq, block, 48000)     # float32 [frames] or [frames, channels]
        addr, args = c.wait_for("/genredream/scores")
"""

from __future__ import annotations

import collections
import socket
import time

import numpy as np

from genredream.bridge import protocol as P
from genredream.bridge.protocol import A

__all__ = ["OscClient"]


class OscClient:
    """A UDP socket on 127.0.0.1 (any free port) talking to a bridge at ``server_host:server_port``."""

    def __init__(self, server_port=P.DEFAULT_PORT, server_host="127.0.0.1", rcvbuf=4 << 20):
        self.server = (server_host, int(server_port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        except OSError:
            pass
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.inbox = collections.deque()  # (address, args, arrival perf_counter) received but not yet asked for

    # -- sending --------------------------------------------------------------------

    def send(self, address, *args):
        self.sock.sendto(P.encode(address, *args), self.server)

    def send_raw(self, dgram):
        self.sock.sendto(dgram, self.server)

    def subscribe(self, audio="none", port=None, rate=None, frames=None):
        """Subscribe (or renew) ``port`` (default: this client's); ``rate`` and ``frames`` as docs/osc.md says."""
        extra = () if rate is None and frames is None else (int(rate or 0),) + (() if frames is None else (int(frames),))
        self.send(A.SUBSCRIBE, "127.0.0.1", port or self.port, audio, *extra)

    @staticmethod
    def audio_packet(seq, block, rate):
        """``/genredream/audio/in seq rate channels blob`` for a float block [frames] or [frames, channels]."""
        x = np.asarray(block, dtype=np.float32)
        ch = 1 if x.ndim == 1 else x.shape[1]
        return P.encode(A.AUDIO_IN, int(seq), int(rate), ch, x.astype(">f4").tobytes())

    def send_audio(self, seq, block, rate):
        self.sock.sendto(self.audio_packet(seq, block, rate), self.server)

    def send_audio_f(self, seq, block):
        self.sock.sendto(P.encode_floats(A.AUDIO_IN_F, [int(seq)], np.asarray(block, np.float32).ravel()), self.server)

    # -- receiving ------------------------------------------------------------------

    def _recv(self, timeout):
        self.sock.settimeout(max(timeout, 1e-4))
        try:
            d, _ = self.sock.recvfrom(65536)
        except (socket.timeout, BlockingIOError):
            return None
        t = time.perf_counter()
        address, _, args = P.decode(d)
        return address, args, t, len(d)

    def drain(self, timeout=0.2):
        """Receive until ``timeout`` seconds pass with nothing; return and clear everything received."""
        while (m := self._recv(timeout)) is not None:
            self.inbox.append(m[:3])
        out = [(a, args) for a, args, _ in self.inbox]
        self.inbox.clear()
        return out

    def wait_for(self, address, timeout=5.0, pred=None, with_time=False):
        """The first message at ``address`` (and matching ``pred(args)``); others stay in :attr:`inbox`."""
        for i, (a, args, t) in enumerate(self.inbox):
            if a == address and (pred is None or pred(args)):
                del self.inbox[i]
                return (a, args, t) if with_time else (a, args)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            m = self._recv(left)
            if m is None:
                break
            a, args, t, _ = m
            if a == address and (pred is None or pred(args)):
                return (a, args, t) if with_time else (a, args)
            self.inbox.append((a, args, t))
        raise TimeoutError(f"no {address} within {timeout} s; received meanwhile: {[m[0] for m in list(self.inbox)[-8:]]}")

    def status(self, timeout=5.0):
        """Ask for /genredream/status and return it as a dict."""
        self.send(A.STATUS)
        _, args = self.wait_for(A.STATUS, timeout)
        return dict(zip(args[0::2], args[1::2]))

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
