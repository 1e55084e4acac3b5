"""`genredream tag` on a library: whole command (start-up included) vs the per-file
`genredream run` loop, peak memory for a short vs a long file, and Ray local vs
the embedded executor. Every figure is a whole command in a subprocess, as a
user runs it; ratios are between commands measured in the same run.

Under `make test` (timing disabled) the folder shrinks to a few short files
so the pass only checks that every path works.
"""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import require_component

MODEL = "musicnn-msd"
# Memory is about the streaming front end, not the network: a waveform and a
# mel model (two rates, two front ends) at a fraction of musicnn's compute, so
# the hour-long file takes minutes, not a quarter of an hour.
RSS_MODELS = ("geng", "zheng")


def _write_song(path, seconds, sr=44100, seed=0):
    """Music-like stereo (chords, kick, hats), written in one-minute blocks so an hour never sits in memory."""
    from genredream.engine.demo import test_signal

    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        left = float(seconds)
        block = 0
        while left > 0:
            n = min(60.0, left)
            f.write(test_signal(n, sr, seed + block))
            left -= n
            block += 1


@pytest.fixture(scope="module")
def folder(tmp_path_factory, request):
    disabled = request.config.getoption("benchmark_disable", False)
    n, seconds = (2, 6.0) if disabled else (50, 30.0)
    # A smaller folder on a busy machine: GENREDREAM_BENCH_TAG_FILES=10 (the report says how many).
    n = int(os.environ.get("GENREDREAM_BENCH_TAG_FILES", n))
    root = tmp_path_factory.mktemp("library")
    for i in range(n):
        _write_song(root / f"song{i:02d}.wav", seconds, seed=i)
    return root, n * seconds


def _cli(*args, timeout=3600):
    """Run `python -m engine.cli ARGS` from this tree; returns (wall seconds, completed process)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "genredream.engine.cli", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    return wall, r


def _peak_rss_mb(*args):
    """Peak RSS of one `genredream tag` (one file: it runs in a single process), via a wrapper whose only child it is."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    code = (
        "import resource, subprocess, sys;"
        "r = subprocess.run([sys.executable, '-m', 'genredream.engine.cli', *sys.argv[1:]], capture_output=True);"
        "assert r.returncode == 0, r.stderr.decode()[-2000:];"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, timeout=3600)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.strip().splitlines()[-1]) / 1024  # Linux: kB


def test_tag_whole_command_vs_run_loop(benchmark, folder, tmp_path):
    """50 x 30 s, musicnn-msd: `genredream tag` (all cores, start-up included) vs one `genredream run --input` per file."""
    root, audio_s = folder
    holder = {}

    def go():
        holder["wall"], holder["r"] = _cli("tag", root, "--out", tmp_path / "tags.csv", "--models", MODEL, "--force", "--quiet")

    benchmark.pedantic(go, rounds=1, iterations=1)
    rows = (tmp_path / "tags.csv").read_text().splitlines()
    assert len(rows) == 1 + len(list(root.iterdir()))
    # The reference: the per-file loop a user runs today, on the first files of
    # the same folder (each file costs the same start-up, so x real time per
    # file does not depend on how many are run; 10 keep the benchmark short).
    files = sorted(root.iterdir())[: (1 if benchmark.disabled else 10)]
    t0 = time.perf_counter()
    for f in files:
        _cli("run", "--input", f, "--model", MODEL, "--no-view")
    loop_wall = time.perf_counter() - t0
    loop_audio = sum(sf.info(f).duration for f in files)
    benchmark.extra_info.update(
        pair="tag a library, musicnn-msd, whole command incl. start-up",
        role="ours",
        figure_s=holder["wall"] / audio_s,
        figure_label="wall time per second of audio",
        budget_s=1.0,
        target=">= 60x real time",
        target_max_fraction=1 / 60,
        files=len(rows) - 1,
        audio_s=audio_s,
        tag_wall_s=round(holder["wall"], 1),
        tag_times_real_time=round(audio_s / holder["wall"], 1),
        run_loop_files=len(files),
        run_loop_wall_s=round(loop_wall, 1),
        run_loop_times_real_time=round(loop_audio / loop_wall, 1),
        tag_vs_run_loop=round((loop_wall / loop_audio) / (holder["wall"] / audio_s), 2),
        cores=os.cpu_count(),
        load_avg_1min=round(os.getloadavg()[0], 2),
    )


def test_tag_peak_rss_short_vs_long_file(benchmark, tmp_path):
    """Peak RSS of `genredream tag` on a 1 min and a 1 h file: streaming decode keeps it flat."""
    short_s, long_s = (5.0, 20.0) if benchmark.disabled else (60.0, 3600.0)
    for name, s in (("short", short_s), ("long", long_s)):
        (tmp_path / name).mkdir()
        _write_song(tmp_path / name / f"{name}.wav", s, sr=22050)
    holder = {}

    def go():
        holder["short"] = _peak_rss_mb("tag", tmp_path / "short", "--out", tmp_path / "s.csv", "--models", *RSS_MODELS, "--quiet")
        holder["long"] = _peak_rss_mb("tag", tmp_path / "long", "--out", tmp_path / "l.csv", "--models", *RSS_MODELS, "--quiet")

    benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update(
        pair="tag peak RSS, 1 h vs 1 min file",
        role="ours",
        target="within 10 %",
        short_file_s=short_s,
        long_file_s=long_s,
        peak_rss_short_mb=round(holder["short"], 1),
        peak_rss_long_mb=round(holder["long"], 1),
        long_over_short=round(holder["long"] / holder["short"], 3),
        models=" ".join(RSS_MODELS),
        long_file_mb=round((tmp_path / "long" / "long.wav").stat().st_size / 2**20, 1),
    )


def test_tag_ray_local_vs_embedded(benchmark, folder, tmp_path):
    """The same folder through `--ray` (a local Ray started by the command) and the embedded executor."""
    try:
        import ray  # noqa: F401
    except ImportError:
        ray = None
    require_component("Ray", ray is not None, "pip install -e '.[ray]'")
    root, audio_s = folder
    holder = {}

    def go():
        holder["ray"], _ = _cli("tag", root, "--out", tmp_path / "ray.csv", "--models", MODEL, "--ray", "--quiet")

    benchmark.pedantic(go, rounds=1, iterations=1)
    holder["embedded"], _ = _cli("tag", root, "--out", tmp_path / "embedded.csv", "--models", MODEL, "--quiet")
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "embedded.csv").read_bytes()
    benchmark.extra_info.update(
        pair="tag: Ray local vs embedded executor (same folder, same rows)",
        role="ours",
        figure_s=holder["ray"] / audio_s,
        figure_label="wall time per second of audio",
        budget_s=1.0,
        ray_wall_s=round(holder["ray"], 1),
        embedded_wall_s=round(holder["embedded"], 1),
        ray_over_embedded=round(holder["ray"] / holder["embedded"], 2),
        audio_s=audio_s,
        files=len(list(root.iterdir())),
    )
