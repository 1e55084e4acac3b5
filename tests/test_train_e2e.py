"""End to end on real synthetic music: corpus (FluidSynth) -> train -> export -> validate -> classify."""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import require_component

GENRES = ["classical", "metal", "electronica"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from genredream.models.corpus.build import build_corpus

    require_component("fluidsynth", shutil.which("fluidsynth") is not None, "apt-get install fluidsynth fluid-soundfont-gm")
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, GENRES, songs_per_genre=7, seconds=8, seed=11, progress=False)
    return out


@pytest.mark.slow
def test_train_export_classify_above_chance(corpus, tmp_path, capsys):
    from genredream.engine.cli import main as cli
    from genredream.models.contract import validate
    from genredream.models.train import TrainConfig, train

    out = tmp_path / "zheng-small.pt"
    report = train(TrainConfig(data=str(corpus), arch="zheng", out=str(out), epochs=6, segments_per_file=24, batch_size=16, valid=0.15, test=0.3, seed=5, progress=False))
    assert out.exists() and out.with_suffix(".confusion.png").stat().st_size > 1000
    saved = json.loads(out.with_suffix(".report.json").read_text())
    assert saved["test"]["songs"] == 6 and saved["genres"] == sorted(GENRES)
    # Chance is 1/3 on three genres; a working pipeline is far above it.
    assert report["test"]["window_accuracy"] > 0.6, report["history"]

    m = validate(out)
    assert m.labels == sorted(GENRES)
    assert m.meta["provenance"]["trained"] and m.meta["provenance"]["split"]["songs"]["test"] == 6

    # The CLI on a held-out song prints the JSON document the issue specifies.
    test_song = next((corpus / "metal").glob("*.wav"))
    assert cli(["classify", str(test_song), "--model", str(out), "--json"]) == 0
    captured = capsys.readouterr().out
    doc = json.loads(captured[captured.index("{"):])
    assert doc["model"] == "zheng-small" and doc["labels"] == sorted(GENRES)
    assert doc["windows"][0]["start_s"] == 0.0 and doc["windows"][-1]["end_s"] == pytest.approx(8.0, abs=0.05)
    assert set(doc["mean"]) == set(GENRES)
    assert abs(sum(doc["mean"].values()) - 1) < 1e-5


@pytest.mark.slow
def test_resume_continues_from_checkpoint(corpus, tmp_path):
    """--resume takes the epoch count, the history and the weights from the checkpoint.

    A fresh run would give the same epoch count and, seeded, the same first
    epoch; so the checkpoint is marked: its first epoch's loss is replaced
    by a value no training produces, and, for a second resume, its weights
    are zeroed. Only a run that read the checkpoint reports the mark, and
    only one that trained on from the checkpoint's weights changes with them.
    """
    import shutil

    import torch

    from genredream.models.train import TrainConfig, train

    out = tmp_path / "g.pt"
    ckpt = out.with_suffix(".ckpt")
    base = dict(data=str(corpus), arch="geng", out=str(out), segments_per_file=2, valid=0.15, test=0.15, seed=1, progress=False, patience=99)
    first = train(TrainConfig(**base, epochs=1))
    assert first["epochs_run"] == 1 and ckpt.exists()
    state = torch.load(ckpt, weights_only=False)
    state["history"][0]["train_loss"] = 1234.5  # no cross-entropy of this model reaches it
    torch.save(state, ckpt)
    kept = tmp_path / "kept.ckpt"
    shutil.copy(ckpt, kept)

    second = train(TrainConfig(**base, epochs=2, resume=True))
    assert second["epochs_run"] == 2
    assert second["history"][0]["train_loss"] == 1234.5, "the resumed run did not take its history from the checkpoint"
    assert second["history"][1]["epoch"] == 2 and second["history"][1]["train_loss"] < 100

    # The same resume from the checkpoint's weights zeroed: epoch 2 trains from them, so it differs.
    state["model"] = {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, ckpt)
    zeroed = train(TrainConfig(**base, epochs=2, resume=True))
    assert zeroed["history"][0]["train_loss"] == 1234.5
    assert zeroed["history"][1]["train_loss"] != second["history"][1]["train_loss"], "epoch 2 ignored the checkpoint's weights"
    # ... while the intact checkpoint resumes to the same epoch 2 again (the difference is the weights, not chance).
    shutil.copy(kept, ckpt)
    again = train(TrainConfig(**base, epochs=2, resume=True))
    assert again["history"][1]["train_loss"] == second["history"][1]["train_loss"]


def test_unreadable_file_is_counted_not_fatal(tmp_path):
    import soundfile as sf

    from genredream.models.train import TrainConfig, train

    rng = np.random.default_rng(0)
    for g, f in (("low", 150.0), ("high", 2500.0)):
        (tmp_path / "d" / g).mkdir(parents=True)
        for i in range(4):
            t = np.arange(8000 * 6) / 8000
            sf.write(tmp_path / "d" / g / f"{i}.wav", 0.4 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size), 8000)
    (tmp_path / "d" / "low" / "bad.wav").write_bytes(b"garbage" * 100)
    with pytest.warns(UserWarning, match="bad.wav"):
        rep = train(TrainConfig(data=str(tmp_path / "d"), arch="geng", out=str(tmp_path / "m.pt"), epochs=1, segments_per_file=2, valid=0.25, test=0.25, progress=False))
    assert [p for p, _ in rep["skipped_files"]] == [str(tmp_path / "d" / "low" / "bad.wav")]
