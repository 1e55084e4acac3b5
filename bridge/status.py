"""``/genredream/status``: the bridge's and the engine's state as one flat dict.

Flat, with numbers and short strings only, because Pd and Max read it as
``key value`` pairs (:func:`genredream.bridge.protocol.encode_kv`). Unknown
numbers are -1 (:func:`genredream.bridge.protocol.osc_num`).
"""

from __future__ import annotations

from genredream.bridge.handlers import dream_enabled
from genredream.bridge.protocol import osc_num

__all__ = ["bridge_status"]


def bridge_status(bridge):
    """The state of ``bridge`` (an :class:`genredream.bridge.server.OscBridge`) and its engine."""
    engine = bridge.engine
    est = engine.status()
    lat = est.get("latency_ms", {})
    j = bridge.jitter.counters
    c = bridge.counters
    oc = bridge.replies.counts()
    # xruns: counted by the audio device's callback; a device runner publishes them on the
    # engine (engine.counters["xruns"], or an ``xruns`` attribute/callable). OSC audio has none.
    xr = est.get("xruns", engine.counters.get("xruns", 0)) or getattr(engine, "xruns", 0)
    xr = xr() if callable(xr) else xr
    dream = est.get("dream") or {}
    sup = bridge.supervisor
    return {
        "models": ",".join(engine.models),
        "sample_rate": engine.sample_rate,
        "channels": int(getattr(engine, "channels", 1)),
        "window": float(engine.window),
        "hop": float(engine.hop),
        "latency_p50_ms": osc_num(lat.get("p50")),
        "latency_p99_ms": osc_num(lat.get("p99")),
        "packets": c["packets"],
        "accepted": c["accepted"],
        "rejected": c["rejected"],
        "lost": j["lost"],
        "reordered": j["reordered"],
        "duplicates": j["duplicates"],
        "late": j["late"],
        "restarts": j["restarts"],
        "xruns": int(xr or 0),
        # "SCHED_FIFO 5": the audio callback's thread is real-time; "no: <why>" warns the performer; "" without a device.
        "audio_rt": _audio_rt(est.get("audio_realtime")),
        "audio_packets": c["audio_packets"],
        "stream_s": float(est.get("stream_s", 0.0)),
        "results": int(est.get("results", 0)),
        "skipped_windows": int(est.get("skipped_windows", 0)),
        "dream": str(dream.get("model") or ""),
        # 1 while the dreamer changes the audio (attached and enabled); "dream" names its model either way
        "dreaming": int(bool(dream) and bool(dream_enabled(engine))),
        "dream_rtf_p50": osc_num(dream.get("rtf_p50")),
        "dream_depth": osc_num((dream.get("params") or {}).get("depth")),  # -1: no depth set (steps and mix as given)
        "subscribers": len(bridge.replies.subs),
        "lease_s": float(bridge.replies.table.lease),
        # host:port:age_s, age = seconds since the last renewal, comma-separated
        "subscriber_ages": bridge.replies.table.ages(),
        # leases that gave way to a newcomer on a full table, ran out, or whose sends failed
        "subscriptions_evicted": bridge.replies.table.counters["evicted"],
        "subscriptions_expired": bridge.replies.table.counters["expired"],
        "subscriptions_dropped": bridge.replies.table.counters["dropped"],
        # the dream's latency: play dreamed sample j at input sample j + this (-1: not dreaming)
        "dream_latency_ms": _dream_latency_ms(engine),
        "packets_out": oc.get("packets_out", 0),
        "audio_out_packets": oc.get("audio_out_packets", 0),
        "errors_suppressed": oc.get("errors_suppressed", 0),
        "nonfinite_repaired": int(est.get("nonfinite_repaired", 0)),
        "out_of_range_repaired": int(est.get("out_of_range_repaired", 0)),
        "over_full_scale": int(est.get("over_full_scale", 0)),
        "last_result_age_s": osc_num(est.get("last_result_age_s")),
        "overloaded": c["rejected_overloaded"],
        "worker_errors": int(sup.errors),
        # workers not running (comma-separated "name:state"), "" when all are well
        "workers_down": ",".join(f"{n}:{st}" for n, st in sup.status().items()
                                 if st not in ("running", "idle") and not (st == "stopped" and not bridge._running)),
        **{"worker_" + n: st for n, st in sup.status().items()},
    }


def _dream_latency_ms(engine):
    t = getattr(engine, "transform", None)
    n = getattr(t, "latency_samples", None)
    if t is None or n is None:
        return -1.0
    return 1000.0 * float(n) / float(engine.sample_rate)


def _audio_rt(r):
    """The audio thread's scheduling in one OSC string (see engine/io/rt.py)."""
    if not r:
        return ""
    if r.get("audio_priority") is not None:
        return f"{r['audio_policy']} {r['audio_priority']}"
    return "no: " + str(r.get("audio_how"))
