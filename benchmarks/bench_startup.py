"""Start-up: from `genredream run` starting to the first result from musicnn-msd.

Each round starts the real command line in a subprocess (a 7 s file of
noise, ``--model musicnn-msd --jsonl -``) and times from ``Popen`` to the
first JSON line on its stdout: imports, model loading and warming, the
first 5 s window. Three ways, in the same run, alternated so a noisy
neighbour hits all alike:

* reference (every start before issue 14: 4-14 s): the validation cache
  is a new empty file, so the contract's checks run (26 forward passes),
  TorchScript's graph optimisation is on (GENREDREAM_JIT_OPTIMIZE=1), and
  torch is imported whole with the garbage collector running
  (GENREDREAM_FULL_TORCH_IMPORT=1);
* ours: the cache already vouches for the file (models/validated.py), the
  model is only loaded and warmed, without the graph optimisation's compile
  time (engine/session.py ``fast_jit``), and the start is lightened
  (engine/startup.py: two parts of torch's import deferred, no garbage
  collection until the models are warm);
* ours with the full import (extra_info ``full_import_s``): ours with
  GENREDREAM_FULL_TORCH_IMPORT=1, to show what engine/startup.py takes off.

Target (issue 14): ours within 3 s and at least 2x faster than the reference.

Also timed in each round: ``import torch`` in a fresh interpreter, to a
line printed after it (as ours is timed: the interpreter's exit, about
1 s more with torch loaded, is not counted). This shared VM's speed drifts
by 20-25 % within a day, quiet both times, so the figure to compare across
runs is ours less that, measured in the same run. Since engine/startup.py,
ours imports less of torch than that line does, so the difference can be
small or below zero.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

ROUNDS = 5


def _first_result_s(wav, cache, before=False, full_import=False, model="musicnn-msd"):
    env = dict(os.environ, GENREDREAM_VALIDATION_CACHE=str(cache), PYTHONUNBUFFERED="1")
    env.pop("GENREDREAM_FULL_TORCH_IMPORT", None)
    env.pop("GENREDREAM_JIT_OPTIMIZE", None)
    if before:
        env["GENREDREAM_JIT_OPTIMIZE"] = "1"  # torch's default graph optimisation, as before
    if before or full_import:
        env["GENREDREAM_FULL_TORCH_IMPORT"] = "1"  # all of torch imported, the collector on (engine/startup.py)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-m", "genredream.engine.cli", "run", "--input", str(wav), "--model", model, "--jsonl", "-", "--no-view", "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        for line in p.stdout:
            if line.startswith("{"):
                return time.perf_counter() - t0
        raise AssertionError(f"no result; exit code {p.wait()}")
    finally:
        p.kill()
        p.wait()


def _import_torch_s():
    """From Popen to a line printed right after ``import torch`` (timed as ours is: to a line, not to the exit)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", "import torch; print('imported', flush=True)"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().startswith("imported"), f"exit code {p.wait()}"
        return time.perf_counter() - t0
    finally:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def startup_times(tmp_path_factory):
    d = tmp_path_factory.mktemp("startup")
    wav = d / "noise.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(7 * 16000)).astype(np.float32), 16000)
    warm = d / "warm.json"
    _first_result_s(wav, warm)  # fills the cache (and the OS's file cache) once
    old, new, full, floor = [], [], [], []
    for i in range(ROUNDS):
        old.append(_first_result_s(wav, d / f"cold-{i}.json", before=True))
        new.append(_first_result_s(wav, warm))
        full.append(_first_result_s(wav, warm, full_import=True))
        floor.append(_import_torch_s())
    return {"reference": old, "ours": new, "full_import": full, "import_torch": floor}


@pytest.mark.parametrize("role", ["reference", "ours"])
def test_first_musicnn_result_after_start(benchmark, startup_times, role):
    ts = startup_times[role]
    # The times are measured above, in subprocesses alternated between the
    # two ways; the figure is their median (figure_s), not this call.
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    ratio = float(np.median(startup_times["reference"]) / np.median(startup_times["ours"]))
    benchmark.extra_info.update(
        pair="start-up: `genredream run` to the first musicnn-msd result",
        role=role,
        target="ours <= 3 s and >= 2x faster than validating every start",
        target_abs_s=3.0,
        target_min_ratio=2.0,
        label="validated every start (before)" if role == "reference" else "validation cached by content (after)",
        figure_s=float(np.median(ts)),
        figure_label="median time to the first result",
        first_result_s=[round(t, 2) for t in ts],
        speedup_median=round(ratio, 2),
        full_import_s=[round(t, 2) for t in startup_times["full_import"]],
        import_torch_s=[round(t, 2) for t in startup_times["import_torch"]],
        ours_above_import_torch_s=round(float(np.median(startup_times["ours"]) - np.median(startup_times["import_torch"])), 2),
    )
    print(f"\n{role}: first musicnn-msd result after {', '.join(f'{t:.2f}' for t in ts)} s (median ratio before/after {ratio:.2f}x); "
          f"ours with the full import {', '.join(f'{t:.2f}' for t in startup_times['full_import'])} s; "
          f"`import torch` alone {', '.join(f'{t:.2f}' for t in startup_times['import_torch'])} s")
