"""Heads on musicnn (issue 18): the head file streams like musicnn, the embedding cache, --from keeps units.

Real components: the shipped musicnn-msd body, FluidSynth-rendered songs
(``genredream corpus``), the engine's compiled incremental step.
"""

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import require_component

GENRES = ["classical", "metal", "electronica"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from genredream.models.corpus.build import build_corpus

    require_component("fluidsynth", shutil.which("fluidsynth") is not None, "apt-get install fluidsynth fluid-soundfont-gm")
    out = tmp_path_factory.mktemp("corpus")
    # 6 s songs: one 5 s window and one aligned to the end, the cheapest songs musicnn can embed.
    build_corpus(out, GENRES + ["rap"], songs_per_genre=4, seconds=6, seed=3, progress=False)
    return out


def _cfg(data, out, cache, **kw):
    from genredream.models.train import TrainConfig

    base = dict(data=str(data), arch="musicnn-head", out=str(out), valid=0.25, test=0.25, seed=0, progress=False, threads=1, cache_dir=str(cache))
    base.update(kw)
    return TrainConfig(**base)


def _collection(src, dst, genres):
    dst.mkdir()
    shutil.copy(src / "corpus.json", dst)  # says which soundfont rendered it
    for g in genres:
        shutil.copytree(src / g, dst / g)
    return dst


@pytest.fixture(scope="module")
def head(corpus, tmp_path_factory):
    from genredream.models.heads import train_head

    tmp = tmp_path_factory.mktemp("head")
    data = _collection(corpus, tmp / "three", GENRES)
    out = tmp / "mine.pt"
    report = train_head(_cfg(data, out, tmp / "cache"), log=lambda m: None)
    return dict(tmp=tmp, data=data, out=out, report=report, cache=tmp / "cache")


@pytest.mark.slow
def test_head_file_validates_and_streams_like_its_forward(head):
    from genredream.models.incremental import FrameBranchRunner
    from genredream.models.contract import validate

    m = validate(head["out"])  # the contract runs the compiled step against forward too
    assert m.labels == sorted(GENRES) and m.meta["arch"] == "musicnn-head" and m.meta["task"] == "genre"
    assert m.layers == ["timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"]
    # The engine's path: successive windows of one stream, moved on by an engine hop (31-32 frames).
    rng = np.random.default_rng(7)
    stream = (2.0 * rng.random((96, 313 + 5 * 32))).astype(np.float32)
    runner = FrameBranchRunner(m.module)
    for k, end in enumerate(range(313, 313 + 5 * 32 + 1, 32)):
        window = stream[:, end - 313 : end]
        got = runner(window, end)
        with torch.no_grad():
            want = m.module(torch.from_numpy(window)[None])
        assert float((got - want).abs().max()) <= 1e-5, k
    assert runner.stats["reused_windows"] == 5 and runner.stats["frames_reused"] > 0
    # It dreams: features and the differentiable front end are musicnn's.
    wave = torch.zeros(1, 80000, requires_grad=True)
    feats = m.module.features(m.module.frontend(wave + 0.01 * torch.randn(1, 80000)))
    feats[2].mean().backward()
    assert wave.grad is not None and float(wave.grad.abs().sum()) > 0


@pytest.mark.slow
def test_head_report_says_what_it_was_measured_on(head):
    rep = json.loads(head["out"].with_suffix(".report.json").read_text())
    assert rep["data"]["kind"] == "synthetic" and rep["data"]["soundfont"].endswith(".sf2") and rep["data"]["split"] == "song-level"
    assert rep["embedding"]["embedded_files"] == 12 and rep["embedding"]["cached_files"] == 0
    assert rep["test"]["songs"] == 3


@pytest.mark.slow
def test_embedding_cache_is_reused_and_invalidated(head):
    import soundfile as sf

    from genredream.models.heads import train_head

    again = train_head(_cfg(head["data"], head["tmp"] / "again.pt", head["cache"]), log=lambda m: None)
    assert again["embedding"]["cached_files"] == 12 and again["embedding"]["embedded_files"] == 0
    # Change one file's content: that file, and only it, goes through musicnn again.
    f = sorted((head["data"] / "metal").glob("*.wav"))[0]
    y, sr = sf.read(f, dtype="float32")
    sf.write(f, 0.5 * y, sr)
    third = train_head(_cfg(head["data"], head["tmp"] / "third.pt", head["cache"]), log=lambda m: None)
    assert third["embedding"]["cached_files"] == 11 and third["embedding"]["embedded_files"] == 1


@pytest.mark.slow
def test_from_head_keeps_old_units_and_adds_new_genre(head, corpus):
    from genredream.models.contract import load, validate
    from genredream.models.heads import train_head

    data = _collection(corpus, head["tmp"] / "four", GENRES + ["rap"])
    out = head["tmp"] / "four.pt"
    parent = load(head["out"])
    rep = train_head(_cfg(data, out, head["cache"], from_model=parent), log=lambda m: None)
    child = validate(out)
    assert child.labels == sorted(GENRES) + ["rap"]  # old order kept, new genre appended
    # The three known genres were embedded before; only techno's four files are new.
    assert rep["embedding"]["embedded_files"] == 4 and rep["embedding"]["cached_files"] == 12
    assert set(rep["from"]["before"]["per_class_accuracy"]) == set(GENRES)
    # The behaviour kept: on the old genres' test songs the new head (all its units) still tells them apart
    # about as well as the parent did (a head that forgot them falls towards chance, 1/4 here).
    before, after = rep["from"]["before"], rep["from"]["after"]
    assert rep["from"]["test_songs"] >= len(GENRES)
    assert after["window_accuracy"] >= before["window_accuracy"] - 0.2 and after["window_accuracy"] > 0.5, (before, after)
    # Every old genre has its songs here: rehearsal, all units train (the old rows move).
    assert rep["from"]["mode"] == "rehearsal" and rep["from"]["old_units_frozen"] == 0
    assert not torch.equal(child.module.state_dict()["head.net.0.weight"][:3], parent.module.state_dict()["head.net.0.weight"])
    assert child.meta["provenance"]["lineage"][-1]["name"] == "mine"
    # Before any training the new head's old units are the parent's: check the transplant directly.
    from genredream.models.archs.musicnn_head import MusicnnHead
    from genredream.models.extend import transplant

    fresh = MusicnnHead(child.labels, child.meta["head"]["layer"], child.meta["head"]["hidden"])
    transplant(parent.module.state_dict(), fresh, 3)
    fresh.eval()
    x = torch.randn(2, 96, 313)
    with torch.no_grad():
        assert torch.allclose(fresh(x)[:, :3], parent.module(x), atol=1e-5)


@pytest.mark.slow
def test_from_without_the_old_songs_keeps_the_old_units_exactly(head, corpus):
    """A folder without some old genres' songs: the old units' rows are the parent's, bit for bit (learning without forgetting)."""
    from genredream.models.contract import load, validate
    from genredream.models.heads import train_head

    data = _collection(corpus, head["tmp"] / "metal-rap", ["metal", "rap"])  # classical and electronica are gone
    parent = load(head["out"])
    out = head["tmp"] / "rap-only.pt"
    logs = []
    rep = train_head(_cfg(data, out, head["cache"], from_model=parent), log=logs.append)
    child = validate(out)
    assert child.labels == sorted(GENRES) + ["rap"]
    assert rep["from"]["mode"] == "learning without forgetting" and rep["from"]["old_units_frozen"] == 3
    assert any("no songs of classical, electronica" in m and "old units are kept" in m for m in logs)
    ps, cs = parent.module.state_dict(), child.module.state_dict()
    assert torch.equal(cs["head.net.0.weight"][:3], ps["head.net.0.weight"]) and torch.equal(cs["head.net.0.bias"][:3], ps["head.net.0.bias"])
    assert torch.equal(cs["head.in_mean"], ps["head.in_mean"]) and torch.equal(cs["head.in_std"], ps["head.in_std"])
    assert not torch.equal(cs["head.net.0.weight"][3], torch.zeros_like(cs["head.net.0.weight"][3]))
    # So on any input the old genres rank among themselves exactly as before.
    x = torch.randn(2, 96, 313)
    with torch.no_grad():
        assert torch.allclose(child.module(x)[:, :3], parent.module(x), atol=1e-5)


@pytest.mark.slow
def test_training_views_are_part_of_the_cache_key(head):
    """An augmented view (one semitone up) is embedded once, stored apart from the plain windows, and differs from them."""
    from genredream.models.archs.musicnn_head import MusicnnHead, make_head_meta
    from genredream.models.contract import load, resolve_model
    from genredream.models.data import scan
    from genredream.models.embed_cache import EmbeddingCache, file_sha256, song_embeddings
    from genredream.models.inputs import InputSpec

    body_path = resolve_model("musicnn-msd")
    net = MusicnnHead(sorted(GENRES), "pooled", 0)
    net.load_body(load(body_path).module.state_dict())
    spec = InputSpec(make_head_meta(net, "musicnn-msd", "ISC"))
    songs = [s for s in scan(head["data"]).songs if s.genre == "classical"][:2]
    cache = EmbeddingCache(head["cache"], "musicnn-msd", body_path, spec.length)
    up, _ = song_embeddings(songs, net, spec, cache, view="up1")
    assert cache.misses == 2 and cache.hits == 0
    assert all((cache.dir / f"{file_sha256(s.path)}.up1.npz").is_file() for s in songs)
    plain, _ = song_embeddings(songs, net, spec, cache)  # embedded by the head fixture's run: still there, unchanged
    again, _ = song_embeddings(songs, net, spec, cache, view="up1")
    assert cache.misses == 2 and cache.hits == 4
    for (_, u), (_, p), (_, a) in zip(up, plain, again):
        assert np.array_equal(u["pooled"], a["pooled"])
        assert u["pooled"].shape == p["pooled"].shape and not np.allclose(u["pooled"], p["pooled"], atol=1e-3)


@pytest.mark.slow
def test_from_seed_net_keeps_label_order_and_units_and_freeze_body(corpus, tmp_path, capsys):
    """Any architecture: geng trained on three genres, then --from on four (CLI), body frozen."""
    from genredream.engine.cli import main as cli
    from genredream.models.contract import load
    from genredream.models.train import TrainConfig, train

    three = _collection(corpus, tmp_path / "three", GENRES)
    four = _collection(corpus, tmp_path / "four", GENRES + ["rap"])
    first = tmp_path / "g3.pt"
    train(TrainConfig(data=str(three), arch="geng", out=str(first), epochs=1, segments_per_file=2, valid=0.25, test=0.25, seed=1, progress=False, threads=1))
    second = tmp_path / "g4.pt"
    rc = cli(["train", str(four), "--from", str(first), "--freeze-body", "--out", str(second), "--epochs", "1",
              "--segments-per-file", "2", "--valid", "0.25", "--test", "0.25", "--threads", "1", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "old genres (3" in text and "new genres: rap" in text
    parent, child = load(first), load(second)
    assert child.labels == parent.labels + ["rap"] and parent.labels == sorted(GENRES)
    ps, cs = parent.module.state_dict(), child.module.state_dict()
    # --freeze-body: every body weight is the parent's; the output layer kept the old units' rows' shape and grew by one.
    body = [k for k in ps if not k.startswith("out.")]
    assert body and all(torch.equal(ps[k], cs[k]) for k in body)
    assert cs["out.weight"].shape[0] == 4 and ps["out.weight"].shape[0] == 3
    rep = json.loads(second.with_suffix(".report.json").read_text())
    assert rep["from"]["old_genres"] == sorted(GENRES) and set(rep["from"]["after"]["per_class_accuracy"]) == set(GENRES)
    assert child.meta["provenance"]["lineage"][0]["labels"] == sorted(GENRES)
    # `genredream models` shows the lineage.
    import os

    os.environ["GENREDREAM_MODELS"] = str(tmp_path)
    try:
        assert cli(["models"]) == 0
    finally:
        del os.environ["GENREDREAM_MODELS"]
    assert "lineage: g4 (4 genres) <- g3 (3 genres)" in capsys.readouterr().out


def test_transplant_keeps_old_units_exactly():
    """Before any training, a grown network answers like its parent on the old units."""
    from genredream.models.archs import build
    from genredream.models.extend import extend_labels, output_layer, transplant

    old = ["a", "b", "c"]
    parent, _ = build("zheng", old)
    labels = extend_labels(old, ["d", "a", "b", "c"])
    assert labels == ["a", "b", "c", "d"]
    child, _ = build("zheng", labels)
    assert transplant(parent.state_dict(), child, 3) == ["out.weight", "out.bias"]
    assert output_layer(child, 4) == "out"
    parent.eval(), child.eval()
    x = torch.randn(2, 128, 108)
    with torch.no_grad():
        assert torch.allclose(child(x)[:, :3], parent(x), atol=1e-6)  # a 4-row product rounds like a 3-row one, nearly
    with pytest.raises(ValueError, match="do not fit"):
        transplant(build("smith", old)[0].state_dict(), child, 3)


def _toy_embeddings(seed=0, n_per=30, k=4, d=16):
    """Separable Gaussian clusters standing in for window embeddings (fit_head's options, no musicnn needed)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, d))
    x = np.concatenate([c + rng.normal(0, 1, (n_per, d)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(k), n_per).astype(np.int64)
    return x, y


def _toy_parent_and_child(x, y, n_old):
    from genredream.models.archs.musicnn_head import GenreHead
    from genredream.models.extend import transplant
    from genredream.models.heads import HEAD_RECIPE, fit_head

    r = dict(HEAD_RECIPE, epochs=40, patience=40)
    torch.manual_seed(0)
    parent = GenreHead(x.shape[1], n_old, 0)
    keep = y < n_old
    fit_head(parent, (x[keep], y[keep]), (x[keep], y[keep], np.arange(keep.sum()), int(keep.sum())), r, 0)
    child = GenreHead(x.shape[1], int(y.max()) + 1, 0)
    transplant(parent.state_dict(), child, n_old)
    return parent, child, r


def test_l2sp_anchor_holds_the_old_units_to_the_parent():
    """L2-SP: a strong anchor keeps the old rows near the parent's and lets the new rows learn; no anchor lets them drift."""
    from genredream.models.heads import fit_head

    x, y = _toy_embeddings()
    parent, anchored, r = _toy_parent_and_child(x, y, 2)
    _, free, _ = _toy_parent_and_child(x, y, 2)
    pw = parent.state_dict()["net.0.weight"]
    valid = (x, y, np.arange(len(y)), len(y))
    fit_head(anchored, (x, y), valid, r, 0, anchor=(2, parent.state_dict(), 100.0))
    fit_head(free, (x, y), valid, r, 0)
    drift = lambda h: float((h.state_dict()["net.0.weight"][:2] - pw).abs().max())  # noqa: E731
    assert drift(anchored) < 0.2 * drift(free)
    with torch.no_grad():  # the new genres are still learnt
        assert float((anchored(torch.from_numpy(x)).argmax(1).numpy() == y)[y >= 2].mean()) > 0.9


def test_distillation_only_where_asked():
    """``distill_on`` all False is the same fit as no teacher; all True is the same as distilling everywhere."""
    from genredream.models.heads import fit_head

    x, y = _toy_embeddings(1)
    parent, a, r = _toy_parent_and_child(x, y, 2)
    _, b, _ = _toy_parent_and_child(x, y, 2)
    _, c, _ = _toy_parent_and_child(x, y, 2)
    _, d, _ = _toy_parent_and_child(x, y, 2)
    with torch.no_grad():
        teacher = parent(torch.from_numpy(x)).numpy()
    valid = (x, y, np.arange(len(y)), len(y))
    fit_head(a, (x, y), valid, r, 0, teacher=teacher, distill_on=np.zeros(len(y), bool))
    fit_head(b, (x, y), valid, r, 0)
    fit_head(c, (x, y), valid, r, 0, teacher=teacher, distill_on=np.ones(len(y), bool))
    fit_head(d, (x, y), valid, r, 0, teacher=teacher)
    sa, sb, sc, sd = (h.state_dict()["net.0.weight"] for h in (a, b, c, d))
    assert torch.allclose(sa, sb, atol=1e-6) and torch.allclose(sc, sd, atol=1e-6) and not torch.allclose(sa, sc, atol=1e-3)


def _tiny_collection(root, songs):
    """A folder-per-genre collection of short real WAV files (choose_splits only lists them)."""
    import soundfile as sf

    for rel in songs:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.zeros(160, np.float32), 16000)
    return root


def test_valid_dir_takes_the_validation_songs_from_another_folder(tmp_path):
    """--valid-dir (docs/notes/heads-passes.md, fourth pass): the VALID list is read against DIR; train and test stay DATA's."""
    from genredream.models.data import CollectionError, scan
    from genredream.models.train import TrainConfig, choose_splits

    names = [f"{g}/{g}.{i:05d}.wav" for g in ("jazz", "rock") for i in range(3)]
    data = _tiny_collection(tmp_path / "data", names)
    other = _tiny_collection(tmp_path / "other-soundfont", [n for n in names if n.endswith("2.wav")])
    lists = []
    for name, idx in (("train", 0), ("valid", 2), ("test", 1)):
        f = tmp_path / f"{name}.txt"
        f.write_text("".join(f"{g}/{g}.{idx:05d}.wav\n" for g in ("jazz", "rock")))
        lists.append(str(f))
    cfg = TrainConfig(data=str(data), arch="geng", out=str(tmp_path / "m.pt"), split_files=lists, valid_dir=str(other))
    splits, desc = choose_splits(cfg, scan(data))
    assert [s.path.parent.parent for s in splits["valid"]] == [other, other]
    assert all(s.path.parent.parent == data for s in splits["train"] + splits["test"])
    assert [s.genre for s in splits["valid"]] == ["jazz", "rock"] and desc["valid_dir"] == str(other)
    # Without it, the same lists validate on DATA's own songs.
    plain, _ = choose_splits(TrainConfig(data=str(data), arch="geng", out="m.pt", split_files=lists), scan(data))
    assert all(s.path.parent.parent == data for s in plain["valid"])
    # A random split: every song of DIR validates.
    rnd, _ = choose_splits(TrainConfig(data=str(data), arch="geng", out="m.pt", valid_dir=str(other)), scan(data))
    assert sorted(s.path.name for s in rnd["valid"]) == ["jazz.00002.wav", "rock.00002.wav"]
    # A genre DATA does not have is a clear error, not a silent new label.
    _tiny_collection(other, ["blues/blues.00000.wav"])
    with pytest.raises(CollectionError, match="blues"):
        choose_splits(cfg, scan(data))
    # ... unless --genres leaves it out, as it leaves out DATA's own other folders.
    chosen = TrainConfig(data=str(data), arch="geng", out="m.pt", genres=["jazz", "rock"], valid_dir=str(other))
    sub, _ = choose_splits(chosen, scan(data, ["jazz", "rock"]))
    assert sorted(s.path.name for s in sub["valid"]) == ["jazz.00002.wav", "rock.00002.wav"]


@pytest.mark.slow
def test_head_early_stops_on_the_valid_dir(head, tmp_path, capsys):
    """`genredream train --valid-dir`: the head's validation songs are DIR's (a quieter copy here: new content, new embeddings)."""
    import soundfile as sf

    from genredream.engine.cli import main as cli

    other = tmp_path / "other"
    for g in GENRES:
        f = sorted((head["data"] / g).glob("*.wav"))[-1]
        y, sr = sf.read(f, dtype="float32")
        (other / g).mkdir(parents=True)
        sf.write(other / g / f.name, 0.5 * y, sr)
    out = tmp_path / "v.pt"
    cache = tmp_path / "cache"  # the fixture's plain windows, without the up1 ones another test may have added
    shutil.copytree(head["cache"], cache, ignore=shutil.ignore_patterns("*.up1.npz"))
    rc = cli(["train", str(head["data"]), "--arch", "musicnn-head", "--valid-dir", str(other), "--out", str(out), "--valid", "0.25",
              "--test", "0.25", "--threads", "1", "--no-progress", "--cache-dir", str(cache)])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads(out.with_suffix(".report.json").read_text())
    assert rep["split"]["valid_dir"] == str(other) and rep["split"]["songs"]["valid"] == 3
    # New to the cache: DIR's songs, and the training songs a semitone up (the up1 view --valid-dir trains with).
    assert rep["embedding"]["embedded_files"] == 3 + rep["split"]["songs"]["train"]
    # The recipe chosen on other soundfonts' validation (docs/notes/heads-passes.md, fourth and sixth passes) applies only with --valid-dir.
    from genredream.models.heads import HEAD_RECIPE

    assert HEAD_RECIPE["weight_decay_valid_dir"] != HEAD_RECIPE["weight_decay"]
    assert rep["recipe"]["weight_decay"] == HEAD_RECIPE["weight_decay_valid_dir"]
    assert head["report"]["recipe"]["weight_decay"] == HEAD_RECIPE["weight_decay"]
    assert rep["recipe"]["train_views"] == ["", "up1"] and head["report"]["recipe"]["train_views"] == [""]


def test_fit_head_stops_early_and_keeps_the_best_epoch():
    """Early stopping as behaviour: validation loss that turns up stops training `patience` epochs after its
    lowest point, and the weights returned are that epoch's (their validation loss is the one recorded there)."""
    import torch

    from genredream.models.heads import HEAD_RECIPE, _scores, fit_head

    rng = np.random.default_rng(0)
    x_tr = rng.standard_normal((160, 8)).astype(np.float32)
    y_tr = (x_tr[:, 0] > 0).astype(np.int64)
    # Validation follows the rule for 60 % of its windows and the opposite for the rest: the more confident the
    # head grows on the training rule, the worse its validation loss, after a first fall.
    x_va = rng.standard_normal((50, 8)).astype(np.float32)
    y_va = (x_va[:, 0] > 0).astype(np.int64)
    y_va[:20] = 1 - y_va[:20]
    song = np.arange(50)

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 2))

        def forward(self, x):
            return self.net(x)

    torch.manual_seed(0)
    head = Head()
    r = dict(HEAD_RECIPE, epochs=400, patience=15, lr=0.05, weight_decay=0.0, label_smoothing=0.0, batch_size=32)
    best, history = fit_head(head, (x_tr, y_tr), (x_va, y_va, song, 50), r, seed=0)
    losses = [h["valid_loss"] for h in history]
    assert len(history) < r["epochs"], "never stopped early"
    assert best["epoch"] == int(np.argmin(losses)) + 1 and losses[-1] > min(losses)
    assert len(history) == best["epoch"] + r["patience"]
    assert _scores(head, x_va, y_va, song, 50)["loss"] == pytest.approx(losses[best["epoch"] - 1], rel=1e-6)
