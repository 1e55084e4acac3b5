"""What a new user hit with `classify` and `tag` on awkward files: silence, cut-off files,
files under a second, FIFOs and broken links, and memory on long files.

The real command line (in-process, or in a subprocess where memory or a FIFO is involved)
on files written here; the shipped geng model keeps it quick.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genredream.engine.cli import main as cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tone(seconds, sr=22050, f=330.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def _rows(path):
    import csv

    with open(path, newline="") as f:
        return {Path(r["path"]).name: r for r in csv.DictReader(f)}


def test_classify_marks_silence_low_energy_and_gives_levels(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the table's rows on one line each
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(22050 * 10, np.float32), 22050)
    assert cli(["classify", str(silent), "--model", "geng", "--json"]) == 0
    o = capfd.readouterr()
    r = json.loads(o.out)
    assert r["low_energy"] is True and r["level_db"] < -60, r
    assert all(w["low_energy"] and w["level_db"] < -60 for w in r["windows"])
    assert "near silence" in o.err
    assert cli(["classify", str(silent), "--model", "geng"]) == 0
    assert "low energy" in capfd.readouterr().out
    loud = tmp_path / "loud.wav"
    sf.write(loud, tone(10.0), 22050)
    assert cli(["classify", str(loud), "--model", "geng", "--json"]) == 0
    r = json.loads(capfd.readouterr().out)
    rms_db = 20 * np.log10(np.sqrt(np.mean(tone(10.0).astype(np.float64) ** 2)))
    assert r["low_energy"] is False and abs(r["level_db"] - rms_db) < 0.5, (r["level_db"], rms_db)


def _tag(lib, out, *extra):
    # COLUMNS: rich wraps stderr at the terminal's width; one line per message here
    env = dict(os.environ, COLUMNS="1000", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "genredream.engine.cli", "tag", *map(str, lib), "--out", str(out), "--models", "geng",
                           "--workers", "1", "--quiet", *extra], capture_output=True, text=True, timeout=300, env=env)


def test_tag_flags_cut_off_files_silence_and_short_files(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "good.wav", tone(12.0), 22050)
    sf.write(lib / "silence.wav", np.zeros(22050 * 10, np.float32), 22050)
    sf.write(lib / "half-second.wav", tone(0.5), 22050)
    full = lib / "cut.wav"
    sf.write(full, tone(60.0), 22050, subtype="PCM_16")
    data = full.read_bytes()
    full.write_bytes(data[: 44 + 2 * 22050 * 17])  # cut at 17 s of the 60 its header declares
    out = tmp_path / "tags.csv"
    r = _tag([lib], out)
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert rows["good.wav"]["damaged"] == "" and rows["good.wav"]["low_energy"] == "0" and rows["good.wav"]["top_genre"]
    assert rows["cut.wav"]["damaged"] and "60" in rows["cut.wav"]["damaged"] and rows["cut.wav"]["error"] == "", rows["cut.wav"]
    assert abs(float(rows["cut.wav"]["duration_s"]) - 17.0) < 0.1
    assert rows["silence.wav"]["low_energy"] == "1" and rows["silence.wav"]["top_genre"] == "", rows["silence.wav"]
    assert float(rows["silence.wav"]["level_db"]) < -60
    assert "at least 1 s" in rows["half-second.wav"]["error"], rows["half-second.wav"]
    assert "1 damaged" in r.stderr and "1 near silence" in r.stderr and "1 could not be read" in r.stderr, r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_tag_says_what_it_skips_fifos_and_broken_links(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "good.wav", tone(6.0), 22050)
    os.mkfifo(lib / "pipe.wav")
    (lib / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    named = tmp_path / "named.fifo"
    os.mkfifo(named)
    out = tmp_path / "tags.csv"
    r = _tag([lib, named], out)
    assert r.returncode == 0, r.stderr
    assert "no such file" not in r.stderr, r.stderr  # the named FIFO exists: it is skipped, not missing
    assert "skipped 3 entries" in r.stderr and "a FIFO" in r.stderr and "a broken link" in r.stderr, r.stderr
    assert list(_rows(out)) == ["good.wav"]


@pytest.mark.slow
def test_classify_memory_does_not_grow_with_the_files_length(tmp_path):
    """Peak RSS of `classify` on 30 min against 1 min of the same music (each in a fresh process)."""
    sr = 16000
    one = tone(60.0, sr)
    short, long_ = tmp_path / "one.wav", tmp_path / "thirty.wav"
    sf.write(short, one, sr, subtype="PCM_16")
    with sf.SoundFile(long_, "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(30):
            f.write(one)
    code = ("import resource, sys; from genredream.engine.cli import main; rc = main(['classify', sys.argv[1], '--model', 'geng', '--json']);"
            "sys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    peaks = []
    for f in (short, long_):
        p = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, timeout=600, env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        peaks.append(int(p.stderr.split("MAXRSS ")[-1].split()[0]) / 1024)
        assert len(json.loads(p.stdout)["windows"]) == (12 if f is short else 360)
    assert peaks[1] <= 1.1 * peaks[0], f"peak RSS {peaks[0]:.0f} MB for 1 min, {peaks[1]:.0f} MB for 30 min"
