"""Flood a UDP port on 127.0.0.1 as fast as one process can (a peer for bench_osc_flood.py).

Usage: python benchmarks/osc_flood.py PORT SECONDS [mix|garbage|audio]

Sends, for SECONDS, 512-sample ``/genredream/audio/in`` packets at 48 kHz
(valid, numbered), random garbage (1-300 bytes), or both alternately (mix),
then prints the rate it achieved (datagrams/s) on stdout. Loopback only; the
loop stops by itself.
"""

import os
import socket
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from genredream.bridge import protocol as P  # noqa: E402
from genredream.bridge.protocol import A  # noqa: E402


def main():
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "mix"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rng = np.random.default_rng(0)
    garbage = [rng.bytes(int(n)) for n in rng.integers(1, 300, 64)]
    noise = (0.1 * rng.standard_normal(512)).astype(">f4").tobytes()
    # One encoded packet, its sequence number patched in place: the sender must be fast.
    pkt = bytearray(P.encode(A.AUDIO_IN, 0, 48000, 1, noise))
    seq_at = pkt.index(b",iiib") + 8
    dest = ("127.0.0.1", port)
    n = seq = 0
    t0 = time.perf_counter()
    t_end = t0 + seconds
    while time.perf_counter() < t_end:
        for k in range(64):
            try:
                if mode == "audio" or (mode == "mix" and k % 2):
                    pkt[seq_at : seq_at + 4] = seq.to_bytes(4, "big")
                    s.sendto(pkt, dest)
                    seq = (seq + 1) & 0x7FFFFFFF
                else:
                    s.sendto(garbage[k], dest)
            except OSError:
                pass
            n += 1
    print(f"{n / (time.perf_counter() - t0):.0f}")


if __name__ == "__main__":
    main()
