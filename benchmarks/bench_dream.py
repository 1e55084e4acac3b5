"""Dreaming against the hop: one hop's K gradient steps as a share of the 0.5 s hop (issue 6).

What is timed is everything the engine does for the dream at a hop: the
front end taking the hop's audio (44.1 kHz in, resampled to the model's
rate) and :meth:`genredream.engine.dream.stream.Dreamer.process` (take the new samples,
K steps of waveform -> [torch mel ->] features -> backward with the spectral
mask, emit, resample the dream back, write ``engine.output``). ``rtf`` is
the median over the hop; the engine's default K per model
(:data:`genredream.engine.dream.defaults.STREAM_DEFAULTS`) must keep it at or under 0.5 on the
2-core machines with one torch thread, which ``target_abs_s`` checks.

geng: the shipped file if training has produced it, else the same network
untrained (the cost does not depend on the weights). musicnn-msd: the shipped
file, dreamed in its default 2 s window; one extra row shows a step in the
full 5 s window, which alone overruns the budget.

The machines are shared (model training runs beside the benchmarks), so
besides the wall-clock ``rtf`` each row records ``cpu_rtf`` (the worker
thread's CPU time over the hop: the wall time on an idle core) and the
1-minute load average at the end of the row.
"""

import time

import numpy as np
import pytest
import torch

from genredream.engine.dream.defaults import STREAM_DEFAULTS
from genredream.engine.dream.stream import Dreamer
from genredream.engine.runtime import Engine
from genredream.models import contract, registry
from tests.conftest import require_component

HOP_S = 0.5
IN_RATE = 44100

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def geng(tmp_path_factory):
    shipped = registry.PRETRAINED_DIR / "geng.pt"
    if shipped.exists():
        return contract.validate(shipped)
    from genredream.models.archs import build

    torch.manual_seed(0)
    m, meta = build("geng", ["blues", "classical", "country", "disco", "hiphop"])
    return contract.save(m.eval(), meta, tmp_path_factory.mktemp("geng") / "geng.pt")


@pytest.fixture(scope="module")
def musicnn():
    path = registry.PRETRAINED_DIR / "musicnn-msd.pt"
    if not path.exists():
        # Shipped in the repository: missing means a broken checkout, which CI must see.
        require_component("models/pretrained/musicnn-msd.pt", False, "git checkout models/pretrained (it is committed)")
    return contract.validate(path)


def _music(seconds, sr=IN_RATE):
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.25 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def _hop_runner(lm, k, **kw):
    """An engine dreaming with ``lm`` at K steps, primed with 5.5 s of audio; returns run_one_hop()."""
    e = Engine(IN_RATE, hop=HOP_S)
    dr = Dreamer(lm, steps=k, **kw)
    e.set_transform(dr)
    audio = _music(60)
    pos = {"i": 0}

    def one_hop():
        i = pos["i"] % (audio.size - e.hop_samples)
        e.write(audio[i : i + e.hop_samples])
        pos["i"] += e.hop_samples
        for job in e.pump():
            e.infer(job)

    dr.set_params(steps=0)
    for _ in range(10):  # a full window of context (no steps: cheap)
        one_hop()
    dr.set_params(steps=k)
    one_hop()  # the first hop with steps (the Dreamer warmed TorchScript up at attach)
    cpu = []

    def timed_hop():
        t0 = time.thread_time()
        one_hop()
        cpu.append(time.thread_time() - t0)

    timed_hop.cpu = cpu
    return e, dr, timed_hop


def _info(benchmark, model, k, dr, default_k, cpu, **more):
    suffix = more.pop("suffix", "")
    benchmark.extra_info.update(
        pair=f"dream: one hop, {model}, K={k}" + suffix,
        role="ours",
        budget_s=HOP_S,
        window_s=round(dr._win_m / dr.sample_rate, 3),
        # The output delay the dream costs a performer (issue 13: the RTF is reported with the latency).
        latency_s=round(dr.latency_samples / IN_RATE, 3),
        default_k=default_k,
        **more,
    )
    if k == default_k and not suffix:
        benchmark.extra_info.update(target="RTF <= 0.5 (default K)", target_abs_s=0.5 * HOP_S)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["rtf"] = round(stats.stats.median / HOP_S, 4)
        # CPU time of the (single-threaded) work: what the wall time would be
        # on an idle machine; the wall time includes waiting for a shared core.
        benchmark.extra_info["cpu_rtf"] = round(float(np.median(cpu)) / HOP_S, 4)
    benchmark.extra_info["load_avg_1min"] = float(open("/proc/loadavg").read().split()[0])


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_dream_hop_geng(benchmark, geng, k):
    e, dr, one_hop = _hop_runner(geng, k)
    benchmark.pedantic(one_hop, rounds=15, iterations=1, warmup_rounds=1)
    assert e.counters["dream_errors"] == 0 and dr.history[-1]["steps"] == k
    _info(benchmark, "geng", k, dr, STREAM_DEFAULTS["geng"]["steps"], one_hop.cpu, model_file=str(geng.path.name))


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_dream_hop_musicnn_msd(benchmark, musicnn, k):
    e, dr, one_hop = _hop_runner(musicnn, k)
    benchmark.pedantic(one_hop, rounds=3 if k >= 4 else 5, iterations=1, warmup_rounds=0)
    assert e.counters["dream_errors"] == 0 and dr.history[-1]["steps"] == k
    _info(benchmark, "musicnn-msd", k, dr, STREAM_DEFAULTS["musicnn"]["steps"], one_hop.cpu)


@pytest.mark.parametrize("k", [1, 2])
def test_dream_hop_musicnn_msd_eq_target(benchmark, musicnn, k):
    """The default toward a target (issue 13): the time-varying EQ, one hop's K steps."""
    e, dr, one_hop = _hop_runner(musicnn, k, target="rock")
    benchmark.pedantic(one_hop, rounds=5, iterations=1, warmup_rounds=0)
    assert e.counters["dream_errors"] == 0 and dr.history[-1]["steps"] == k and dr._eq_mode(dr.params())
    _info(benchmark, "musicnn-msd", k, dr, STREAM_DEFAULTS["musicnn"]["steps"], one_hop.cpu, suffix=", EQ toward a target")
    if k == STREAM_DEFAULTS["musicnn"]["steps"]:
        benchmark.extra_info.update(target="RTF <= 0.5 (default K)", target_abs_s=0.5 * HOP_S)


def test_dream_hop_musicnn_msd_full_window(benchmark, musicnn):
    """Why musicnn dreams in 3 s: one step in the whole 5 s window."""
    e, dr, one_hop = _hop_runner(musicnn, 1, window=5.0)
    benchmark.pedantic(one_hop, rounds=5, iterations=1, warmup_rounds=0)
    assert dr._win_m == musicnn.n_samples
    _info(benchmark, "musicnn-msd", 1, dr, STREAM_DEFAULTS["musicnn"]["steps"], one_hop.cpu, suffix=", 5 s window")
