"""Dreamed audio goes back at the subscriber's rate, and ``bi`` packets say which of its frames they are.

The engine runs at 48 kHz with the real streaming dreamer at mix 0, so its output is the
dry input exactly (engine/dream/output.py: ``dry + mix * dream``): what comes back must be
what was sent, at the sender's rate, and for ``bi`` at the very frame the index names.
The sender is the bridge's own client over real UDP on loopback; the Pd patch at 44.1 kHz
is tested in tests/test_osc_examples.py.
"""

import time

import numpy as np
import pytest

from genredream.bridge.protocol import A, join_index
from genredream.engine.runtime import Engine
from tests.conftest import make_model_file

ENGINE_SR = 48000


@pytest.fixture(scope="module")
def geng_file(tmp_path_factory):
    return make_model_file("geng", tmp_path_factory.mktemp("models"), ["a", "b", "c"], seed=0)


def chirp(seconds, sr, f0=100.0, f1=3000.0):
    """A sweep: at any lag but the right one it matches itself badly, so alignment is unambiguous."""
    t = np.arange(int(seconds * sr)) / sr
    k = (f1 - f0) / seconds
    return (0.4 * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t * t))).astype(np.float32)


def dry_engine(geng_file):
    from genredream.engine.dream import Dreamer

    e = Engine(ENGINE_SR)
    e.set_transform(Dreamer(geng_file, steps=1, mix=0.0))
    return e


def stream(c, y, rate, block, skip=(), pace=2.0):
    """Send ``y`` as blobs of ``block`` frames at ``pace`` times real time (the packets in ``skip`` are lost)."""
    t0 = time.monotonic()
    for seq in range(y.size // block):
        if seq not in skip:
            c.send_audio(seq, y[seq * block : (seq + 1) * block], rate)
        ahead = (seq + 1) * block / rate / pace - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)


def collect(c, address, seconds=3.0):
    """Every message at ``address`` until ``seconds`` pass with none."""
    out = []
    while True:
        try:
            out.append(c.wait_for(address, timeout=seconds)[1])
        except TimeoutError:
            return out


def test_a_44k1_sender_gets_its_dream_back_at_44k1(served, geng_file):
    e = dry_engine(geng_file)
    b, c = served(e)
    e.start()
    rate, block = 44100, 441
    y = chirp(4.0, rate)
    c.send_audio(0, y[:block], rate)  # it declares its rate with its first packet
    c.subscribe("b")
    ack = c.wait_for(A.ACK, pred=lambda a: a[0] == A.SUBSCRIBE)[1]
    assert ack[3:6] == ["b", rate, 512], ack  # the rate in force is the sender's, with no argument
    stream(c, y[block:], rate, block, pace=2.0)
    got = collect(c, A.AUDIO_OUT)
    assert got and {g[1] for g in got} == {rate}, {g[1] for g in got}
    assert [g[0] for g in got] == list(range(len(got)))
    x = np.concatenate([np.frombuffer(g[3], ">f4") for g in got]).astype(np.float32)
    # The dreamer is dry (mix 0): what came back is the chirp at 44.1 kHz, at one lag.
    # Sent back at 48 kHz it would be 8.8 % longer and match at no lag.
    assert x.size > rate
    seg = x[-rate:]
    lag = int(np.argmax(np.correlate(y, seg, mode="valid")))
    err = np.sqrt(np.mean((seg - y[lag : lag + seg.size]) ** 2)) / np.sqrt(np.mean(seg**2))
    assert err < 0.01, (lag, err)


def test_bi_packets_say_which_of_the_senders_frames_they_are(served, geng_file):
    """A 44.1 kHz sender subscribed for ``bi`` from its audio socket: frame k of a packet is the dream of
    the frame it sent as ``index + k``, counted from its sequence 0, a lost packet counting its length."""
    e = dry_engine(geng_file)
    b, c = served(e)
    e.start()
    rate, block = 44100, 490
    y = chirp(4.0, rate)
    c.subscribe("bi", port=c.port)
    c.wait_for(A.ACK, pred=lambda a: a[0] == A.SUBSCRIBE)
    lost = 7
    stream(c, y, rate, block, skip={lost})
    got = collect(c, A.AUDIO_OUT_BI)
    assert got and {g[1] for g in got} == {rate} and {g[2] for g in got} == {1}
    out = np.full(y.size, np.nan, np.float32)
    for seq, _rate, _ch, hi, lo, blob in got:
        i = join_index(hi, lo)
        v = np.frombuffer(blob, ">f4")
        out[i : i + v.size] = v[: max(0, y.size - i)]
    have = np.flatnonzero(~np.isnan(out))
    assert have.size > rate, have.size
    # Away from the lost packet (zero-filled by the engine) and the resampler's edges, every frame is the one sent.
    near_loss = (have > lost * block - 200) & (have < (lost + 1) * block + 200)
    k = have[~near_loss & (have > have[0] + 200)]
    err = np.abs(out[k] - y[k])
    assert np.max(err) < 0.02 and np.sqrt(np.mean(err**2)) < 2e-3, (np.max(err), np.sqrt(np.mean(err**2)))
    if lost * block > have[0] + 200:  # the lost packet's frames came back as silence, at their own positions
        assert np.max(np.abs(out[lost * block + 100 : (lost + 1) * block - 100])) < 0.02


def test_bi_at_the_engines_rate_is_the_sent_stream_sample_for_sample(served, geng_file):
    e = dry_engine(geng_file)
    b, c = served(e)
    e.start()
    block = 512
    y = chirp(3.0, ENGINE_SR)
    c.subscribe("bi", port=c.port)
    c.wait_for(A.ACK, pred=lambda a: a[0] == A.SUBSCRIBE)
    stream(c, y, ENGINE_SR, block)
    got = collect(c, A.AUDIO_OUT_BI)
    n = 0
    for seq, rate, _ch, hi, lo, blob in got:
        i, v = join_index(hi, lo), np.frombuffer(blob, ">f4")
        assert rate == ENGINE_SR
        np.testing.assert_array_equal(v, y[i : i + v.size])
        n += v.size
    assert n > ENGINE_SR


def test_rate_and_frames_arguments_are_obeyed(served, geng_file):
    e = dry_engine(geng_file)
    b, c = served(e)
    e.start()
    c.subscribe("b")
    c.send(A.SUBSCRIBE, "127.0.0.1", c.port, "b", 22050, 128)  # changes the subscription: the ack warns
    ack = c.wait_for(A.ACK, pred=lambda a: a[0] == A.SUBSCRIBE and a[4] == 22050)[1]
    assert ack[3:6] == ["b", 22050, 128] and "warning" in ack[7], ack
    y = chirp(3.0, ENGINE_SR)
    stream(c, y, ENGINE_SR, 480)
    got = collect(c, A.AUDIO_OUT)
    sizes = [len(g[3]) // 4 for g in got]
    assert got and {g[1] for g in got} == {22050} and max(sizes) == 128, (set(g[1] for g in got), max(sizes))
    x = np.concatenate([np.frombuffer(g[3], ">f4") for g in got]).astype(np.float32)
    ref = chirp(3.0, 22050)
    seg = x[-11025:]
    lag = int(np.argmax(np.correlate(ref, seg, mode="valid")))
    assert np.sqrt(np.mean((seg - ref[lag : lag + seg.size]) ** 2)) < 0.01 * np.sqrt(np.mean(seg**2)) + 1e-3
