"""`genredream tag`: rows agree with `classify`, resume, damaged files, Ray.

Real components throughout: audio written with soundfile (stereo 44.1 kHz
and mono 22.05 kHz, so resampling and downmixing are exercised), the
shipped musicnn-msd (mel, 16 kHz) and geng (waveform, 8 kHz) models, the
CLI as a user runs it, SIGINT from outside, and a local Ray cluster.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genredream.engine.cli import main as cli
from tests.conftest import require_component

MODELS = ["musicnn-msd", "geng"]


def _tone(seconds, sr, channels, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 * (1 + seed % 5)
    y = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * np.sin(t))) + 0.3 * (np.sin(2 * np.pi * 2 * t) > 0.9) * rng.standard_normal(t.size)
    return np.stack([y * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    (root / "a" / "b").mkdir(parents=True)
    sf.write(root / "long.wav", _tone(12.2, 44100, 2, 1), 44100)
    sf.write(root / "a" / "short.flac", _tone(3.1, 22050, 1, 2), 22050)
    sf.write(root / "a" / "b" / "mid.ogg", _tone(7.4, 48000, 2, 3), 48000)
    sf.write(root / "a" / "no_extension", _tone(6.0, 16000, 1, 4), 16000, format="WAV")
    (root / "notes.txt").write_text("not audio\n")
    (root / "._long.wav").write_bytes(b"\x00\x05\x16\x07 resource fork")
    return root


def _damage(folder):
    good = folder / "good.wav"
    sf.write(good, _tone(6.0, 44100, 1, 5), 44100)
    bad = folder / "damaged.flac"
    sf.write(bad, _tone(6.0, 44100, 1, 6), 44100)
    raw = bad.read_bytes()
    bad.write_bytes(raw[:200] + b"\x00" * 64 + raw[264:])  # a damaged FLAC stream: header intact, frames not
    (folder / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + os.urandom(64))


def _jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_walk_takes_audio_by_extension_and_content(library):
    from genredream.models.tag.files import find_audio

    entries, missing = find_audio([library, library / "nope"])
    names = sorted(Path(e.path).name for e in entries)
    assert names == ["long.wav", "mid.ogg", "no_extension", "short.flac"]
    assert missing == [str(library / "nope")]


def test_stereo_downmix_is_numpys_mean_bit_for_bit():
    """The streaming reader's fast stereo downmix gives classify's ``mean(axis=1)`` exactly, subnormals included."""
    from genredream.models.tag.windows import _downmix

    rng = np.random.default_rng(7)
    y = (rng.standard_normal((10007, 2)) * np.exp(rng.uniform(-100, 5, (10007, 1)))).astype(np.float32)
    y[:3] = [[1e-45, 1e-45], [-1e-45, 3e-45], [3.4e38, 3.4e38]]  # the smallest subnormals, an overflowing sum
    with np.errstate(over="ignore"):
        for block in (y, y[:, :1], np.concatenate([y, y[:, ::-1], y], axis=1)):
            got, ref = _downmix(block), block.mean(axis=1)
            assert got.dtype == np.float32
            assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_rows_agree_with_classify(library, tmp_path):
    """The default hop gives classify's windows: same starts and ends, same scores within 1e-5."""
    import torch

    from genredream.models.classify import classify_file
    from genredream.models.contract import load
    from genredream.models.registry import resolve_model

    torch.set_num_threads(1)
    out, win = tmp_path / "tags.jsonl", tmp_path / "windows.jsonl"
    rc = cli(["tag", str(library), "--out", str(out), "--per-window", str(win), "--models", *MODELS, "--workers", "2", "--quiet"])
    assert rc == 0
    rows, wins = _jsonl(out), _jsonl(win)
    assert sorted(Path(r["path"]).name for r in rows) == ["long.wav", "mid.ogg", "no_extension", "short.flac"]
    for row in rows:
        assert row["error"] is None
        info = sf.info(row["path"])
        assert row["sample_rate"] == info.samplerate and row["channels"] == info.channels
        assert row["duration_s"] == pytest.approx(info.duration, abs=1e-3)
        for name in MODELS:
            m = load(resolve_model(name))
            ref = classify_file(row["path"], m)
            mine = [w for w in wins if w["path"] == row["path"] and w["model"] == m.name]
            assert [(w["start_s"], w["end_s"]) for w in mine] == [(w["start_s"], w["end_s"]) for w in ref["windows"]]
            for w, r in zip(mine, ref["windows"]):
                np.testing.assert_allclose([w[f"{m.name}:{k}"] for k in m.labels], [r["scores"][k] for k in m.labels], atol=1e-5, rtol=0)
            np.testing.assert_allclose([row[f"{m.name}:{k}"] for k in m.labels], [ref["mean"][k] for k in m.labels], atol=1e-5, rtol=0)
            if name == MODELS[0]:
                assert row["windows"] == len(ref["windows"])
                genres = ref["genre_labels"]
                assert row["top_genre"] == max(genres, key=lambda g: ref["mean"][g])


def test_half_overlap_hop_is_half_a_window(library, tmp_path):
    """--overlap 0.5: windows overlap by half (a 2.5 s hop), the last one ends with the file.

    The reference is the whole-file path (decode everything, one mel, slice),
    not the streaming one under test.
    """
    import torch

    from genredream.models.contract import load
    from genredream.models.registry import resolve_model
    from genredream.models.data import consecutive_starts, load_audio
    from genredream.models.inputs import InputSpec

    out, win = tmp_path / "tags.csv", tmp_path / "windows.csv"
    f = library / "long.wav"
    assert cli(["tag", str(f), "--out", str(out), "--per-window", str(win), "--models", "musicnn-msd", "--overlap", "0.5", "--quiet"]) == 0
    m = load(resolve_model("musicnn-msd"))
    spec = InputSpec(m.meta)
    feats = spec.song_features(load_audio(f, spec.sample_rate))
    starts = consecutive_starts(spec.units(feats), spec.length, spec.length // 2)
    assert spec.length // 2 == 156 and len(starts) == 4  # 12.2 s: 0, 2.5, 5 s and one ending with the file (7.2 s)
    with torch.no_grad():
        ref = torch.sigmoid(m.module(torch.from_numpy(spec.batch([feats] * len(starts), starts)))).numpy()
    import csv

    rows = list(csv.DictReader(open(win)))
    assert [float(r["start_s"]) for r in rows] == [round(spec.seconds(s), 3) for s in starts]
    got = np.array([[float(r[f"musicnn-msd:{k}"]) for k in m.labels] for r in rows])
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    (row,) = csv.DictReader(open(out))
    assert int(row["windows"]) == 4
    np.testing.assert_allclose([float(row[f"musicnn-msd:{k}"]) for k in m.labels], ref.mean(axis=0), atol=1e-5, rtol=0)


def test_overlapping_windows_reuse_the_previous_windows_work(library):
    """musicnn's windows are scored one at a time along each file, with the scores of
    whole, batched forward passes (within 1e-5): at --overlap 0.5 every window after a
    file's first from the previous one's front end; at the default hop, where windows
    share no frame, each whole."""
    import torch

    from genredream.models.registry import resolve_model
    from genredream.models.tag.files import find_audio
    from genredream.models.tag.tagger import Tagger

    torch.set_num_threads(1)
    entries, _ = find_audio([library])
    paths = [str(resolve_model(m)) for m in MODELS]
    for overlap in (0.5, 0.0):
        fast = Tagger(paths, overlap=overlap, per_window=True)
        rows = {r["path"]: (r, w) for r, w in fast.tag(entries)}
        whole = Tagger(paths, overlap=overlap, per_window=True, incremental=False)
        ref = {r["path"]: (r, w) for r, w in whole.tag(entries)}
        n = sum(r["windows"] for r, _ in rows.values())  # musicnn's windows (the first model's)
        # A window reuses the last one's work where the two share frames: every
        # window after a file's first at 0.5; at 0 only a last window that was
        # moved back to end with the file.
        shares = 0
        for _, wins in rows.values():
            starts = [w["start_s"] for w in wins if w["model"] == "musicnn-msd"]
            shares += sum(b - a < 5.0 for a, b in zip(starts, starts[1:]))
        assert shares == (n - len(entries) if overlap else 3)  # long.wav (12.2 s), mid.ogg (7.4 s), no_extension (6 s)
        assert fast.stats["incremental"] == n and fast.stats["reused"] == shares
        assert whole.stats["incremental"] == 0 and whole.stats["batched"] > n
        _assert_same_rows(rows, ref)


def _assert_same_rows(rows, ref):
    for path, (row, wins) in rows.items():
        r, w = ref[path]
        keys = [k for k in row if ":" in k]
        assert row["windows"] == r["windows"] and len(wins) == len(w)
        np.testing.assert_allclose([row[k] for k in keys], [r[k] for k in keys], atol=1e-5, rtol=0)
        for a, b in zip(wins, w):
            assert (a["model"], a["start_s"], a["end_s"]) == (b["model"], b["start_s"], b["end_s"])
            np.testing.assert_allclose([a[k] for k in a if ":" in k], [b[k] for k in b if ":" in k], atol=1e-5, rtol=0)


def test_damaged_files_get_error_rows_and_the_rest_is_tagged(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    _damage(lib)
    out = tmp_path / "tags.parquet"
    r = subprocess.run(
        [sys.executable, "-m", "genredream.engine.cli", "tag", str(lib), "--out", str(out), "--models", "geng", "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "2 could not be read" in r.stderr
    import pyarrow.parquet as pq

    rows = {Path(x["path"]).name: x for x in pq.read_table(out).to_pylist()}
    assert sorted(rows) == ["damaged.flac", "garbage.wav", "good.wav"]
    assert rows["good.wav"]["error"] is None and rows["good.wav"]["windows"] == 2
    for name in ("damaged.flac", "garbage.wav"):
        assert name in rows[name]["error"] and rows[name]["windows"] is None and rows[name]["geng:rock"] is None


def _library_for_resume(root, n=6):
    root.mkdir()
    for i in range(n):
        sf.write(root / f"song{i}.wav", _tone(8.0 + i, 22050, 1, 10 + i), 22050)
    return root


def test_resume_after_ctrl_c_gives_the_uninterrupted_file(tmp_path):
    # Ten files: rows now come a file at a time, fast enough that with six a
    # starved test process sometimes signalled a job that had already ended.
    n = 10
    lib = _library_for_resume(tmp_path / "lib", n)
    args = [sys.executable, "-m", "genredream.engine.cli", "tag", str(lib), "--models", "musicnn-msd", "--workers", "1", "--per-window"]
    whole = tmp_path / "whole.csv"
    r = subprocess.run(args + [str(tmp_path / "whole_w.csv"), "--out", str(whole)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr

    out = tmp_path / "part.csv"
    p = subprocess.Popen(args + [str(tmp_path / "part_w.csv"), "--out", str(out)], stderr=subprocess.PIPE, text=True)
    journal = Path(str(out) + ".partial.jsonl")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (journal.exists() and journal.read_text().count("\n") >= 1):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    kept = out.read_text().splitlines()
    assert 2 <= len(kept) < n + 1  # the header and at least the one finished row, not all of them
    assert not journal.exists()

    r = subprocess.run(args + [str(tmp_path / "part_w.csv"), "--out", str(out), "--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr
    assert out.read_bytes() == whole.read_bytes()
    assert (tmp_path / "part_w.csv").read_bytes() == (tmp_path / "whole_w.csv").read_bytes()


def test_usage_errors_exit_2(library, tmp_path, capsys):
    assert cli(["tag", str(library), "--out", str(tmp_path / "x.xlsx")]) == 2
    assert ".parquet" in capsys.readouterr().err
    existing = tmp_path / "x.csv"
    existing.write_text("path\n")
    assert cli(["tag", str(library), "--out", str(existing)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli(["tag", str(tmp_path / "missing"), "--out", str(tmp_path / "y.csv")]) == 2


def test_ray_gives_the_same_rows_as_the_embedded_run(library, tmp_path):
    try:
        import ray
    except ImportError:
        ray = None
    require_component("Ray", ray is not None, "pip install -e '.[ray]'")
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    lw, rw = tmp_path / "local_w.jsonl", tmp_path / "ray_w.jsonl"
    assert cli(["tag", str(library), "--out", str(local), "--per-window", str(lw), "--models", *MODELS, "--quiet"]) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert cli(["tag", str(library), "--out", str(remote), "--per-window", str(rw), "--models", *MODELS, "--ray", "--quiet"]) == 0
        # Files as object-store inputs: the bytes travel, the rows are the same.
        sent = tmp_path / "sent.jsonl"
        assert cli(["tag", str(library), "--out", str(sent), "--models", *MODELS, "--ray", "--ray-upload", "--quiet"]) == 0
    finally:
        ray.shutdown()
    assert remote.read_bytes() == local.read_bytes()
    assert rw.read_bytes() == lw.read_bytes()
    assert sent.read_bytes() == local.read_bytes()
