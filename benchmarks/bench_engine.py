"""The engine: result latency per shipped model, offline throughput, and a
sweep over sample rates x block sizes.

None of these has a reference measured alongside, so their bounds (a p99
latency, a multiple of real time) are shown beside the figures as
information (benchmarks/report.py), not as verdicts; each figure is also
shown as a share of its real-time budget (the hop, or the audio's own
duration)."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from genredream.engine.runtime import Engine
from genredream.models.registry import list_models

FIGURES = Path(__file__).parent / "figures"
HOP = 0.5


def clip(sr, seconds, seed=0):
    """Synthetic music-like audio: chords, a kick, noise hats (no files needed)."""
    from genredream.engine.demo import test_signal

    return test_signal(seconds, sr, seed).mean(axis=1).astype(np.float32)


def shipped():
    """Every shipped model's name, whether it loads or not: one that fails fails its benchmark, it is not dropped."""
    return sorted(m["name"] for m in list_models() if m["path"].find("pretrained") >= 0)


def _loads(model):
    """Fail (not skip) when a shipped model does not load."""
    errors = {m["name"]: m["error"] for m in list_models() if m["path"].find("pretrained") >= 0}
    assert errors[model] is None, f"shipped model {model} does not load: {errors[model]}"


def run_file(models, sr, seconds, block, threads=1):
    """Run ``seconds`` of audio through an engine as fast as possible; returns (engine, wall seconds)."""
    e = Engine(sr, hop=HOP, torch_threads=threads)
    for m in models:
        e.load_model(m)
    y = clip(sr, seconds)
    # Warm-up: TorchScript's profiling executor optimises on the first calls.
    w = y[: 6 * sr]
    e.run_blocks((w[i : i + block] for i in range(0, w.size, block)))
    for d in e.latencies.values():
        d.clear()
    e.counters.clear()
    t0 = time.perf_counter()
    e.run_blocks((y[i : i + block] for i in range(0, y.size, block)))
    return e, time.perf_counter() - t0


@pytest.mark.parametrize("model", shipped())
def test_result_latency_per_model(benchmark, model):
    """Window end -> result, one model, 48 kHz input in 512-frame blocks, 1 torch thread."""
    _loads(model)
    holder = {}

    # Under `make test` (timing disabled) a short run only checks the benchmark works.
    seconds = 4.0 if benchmark.disabled else 20.0

    def go():
        holder["e"], holder["wall"] = run_file([model], 48000, seconds, 512)

    benchmark.pedantic(go, rounds=1, iterations=1)
    ls = holder["e"].latency_stats(model)
    targets = {"geng": 0.010, "musicnn-msd": 0.030}
    info = dict(
        pair=f"result latency p99: {model}",
        role="ours",
        budget_s=HOP,
        figure_s=ls["p99"] / 1e3,
        figure_label="p99",
        latency_p50_ms=round(ls["p50"], 2),
        latency_p99_ms=round(ls["p99"], 2),
        results=ls["n"],
    )
    if model in targets:
        info.update(target=f"p99 <= {targets[model] * 1e3:.0f} ms", target_abs_s=targets[model])
    benchmark.extra_info.update(info)
    assert ls["n"] == int(seconds / HOP)


def test_offline_throughput_default_model(benchmark):
    """`genredream run --input FILE --no-view` with the default model, hop 0.5 s, as a multiple of real time."""
    from genredream.models.classify import default_model

    model = str(default_model())
    holder = {}

    seconds = 4.0 if benchmark.disabled else 30.0

    def go():
        # `genredream run --input FILE` uses every core for a file analysed as fast as possible.
        holder["e"], holder["wall"] = run_file([model], 22050, seconds, 1024, threads=os.cpu_count() or 1)

    benchmark.pedantic(go, rounds=1, iterations=1)
    x_rt = seconds / holder["wall"]
    benchmark.extra_info.update(
        pair="offline throughput, default model (30 s file, hop 0.5 s)",
        role="ours",
        figure_s=holder["wall"] / seconds,
        figure_label="wall time per second of audio",
        budget_s=1.0,
        target=">= 50x real time",
        target_max_fraction=1 / 50,
        times_real_time=round(x_rt, 1),
        torch_threads=os.cpu_count() or 1,
        model=Path(model).stem,
    )


def test_sweep_rates_and_blocks(benchmark):
    """Latency p50/p99 and throughput over sample rates x block sizes (zheng), plotted."""
    rates, blocks_ = (22050, 44100, 48000), (64, 128, 256, 512, 1024, 2048)
    if benchmark.disabled:
        rates, blocks_ = (48000,), (256, 2048)
    model = "zheng" if "zheng" in shipped() else shipped()[0]
    rows = []

    def go():
        for sr in rates:
            for b in blocks_:
                e, wall = run_file([model], sr, 3.0 if benchmark.disabled else 8.0, b)
                ls = e.latency_stats()
                rows.append(dict(sr=sr, block=b, p50_ms=ls["p50"], p99_ms=ls["p99"], x_realtime=(3.0 if benchmark.disabled else 8.0) / wall))

    benchmark.pedantic(go, rounds=1, iterations=1)
    if benchmark.disabled:
        return  # the figure belongs to `make bench`, not to a test run
    FIGURES.mkdir(exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, sr in enumerate(rates):
        r = [x for x in rows if x["sr"] == sr]
        c = f"C{i}"  # one colour per rate: p99 solid, p50 dashed
        a1.plot([x["block"] for x in r], [x["p99_ms"] for x in r], "o-", color=c, label=f"{sr} Hz p99")
        a1.plot([x["block"] for x in r], [x["p50_ms"] for x in r], "x--", color=c, alpha=0.6, label=f"{sr} Hz p50")
        a2.plot([x["block"] for x in r], [x["x_realtime"] for x in r], "o-", color=c, label=f"{sr} Hz")
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_xlabel("block size (frames)")
        a.legend(fontsize=7)
    a1.set_ylabel("result latency (ms)")
    a2.set_ylabel("throughput (x real time)")
    fig.suptitle(f"engine sweep, model {model}, hop {HOP} s, 1 torch thread", fontsize=9)
    fig.tight_layout()
    fig.savefig(FIGURES / "engine-sweep.png", dpi=100)
    plt.close(fig)
    (FIGURES / "engine-sweep.json").write_text(json.dumps(rows, indent=1))
    benchmark.extra_info.update(
        pair="engine sweep: sample rates x block sizes",
        role="ours",
        figure_png="benchmarks/figures/engine-sweep.png",
        worst_p99_ms=round(max(r["p99_ms"] for r in rows), 2),
        slowest_x_realtime=round(min(r["x_realtime"] for r in rows), 1),
    )
