"""The OSC bridge on loopback: round trip, sustained audio, message rate against python-osc.

* **round trip**: from sending the audio packet that completes a window (48 kHz,
  512-sample packets, test-geng model at 8 kHz behind a 48 -> 8 kHz resampler)
  to the ``/genredream/scores`` message arriving at a subscriber: p50/p99 in
  ``extra_info`` (ms), with the engine's own latency for comparison.
* **sustained**: 48 kHz audio in 512-sample packets at real-time pace, and the
  dreamed audio out as blobs to a subscriber, for 60 s under ``make bench``
  (``GENREDREAM_OSC_SUSTAIN_S`` overrides; 3 s under ``make test``, where
  benchmarks run once with timing off). Zero loss is asserted both ways.
  The dreamer is engine/dream.py's on the cheap test model (one step a hop):
  the bridge's job measured here is moving the audio, not dreaming it.
* **message rate**: the same 512-sample ``/genredream/audio/in`` packets sent to
  our server and to python-osc's ``BlockingOSCUDPServer`` (a handler that
  decodes the blob, as ours does, but feeds no engine), measured in the same
  run: the time to handle a burst of 200 packets (the pair's ratio), and the
  highest paced rate with no loss (``max_lossless_per_s``, probed from a
  separate sender process so the sender does not share the server's GIL).
"""

import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from genredream.bridge import protocol as P
from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A
from genredream.bridge.server import OscBridge
from genredream.engine.runtime import Engine
from tests.conftest import make_model_file

SR, BLOCK = 48000, 512
RCVBUF = 4 << 20
SEQ_OFFSET = 32  # of the seq int in "/genredream/audio/in\0...,iiib\0\0\0" + seq


@pytest.fixture(scope="module")
def geng_file(tmp_path_factory):
    return make_model_file("geng", tmp_path_factory.mktemp("models"), ["a", "b", "c"], seed=0)


def _noise(n, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# -- round trip ---------------------------------------------------------------------------


def test_osc_round_trip_last_packet_to_scores(benchmark, geng_file):
    e = Engine(SR)
    e.load_model(geng_file)
    # audio_speed=None: packets go out as fast as the hops allow; the server's 4x-real-time
    # policing (issue 19) would otherwise reject them, and this measures latency, not policing.
    b = OscBridge(e, port=0, audio_speed=None).start()
    e.start()
    c = OscClient(b.port)
    c.subscribe()
    c.wait_for(A.ACK)
    y = _noise(SR * 60)
    state = {"seq": 0}
    times = []

    def boundary_packet():
        """Send packets up to the one that crosses the next hop boundary; return that one."""
        c.drain(0.0)
        c.inbox.clear()
        while True:
            s = state["seq"]
            i = (s * BLOCK) % (y.size - BLOCK)
            pkt = c.audio_packet(s, y[i : i + BLOCK], SR)
            state["seq"] += 1
            written = s * BLOCK
            if (written + BLOCK) // e.hop_samples > written // e.hop_samples:
                return (pkt,), {}
            c.send_raw(pkt)
            time.sleep(0.0005)  # keep the jitter buffer's packets in order on a busy machine

    def round_trip(pkt):
        t0 = time.perf_counter()
        c.send_raw(pkt)
        _, _, t1 = c.wait_for(A.SCORES, timeout=10, with_time=True)
        times.append((t1 - t0) * 1e3)

    try:
        benchmark.pedantic(round_trip, setup=boundary_packet, rounds=40, iterations=1, warmup_rounds=2)
    finally:
        b.stop()
        e.stop()
        c.close()
    t = np.array(times[2:] if len(times) > 2 else times)
    eng = e.latency_stats()
    benchmark.extra_info.update(
        pair="osc round trip: last audio packet -> scores at a subscriber",
        role="ours",
        round_trip_p50_ms=round(float(np.percentile(t, 50)), 3),
        round_trip_p99_ms=round(float(np.percentile(t, 99)), 3),
        engine_latency_p50_ms=round(eng["p50"], 3),
        engine_latency_p99_ms=round(eng["p99"], 3),
        windows=int(t.size),
        lost=b.jitter.counters["lost"],
    )
    assert b.jitter.counters["lost"] == 0 and b.counters["rejected"] == 0


# -- sustained --------------------------------------------------------------------------------


def test_osc_sustained_48k_audio_in_and_dreamed_audio_out(benchmark, geng_file):
    seconds = float(os.environ.get("GENREDREAM_OSC_SUSTAIN_S", 3.0 if benchmark.disabled else 60.0))
    n_packets = int(seconds * SR / BLOCK)
    from genredream.engine.dream import Dreamer

    e = Engine(SR)
    e.load_model(geng_file)
    e.set_dreamer(Dreamer(geng_file, steps=1))
    b = OscBridge(e, port=0).start()
    e.start()
    rx = OscClient(b.port)
    rx.subscribe("b")
    rx.wait_for(A.ACK)
    received = {"samples": 0, "packets": 0, "seqs": [], "scores": 0}
    stop = threading.Event()

    def receive():
        sock = rx.sock
        sock.settimeout(0.05)
        while not stop.is_set():
            try:
                d, _ = sock.recvfrom(65536)
            except socket.timeout:
                continue
            address, _, args = P.decode(d)
            if address == A.AUDIO_OUT:
                received["packets"] += 1
                received["seqs"].append(args[0])
                received["samples"] += len(args[3]) // 4
            elif address == A.SCORES:
                received["scores"] += 1

    t_rx = threading.Thread(target=receive, daemon=True)
    t_rx.start()
    y = _noise(SR * 10)
    tx = OscClient(b.port)

    def run():
        t0 = time.perf_counter()
        for s in range(n_packets):
            due = t0 + s * BLOCK / SR
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            i = (s * BLOCK) % (y.size - BLOCK)
            tx.send_audio(s, y[i : i + BLOCK], SR)
        time.sleep(1.5)  # the last hops' dream
        deadline = time.monotonic() + 10
        while received["samples"] < e.output.total_written and time.monotonic() < deadline:
            time.sleep(0.01)

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        stop.set()
        t_rx.join()
        b.stop()
        e.stop()
        rx.close()
        tx.close()
    j = b.jitter.counters
    benchmark.extra_info.update(
        pair="osc sustained: 48 kHz in 512-sample packets + dreamed audio out",
        role="ours",
        seconds=seconds,
        packets_in=n_packets,
        lost_in=j["lost"],
        reordered_in=j["reordered"],
        samples_out=received["samples"],
        dreamer_wrote=e.output.total_written,
        dream_rtf_p50=round(e.dreamer.status()["rtf_p50"], 4),
        packets_out=received["packets"],
        out_seq_gaps=int(np.sum(np.diff(received["seqs"]) != 1)) if received["seqs"] else 0,
        scores_messages=received["scores"],
        engine_latency_p99_ms=round(e.latency_stats()["p99"], 3),
        budget_s=seconds,
    )
    assert e.ring.total_written == n_packets * BLOCK
    assert j["lost"] == 0 and j["duplicates"] == 0 and b.counters["rejected"] == 0
    assert e.output.total_written >= (n_packets * BLOCK) - 2 * e.hop_samples - e.dreamer.latency_samples
    assert received["samples"] == e.output.total_written, "dreamed audio lost on the way out"
    assert received["seqs"] == list(range(len(received["seqs"])))


# -- message rate: ours vs python-osc ----------------------------------------------------------

_SENDER = r"""
import socket, struct, sys, time
port, rate, count, off = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pkt = bytearray(sys.stdin.buffer.read())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
t0 = time.perf_counter()
i = 0
while i < count:
    due = int((time.perf_counter() - t0) * rate) + 1
    while i < min(due, count):
        struct.pack_into(">i", pkt, off, i)
        s.sendto(pkt, ("127.0.0.1", port))
        i += 1
    time.sleep(0.0005)
print(i, time.perf_counter() - t0)
"""


def _audio_packet(seq=0):
    d = P.encode(A.AUDIO_IN, seq, SR, 1, _noise(BLOCK).astype(">f4").tobytes())
    assert struct_seq(d) == seq
    return d


def struct_seq(d):
    return int(np.frombuffer(d[SEQ_OFFSET : SEQ_OFFSET + 4], ">i4")[0])


def _probe(port, handled, rates, seconds):
    """Highest rate (packets/s, as achieved by the sender) with every packet handled."""
    best = 0
    pkt = _audio_packet()
    for rate in rates:
        count = int(rate * seconds)
        before = handled()
        out = subprocess.run([sys.executable, "-c", _SENDER, str(port), str(rate), str(count), str(SEQ_OFFSET)],
                             input=pkt, capture_output=True, timeout=120, check=True)
        sent, elapsed = int(out.stdout.split()[0]), float(out.stdout.split()[1])
        deadline = time.monotonic() + 3
        while handled() - before < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        if handled() - before < sent:
            break
        best = max(best, sent / elapsed)  # the rate the sender achieved, not the one asked for
        time.sleep(0.1)
    return best


class _PythonOscReference:
    def __init__(self):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.count = 0

        def on_audio(address, seq, rate, channels, blob):
            np.frombuffer(blob, ">f4").astype(np.float32)
            self.count += 1

        d = Dispatcher()
        d.map(A.AUDIO_IN, on_audio)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _burst(port, handled, n=200):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pkts = [_audio_packet(s) for s in range(n)]

    def run():
        before = handled()
        for p in pkts:
            sock.sendto(p, ("127.0.0.1", port))
        deadline = time.monotonic() + 10
        while handled() - before < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{n - (handled() - before)} of {n} packets lost in a burst")
            time.sleep(0.0002)

    return run, sock


def _rates(benchmark):
    return ([2000], 0.2) if benchmark.disabled else ([2000, 5000, 10000, 15000, 20000, 30000, 40000, 60000], 1.0)


PAIR_RATE = "osc message rate: 512-sample audio packets, burst of 200"


def test_osc_message_rate_ours(benchmark):
    e = Engine(SR)
    # each probe's sender takes over from the last; no real-time cap on audio: this measures the server's capacity
    b = OscBridge(e, port=0, rcvbuf=RCVBUF, source_idle=0.0, audio_speed=None).start()
    handled = lambda: b.counters["packets"]  # noqa: E731
    try:
        run, sock = _burst(b.port, handled)
        benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
        rates, seconds = _rates(benchmark)
        time.sleep(0.1)
        best = _probe(b.port, handled, rates, seconds)
    finally:
        b.stop()
    # Probes above capacity fill the bounded audio queue, which rejects as `overloaded` by design
    # (issue 19); any other rejection would mean the packets themselves were refused.
    other = {k: v for k, v in b.counters.items() if k.startswith("rejected_") and k != "rejected_overloaded" and v}
    assert not other, other
    benchmark.extra_info.update(pair=PAIR_RATE, role="ours", max_lossless_per_s=round(best), probe_s=seconds,
                                note="strict scan + python-osc parse + jitter buffer + engine.write per packet")


def test_osc_message_rate_python_osc_reference(benchmark):
    ref = _PythonOscReference()
    handled = lambda: ref.count  # noqa: E731
    try:
        run, sock = _burst(ref.port, handled)
        benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
        rates, seconds = _rates(benchmark)
        best = _probe(ref.port, handled, rates, seconds)
    finally:
        ref.close()
    benchmark.extra_info.update(pair=PAIR_RATE, role="reference", max_lossless_per_s=round(best), probe_s=seconds,
                                label="python-osc BlockingOSCUDPServer + Dispatcher, blob decoded, no engine")
