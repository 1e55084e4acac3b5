"""Dreaming (issue 6): the offline dream, the streaming Dreamer in the engine, and bad input.

Models are built here (untrained geng, a raw-waveform net, and zheng, a mel
net), so nothing depends on training. Gradient ascent does not need a
trained network to raise an objective; it needs a differentiable one.
"""

import argparse
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from genredream.engine.dream import Dreamer
from genredream.engine.dream.objective import DreamError, evaluate_objective, load_dream_model, make_objective, probabilities
from genredream.engine.dream.wave import dream_offline
from genredream.engine.runtime import Engine
from genredream.models.archs import build
from genredream.models.contract import META_NAME, save
from tests.conftest import make_model_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")

LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("dream-models")
    out = {arch: make_model_file(arch, d, LABELS) for arch in ("geng", "zheng")}
    out["lm"] = {k: load_dream_model(out[k]) for k in ("geng", "zheng")}
    return out


@pytest.fixture(scope="module")
def no_features(tmp_path_factory):
    """A TorchScript file with valid metadata whose module has forward() only."""

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8000 * 5, 3)

        def forward(self, x):
            return self.lin(x)

    _, meta = build("geng", LABELS)
    meta["name"] = "no-features"
    path = tmp_path_factory.mktemp("nofeat") / "plain.pt"
    torch.jit.save(torch.jit.script(Plain().eval()), str(path), _extra_files={META_NAME: json.dumps(meta)})
    return path


def music(seconds, sr, seed=0):
    """Two voices with vibrato, a noise hi-hat every 0.25 s: something with attacks and harmonics."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.25 * np.sin(2 * np.pi * 220 * t + 2 * np.sin(2 * np.pi * 5 * t)) + 0.15 * np.sin(2 * np.pi * 330 * t)
    env = np.exp(-40 * (t % 0.25))
    y += 0.1 * env * rng.standard_normal(t.size)
    return y.astype(np.float32)


def blocks(y, n=1000):
    return (y[i : i + n] for i in range(0, y.size, n))


def stream(lm, y, sr, **kw):
    """Run ``y`` through an engine with a dreamer; returns (engine, dreamer, output, per-hop checks)."""
    e = Engine(sr)
    dr = Dreamer(lm, **kw)
    e.set_transform(dr)
    chunks = []
    dr.output_sinks.append(lambda b, s: chunks.append((s, b.copy())))
    checks = []
    orig = dr.process

    def process(engine, job):
        r = orig(engine, job)
        checks.append((job.boundary, engine.output.total_written))
        return r

    dr.process = process
    e.run_blocks(blocks(y))
    dr.finish(e)
    starts = [s for s, _ in chunks]
    assert starts == sorted(starts) and all(a + b.size == c for (a, b), c in zip(chunks, starts[1:]))
    out = np.concatenate([b for _, b in chunks])
    return e, dr, out, checks


# ---------------------------------------------------------------------------
# offline


def _objective_by_hand(lm, y, obj):
    """The objective's mean over half-overlapping windows of ``y``, one window at a time."""
    w = lm.n_samples
    starts = list(range(0, len(y) - w + 1, w // 2))
    if starts[-1] != len(y) - w:
        starts.append(len(y) - w)
    with torch.no_grad():
        return float(np.mean([float(obj(lm, torch.from_numpy(np.ascontiguousarray(y[s : s + w]))[None])[0]) for s in starts]))


@pytest.mark.parametrize(
    "arch,layer",
    [("geng", "conv1"), ("geng", "conv3"), ("geng", "all"), ("zheng", "conv1"), ("zheng", "dense"), ("zheng", "all")],
)
def test_offline_dream_raises_the_objective_low_and_high_layers(models, arch, layer):
    lm = models["lm"][arch]
    y = music(7, lm.sample_rate)
    obj = make_objective(lm, layer=layer)
    res = dream_offline(lm, y, obj, steps=5, step_size=0.005)
    assert res.after > res.before, (res.before, res.after)
    # "before" is the objective of the input as the model sees it: the mean over windows every half window
    # (the last one aligned to the end), each window scored on its own here.
    assert res.before == pytest.approx(_objective_by_hand(lm, y, obj), rel=1e-5)
    assert res.dreamed.shape == y.shape and np.all(np.isfinite(res.dreamed)) and np.abs(res.dreamed).max() <= 1.0
    assert len(res.objective_per_step) == 5


@pytest.mark.parametrize("arch", ["geng", "zheng"])
def test_target_mode_moves_the_label_score(models, arch):
    lm = models["lm"][arch]
    y = music(5, lm.sample_rate, seed=2)
    before = probabilities(lm, y[None])[0, 1]
    toward = dream_offline(lm, y, make_objective(lm, target="b"), steps=5, step_size=0.01)
    away = dream_offline(lm, y, make_objective(lm, target="b", away=True), steps=5, step_size=0.01)
    assert probabilities(lm, toward.dreamed[None])[0, 1] > before
    assert probabilities(lm, away.dreamed[None])[0, 1] < before


def _cli(argv):
    from genredream.engine.cli import dream as dream_cli

    p = argparse.ArgumentParser()
    dream_cli.add_arguments(p)
    return dream_cli.main(p.parse_args(argv))


def test_cli_writes_normalised_pcm16_as_long_as_the_input_deterministic_with_a_plot(models, tmp_path, capsys):
    sr = 22050  # not the model's 8 kHz: dreamed at 8 kHz, written at 22.05 kHz
    src = tmp_path / "in.wav"
    sf.write(src, music(6.3, sr), sr, subtype="PCM_16")
    outs = []
    for i in range(2):
        out = tmp_path / f"out{i}.wav"
        # Deterministic for a seed and a number of torch threads (engine/dream/wave.py). Pinned: the plot's
        # Numba mel kernels set the OpenMP thread count that torch shares, so an unpinned second run could differ.
        argv = [str(src), str(out), "--model", str(models["geng"]), "--layer", "conv2", "--steps", "3", "--seed", "7", "--quiet", "--threads", "1"]
        assert _cli(argv + (["--plot"] if i == 0 else [])) == 0
        info = sf.info(out)
        assert (info.samplerate, info.subtype, info.format, info.channels) == (sr, "PCM_16", "WAV", 1)
        y, _ = sf.read(out, dtype="float32")
        assert y.size == sf.info(src).frames and np.all(np.isfinite(y))
        assert np.abs(y).max() == pytest.approx(10 ** (-1 / 20), abs=2e-4)  # normalised to -1 dBFS
        outs.append(y)
    assert np.array_equal(outs[0], outs[1])  # deterministic for a seed
    png = tmp_path / "out0.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "->" in capsys.readouterr().out


def test_cli_mix_zero_gives_the_normalised_input(models, tmp_path):
    sr = 8000
    src = tmp_path / "in.wav"
    y = music(5.5, sr)
    sf.write(src, y, sr, subtype="FLOAT")
    out = tmp_path / "dry.wav"
    assert _cli([str(src), str(out), "--model", str(models["geng"]), "--steps", "2", "--mix", "0", "--quiet"]) == 0
    z, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(z, y * (10 ** (-1 / 20) / np.abs(y).max()), atol=1.5 / 32768)


# ---------------------------------------------------------------------------
# bad input


def test_unknown_layer_lists_the_layers_and_unknown_label_lists_the_labels(models, tmp_path, capsys):
    lm = models["lm"]["geng"]
    with pytest.raises(DreamError, match="its layers: conv1, conv2, conv3, or all"):
        make_objective(lm, layer="conv9")
    with pytest.raises(DreamError, match="its labels: a, b, c"):
        make_objective(lm, target="jazz")
    with pytest.raises(DreamError, match="its layers"):
        Dreamer(lm, layer="nope")
    src = tmp_path / "in.wav"
    sf.write(src, music(1, 8000), 8000)
    assert _cli([str(src), str(tmp_path / "o.wav"), "--model", str(models["geng"]), "--layer", "conv9", "--quiet"]) == 2
    assert "conv1, conv2, conv3" in capsys.readouterr().err
    assert _cli([str(src), str(tmp_path / "o.wav"), "--model", str(models["geng"]), "--target", "jazz", "--quiet"]) == 2
    assert "a, b, c" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_model_without_features_fails_at_load_not_at_the_first_hop(no_features, tmp_path, capsys):
    with pytest.raises(DreamError, match=r"features\(\)"):
        load_dream_model(no_features)
    with pytest.raises(DreamError, match=r"features\(\)"):
        Dreamer(no_features)
    src = tmp_path / "in.wav"
    sf.write(src, music(1, 8000), 8000)
    assert _cli([str(src), str(tmp_path / "o.wav"), "--model", str(no_features), "--quiet"]) == 2
    assert "features()" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["geng", "zheng"])
def test_silence_in_gives_silence_plus_dream_without_nan(models, arch, tmp_path):
    src = tmp_path / "silence.wav"
    sf.write(src, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    out = tmp_path / "o.wav"
    assert _cli([str(src), str(out), "--model", str(models[arch]), "--steps", "3", "--quiet"]) == 0
    y, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and y.size == 16000 and np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0
    lm = models["lm"][arch]
    e, dr, out, _ = stream(lm, np.zeros(3 * 8000, np.float32), 8000, steps=2)
    assert out.size == 3 * 8000 and np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
    assert all(np.isfinite(h["objective_first"]) for h in dr.history)


def test_bad_dream_latency_and_parameters(models):
    lm = models["lm"]["geng"]
    e = Engine(8000)
    with pytest.raises(DreamError, match="between the hop"):
        e.set_transform(Dreamer(lm, latency=0.2))
    with pytest.raises(DreamError, match="between the hop"):
        e.set_transform(Dreamer(lm, latency=6.0))
    assert e.transform is None
    dr = Dreamer(lm, steps=1)
    for kw, word in [({"mix": 2}, "mix"), ({"steps": -1}, "steps"), ({"step_size": float("nan")}, "step size"), ({"colour": 1}, "unknown dream parameter")]:
        with pytest.raises(DreamError, match=word):
            dr.set_params(**kw)
    assert dr.params()["mix"] == 1.0 and dr.params()["steps"] == 1


# ---------------------------------------------------------------------------
# streaming


@pytest.mark.parametrize("sr", [8000, 22050])
def test_stream_output_is_sample_exact_on_the_input_clock(models, sr):
    lm = models["lm"]["geng"]
    y = music(6, sr)
    # No steps: the dream is zero, so the output must be the input, sample for sample.
    e, dr, out, checks = stream(lm, y, sr, steps=0)
    assert out.size == y.size and np.array_equal(out, y)
    # After each hop's job the output ring stands exactly ``lag`` behind the boundary,
    # and the reported latency leaves a hop, a job's deadline and a block of slack.
    assert checks and all(written == boundary - dr.lag_samples for boundary, written in checks if boundary > dr.lag_samples)
    assert dr.latency_samples >= dr.lag_samples + 2 * e.hop_samples + 1024
    assert dr.counters["late_samples"] == 0
    # With steps the output differs, still aligned: the change stays within the model's band.
    e, dr, out, checks = stream(lm, y, sr, steps=4, step_size=0.01)
    assert out.size == y.size and np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
    assert np.sqrt(np.mean((out - y) ** 2)) > 0.005 and dr.counters["late_samples"] == 0


@pytest.mark.parametrize("sr", [8000, 22050])
def test_stream_joins_hops_without_clicks(models, sr):
    """A pure tone makes any click stand out: at the joins the dream does not jump more than anywhere else."""
    lm = models["lm"]["geng"]
    t = np.arange(8 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    e, dr, out, _ = stream(lm, y, sr, layer="all", steps=8, step_size=0.01)
    assert_hop_joins_smooth(dr, y, out, 0.02)


@pytest.mark.parametrize("layer,steps,latency", [("conv1", 4, 0.5), ("conv3", 4, 0.5), ("all", 4, 0.5), ("conv3", 2, 1.0), ("all", 2, 1.0)])
def test_stream_gain_per_sample_is_at_least_half_the_offline_dream(models, layer, steps, latency):
    """Same steps per sample (K x latency / hop), same step size; the objective measured on
    the windows the engine scores (one per hop)."""
    lm = models["lm"]["geng"]
    sr = 8000
    y = music(12, sr, seed=5)
    obj = make_objective(lm, layer=layer)
    per_sample = int(round(steps * latency / 0.5))
    offline = dream_offline(lm, y, obj, steps=per_sample, step_size=0.004)
    e, dr, out, _ = stream(lm, y, sr, layer=layer, steps=steps, latency=latency, step_size=0.004)
    hop = int(0.5 * sr)
    base = evaluate_objective(lm, y, obj, stride=hop)
    gain_off = evaluate_objective(lm, offline.dreamed, obj, stride=hop) - base
    gain_stream = evaluate_objective(lm, out, obj, stride=hop) - base
    print(f"{layer} K={steps} latency={latency}: stream gain {gain_stream:.3g}, offline {gain_off:.3g}, ratio {gain_stream / gain_off:.2f}")
    assert gain_off > 0 and gain_stream >= 0.5 * gain_off


def test_parameter_change_takes_effect_at_the_next_hop(models):
    lm = models["lm"]["geng"]
    sr = 8000
    y = music(6, sr)
    e = Engine(sr)
    dr = Dreamer(lm, layer="conv3", steps=2, step_size=0.01)
    e.set_transform(dr)
    got = []
    dr.output_sinks.append(lambda b, s: got.append((s, b.copy())))
    e.run_blocks(blocks(y[: 3 * sr]))
    n_hops = len(dr.history)
    assert dr.history[-1]["name"] == "conv3" and dr.history[-1]["mix"] == 1.0
    assert dr.set_params(layer="conv1", mix=0.0, steps=3)["layer"] == "conv1"
    with pytest.raises(DreamError, match="its layers"):
        dr.set_params(layer="conv7")  # refused, and nothing else changes
    assert dr.history[-1]["name"] == "conv3"  # not before the next hop
    written_before = e.output.total_written
    e.write(y[3 * sr : 3 * sr + 4000])  # exactly one more hop
    for job in e.pump():
        e.infer(job)
    assert len(dr.history) == n_hops + 1
    h = dr.history[-1]
    assert (h["name"], h["steps"], h["mix"]) == ("conv1", 3, 0.0)
    new = [(s, b) for s, b in got if s >= written_before]
    assert new and all(np.array_equal(b, y[s : s + b.size]) for s, b in new)  # mix 0: dry from this hop on
    dr.set_params(target="b")
    e.write(y[3 * sr + 4000 : 3 * sr + 8000])
    for job in e.pump():
        e.infer(job)
    assert not e.errors, list(e.errors)
    assert (dr.history[-1]["mode"], dr.history[-1]["name"]) == ("target", "b")


def test_engine_keeps_the_dreamers_front_end_and_runs_it_on_its_workers(models):
    lm = models["lm"]["geng"]  # 8 kHz
    sr = 22050
    e = Engine(sr)
    e.load_model(models["zheng"])  # 22.05 kHz: a different front end
    e.set_transform(Dreamer(lm, steps=1))
    assert set(e.frontends.rates) == {22050, 8000}
    e.unload_model("test-zheng")
    assert set(e.frontends.rates) == {8000}  # pruning keeps the dreamer's stream
    e.load_model(models["geng"])
    e.unload_model("test-geng")
    assert set(e.frontends.rates) == {8000}
    y = music(2.2, sr)
    e.run_blocks(blocks(y, 512), realtime=True)
    assert e.counters["dream_errors"] == 0 and len(e.transform.history) == 4
    assert e.output.total_written == 4 * e.hop_samples - e.transform.lag_samples
    assert e.status()["dream"]["model"] == "test-geng"
    e.set_transform(None)
    assert e.transform is None and not e.frontends.rates


def test_dream_wav_writer_and_run_command(models, tmp_path):
    from genredream.engine.cli import run as run_cmd

    sr = 16000
    src = tmp_path / "in.wav"
    y = music(3.3, sr)
    sf.write(src, y, sr, subtype="PCM_16")
    out = tmp_path / "dreamed.wav"
    p = argparse.ArgumentParser()
    run_cmd.add_arguments(p)
    args = p.parse_args(["--input", str(src), "--model", str(models["geng"]), "--no-view", "--dream", "conv2", "--steps", "2", "--dream-out", str(out)])
    assert run_cmd.main(args) == 0
    info = sf.info(out)
    assert (info.samplerate, info.subtype, info.frames) == (sr, "PCM_16", y.size)
    z, _ = sf.read(out, dtype="float32")
    assert np.all(np.isfinite(z)) and np.sqrt(np.mean((z - y) ** 2)) > 1e-3


def assert_hop_joins_smooth(dr, y, out, min_rms):
    """The dream is real (RMS change over ``min_rms``) and no hop join stands out.

    A join is where one hop's emitted audio meets the next (the dreamer's
    history); the change and the output may not jump more near a join than
    anywhere else (or than the input itself does).
    """
    joins = np.array(sorted({int(round(h["emitted_to_input"])) for h in dr.history}))
    joins = joins[(joins > 2) & (joins < y.size - 2)]
    assert joins.size >= 10
    d = out - y
    jump_d, jump_out, jump_in = np.abs(np.diff(d)), np.abs(np.diff(out)), np.abs(np.diff(y))
    near = np.unique(np.concatenate([np.arange(j - 3, j + 2) for j in joins]))
    far = np.setdiff1d(np.arange(jump_d.size), near)
    assert np.sqrt(np.mean(d**2)) > min_rms  # a real dream
    assert jump_d[near].max() <= jump_d[far].max()
    assert jump_out[near].max() <= max(jump_in.max(), jump_out[far].max())


def test_a_dream_further_behind_than_the_input_ring_writes_on(models):
    """On a loaded machine the dream can fall more than the input ring behind the input.

    The next write then fills the gap with silence and what input is left,
    instead of failing: it raised a broadcast error on every hop, and the
    supervisor disabled the dream after five (seen in the 64-frame hot-swap
    test under load, issue 14).
    """
    sr = 8000
    e = Engine(sr)
    dr = Dreamer(models["lm"]["geng"], steps=0)
    e.set_transform(dr)
    y = music(1, sr)
    for _ in range(int(e.ring.capacity / y.size) + 3):
        e.write(y)
    end = e.ring.total_written - 100  # the dream is this far along; its output ring still at 0
    dr._write(e, end, 1.0)
    out, start = e.output.read_since(0)
    assert e.output.total_written == end
    kept = out[-(e.ring.capacity - 100) :]  # the input still in the ring comes through (steps=0: the dream adds nothing)
    dry, _ = e.ring.read_since(end - kept.size, max_n=kept.size)
    assert np.array_equal(kept, dry)
