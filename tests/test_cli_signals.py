"""SIGTERM stops `tag` and `generate` mid-work with exit 143 (128 + 15), as README promises for
every command, and what was done is written; Ctrl-C stays 130 (tests/test_tag.py)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "genredream.engine.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _tone(seconds, sr, f):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_sigterm_while_tagging_exits_143_and_keeps_the_rows(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    # Enough work (12 x 30 s through musicnn, several seconds) that the signal, sent after the
    # first row, lands while tagging: geng tagged 12 x 20 s in about a second, so on a loaded
    # machine the signal could arrive after the last row, where there is nothing to resume.
    for i in range(12):
        sf.write(lib / f"song{i:02d}.wav", _tone(30.0, 16000, 200 + 20 * i), 16000)
    out = tmp_path / "tags.csv"
    p = _cli("tag", str(lib), "--out", str(out), "--models", "musicnn-msd", "--workers", "1", "--quiet")
    journal = Path(str(out) + ".partial.jsonl")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and p.poll() is None and not (journal.exists() and journal.read_text().count("\n") >= 1):
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert "Traceback" not in err and "--resume" in err, err
    assert 2 <= len(out.read_text().splitlines()) < 13  # the header and the rows done, not all 12


def test_sigterm_while_generating_exits_143_and_writes_what_is_done(tmp_path):
    seed = tmp_path / "seed.wav"
    sf.write(seed, _tone(2.0, 10000, 220), 10000)
    out = tmp_path / "gen.wav"
    p = _cli("generate", "--genre", "rock", "--seed-audio", str(seed), "--seconds", "600", "--out", str(out), "--progress", "0.2")
    deadline = time.monotonic() + 120
    line = ""
    while time.monotonic() < deadline and "generate:" not in line:  # generating, not starting up
        line = p.stderr.readline()
        assert line or p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert "Traceback" not in err and "interrupted: wrote" in err, err
    y, sr = sf.read(out)
    assert sr == 10000 and 0 < y.size < 600 * sr
