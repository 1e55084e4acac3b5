"""The bridge against independent OSC peers: Pure Data (headless) and liblo's oscdump.

Both are real programs no one here wrote; the tests read what they printed.
Every process started here is killed by its own handle, whatever happens.
"""

import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A, join_index
from genredream.bridge.server import OscBridge
from tests.conftest import make_model_file, require_program
from genredream.engine.ringbuffer import RingBuffer
from genredream.engine.runtime import Engine

PEERS = Path(__file__).parent / "peers"
SR = 8000


@pytest.fixture(scope="module")
def geng_file(tmp_path_factory):
    return make_model_file("geng", tmp_path_factory.mktemp("models"), ["blues", "jazz", "rock"], seed=1)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def audio(seconds):
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(3)
    return (0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def offline_results(model_path, y):
    """What the engine computes for the same audio, offline (every window, one thread)."""
    e = Engine(SR)
    e.load_model(model_path)
    got = []
    e.sinks.append(got.append)
    e.run_blocks((y[i : i + 500] for i in range(0, y.size, 500)))
    return {r.seq: r for r in got}


def _run(cmd, timeout):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out


def test_pure_data_sends_float_audio_and_prints_the_scores_the_engine_computed(geng_file, tmp_path):
    pd = require_program("pd", "puredata-core")
    y = audio(1.5)
    wav = tmp_path / "peer.wav"
    sf.write(wav, y, SR, subtype="FLOAT")
    e = Engine(SR)
    e.load_model(geng_file)
    b = OscBridge(e, port=0).start()
    e.start()
    try:
        reply = free_udp_port()
        nblocks = y.size // 500
        rc, out = _run(
            [pd, "-nogui", "-nosound", "-nrt", "-stderr", "-open", str(PEERS / "scores_peer.pd"),
             "-send", f"peer-config {b.port} {reply} {SR} {nblocks} {wav}"],
            timeout=30,
        )
    finally:
        b.stop()
        e.stop()
    assert "error" not in out.lower(), out
    assert f"GD-loaded: {y.size}" in out
    assert f"GD-ack: /genredream/subscribe 127.0.0.1 {reply} none" in out
    assert e.ring.total_written == y.size and b.jitter.counters["lost"] == 0
    ref = offline_results(geng_file, y)
    # Pd prints each /genredream/scores message as "test-geng blues v jazz v rock v" (and the
    # per-genre messages as "test-geng blues v"), then /genredream/window/end as
    # "end test-geng seq hi lo end_s level low_energy".
    scores, windows = [], []
    for line in out.splitlines():
        tok = line.split()
        if tok[:1] == ["GD-scores:"] and len(tok) == 8:
            scores.append(tok[1:])
        elif tok[:2] == ["GD-window:", "end"]:
            windows.append(tok[2:])
    assert len(scores) == len(windows) >= 2
    for sc, win in zip(scores, windows):
        seq = int(float(win[1]))
        r = ref[seq]
        assert sc[0] == win[0] == "test-geng"
        assert sc[1::2] == r.labels
        assert np.allclose([float(v) for v in sc[2::2]], r.scores, atol=2e-6), (seq, sc, r.scores)
        assert join_index(float(win[2]), float(win[3])) == r.end_index


def _oscdump_lines(out):
    msgs = []
    for line in out.splitlines():
        m = re.match(r"^\S+ (/\S+) (\S*) ?(.*)$", line)
        if m:
            msgs.append((m.group(1), m.group(2), m.group(3)))
    return msgs


def _oscdump_blob_size(text):
    """oscdump prints a blob of more than a few bytes as [N byte blob] (small ones as [Nb 0x3f 00 ...])."""
    m = re.search(r"\[(\d+)(?: byte blob|b)", text)
    return int(m.group(1))


def test_oscdump_subscribers_receive_scores_and_dreamed_audio(geng_file):
    """One oscdump asks for dreamed audio as blobs, another as floats (whose values it prints)."""
    oscdump = require_program("oscdump", "liblo-tools")
    ports = [free_udp_port(), free_udp_port()]
    procs = [subprocess.Popen([oscdump, "-L", str(p)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for p in ports]
    e = Engine(SR)
    e.load_model(geng_file)
    e.output = RingBuffer(SR * 4)  # stands in for the dreamer's output ring (engine/dream/stream.py)
    got = []
    e.sinks.append(got.append)
    b = OscBridge(e, port=0).start()
    e.start()
    dreamed = audio(0.3)[::-1].copy()
    outs = []
    try:
        time.sleep(0.3)  # oscdump binds its port
        with OscClient(b.port) as c:
            c.send(A.SUBSCRIBE, "127.0.0.1", ports[0], "b")
            c.send(A.SUBSCRIBE, "127.0.0.1", ports[1], "f")
            time.sleep(0.1)
            y = audio(1.0)
            for k in range(2):
                for seq in range(8 * k, 8 * k + 8):
                    c.send_audio(seq, y[seq * 500 : seq * 500 + 500], SR)
                deadline = time.monotonic() + 20
                while len(got) < k + 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
            e.output.write(dreamed)
            time.sleep(0.5)
    finally:
        b.stop()
        e.stop()
        for p in procs:
            p.kill()
            outs.append(p.communicate()[0])
    blob_msgs, float_msgs = _oscdump_lines(outs[0]), _oscdump_lines(outs[1])
    for msgs, out in ((blob_msgs, outs[0]), (float_msgs, outs[1])):
        assert any(a == A.ACK for a, _, _ in msgs), out
        scores = [(types, rest) for a, types, rest in msgs if a == A.SCORES]
        assert len(scores) == len(got) == 2
        for (types, rest), r in zip(scores, got):
            assert types == "ssfsfsf"
            tok = rest.split()
            assert tok[0] == '"test-geng"' and [t.strip('"') for t in tok[1::2]] == r.labels
            assert np.allclose([float(v) for v in tok[2::2]], r.scores, atol=1e-6)  # oscdump prints %f
        per_genre = [a for a, _, _ in msgs if a.startswith(A.SCORES + "/test-geng/")]
        assert sorted(set(per_genre)) == [f"{A.SCORES}/test-geng/{g}" for g in ("blues", "jazz", "rock")]
    blobs = [(types, rest) for a, types, rest in blob_msgs if a == A.AUDIO_OUT]
    assert blobs and all(t == "iiib" for t, _ in blobs)
    assert sum(_oscdump_blob_size(rest) for _, rest in blobs) == 4 * dreamed.size
    floats = [rest.split() for a, types, rest in float_msgs if a == A.AUDIO_OUT_F]
    assert [int(f[0]) for f in floats] == list(range(len(floats)))
    samples = np.array([float(v) for f in floats for v in f[1:]])
    assert samples.size == dreamed.size and np.allclose(samples, dreamed, atol=1e-6)
