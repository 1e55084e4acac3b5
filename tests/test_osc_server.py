"""bridge/server.py over real UDP on 127.0.0.1: control, scores, audio in and out, robustness."""

import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genredream.bridge import protocol as P
from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A
from genredream.bridge.server import OscBridge
from genredream.engine.ringbuffer import RingBuffer
from genredream.engine.runtime import Engine
from tests.conftest import make_model_file


@pytest.fixture(scope="module")
def geng_file(tmp_path_factory):
    return make_model_file("geng", tmp_path_factory.mktemp("models"), ["a", "b", "c"], seed=0)




def settle(bridge, n, timeout=10.0):
    """Wait until the bridge has handled ``n`` datagrams."""
    deadline = time.monotonic() + timeout
    while bridge.counters["packets"] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"bridge handled {bridge.counters['packets']} of {n} datagrams")
        time.sleep(0.002)


def music(seconds, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


# -- control -------------------------------------------------------------------------


def test_subscribe_unsubscribe_are_acknowledged(served):
    b, c = served(Engine(8000))
    c.subscribe()
    _, args = c.wait_for(A.ACK)
    # the ack: host port audio, the rate in force (the engine's: this client sends no audio), frames, lease
    assert args == [A.SUBSCRIBE, "127.0.0.1", c.port, "none", 8000, 512, pytest.approx(60.0)]
    assert [s.addr for s in b.subscribers] == [("127.0.0.1", c.port)]
    c.send(A.UNSUBSCRIBE, "127.0.0.1", float(c.port))  # Pd sends numbers as floats
    assert c.wait_for(A.ACK)[1] == [A.UNSUBSCRIBE, "127.0.0.1", c.port]
    assert b.subscribers == ()


def test_a_sender_cannot_subscribe_a_third_party(served):
    b, c = served(Engine(8000))
    c.subscribe()
    c.wait_for(A.ACK)
    c.send(A.SUBSCRIBE, "10.1.2.3", 9000)
    _, args = c.wait_for(A.ERROR)
    assert args[0] == "denied"
    assert all(s.host == "127.0.0.1" for s in b.subscribers)


def test_control_errors_and_unknown_addresses_are_answered(served):
    b, c = served(Engine(8000))
    c.subscribe()
    c.wait_for(A.ACK)
    c.send("/genredream/nope", 1)
    assert c.wait_for(A.ERROR)[1][0] == "unknown_address"
    c.send(A.SUBSCRIBE, "127.0.0.1", "not a port")
    assert c.wait_for(A.ERROR)[1][0] == "bad_args"
    c.send(A.WINDOW, 3.0)
    assert c.wait_for(A.ERROR)[1][0] == "unsupported"
    c.send(A.WINDOW, 5.0)
    assert c.wait_for(A.ACK)[1] == [A.WINDOW, 5.0]
    c.send(A.DREAM, 1)
    assert c.wait_for(A.ERROR)[1][0] == "unavailable"  # no dreamer in this engine
    c.send(A.HOP, 0.25)
    assert c.wait_for(A.ACK)[1] == [A.HOP, 0.25]
    assert b.engine.hop_samples == 2000
    st_ = c.status()
    assert st_["rejected"] == 4 and st_["packets"] == st_["accepted"] + st_["rejected"]


def test_dream_controls_reach_the_dreamer(served, geng_file):
    """The real dreamer (engine/dream/stream.py) on the test model: parameters, their checks, and its audio out."""
    from genredream.engine.dream import Dreamer

    e = Engine(8000)
    e.load_model(geng_file)
    e.set_transform(Dreamer(geng_file, steps=1))
    b, c = served(e)
    c.subscribe("b")
    c.wait_for(A.ACK)
    for address, v, applied in [(A.DREAM, 0, 0), (A.DREAM, 1.0, 1), (A.DREAM_LAYER, 0, None), (A.DREAM_LAYER, "all", "all"),
                                (A.DREAM_TARGET, "b", "b"), (A.DREAM_AWAY, 1, 1), (A.DREAM_TARGET, "", ""), (A.DREAM_STEPS, 2.0, 2),
                                (A.DREAM_STEP_SIZE, 0.01, 0.01), (A.DREAM_MIX, 0.5, 0.5)]:
        c.send(address, v)
        _, args = c.wait_for(A.ACK)
        assert args[0] == address
        if applied is not None:
            assert args[1] == pytest.approx(applied), (address, args)
        else:
            assert isinstance(args[1], str) and args[1] != "all"  # a layer index comes back as the layer's name
    p = e.transform.params()
    assert p["steps"] == 2 and p["mix"] == 0.5 and p["target"] is None and p["step_size"] == pytest.approx(0.01)
    for address, v, code in [(A.DREAM_MIX, 2.0, "bad_args"), (A.DREAM_LAYER, "no-such-layer", "bad_args"),
                             (A.DREAM_TARGET, "no-such-label", "bad_args"), (A.DREAM_LATENCY, 250.0, "unsupported"),
                             (A.HOP, 0.25, "unsupported")]:
        c.send(address, v)
        _, args = c.wait_for(A.ERROR)
        assert args[0] == code, (address, args)
    # dreamed audio comes back over OSC, as much as the dreamer wrote
    e.start()
    y = music(1.5, 8000)
    for seq in range(30):
        c.send_audio(seq, y[seq * 400 : seq * 400 + 400], 8000)
        time.sleep(0.01)
    deadline = time.monotonic() + 20
    while e.output.total_written < 4000 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    n = 0
    for a, args in c.drain(0.2):
        if a == A.AUDIO_OUT:
            n += len(args[3]) // 4
    assert n == e.output.total_written > 0


def test_models_load_list_unload_over_osc(served, geng_file):
    b, c = served(Engine(8000))
    c.subscribe()
    c.wait_for(A.ACK)
    c.send(A.MODEL_LOAD, str(geng_file), "g1")
    assert c.wait_for(A.ACK, timeout=30)[1] == [A.MODEL_LOAD, "g1"]
    c.send(A.MODEL_LIST)
    assert c.wait_for(A.MODEL_LIST)[1] == ["g1"]
    assert isinstance(c.wait_for(A.AVAILABLE)[1], list)
    c.wait_for(A.ACK)
    c.send(A.MODEL_LOAD, "/no/such/model.pt")
    _, args = c.wait_for(A.ERROR, timeout=30)
    assert args[0] == "model_load" and "g1" in b.engine.models  # the running model is untouched
    c.send(A.MODEL_UNLOAD, "g1")
    assert c.wait_for(A.ACK)[1] == [A.MODEL_UNLOAD, "g1"]
    c.send(A.MODEL_UNLOAD, "g1")
    assert c.wait_for(A.ERROR)[1][0] == "not_found"


# -- scores ----------------------------------------------------------------------------


def test_scores_reach_a_subscriber_equal_to_what_the_engine_computed(served, geng_file):
    sr = 8000
    e = Engine(sr)
    e.load_model(geng_file)
    got = []
    e.sinks.append(got.append)
    b, c = served(e)
    e.start()
    c.subscribe()
    c.wait_for(A.ACK)
    y = music(1.5, sr)
    for k in range(3):  # a hop of audio at a time, faster than real time (the engine skips windows it cannot score in time)
        for seq in range(8 * k, 8 * k + 8):
            c.send_audio(seq, y[seq * 500 : seq * 500 + 500], sr)
        _, sc = c.wait_for(A.SCORES, timeout=20)
        _, per = c.wait_for(f"{A.SCORES}/test-geng/b")
        _, top = c.wait_for(A.TOP)
        _, win = c.wait_for(A.WINDOW + "/end")
        _, lat = c.wait_for(A.LATENCY)
        r = got[k]
        assert sc[0] == "test-geng" and sc[1::2] == ["a", "b", "c"]
        assert np.allclose(sc[2::2], r.scores, atol=1e-6)
        assert per[0] == pytest.approx(r.scores[1], abs=1e-6)
        assert top[:2] == ["test-geng", r.top[0]]
        assert win[:2] == ["test-geng", r.seq] and P.join_index(win[2], win[3]) == r.end_index
        assert r.partial and win[7] == 1  # 1.5 s of stream: the window still reaches back before its start
        assert lat[1] == pytest.approx(r.latency_ms, abs=1e-3)
    assert e.ring.total_written == y.size


# -- audio in ----------------------------------------------------------------------------


def test_other_rates_and_channel_counts_are_resampled_and_downmixed_mid_stream(served):
    e = Engine(16000)
    b, c = served(e)
    t = np.arange(48000) / 48000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1).astype(np.float32)
    seq = 0
    for i in range(0, 48000, 480):
        c.send_audio(seq, stereo[i : i + 480], 48000)
        seq += 1
    t2 = np.arange(44100) / 44100
    mono = np.sin(2 * np.pi * 440 * t2).astype(np.float32)
    for i in range(0, 44100, 441):
        c.send_audio(seq, mono[i : i + 441], 44100)
        seq += 1
    settle(b, seq)
    time.sleep(0.1)  # the jitter buffer's time rule releases the newest packets
    assert b.counters["format_changes"] == 1 and b.counters["rejected"] == 0
    assert abs(e.ring.total_written - 32000) <= 400  # soxr holds back its filter's delay
    y, _ = e.ring.latest(30000)
    # a 440 Hz sine at 16 kHz throughout: the spectrum peaks at 440 Hz, amplitude ~1 (downmix is a mean)
    spec = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(28000)))
    assert abs(np.argmax(spec) * 16000 / 28000 - 440) < 2
    assert 0.9 < np.max(np.abs(y[1000:-1000])) < 1.1


def test_float_audio_uses_the_declared_format(served):
    e = Engine(16000)
    b, c = served(e)
    c.send(A.AUDIO_IN_FORMAT, 16000.0, 2.0)  # as Pd sends it: floats
    for seq in range(20):
        c.send_audio_f(float(seq), np.full((500, 2), 0.25, np.float32))
    settle(b, 21)
    time.sleep(0.1)
    assert b.f_format == (16000, 2) and e.ring.total_written == 20 * 500
    assert np.allclose(e.ring.latest(100)[0], 0.25)


def test_loss_duplicates_and_swaps_keep_the_clock_exact(served):
    """5 % dropped, 5 % duplicated, 5 % swapped: exact clock, gaps == dropped, every sample in place."""
    sr, n, block = 48000, 2000, 512
    e = Engine(sr)
    # depth only: the test must not race the clock; and no real-time cap on audio (audio_speed):
    # the packets go out as fast as the test can send them
    b, c = served(e, jitter_depth=8, jitter_wait=5.0, audio_speed=None)
    rng = np.random.default_rng(7)
    seqs = np.arange(n)
    dropped = {int(s) for s in seqs[5:-10] if rng.random() < 0.05}
    order = [int(s) for s in seqs if s not in dropped]
    swaps = 0
    for i in range(len(order) - 12):
        if rng.random() < 0.05:
            order[i], order[i + 1] = order[i + 1], order[i]
            swaps += 1
    dups = 0
    send = []
    for s in order:
        send.append(s)
        if rng.random() < 0.05:
            send.append(s)
            dups += 1
    assert len(dropped) > 50 and swaps > 50 and dups > 50
    # Each packet's samples say which packet they are: the ring can be checked sample by sample.
    packets = {s: c.audio_packet(s, np.full(block, (s % 1000) / 1000 + 0.0005, np.float32), sr) for s in seqs}
    for k, s in enumerate(send):
        c.send_raw(packets[s])
        if k % 64 == 63:
            settle(b, k + 1)
    settle(b, len(send))
    deadline = time.monotonic() + 5
    while e.ring.total_written < n * block and time.monotonic() < deadline:
        time.sleep(0.01)
    assert e.ring.total_written == n * block  # the engine's clock is exact
    j = b.jitter.counters
    assert j["lost"] == len(dropped) and j["duplicates"] == dups and j["late"] == 0
    assert j["reordered"] >= swaps * 0.9  # adjacent swaps can chain into one
    tail, end = e.ring.latest(600 * block)
    first = n - 600
    for k in range(600):
        s = first + k
        want = 0.0 if s in dropped else (s % 1000) / 1000 + 0.0005
        assert np.all(tail[k * block : (k + 1) * block] == np.float32(want)), s
    st_ = c.status()
    assert st_["lost"] == len(dropped) and st_["packets"] == len(send) + 1


def test_a_client_restart_restarts_the_stream(served):
    e = Engine(8000)
    b, c = served(e)
    for s in range(200):
        c.send_audio(s, np.zeros(100, np.float32), 8000)
    for s in range(20):
        c.send_audio(s, np.zeros(100, np.float32), 8000)
    settle(b, 220)
    time.sleep(0.1)
    j = b.jitter.counters
    assert j["restarts"] == 1 and j["duplicates"] == 0 and j["lost"] == 0
    assert e.ring.total_written == 220 * 100


def test_a_second_sender_is_refused_while_the_first_streams(served):
    e = Engine(8000)
    b, c = served(e)
    c.subscribe()
    c.wait_for(A.ACK)
    with OscClient(b.port) as other:
        c.send_audio(0, np.zeros(100, np.float32), 8000)
        settle(b, 2)
        other.send_audio(0, np.zeros(100, np.float32), 8000)
        assert c.wait_for(A.ERROR)[1][0] == "busy"
    assert b.counters["rejected_busy"] == 1


def test_allow_list_drops_other_senders_silently(served):
    e = Engine(8000)
    b, c = served(e, allow=["127.0.0.2"])
    c.send(A.PING, 1)
    settle(b, 1)
    assert b.counters["rejected_not_allowed"] == 1
    with pytest.raises(TimeoutError):
        c.wait_for(A.PONG, timeout=0.3)


# -- malformed input ----------------------------------------------------------------------------


def _bundle(when_ntp, *msgs):
    sec, frac = int(when_ntp), int((when_ntp % 1) * 2**32)
    return b"#bundle\x00" + struct.pack(">II", sec, frac) + b"".join(struct.pack(">i", len(m)) + m for m in msgs)


def test_malformed_packets_are_counted_and_answered(served):
    e = Engine(8000)
    b, c = served(e)
    c.subscribe()
    c.wait_for(A.ACK)
    bad = {
        "oversized": b"/genredream/audio/in\x00\x00\x00\x00,b\x00\x00" + struct.pack(">i", 40000) + b"\x00" * 40000,
        "malformed": P.encode(A.PING, 1)[:-4],
        "bad_padding": P.encode(A.PING, 1)[:-1],
        "bad_utf8": b"/genredream/\xc3\x28\x00\x00",
        "bad_types": b"/genredream/ping\x00\x00\x00\x00,T\x00\x00",
        "bad_blob": b"/genredream/audio/in\x00\x00\x00\x00,b\x00\x00" + struct.pack(">i", -4),
        "unknown_address": P.encode("/other/thing", 1),
        "bad_args": P.encode(A.AUDIO_IN, 0, 48000, 1, b"\x00\x00\x00"),
    }
    for code, d in bad.items():
        c.send_raw(d)
        _, args = c.wait_for(A.ERROR)
        assert args[0] == code, (code, args)
    assert b.counters["rejected"] == len(bad) and b.counters["accepted"] == 1  # the subscribe


def test_bundles_with_future_time_tags_are_handled_at_once(served):
    b, c = served(Engine(8000))
    future = time.time() + 2208988800 + 3600  # an hour ahead, NTP seconds
    c.send_raw(_bundle(future, P.encode(A.PING, 1), P.encode(A.PING, 2)))
    t0 = time.monotonic()
    assert c.wait_for(A.PONG, timeout=1)[1] == [1]
    assert c.wait_for(A.PONG, timeout=1)[1] == [2]
    assert time.monotonic() - t0 < 0.5
    assert b.counters["bundles_future"] == 1


def test_error_replies_are_rate_limited(served):
    b, c = served(Engine(8000), error_rate=20)
    c.subscribe()
    c.wait_for(A.ACK)
    for _ in range(300):
        c.send_raw(b"junk")
    settle(b, 301)
    errors = [m for m in c.drain(0.3) if m[0] == A.ERROR]
    assert 15 <= len(errors) <= 40
    assert b.counters["rejected"] == 300


# -- fuzz ---------------------------------------------------------------------------------------

SEEDS = [
    P.encode(A.AUDIO_IN, 3, 48000, 1, np.zeros(64, ">f4").tobytes()),
    P.encode(A.AUDIO_IN, 4, 44100, 2, np.ones(128, ">f4").tobytes()),
    P.encode_floats(A.AUDIO_IN_F, [5], np.zeros(32)),
    P.encode(A.AUDIO_IN_FORMAT, 22050, 1),
    P.encode(A.STATUS),
    P.encode(A.PING, 1, 2.5, "x", b"\x01"),
    P.encode(A.WINDOW, 5.0),
    P.encode(A.HOP, 0.5),
    P.encode(A.DREAM_MIX, 0.5),
    P.encode(A.UNSUBSCRIBE, "127.0.0.1", 1),
    _bundle(0, P.encode(A.PING, 1), P.encode(A.STATUS)),
    _bundle(2**32 - 1, P.encode(A.AUDIO_IN, 9, 48000, 1, np.zeros(16, ">f4").tobytes())),
]


@st.composite
def packets(draw):
    kind = draw(st.sampled_from(["random", "mutate", "mutate", "truncate", "size", "splice", "oversized"]))
    if kind == "random":
        return draw(st.binary(max_size=256))
    seed = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == "mutate":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(seed) - 1))
            seed[i] = draw(st.integers(0, 255))
    elif kind == "truncate":
        seed = seed[: draw(st.integers(0, len(seed)))]
    elif kind == "size":  # a blob or bundle-element size field, or an int, set to something extreme
        i = draw(st.integers(0, max(0, len(seed) - 4))) & ~3
        seed[i : i + 4] = struct.pack(">i", draw(st.sampled_from([-1, -(2**31), 2**31 - 1, 0, 3, 4096, 1 << 20])))
    elif kind == "splice":
        seed += draw(st.binary(min_size=1, max_size=64))
    else:
        seed = seed + b"\x00" * (P.MAX_DATAGRAM + draw(st.integers(1, 20000)))
    return bytes(seed)


@pytest.fixture(scope="module")
def fuzz_target():
    e = Engine(48000)
    b = OscBridge(e, port=0, error_rate=1000).start()
    c = OscClient(b.port)
    c.subscribe()
    c.wait_for(A.ACK)
    state = {"sent": 1}
    yield b, c, state
    b.stop()
    c.close()


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(packets(), min_size=100, max_size=100))
def test_fuzz_batch(fuzz_target, batch):
    """Each batch of 100 packets: every one handled exactly once, accepted or rejected with a reason, none raising."""
    b, c, state = fuzz_target
    for k, d in enumerate(batch):
        c.send_raw(d)
        state["sent"] += 1
        if k % 25 == 24:
            settle(b, state["sent"])
    settle(b, state["sent"])
    c.drain(0.0)  # keep the client's socket from overflowing
    n = dict(b.counters)
    assert n["packets"] == state["sent"], "a datagram was handled twice"
    assert n.get("accepted", 0) + n.get("rejected", 0) == n["packets"]
    assert sum(v for k, v in n.items() if k.startswith("rejected_")) == n.get("rejected", 0)
    assert n.get("rejected_internal", 0) == 0, "a handler raised something other than a ProtocolError"


def test_fuzz_server_still_answers_and_accounts_for_every_packet(fuzz_target):
    """Runs after test_fuzz_batch (file order): >= 10 000 random and mutated packets."""
    b, c, state = fuzz_target
    assert state["sent"] >= 10_001
    c.drain(0.1)
    st_ = c.status()
    assert b.counters["packets"] == state["sent"] + 1  # every datagram sent arrived and was handled
    assert st_["packets"] == state["sent"] + 1 and st_["packets"] == st_["accepted"] + st_["rejected"]
    reasons = sum(v for k, v in b.counters.items() if k.startswith("rejected_"))
    assert reasons == b.counters["rejected"] > 0
    assert b.counters["rejected_internal"] == 0, "a handler raised something other than a ProtocolError"


# -- audio out --------------------------------------------------------------------------------------


def test_dreamed_audio_goes_out_as_blob_or_floats_as_each_subscriber_asked(served):
    e = Engine(8000)
    e.output = RingBuffer(8000 * 4)  # stands in for the dreamer's output ring (engine/dream/stream.py)
    b, cb = served(e)
    with OscClient(b.port) as cf:
        cb.subscribe("b")
        cb.wait_for(A.ACK)
        cf.subscribe("f")
        cf.wait_for(A.ACK)
        cb.drain(0.05)
        time.sleep(0.05)
        y = music(0.6, 8000)
        for i in range(0, y.size, 1000):
            e.output.write(y[i : i + 1000])
        blob_parts, float_parts = [], []
        while sum(map(len, blob_parts)) < y.size:
            _, args = cb.wait_for(A.AUDIO_OUT)
            seq, rate, ch, blob = args
            assert (seq, rate, ch) == (len(blob_parts), 8000, 1) and 0 < len(blob) <= 4096
            blob_parts.append(np.frombuffer(blob, ">f4"))
        while sum(map(len, float_parts)) < y.size:
            _, args = cf.wait_for(A.AUDIO_OUT_F)
            assert args[0] == len(float_parts) and len(args) - 1 <= 1024
            float_parts.append(np.asarray(args[1:], np.float32))
    assert np.array_equal(np.concatenate(blob_parts), y)
    assert np.array_equal(np.concatenate(float_parts), y)


# -- the command ---------------------------------------------------------------------------------------


def test_genredream_run_with_osc_port_runs_on_osc_audio_and_dreams(geng_file, tmp_path):
    with OscClient(1) as c:
        # a free port for the server: bind, read, release
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        c.server = ("127.0.0.1", port)
        jsonl = tmp_path / "out.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-m", "genredream.engine.cli", "run", "--osc-port", str(port), "--samplerate", "8000", "--model", str(geng_file),
             "--no-view", "--duration", "1.0", "--jsonl", str(jsonl), "--osc-reply", f"127.0.0.1:{c.port}:b",
             "--dream", "--steps", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=os.getcwd(),
        )
        try:
            deadline = time.monotonic() + 60
            while True:  # wait until the server answers
                c.send(A.PING, 1)
                try:
                    c.wait_for(A.PONG, timeout=0.5)
                    break
                except TimeoutError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else "no answer"
            y = music(1.0, 8000)
            for seq, i in enumerate(range(0, y.size, 400)):
                c.send_audio(seq, y[i : i + 400], 8000)
            try:
                _, sc = c.wait_for(A.SCORES, timeout=30)
            except TimeoutError:
                proc.kill()
                raise AssertionError("no scores; the command said: " + "".join(proc.communicate()))
            assert sc[0] == "test-geng"
            _, audio_out = c.wait_for(A.AUDIO_OUT, timeout=30)  # the dreamer's output, as the reply asked (b)
            assert audio_out[1:3] == [8000, 1] and len(audio_out[3]) % 4 == 0
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "osc: " in out and "lost" in out
    assert out.count("dream (test-geng") == 1, out  # the dreamer's summary once (issue 16, item 16)
    assert len(jsonl.read_text().splitlines()) == 2
