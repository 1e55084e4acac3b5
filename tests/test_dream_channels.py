"""Dream plumbing and controls (issue 13): stereo in, stereo out; the depth control; hop joins; the plot's difference panel.

Real components throughout: an untrained geng (a real TorchScript model:
gradient ascent needs a differentiable network, not a trained one), the real
engine and dreamer, the real OSC server over UDP on 127.0.0.1 with the
project's python-osc codec as the peer (bridge/client.py), soundfile WAVs,
and the device runner's real callback on a real JACK dummy server.
"""

import argparse
import time

import numpy as np
import pytest
import soundfile as sf

from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A
from genredream.engine.dream import Dreamer
from genredream.engine.dream.objective import DreamError, load_dream_model
from genredream.engine.dream.depth import MAX_LATENCY_HOPS, depth_settings
from genredream.engine.runtime import Engine
from tests.conftest import make_model_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def geng(tmp_path_factory):
    path = make_model_file("geng", tmp_path_factory.mktemp("channels-models"), ["a", "b", "c"], seed=0)
    return path, load_dream_model(path)


def stereo(seconds, sr, seed=0):
    """Two different channels (different pitches, hi-hats on the left only) sharing a bass: L != R everywhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    bass = 0.2 * np.sin(2 * np.pi * 110 * t)
    left = bass + 0.2 * np.sin(2 * np.pi * 440 * t + 2 * np.sin(2 * np.pi * 5 * t)) + 0.08 * np.exp(-40 * (t % 0.25)) * rng.standard_normal(t.size)
    right = bass + 0.2 * np.sin(2 * np.pi * 330 * t)
    return np.stack([left, right], 1).astype(np.float32)


def blocks(y, n=1000):
    return (y[i : i + n] for i in range(0, y.shape[0], n))


def stream_stereo(lm, y, sr, **kw):
    """Run stereo ``y`` through an engine keeping its channels, with a dreamer; returns (engine, dreamer, frames out, mono out)."""
    e = Engine(sr)
    e.set_channels(y.shape[1])
    dr = Dreamer(lm, **kw)
    e.set_transform(dr)
    chunks = []
    dr.output_sinks.append(lambda b, s: chunks.append((s, b.copy())))
    e.run_blocks(blocks(y))
    dr.finish(e)
    starts = [s for s, _ in chunks]
    assert starts[0] == 0 and all(a + b.shape[0] == c for (a, b), c in zip(chunks, starts[1:]))
    frames = np.concatenate([b for _, b in chunks])
    mono, _ = e.output.read_since(0)
    return e, dr, frames, mono


# -- depth: one function -------------------------------------------------------------------------


def test_depth_mapping_trades_strength_for_steps_and_latency():
    got = [depth_settings(d, 4) for d in np.linspace(0, 1, 21)]
    assert (got[0].steps, got[0].gain) == (0, 0.0)  # depth 0: no steps, nothing heard
    for a, b in zip(got, got[1:]):  # more depth never costs less nor gives less
        assert b.steps >= a.steps and b.gain >= a.gain and b.latency_hops >= a.latency_hops
    assert got[10].steps == 4 and got[10].gain == 1.0 and got[10].latency_hops == 1.0  # 0.5: the budget, full gain, one hop
    assert got[-1].latency_hops == MAX_LATENCY_HOPS and got[-1].steps == 4  # deeper: latency, never more CPU per hop
    assert all(g.steps >= 1 for g in got[1:])
    for bad in (-0.1, 1.01, float("nan"), "deep", True):
        with pytest.raises(ValueError, match="depth must be a number from 0 to 1"):
            depth_settings(bad, 4)


# -- depth 0 is the dry signal -------------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [8000, 22050])
def test_depth_zero_is_the_dry_signal_sample_for_sample_through_the_streaming_path(geng, sr):
    _, lm = geng
    y = stereo(5, sr)
    y[1000:1010] = 1.25  # over full scale: a bypass must not even clip
    e, dr, frames, mono = stream_stereo(lm, y, sr, steps=2, depth=0.0)
    assert frames.shape == y.shape and np.array_equal(frames, y)
    dry_mid, _ = e.ring.read_since(0)
    assert np.array_equal(mono, dry_mid)
    assert all(h["steps"] == 0 and h["mix"] == 0.0 for h in dr.history)
    # The same stream at depth 1 is dreamed: the comparison above can fail.
    _, dr1, frames1, _ = stream_stereo(lm, y, sr, steps=2, step_size=0.01, depth=1.0)
    assert np.sqrt(np.mean((frames1 - y) ** 2)) > 1e-3
    assert dr1.latency_s == pytest.approx(MAX_LATENCY_HOPS * e.hop)  # depth 1 lays out three hops of dream latency


def test_bad_depth_is_refused_and_changes_nothing(geng):
    _, lm = geng
    with pytest.raises(DreamError, match="depth must be a number from 0 to 1, got 1.5"):
        Dreamer(lm, depth=1.5)
    dr = Dreamer(lm, steps=2, depth=0.25)
    with pytest.raises(DreamError, match="depth must be a number from 0 to 1"):
        dr.set_params(depth=-1)
    assert dr.params()["depth"] == 0.25


# -- stereo keeps its channels --------------------------------------------------------------------------------


def side_kept(out, y, scale=1.0, atol=1e-5):
    """The dream changes the mid only: L - R of the output is the input's (times ``scale``, e.g. a normalisation gain)."""
    return np.allclose(out[:, 0] - out[:, 1], scale * (y[:, 0] - y[:, 1]), atol=atol)


@pytest.mark.parametrize("sr", [8000, 16000])
def test_streaming_dreamer_keeps_the_channels(geng, sr):
    _, lm = geng
    y = stereo(5, sr, seed=1)
    e, dr, frames, mono = stream_stereo(lm, y, sr, steps=3, step_size=0.01)
    assert frames.shape == y.shape
    change = frames - y
    assert np.sqrt(np.mean(change**2)) > 3e-3  # a real dream
    assert side_kept(frames, y)  # the same change on both: the image is the input's
    assert np.sqrt(np.mean((frames[:, 0] - frames[:, 1]) ** 2)) > 0.05  # and the two channels stay different
    # engine.output (what mono consumers read) is the mid of what the channels got.
    assert np.allclose(mono, frames.mean(axis=1), atol=1e-5)
    assert e.output_ch.total_written == e.output.total_written == y.shape[0]


def test_run_command_writes_the_inputs_channels(geng, tmp_path):
    from genredream.engine.cli import run as run_cmd

    model, _ = geng
    sr = 16000
    y = stereo(3.3, sr, seed=2)
    src, out = tmp_path / "in.wav", tmp_path / "dreamed.wav"
    sf.write(src, y, sr, subtype="PCM_16")
    y, _ = sf.read(src, dtype="float32")  # as quantised
    p = argparse.ArgumentParser()
    run_cmd.add_arguments(p)
    args = p.parse_args(["--input", str(src), "--model", str(model), "--no-view", "--dream", "--steps", "2", "--step-size", "0.01", "--dream-out", str(out)])
    assert run_cmd.main(args) == 0
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames) == (sr, 2, y.shape[0])
    z, _ = sf.read(out, dtype="float32")
    assert np.sqrt(np.mean((z - y) ** 2)) > 1e-3
    assert side_kept(z, y, atol=2.5 / 32768)  # within the 16-bit rounding of each channel
    assert np.sqrt(np.mean((z[:, 0] - z[:, 1]) ** 2)) > 0.05
    # --depth 0: the file comes back as it went in, bit for bit
    args = p.parse_args(["--input", str(src), "--model", str(model), "--no-view", "--depth", "0", "--dream-out", str(out)])
    assert run_cmd.main(args) == 0
    z, _ = sf.read(out, dtype="float32")
    assert np.array_equal(z, y)


def test_run_command_refuses_a_depth_out_of_range(geng, tmp_path, capsys):
    from genredream.engine.cli import run as run_cmd

    model, _ = geng
    src = tmp_path / "in.wav"
    sf.write(src, stereo(1.0, 8000), 8000, subtype="PCM_16")
    p = argparse.ArgumentParser()
    run_cmd.add_arguments(p)
    assert run_cmd.main(p.parse_args(["--input", str(src), "--model", str(model), "--no-view", "--depth", "1.5"])) == 2
    assert "depth must be a number from 0 to 1, got 1.5" in capsys.readouterr().err


def test_offline_dream_keeps_the_channels_and_depth_zero_is_the_input(geng, tmp_path):
    from genredream.engine.dream.offline import dream_file

    model, _ = geng
    sr = 16000
    y = stereo(3, sr, seed=3)
    src = tmp_path / "in.wav"
    sf.write(src, y, sr, subtype="FLOAT")
    info = dream_file(src, tmp_path / "out.wav", model=model, layer="conv2", steps=4, step_size=0.01)
    z, zsr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert (zsr, z.shape, info["channels"]) == (sr, y.shape, 2)
    assert side_kept(z, y, scale=info["gain"], atol=2.5 / 32768)
    assert np.sqrt(np.mean((z / info["gain"] - y) ** 2)) > 1e-3
    assert np.sqrt(np.mean((z[:, 0] - z[:, 1]) ** 2)) > 0.05
    info = dream_file(src, tmp_path / "dry.wav", model=model, layer="conv2", steps=4, depth=0.0)
    z, _ = sf.read(tmp_path / "dry.wav", dtype="float32")
    assert info["steps"] == 0 and np.allclose(z, y * info["gain"], atol=1 / 32768)
    with pytest.raises(DreamError, match="depth must be a number from 0 to 1"):
        dream_file(src, tmp_path / "x.wav", model=model, depth=2)


# -- hop joins -----------------------------------------------------------------------------------------------------


def join_excess(out, dry, joins, guard=2):
    """How much larger the output's sample-to-sample steps are at hop joins than the signal allows elsewhere.

    The measure: the largest ``|out[j] - out[j-1]|`` within ``guard``
    samples of a join, divided by the largest such step away from every
    join, or by the dry input's own largest step if that is larger (per
    channel, the worst channel). Up to 1: no join stands out from the music.
    A click (a step in the dream at a join) gives more than 1.
    """
    out, dry = np.atleast_2d(out.T).T, np.atleast_2d(dry.T).T
    worst = 0.0
    for c in range(out.shape[1]):
        step_out, step_in = np.abs(np.diff(out[:, c])), np.abs(np.diff(dry[:, c]))
        near = np.unique(np.concatenate([np.arange(j - 1 - guard, j + guard) for j in joins]))
        near = near[(near >= 0) & (near < step_out.size)]
        far = np.setdiff1d(np.arange(step_out.size), near)
        worst = max(worst, step_out[near].max() / max(step_out[far].max(), step_in.max()))
    return worst


def test_join_excess_sees_a_click():
    t = np.arange(8000) / 8000
    y = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    clicked = y.copy()
    clicked[4000:] += 0.05
    assert join_excess(y, y, [4000]) <= 1.0
    assert join_excess(clicked, y, [4000]) > 1.5


@pytest.mark.parametrize("depth", [0.5, 1.0])
def test_hop_joins_stay_as_smooth_as_the_input_in_every_channel(geng, depth):
    _, lm = geng
    sr = 8000
    t = np.arange(8 * sr) / sr
    # Pure tones make any click stand out.
    y = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], 1).astype(np.float32)
    e, dr, frames, _ = stream_stereo(lm, y, sr, steps=4, step_size=0.01, depth=depth)
    joins = np.array(sorted({int(round(h["emitted_to_input"])) for h in dr.history}))
    joins = joins[(joins > 4) & (joins < y.shape[0] - 4)]
    assert joins.size >= 10
    assert np.sqrt(np.mean((frames - y) ** 2)) > 0.01  # a real dream
    excess = join_excess(frames, y, joins)
    print(f"depth {depth}: join excess {excess:.3f}")
    assert excess <= 1.0


# -- OSC ---------------------------------------------------------------------------------------------------------------




def test_stereo_over_osc_comes_back_stereo_and_mono_patches_still_get_mono(served, geng):
    model, _ = geng
    sr = 8000
    e = Engine(sr)
    e.set_transform(Dreamer(model, steps=2, step_size=0.01))
    b, cb = served(e)
    with OscClient(b.port) as cf, OscClient(b.port) as cn:
        for c, fmt in ((cb, "b"), (cf, "f"), (cn, "fn")):
            c.subscribe(fmt)
            assert c.wait_for(A.ACK)[1][3] == fmt  # the ack: address host port audio rate frames lease_s
        e.start()
        y = stereo(3.0, sr, seed=4)
        for seq, i in enumerate(range(0, y.shape[0], 400)):
            cb.send_audio(seq, y[i : i + 400], sr)
            time.sleep(0.005)
        deadline = time.monotonic() + 120  # a loaded machine may take long; the loop ends as soon as all is written
        # At the model's own rate and one hop of latency the dreamer's lag is 0: the output reaches the input's end.
        while (e.ring.total_written < y.shape[0] or e.output.total_written < e.ring.total_written) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the last packets on their way
        n_out = e.output.total_written
        assert n_out == y.shape[0] and e.channels == 2 and e.transform.lag_samples == 0

        def collect(c, address, parse):
            parts = []
            for a, args in c.drain(0.3):
                if a == address:
                    parts.append(parse(args))
            return np.concatenate(parts)

        blob = collect(cb, A.AUDIO_OUT, lambda a: np.frombuffer(a[3], ">f4").reshape(-1, a[2]) if a[2] == 2 else pytest.fail(f"blob with {a[2]} channel(s)"))
        fn = collect(cn, A.AUDIO_OUT_FN, lambda a: np.asarray(a[2:], np.float32).reshape(-1, a[1]))
        mono = collect(cf, A.AUDIO_OUT_F, lambda a: np.asarray(a[1:], np.float32))
    assert blob.shape == fn.shape == (n_out, 2) and mono.shape == (n_out,)
    assert np.array_equal(blob, fn)
    yy = y[: n_out]
    assert np.sqrt(np.mean((blob - yy) ** 2)) > 1e-3  # dreamed
    assert side_kept(blob, yy)  # the same change on both channels
    assert np.sqrt(np.mean((blob[:, 0] - blob[:, 1]) ** 2)) > 0.05
    assert np.allclose(mono, blob.mean(axis=1), atol=1e-5)  # f: the dreamed mid, as before


def test_depth_over_osc_is_checked_and_takes_effect_at_the_next_hop(served, geng):
    _, lm = geng
    sr = 8000
    e = Engine(sr)
    e.set_channels(2)
    dr = Dreamer(lm, steps=2, step_size=0.01, depth=1.0)
    e.set_transform(dr)
    b, c = served(e)  # the bridge's threads handle OSC; the test drives the engine's hops itself
    c.subscribe()
    c.wait_for(A.ACK)
    got = []
    dr.output_sinks.append(lambda blk, s: got.append((s, blk.copy())))
    y = stereo(6, sr, seed=5)
    e.run_blocks(blocks(y[: 3 * sr]))
    n_hops = len(dr.history)
    assert dr.history[-1]["depth"] == 1.0 and dr.history[-1]["steps"] == 2
    c.send(A.DREAM_DEPTH, 1.5)  # refused, with a clear reply, and not applied
    _, err = c.wait_for(A.ERROR)
    assert err[0] == "bad_args" and "depth must be a number from 0 to 1" in err[1]
    c.send(A.DREAM_DEPTH, 0.0)
    _, ack = c.wait_for(A.ACK)
    assert ack == [A.DREAM_DEPTH, 0.0]
    assert dr.history[-1]["depth"] == 1.0 and len(dr.history) == n_hops  # not before the next hop
    written_before = e.output.total_written
    e.write(y[3 * sr : 3 * sr + 4000])  # exactly one more hop
    for job in e.pump():
        e.infer(job)
    assert len(dr.history) == n_hops + 1
    h = dr.history[-1]
    assert (h["depth"], h["steps"], h["mix"]) == (0.0, 0, 0.0)
    assert c.status()["dream_depth"] == 0.0
    new = [(s, blk) for s, blk in got if s >= written_before]
    assert new and all(np.array_equal(blk, y[s : s + blk.shape[0]]) for s, blk in new)  # dry, both channels, from this hop on
    before = [(s, blk) for s, blk in got if s < written_before]
    assert any(not np.array_equal(blk, y[s : s + blk.shape[0]]) for s, blk in before)  # and dreamed before it
    assert not e.errors, list(e.errors)


# -- the device runner ----------------------------------------------------------------------------------------------


def test_device_runner_plays_the_dreamed_channels_and_depth_zero_dry_after_the_latency(geng, tmp_path):
    """The duplex callback of a runner opened on a real JACK dummy server, called directly block by block
    (as tests/test_realtime_jack.py's allocation test does), with the engine's hops run inline between blocks."""
    from tests.test_realtime_jack import RATE, _device_module, jack_server

    duplex = _device_module()
    import sounddevice as sd

    model, _ = geng
    frames_n = 1024
    y = stereo(4, RATE, seed=6)
    status = sd.CallbackFlags()
    outs = {}
    for depth in (0.0, 1.0):
        engine = Engine(RATE)
        dr = Dreamer(model, steps=1, step_size=0.01, depth=depth)
        engine.set_transform(dr)
        with jack_server(256, str(tmp_path)):
            runner = duplex.DuplexRunner(engine, device="JACK", channels=2, blocksize=frames_n, output_delay=dr.latency_samples)
        assert runner.out_channels == 2 and engine.channels == 2
        out = np.zeros_like(y)
        outdata = np.zeros((frames_n, 2), np.float32)
        for i in range(0, y.shape[0] - frames_n + 1, frames_n):
            runner._duplex_callback(np.ascontiguousarray(y[i : i + frames_n]), outdata, frames_n, None, status)
            out[i : i + frames_n] = outdata
            for job in engine.pump():
                engine.infer(job)
        outs[depth] = (out, dr.latency_samples, runner.stats())
    out, lat, st = outs[0.0]
    n = (y.shape[0] // frames_n) * frames_n
    first = -(-lat // frames_n) * frames_n  # the first block that starts after the output delay
    assert st["late_blocks"] == first // frames_n  # dry (input through) only until the delay is over
    assert np.array_equal(out[first:n], y[first - lat : n - lat])  # depth 0: the dry input, both channels, sample for sample
    out, lat, _ = outs[1.0]
    first = -(-lat // frames_n) * frames_n
    played, dry = out[first:n], y[first - lat : n - lat]
    assert np.sqrt(np.mean((played - dry) ** 2)) > 1e-3 and side_kept(played, dry)
    assert np.sqrt(np.mean((played[:, 0] - played[:, 1]) ** 2)) > 0.05


def test_device_callback_playing_the_channels_allocates_nothing(tmp_path):
    """The frame path of the duplex callback (engine.output_ch -> outdata) under tracemalloc, as
    tests/test_realtime_jack.py checks the mono path: no block-sized temporary, nothing kept."""
    import tracemalloc

    from tests.test_realtime_jack import RATE, _device_module, jack_server

    duplex = _device_module()
    import sounddevice as sd

    frames = 1024
    with jack_server(256, str(tmp_path)):
        engine = Engine(RATE)
        runner = duplex.DuplexRunner(engine, device="JACK", channels=2, blocksize=frames)
    n = 2000
    level = np.array([[0.25, -0.5]], np.float32)
    # A dreamer far ahead: every block comes from the frame ring (a larger one, so it holds every block asked for).
    from genredream.engine.channels import FrameRing

    runner._out_ch = FrameRing((n + 100) * frames, 2)
    for _ in range(n + 50):
        runner._out_ch.write(np.repeat(level, frames, axis=0))
    indata = np.zeros((frames, 2), np.float32)
    outdata = np.zeros((frames, 2), np.float32)
    status = sd.CallbackFlags()
    cb = runner._duplex_callback
    for _ in range(20):
        cb(indata, outdata, frames, None, status)
    tracemalloc.start(25)
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(n):
            cb(indata, outdata, frames, None, status)
        cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 768, f"the callback allocated up to {peak - base} bytes at once"
    assert cur - base < 1024
    np.testing.assert_array_equal(outdata, np.repeat(level, frames, axis=0))  # the channels, each its own


# -- the plot's difference panel ------------------------------------------------------------------------------------


def test_difference_panel_shows_what_the_dream_added_where_it_added_it(tmp_path):
    from genredream.engine.dream.plot import DIFF_RANGE_DB, difference_db, mel_db, plot_dream as _plot

    sr = 16000
    t = np.arange(2 * sr) / sr
    dry = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    dreamed = dry + (0.1 * np.sin(2 * np.pi * 3000 * t) * (t >= 1.0)).astype(np.float32)  # a band, from 1 s on
    before, after = mel_db(dry, sr), mel_db(dreamed, sr)
    diff = difference_db(before, after)
    band = int(np.argmax(mel_db(np.sin(2 * np.pi * 3000 * t).astype(np.float32), sr).mean(axis=1)))  # where 3 kHz sits
    assert band > 20
    frames = diff.shape[1]
    # Away from the band's abrupt start (1 s) and the file's ends, where a cut sine leaks into every band.
    late, early = slice(int(0.6 * frames), frames - 6), slice(2, int(0.4 * frames))
    assert diff[band, late].mean() > 20  # added: tens of dB where the tone was not
    assert np.abs(diff[band, early]).max() < 1e-3  # not before it started
    assert np.abs(diff[: band - 8, late]).max() < 1.0  # nor in the bands below (the 300 Hz tone is unchanged)
    png = tmp_path / "plot.png"
    _plot(png, dry, 0.5 * dreamed, sr, None, None, "test", gain=0.5, title="test")
    assert png.stat().st_size > 10_000 and DIFF_RANGE_DB > 0


def test_separate_output_stream_plays_the_channels_then_the_dry_channels(tmp_path):
    """The output-only callback (used when --output-device differs from the input): dreamed frames where
    the frame ring has them, then the input's own channels (``dry_lag`` behind), never their mean."""
    from tests.test_realtime_jack import RATE, _device_module, jack_server

    duplex = _device_module()
    import sounddevice as sd

    from genredream.engine.channels import FrameRing

    frames = 256
    with jack_server(256, str(tmp_path)):
        engine = Engine(RATE)
        runner = duplex.DuplexRunner(engine, device="JACK", channels=2, blocksize=frames)
    status = sd.CallbackFlags()
    y = stereo(0.2, RATE, seed=8)
    for i in range(0, 8 * frames, frames):  # the input side: 8 blocks of two different channels
        runner._input_callback(np.ascontiguousarray(y[i : i + frames]), frames, None, status)
    runner._out_ch = FrameRing(16 * frames, 2)
    dreamed = np.stack([np.full(frames * 4 + 100, 0.5), np.full(frames * 4 + 100, -0.5)], 1).astype(np.float32)
    runner._out_ch.write(dreamed)  # dreamed audio up to frame 4 * 256 + 100
    got = []
    out = np.zeros((frames, 2), np.float32)
    for _ in range(5):
        runner._output_callback(out, frames, None, status)
        got.append(out.copy())
    got = np.concatenate(got)
    n_ready = dreamed.shape[0]
    assert np.array_equal(got[:n_ready], dreamed)
    # Block 4: 100 dreamed frames, then the input's frames dry_lag behind the output clock, channel for channel.
    k = np.arange(n_ready, 5 * frames)
    assert np.array_equal(got[n_ready:], y[k - runner.dry_lag])
    assert runner.stats()["late_blocks"] == 1
