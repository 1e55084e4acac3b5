"""Doyle & Lopez generators: the network, its file format, training, generation, evaluation, --continue.

Light by design (about half a minute on a busy 2-core machine): a tiny
FluidSynth corpus (2 genres x 3 songs x 4 s), networks with small GRUs, a few
training steps.
"""

import argparse
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import require_component

from genredream.engine.cli import generate as generate_cli
from genredream.engine.cli import train_generator as train_generator_cli
from genredream.models.archive import quiet_torchscript
from genredream.models.archs.doyle_gru import CONTEXT_SAMPLES, PREDICT_SAMPLES, SAMPLE_RATE, DoyleGRU
from genredream.models.generator import (
    GENERATOR_TASK,
    TrainGeneratorConfig,
    build_generator,
    find_generator,
    generate,
    list_generators,
    rms_db,
    save_generator,
    train_generator,
    validate_generator,
)

SMALL = {"channels": 8, "hidden": 16}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    require_component("fluidsynth", shutil.which("fluidsynth") is not None, "apt-get install fluidsynth fluid-soundfont-gm")
    from genredream.models.corpus.build import build_corpus

    root = tmp_path_factory.mktemp("gencorpus")
    build_corpus(root, ["classical", "metal"], songs_per_genre=3, seconds=4, seed=3, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A classical generator trained for a few steps, and its report."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("gens") / "classical.pt"
    cfg = TrainGeneratorConfig(data=str(corpus), genre="classical", out=str(out), epochs=5, batch_size=8, lr=3e-3, patience=10, seed=1, progress=False, sizes=SMALL)
    report = train_generator(cfg)
    return out, report


def _seed_audio(seconds=1.0, f=220.0):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.2 * np.sin(2 * np.pi * f * t) + 0.05 * np.sin(2 * np.pi * 3.1 * f * t)).astype(np.float32)


# -- the network -----------------------------------------------------------------


def test_network_shapes_scripting_and_level_normalisation():
    torch.manual_seed(0)
    m = DoyleGRU(**SMALL).eval()
    x = 0.1 * torch.randn(3, CONTEXT_SAMPLES)
    with torch.no_grad():
        y = m(x)
        with quiet_torchscript():
            s = torch.jit.script(m)
        assert torch.allclose(s(x), y, atol=1e-6)
        # the level normalisation is inside forward: twice as loud in, twice as loud out
        assert torch.allclose(m(2 * x), 2 * y, rtol=1e-4, atol=1e-6)
        assert torch.isfinite(m(torch.zeros(2, CONTEXT_SAMPLES))).all()
    assert y.shape == (3, PREDICT_SAMPLES) and y.dtype == torch.float32
    assert s.describe() == [SAMPLE_RATE, CONTEXT_SAMPLES, PREDICT_SAMPLES]
    assert m.frames == (CONTEXT_SAMPLES - 100) // 50 + 1
    with pytest.raises(ValueError, match="context"):
        DoyleGRU(context=50)


def test_generator_file_round_trip_and_separate_from_the_classifier_contract(tmp_path):
    from genredream.models.contract import ModelFileError, load

    module, meta = build_generator("jazz", **SMALL)
    path = save_generator(module, meta, tmp_path / "jazz.pt").path
    g = validate_generator(path)
    assert g.meta["task"] == GENERATOR_TASK and g.genre == "jazz" and (g.sample_rate, g.context, g.predict) == (10000, 9000, 1000)
    assert list_generators([tmp_path]) == {"jazz": path}
    assert find_generator("jazz", dirs=[tmp_path]) == path
    with pytest.raises(ModelFileError, match="no generator for genre 'rock'.*jazz"):
        find_generator("rock", dirs=[tmp_path])
    # a classifier loader refuses a generator (it is not a classifier file)
    with pytest.raises(ModelFileError, match="invalid metadata"):
        load(path)
    # and a generator loader refuses metadata that is not a generator's
    bad = dict(meta, task="genre")
    with pytest.raises(ModelFileError, match="task"):
        save_generator(module, bad, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


# -- training ----------------------------------------------------------------------


def test_training_lowers_validation_loss_and_writes_its_report(trained):
    out, r = trained
    assert out.exists() and out.with_suffix(".loss.png").exists() and out.with_suffix(".report.json").exists()
    assert r["songs"] == 3 and r["valid_clips"] == 3  # one 1 s validation clip per song (its last second)
    assert r["best_valid_loss"] < r["initial_valid_loss"]
    assert len(r["history"]) >= 1 and all(np.isfinite(h["valid_loss"]) for h in r["history"])
    assert validate_generator(out).meta["provenance"]["best_epoch"] == r["best_epoch"]


def test_train_generator_command_errors_name_the_problem(corpus, tmp_path, capsys):
    p = argparse.ArgumentParser()
    train_generator_cli.add_arguments(p)
    assert train_generator_cli.main(p.parse_args([str(corpus), "--genre", "jazz", "--out", str(tmp_path / "j.pt")])) == 2
    assert "no folder for genre 'jazz'" in capsys.readouterr().err
    assert train_generator_cli.main(p.parse_args([str(corpus), "--all"])) == 2
    assert "--out-dir" in capsys.readouterr().err


# -- generation ---------------------------------------------------------------------


def test_generation_is_deterministic_finite_of_the_requested_length_and_level_matched(trained):
    g = validate_generator(trained[0])
    seed = _seed_audio()
    a = generate(g, seed, seconds=1.25)
    b = generate(g, seed, seconds=1.25)
    assert a.shape == (12500,) and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    n1 = generate(g, seed, seconds=0.3, noise=0.2, seed=5)
    assert np.array_equal(n1, generate(g, seed, seconds=0.3, noise=0.2, seed=5))
    assert not np.array_equal(n1, generate(g, seed, seconds=0.3, noise=0.2, seed=6))
    # level matching: every 0.1 s chunk at the seed's RMS (before the 5 ms junction correction and clipping)
    seed_db = rms_db(seed[-CONTEXT_SAMPLES:])
    assert abs(rms_db(a) - seed_db) < 1.5
    raw, info = generate(g, seed, seconds=0.5, level="raw", return_info=True)
    assert np.isfinite(raw).all() and len(info["chunk_raw_rms_db"]) == 5
    with pytest.raises(ValueError, match="seed audio has 100 samples"):
        generate(g, seed[:100], seconds=1)


def test_generate_command_writes_the_requested_seconds(trained, tmp_path):
    import soundfile as sf

    seed_file = tmp_path / "seed.wav"
    sf.write(seed_file, np.concatenate([_seed_audio(2.0)] * 2), SAMPLE_RATE)
    p = argparse.ArgumentParser()
    generate_cli.add_arguments(p)
    out = tmp_path / "out.wav"
    args = p.parse_args(["--generator", str(trained[0]), "--seed-audio", str(seed_file), "--seconds", "0.75", "--out", str(out), "--offset", "0.5", "--samplerate", "22050"])
    assert generate_cli.main(args) == 0
    y, sr = sf.read(out)
    assert sr == 22050 and abs(y.size - 0.75 * 22050) <= 2 and np.isfinite(y).all()


# -- evaluation ----------------------------------------------------------------------


def test_evaluate_generator_classifies_generated_and_real_clips(corpus, trained, tmp_path):
    from genredream.models.generator.evaluate import evaluate_generators

    gdir = tmp_path / "gens"
    gdir.mkdir()
    shutil.copy(trained[0], gdir / "classical.pt")
    module, meta = build_generator("metal", **SMALL)  # untrained: still a valid generator
    save_generator(module, meta, gdir / "metal.pt")
    r = evaluate_generators(corpus, "musicnn-mtt", gdir, songs=1, seconds=1.0, offset=0.5, out_dir=tmp_path / "eval", examples=1)
    assert r["genres"] == ["classical", "metal"]
    labels = r["labels"]
    truth = {"classical": labels.index("classical"), "metal": labels.index("metal")}
    for kind in ("generated", "raw", "real", "real_fullband"):
        # Each figure follows from the per-clip predictions: the accuracy, the confusion matrix, the per-genre share.
        clips = r["clips"]
        hits = [labels.index(c[kind]["predicted"]) == truth[c["genre"]] for c in clips]
        assert len(clips) == 2 and r[kind]["accuracy"] == pytest.approx(np.mean(hits))
        cm = np.array(r[kind]["confusion"])
        assert cm.sum() == len(clips) and np.trace(cm) == sum(hits)
        for c in clips:
            assert cm[truth[c["genre"]], labels.index(c[kind]["predicted"])] >= 1
        assert r[kind]["per_genre"] == {c["genre"]: float(h) for c, h in zip(clips, hits)}
    for kind in ("generated", "raw", "real"):
        assert len(r[kind]["chunk_db_mean"]) == 10
    assert abs(r["level_vs_seed_db"]["generated"]) < 2.0  # level matched
    assert r["classifier_sample_rate"] == 16000
    for f in ("generated.confusion.png", "real.confusion.png", "raw.confusion.png", "real_fullband.confusion.png", "levels.png", "examples.png", "evaluation.json", "classical.0.wav"):
        assert (tmp_path / "eval" / f).exists(), f


# -- the engine's --continue ---------------------------------------------------------


def test_continuer_follows_input_and_continues_through_silence(trained):
    from genredream.engine.continuation import Continuer
    from genredream.engine.runtime import Engine, Result

    sr = 16000
    eng = Engine(sr, window=5.0, hop=0.5)
    c = Continuer({"classical": str(trained[0])}, model="clf", hold=0.3)
    c.prepare(eng)
    c.attach(eng)
    t = np.arange(6 * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    s0, r0 = 2 * sr, 4 * sr  # the performer stops at 2 s and plays again at 4 s
    x[s0:r0] = 0
    for i in range(0, x.size, 640):
        eng.write(x[i : i + 640])
        for job in eng.pump():
            # the classifier's result for this hop (what Engine.infer leaves in last_results)
            eng.last_results["clf"] = Result("clf", ["metal", "classical"], [0.2, 0.8], "softmax", ["metal", "classical"], job.boundary, 0, 0, 1.0, -10.0, False, job.seq)
            c.process(eng, job)
            assert eng.output.total_written == job.boundary - c.lag_samples  # sample-exact lag
    c.finish(eng)
    y, _ = eng.output.read_since(0)
    assert y.size == x.size and np.isfinite(y).all()
    assert c.genre == "classical" and c.counters["continuations"] == 1
    fade = c.fade
    np.testing.assert_array_equal(y[:s0], x[:s0])  # while playing: the input, untouched
    np.testing.assert_array_equal(y[r0 + fade :], x[r0 + fade :])  # after the return and a 30 ms fade
    assert abs(y[s0]) < 0.01  # the continuation fades in from zero at the silence: no click
    cont = y[s0 + fade : r0]
    assert abs(rms_db(cont) - rms_db(x[s0 - sr : s0])) < 3.0  # level matched to the seed
    assert c.latency_samples > c.lag_samples > 0.3 * sr
    assert [h["state"] for h in c.history].count("continue") >= 3


def test_continuer_runs_in_the_engines_output_hook(trained, tmp_path):
    """Through Engine.set_transform, as `genredream run --continue` uses it; WAV out aligned with the input."""
    import soundfile as sf

    from genredream.engine.cli.run_continue import add_continue_arguments
    from genredream.engine.continuation import attach_continuer
    from genredream.engine.runtime import Engine

    sr = 16000
    eng = Engine(sr, window=5.0, hop=0.5)
    p = argparse.ArgumentParser()
    add_continue_arguments(p)
    gdir = tmp_path / "g"
    gdir.mkdir()
    shutil.copy(trained[0], gdir / "classical.pt")
    out = tmp_path / "cont.wav"
    args = p.parse_args(["--continue", "--continue-genre", "classical", "--continue-generators", str(gdir), "--continue-out", str(out)])
    writers = []
    c = attach_continuer(eng, args, writers)
    assert eng.transform is c
    t = np.arange(4 * sr) / sr
    x = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    x[2 * sr :] = 0  # the performer stops at 2 s and does not come back
    eng.run_blocks((x[i : i + 1024] for i in range(0, x.size, 1024)), realtime=False)
    c.finish(eng)
    for w in writers:
        w.close()
    y, _ = eng.output.read_since(0)
    assert y.size == x.size and not eng.counters["dream_errors"], list(eng.errors)
    np.testing.assert_array_equal(y[: 2 * sr], x[: 2 * sr])
    assert rms_db(y[2 * sr + c.fade :]) > rms_db(x[sr : 2 * sr]) - 3  # it keeps playing
    wav, wsr = sf.read(out, dtype="float32")
    assert wsr == sr and wav.size == x.size
    assert "continuations 1" in c.summary()


def test_continuer_parameters_are_checked(trained):
    from genredream.engine.continuation import ContinuationError, Continuer

    c = Continuer({"classical": str(trained[0])})
    assert c.set_params(enabled=False, noise=0.1)["enabled"] is False
    with pytest.raises(ContinuationError, match="no generator for genre 'jazz'"):
        c.set_params(genre="jazz")
    with pytest.raises(ContinuationError, match="unknown continuation parameter"):
        c.set_params(layer="x")
    with pytest.raises(ContinuationError, match="no generator for genre 'jazz'"):
        Continuer({"classical": str(trained[0])}, genre="jazz")
