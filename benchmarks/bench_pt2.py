"""musicnn-msd as torch.export programs (.pt2, models/pt2.py) against its TorchScript file, in the same run.

The default model stays the TorchScript file until the .pt2 twin is as fast
on the engine's path; three figures decide it, each a same-run ratio
(TorchScript's figure over the .pt2's: below 1, the .pt2 is slower or bigger):

* per hop: the incremental step (models/incremental/) on successive 0.5 s
  windows, the engine's cost per result; one torch thread;
* start-up: ``genredream run --model musicnn-msd[.pt2]`` to its first result,
  in subprocesses, the two alternated, each file's validation cached;
* memory: peak resident memory of a fresh process that loads the model and
  warms its incremental runner, as the engine does before taking audio.

Needs the generated twin (``make pt2``).
"""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmarks.bench_startup import _first_result_s
from genredream.models import contract
from genredream.models.registry import PRETRAINED_DIR, PRETRAINED_PT2_DIR

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")

TS = PRETRAINED_DIR / "musicnn-msd.pt"
PT2 = PRETRAINED_PT2_DIR / "musicnn-msd.pt2"
FILES = {"reference": TS, "ours": PT2}
NAMES = {"reference": "musicnn-msd", "ours": "musicnn-msd.pt2"}


@pytest.fixture(scope="module", autouse=True)
def _twin():
    from tests.conftest import require_component

    require_component(f"the shipped models' .pt2 twins ({PT2})", PT2.is_file(), "make pt2")


@pytest.fixture(scope="module")
def mel_stream():
    from genredream.engine.demo import test_signal

    m = contract.load(TS).module
    y = torch.from_numpy(test_signal(30.0, 16000, 3).mean(axis=1).astype("float32"))[None]
    with torch.no_grad():
        return m.frontend(y)[0].numpy()


def _hops(mel):
    """(window, end) of successive 0.5 s hops: 31 or 32 frames each, as at 16 kHz / hop 256."""
    end, k = 313, 0
    while end <= mel.shape[1]:
        yield mel[:, end - 313 : end].copy(), end
        k += 1
        end = 313 + (k * 8000) // 256


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("role", ["ours", "reference"])
def test_pt2_per_hop_incremental(benchmark, mel_stream, one_thread, role):
    from genredream.models.incremental import FrameBranchRunner

    runner = FrameBranchRunner(contract.load(FILES[role]).module)
    windows = list(_hops(mel_stream))
    warm = 6
    it = iter(windows)

    def run():
        with torch.no_grad():
            return runner(*next(it))

    torch.set_flush_denormal(True)
    try:
        for _ in range(warm):
            run()
        out = benchmark.pedantic(run, rounds=len(windows) - warm, iterations=1)
    finally:
        torch.set_flush_denormal(False)
    assert out.shape == (1, 50) and runner.stats["reused_windows"] >= runner.stats["windows"] - 2
    benchmark.extra_info.update(
        pair="musicnn-msd per 0.5 s hop, incremental, 1 thread: .pt2 programs (ours) vs TorchScript (reference)",
        role=role, budget_s=0.5, threads=1, label="the TorchScript file",
    )


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child of pytest reports pytest's own peak.
_PEAK = r"""
import sys
import torch
from genredream.models import contract
from genredream.models.incremental import FrameBranchRunner
torch.set_num_threads(1)
runner = FrameBranchRunner(contract.load(sys.argv[1]).module)
runner.warm_up(96, 313, hops=(31, 32, 31), repeats=1)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))  # KiB
"""


def _peak_mib(path):
    out = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True, timeout=300)
    return int(out.stdout.split()[-1]) / 1024


@pytest.fixture(scope="module")
def startup_and_memory(request, tmp_path_factory):
    rounds = 1 if request.config.getoption("benchmark_disable", False) else 3
    d = tmp_path_factory.mktemp("pt2start")
    wav = d / "noise.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(7 * 16000)).astype(np.float32), 16000)
    cache = d / "validated.json"
    got = {role: {"start_s": [], "peak_mib": []} for role in FILES}
    for role in FILES:
        _first_result_s(wav, cache, model=NAMES[role])  # validates each file once, fills the OS's file cache
    for _ in range(rounds):
        for role in FILES:
            got[role]["start_s"].append(_first_result_s(wav, cache, model=NAMES[role]))
            got[role]["peak_mib"].append(_peak_mib(FILES[role]))
    return got


_FIGURES = {
    "start_s": ("start-up, `genredream run` to the first musicnn-msd result", dict(figure_label="median time to the first result")),
    "peak_mib": ("peak memory, a process that loads musicnn-msd and warms its incremental runner",
                 dict(figure_unit="MiB", figure_label="median peak resident memory")),
}


@pytest.mark.parametrize("role", ["reference", "ours"])
@pytest.mark.parametrize("what", list(_FIGURES))
def test_pt2_startup_and_memory(benchmark, startup_and_memory, what, role):
    # Measured above in alternated subprocesses; the figure is their median.
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    values = startup_and_memory[role][what]
    title, shown = _FIGURES[what]
    benchmark.extra_info.update(
        pair=f"{title}: .pt2 (ours) vs TorchScript (reference)", role=role, figure_s=float(np.median(values)),
        label="the TorchScript file", **shown, **{what: [round(v, 2) for v in values]},
        **({f"reference_{what}": [round(v, 2) for v in startup_and_memory["reference"][what]]} if role == "ours" else {}),
    )
