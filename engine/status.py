"""The engine's state as one dict (:meth:`genredream.engine.runtime.Engine.status`), and its latency statistics.

Read by the live view, the session summary and the OSC bridge's
``/genredream/status`` (bridge/status.py flattens it for Pd and Max). Called
from any thread: it only reads counters and copies.
"""

from __future__ import annotations

import numpy as np

__all__ = ["engine_status", "latency_stats"]


def latency_stats(latencies, name=None):
    """{"p50": ms, "p99": ms, "n": count} over one model or all; ``latencies``: model -> deque of ms."""
    # deque.copy() is atomic under the GIL; iterating the deque itself while the
    # inference worker appends raised "deque mutated during iteration" (found by
    # the flood benchmark: a /status request killed the OSC receive thread).
    parts = [np.array(d.copy(), dtype=np.float64) for k, d in list(latencies.items()) if name in (None, k)]
    a = np.concatenate(parts) if parts else np.zeros(0)
    a = a[np.isfinite(a)]
    if not a.size:
        return {"p50": float("nan"), "p99": float("nan"), "n": 0}
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "n": int(a.size)}


def engine_status(engine):
    """A snapshot of ``engine``'s state and counters (for views and OSC status)."""
    return {
        "sample_rate": engine.sample_rate,
        "window_s": engine.window,
        "hop_s": engine.hop,
        "models": {n: ("disabled: " + s.disabled if s.disabled else "running") for n, s in engine.models.items()},
        "samples_in": engine.ring.total_written,
        "stream_s": engine.ring.total_written / engine.sample_rate,
        "windows": engine.counters["windows"],
        "results": engine.counters["results"],
        "skipped_windows": engine.counters["skipped_windows"],
        "low_energy_results": engine.counters["low_energy_results"],
        "model_errors": engine.counters["model_errors"],
        "nonfinite_repaired": engine.ring.nonfinite_repaired + int(engine.source_repairs[0]),
        "out_of_range_repaired": engine.ring.out_of_range_repaired + int(engine.source_repairs[1]),
        "over_full_scale": engine.ring.over_full_scale,
        "input_overruns": engine.ring.overruns,
        "last_result_age_s": engine.last_result_age(),
        "worker_errors": engine.supervisor.errors,
        "workers": engine.supervisor.status(),
        "xruns": engine.counters["xruns"],  # published by a device runner; 0 for files and OSC
        # What the audio thread got from the OS (engine/io/rt.py), published by the C-callback runner; None without one.
        "audio_realtime": getattr(engine, "audio_realtime", None),
        "frontends": dict(zip(("rates", "mels"), engine.frontends.count())),
        "latency_ms": engine.latency_stats(),
        "dream": None if engine.transform is None else engine.transform.status(),
    }
