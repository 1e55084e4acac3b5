"""10-minute soak at full speed (not in CI: `pytest benchmarks/soak_engine.py -m soak -s`).

Loops a clip through the engine as fast as it goes with the shipped seed
models, samples the process RSS every few seconds, and checks that memory is
flat after warm-up (growth < 5 MB) and the sample clock exact.
"""

import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from genredream.engine.runtime import Engine

MINUTES = float(os.environ.get("GENREDREAM_SOAK_MINUTES", "10"))


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.soak
def test_soak_memory_flat_and_clock_exact():
    from genredream.engine.demo import test_signal
    from genredream.models.registry import list_models

    sr, block = 48000, 512
    y = test_signal(20.0, sr).mean(axis=1).astype(np.float32)
    y[1000:1010] = np.nan  # the repair path runs too
    e = Engine(sr)
    for m in list_models():
        if m["error"] is None and m["name"] in ("zheng", "geng", "musicnn-msd"):
            e.load_model(m["path"])
    fed, samples, t0 = 0, [], time.time()
    warm = None
    while time.time() - t0 < MINUTES * 60:
        e.run_blocks((y[i : i + block] for i in range(0, y.size, block)))
        fed += y.size
        samples.append((time.time() - t0, rss_mb(), e.ring.total_written))
        if warm is None and time.time() - t0 > 60:
            warm = rss_mb()
    growth = samples[-1][1] - warm
    out = {"minutes": MINUTES, "stream_hours": fed / sr / 3600, "rss_after_warmup_mb": warm, "rss_end_mb": samples[-1][1], "growth_mb": growth, "samples": samples}
    Path(__file__).with_name("figures").mkdir(exist_ok=True)
    Path(__file__).with_name("figures").joinpath("soak.json").write_text(json.dumps(out))
    print(f"soak: {fed / sr / 3600:.2f} h of audio in {MINUTES} min; RSS {warm:.1f} -> {samples[-1][1]:.1f} MB")
    assert e.ring.total_written == fed
    assert e.status()["windows"] == fed // e.hop_samples
    assert growth < 5.0
