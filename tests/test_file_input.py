"""What a new user meets with files on the command line (issue 16): short, missing, damaged and long
files, progress without a terminal, partial first windows, the labels of percentages, port and hop checks.

Every command runs in-process through ``engine.cli.main`` (the same parser and code as the
``genredream`` script) on real files written here, with a real (untrained) geng model.
"""

import json
import socket
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from genredream.engine.cli import main as cli
from tests.conftest import make_model_file

SR = 8000


@pytest.fixture(scope="module")
def geng(tmp_path_factory):
    return str(make_model_file("geng", tmp_path_factory.mktemp("models"), ["blues", "jazz", "rock"], seed=1))


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps messages at the terminal's width; keep each on one line


def music(seconds, sr=SR, seed=0):
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def run(capfd, *argv):
    rc = cli([str(a) for a in argv])
    out, err = capfd.readouterr()
    return rc, out, err


# -- item 8: very short files are refused alike ----------------------------------------------------


@pytest.mark.parametrize("samples", [1, 2, int(0.3 * SR)])
def test_short_files_are_refused_with_the_same_message_by_every_command(tmp_path, geng, capfd, samples):
    f = tmp_path / "short.wav"
    sf.write(f, music(1.0)[:samples], SR)
    commands = {
        "run": ["run", "--input", f, "--model", geng, "--no-view"],
        "classify": ["classify", f, "--model", geng],
        "dream": ["dream", f, tmp_path / "out.wav", "--model", geng, "--steps", "1"],
        "generate": ["generate", "--genre", "jazz", "--seed-audio", f, "--seconds", "0.2", "--out", tmp_path / "g.wav"],
    }
    for name, argv in commands.items():
        rc, out, err = run(capfd, *argv)
        assert rc == 2, (name, out, err)
        assert "needs at least 1 s" in err and "Traceback" not in err + out, (name, err)
        assert "100%" not in out and "100 %" not in out, (name, out)


def test_a_file_between_1_s_and_a_window_is_classified_and_flagged_as_looped(tmp_path, geng, capfd):
    f = tmp_path / "two.wav"
    sf.write(f, music(2.0), SR)
    rc, out, err = run(capfd, "classify", f, "--model", geng, "--json")
    assert rc == 0 and json.loads(out)["looped_to_window"] is True and "repeated to fill it" in err


# -- item 15: file errors say what is wrong ---------------------------------------------------------


def test_a_missing_file_simply_says_so_and_a_bad_one_names_both_decoders(tmp_path, geng, capfd):
    missing = tmp_path / "nope.wav"
    for argv in (["run", "--input", missing, "--model", geng, "--no-view"], ["classify", missing, "--model", geng],
                 ["dream", missing, tmp_path / "o.wav", "--model", geng]):
        rc, out, err = run(capfd, *argv)
        assert rc == 2 and "no such file" in err and "fallback" not in err and "decode" not in err, err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    rc, out, err = run(capfd, "classify", bad, "--model", geng)
    assert rc == 2 and "cannot decode" in err
    assert "fallback: )" not in err and "fallback decoder: )" not in err and "fallback decoder: " in err, err


def test_a_busy_osc_port_is_reported_before_any_model_loads(capfd):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        port = s.getsockname()[1]
        # A model that cannot load: were the port checked after loading, the model's error would come first.
        rc, out, err = run(capfd, "run", "--osc-port", port, "--model", "no-such-model", "--no-view")
    finally:
        s.close()
    assert rc == 2 and "cannot listen for OSC" in err and "no-such-model" not in err, err


# -- item 10: a lower bound on --hop ---------------------------------------------------------------


def test_a_tiny_hop_is_refused(tmp_path, geng, capfd):
    f = tmp_path / "a.wav"
    sf.write(f, music(6.0), SR)
    rc, out, err = run(capfd, "run", "--input", f, "--model", geng, "--no-view", "--hop", "0.0001")
    assert rc == 2 and "--hop must be from 0.05 s" in err, err


# -- items 7, 11, 12: partial windows, progress without a terminal, labelled percentages -------------


def test_partial_windows_are_flagged_and_progress_goes_to_stderr(tmp_path, geng, capfd):
    f = tmp_path / "a.wav"
    sf.write(f, music(60.0), SR)
    jsonl = tmp_path / "r.jsonl"
    # capfd: stdout is not a terminal, so no live view; progress every 0.05 s of wall-clock time.
    rc, out, err = run(capfd, "run", "--input", f, "--model", geng, "--jsonl", jsonl, "--progress", "0.05", "--realtime", "--duration", "7")
    assert rc == 0, err
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    scores = [x for x in lines if x["type"] == "scores"]
    assert scores and all(x["partial"] == (x["end_index"] < 5 * SR) for x in scores)
    assert any(x["partial"] for x in scores) and any(not x["partial"] for x in scores)
    progress = [x for x in err.splitlines() if x.startswith("progress: ")]
    assert len(progress) >= 3 and "of 7.0 s" in progress[-1], err
    # The summary names its percentage for what it is (geng is softmax: a probability).
    assert "last top genre" in out and "(probability " in out, out


def test_the_live_view_flags_partial_windows_and_names_its_percentages(geng):
    from rich.console import Console

    from genredream.engine.io.view import render
    from genredream.engine.runtime import Engine

    e = Engine(SR)
    e.load_model(geng)
    e.run_blocks([music(2.0)])
    con = Console(record=True, width=200)
    con.print(render(e))
    text = con.export_text()
    assert "partial window" in text and "probabilities (softmax)" in text, text
    e.run_blocks([music(4.0)])
    con = Console(record=True, width=200)
    con.print(render(e))
    assert "partial window" not in con.export_text()


# -- item 5: a damaged file says so ----------------------------------------------------------------


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("ogg", "VORBIS"), ("flac", "PCM_16")])
def test_a_cut_off_file_is_reported_damaged_with_what_was_decoded(tmp_path, geng, capfd, fmt, subtype):
    whole = tmp_path / f"whole.{fmt}"
    sf.write(whole, music(20.0), SR, subtype=subtype)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: len(data) // 2])
    jsonl = tmp_path / "r.jsonl"
    rc, out, err = run(capfd, "run", "--input", cut, "--model", geng, "--no-view", "--jsonl", jsonl)
    assert rc == 0, err
    assert "is damaged" in err and "decoded" in err, err
    rec = [json.loads(x) for x in jsonl.read_text().splitlines()][-1]
    assert rec["type"] == "input" and rec["damaged"] is not None and 5 < rec["decoded_s"] < 15, rec
    rc, out, err = run(capfd, "classify", cut, "--model", geng, "--json")
    assert rc == 0 and "is damaged" in err
    assert json.loads(out)["damaged"] is not None
    # and a sound file is not
    rc, out, err = run(capfd, "classify", whole, "--model", geng, "--json")
    assert rc == 0 and json.loads(out)["damaged"] is None and "damaged" not in err
    assert json.loads(out)["looped_to_window"] is False


# -- item 9: the file is decoded as it plays ---------------------------------------------------------


def _peak_bytes_while_playing(path):
    from genredream.engine.io.file import FileSource

    tracemalloc.start()
    try:
        src = FileSource(path, block=1024)
        n = sum(b.shape[0] for b in src.blocks())
        return tracemalloc.get_traced_memory()[1], n
    finally:
        tracemalloc.stop()


def test_memory_of_a_file_source_does_not_grow_with_the_file(tmp_path):
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    sf.write(short, music(10.0, 16000), 16000)
    with sf.SoundFile(long, "w", 16000, 1, subtype="PCM_16") as f:  # 200 s, written in pieces
        for k in range(20):
            f.write(music(10.0, 16000, seed=k))
    p_short, n_short = _peak_bytes_while_playing(short)
    p_long, n_long = _peak_bytes_while_playing(long)
    assert n_long == 20 * n_short
    # Decoding whole would cost 200 s * 16 kHz * 4 bytes = 12.8 MB for the long file, 0.64 MB for the short.
    assert p_long < 2 * p_short + 256 * 1024, (p_short, p_long)


# -- item 10: one inference thread by default ------------------------------------------------------


def test_a_file_run_uses_one_inference_thread_by_default(tmp_path, geng, capfd, monkeypatch):
    from genredream.engine import session as session_mod

    seen = []
    real = session_mod.build_engine
    monkeypatch.setattr(session_mod, "build_engine", lambda *a, **k: seen.append(a[4] if len(a) > 4 else k.get("threads")) or real(*a, **k))
    f = tmp_path / "a.wav"
    sf.write(f, music(6.0), SR)
    rc, out, err = run(capfd, "run", "--input", f, "--model", geng, "--no-view")
    assert rc == 0 and seen == [1], (seen, err)


# -- item 14: why results of a resampled model are not evenly spaced (docs/latency.md, "Spacing") -------------


@pytest.mark.parametrize("rate", [44100, 48000])
def test_windows_of_a_resampled_model_trail_each_hop_by_under_one_resampler_chunk(geng, rate):
    """geng runs at 8 kHz; soxr releases its output in chunks, so each window ends at the newest
    resampled sample, up to a chunk (~0.15 s) before the hop boundary: the spacing alternates
    (0.436 / 0.581 s at 48 kHz and a 0.5 s hop) but never drifts, and no result waits for a chunk."""
    from genredream.engine.runtime import Engine

    e = Engine(rate, hop=0.5)
    e.load_model(geng)
    got = []
    e.sinks.append(got.append)
    y = music(8.0, rate)
    e.run_blocks(y[i : i + 1024] for i in range(0, y.size, 1024))
    ends = np.array([r.end_index for r in got])
    assert len(ends) == 16
    lag = np.arange(1, 17) * e.hop_samples - ends  # how far each window ends before its hop boundary
    assert np.all(lag >= 0) and lag.max() < 0.2 * rate, lag / rate
    # no drift: the ends keep to the hop boundaries on average
    assert abs(np.mean(np.diff(ends)) - e.hop_samples) < 0.2 * rate / 15, np.diff(ends) / rate
    # and the lag is the resampler's (it varies: an even spacing would be a fixed lag added to every result)
    assert lag.min() < 0.05 * rate


# -- item 11: generate shows progress and keeps what it made when interrupted ----------------------


def test_generate_shows_progress_and_writes_what_it_has_on_ctrl_c(tmp_path):
    import os
    import signal
    import time

    seed = tmp_path / "seed.wav"
    sf.write(seed, music(2.0, 10000), 10000)
    out = tmp_path / "long.wav"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen(
        [sys.executable, "-m", "genredream.engine.cli", "generate", "--genre", "jazz", "--seed-audio", str(seed), "--seconds", "100000",
         "--out", str(out), "--progress", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while len(lines) < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "generate ended early"
            if line.startswith("generate: "):
                lines.append(line)
        assert len(lines) == 2 and "of 100000 s" in lines[-1], lines
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted: wrote" in err and "Traceback" not in err, err
    info = sf.info(out)
    assert info.frames > 0 and info.samplerate == 10000
