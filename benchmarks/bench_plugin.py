"""The DAW plugin (build/plugin/genredream.vst3) in a host, against a real engine.

The host is plugin/Host/ScoreHost.cpp (JUCE's own hosting classes): it
plays a FluidSynth recording through the VST3 at real-time pace, 64-frame
blocks at 48 kHz, while `genredream run --osc-port --dream` dreams, and times
every processBlock call. The plugin's status file gives the rest.

* **process() per block**: p50/p99 of processBlock against a 64-frame period
  (1.33 ms); the issue's target is p99 <= 5 % of it.
* **round trip**: from the plugin sending an /audio/in packet to the engine's
  dream of that packet's first frame arriving back (the plugin measures it
  per packet): what the reported latency has to cover, next to the latency
  reported.
* **late blocks under load**: the same run with two busy processes
  competing for the machine's two cores; blocks whose dream came too late
  and were played dry (crossfaded), out of the blocks played.

20 s of audio per run under `make bench`, 4 s under `make test` (timing off).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.plugin_support import SCORE_HOST, VST3, Engine, free_udp_port, plugin_env, read_status, recording, require_bundle

RATE, BLOCK = 48000, 64


@pytest.fixture(scope="module")
def running_engine(tmp_path_factory):
    e = Engine(free_udp_port(), tmp_path_factory.mktemp("bench-plugin") / "engine.jsonl")
    e.start()
    yield e
    e.kill()


def _host_run(engine, wav, status, realtime=True):
    host = require_bundle(SCORE_HOST)
    time.sleep(1.2)   # the engine takes one audio sender at a time; the previous one must be silent for 1 s
    with plugin_env(engine.port, status) as env:
        run = subprocess.run([str(host), str(require_bundle(VST3)), str(wav), "--block", str(BLOCK), "--realtime", "1" if realtime else "0"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    events = [json.loads(ln) for ln in run.stdout.splitlines() if ln.startswith("{")]
    timing = next(ev for ev in events if ev["event"] == "timing")
    time.sleep(0.3)
    return timing, read_status(status)


@pytest.fixture(scope="module")
def wav(tmp_path_factory, request):
    seconds = 4.0 if request.config.getoption("benchmark_disable", False) else 20.0
    return recording(tmp_path_factory, seconds=seconds, genre="rock", seed=11)


def test_plugin_process_time_and_round_trip(benchmark, running_engine, wav, tmp_path):
    got = {}

    def run():
        got["timing"], got["status"] = _host_run(running_engine, wav, tmp_path / "status.json")

    benchmark.pedantic(run, rounds=1, iterations=1)
    t, st = got["timing"], got["status"]
    budget = BLOCK / RATE
    benchmark.extra_info.update(
        pair="plugin processBlock: 64-frame block, 48 kHz, engine dreaming",
        role="ours",
        target="p99 <= 5% of block period",
        budget_s=budget,
        figure_s=t["p99_ms"] / 1000.0,
        figure_label="p99 processBlock",
        target_max_fraction=0.05,
        process_p50_us=round(t["p50_ms"] * 1000.0, 1),
        process_p99_us=round(t["p99_ms"] * 1000.0, 1),
        process_max_us=round(t["max_ms"] * 1000.0, 1),
        blocks=t["blocks"],
        round_trip_p50_ms=round(st["round_trip_p50_ms"], 1),
        round_trip_p99_ms=round(st["round_trip_p99_ms"], 1),
        reported_latency_ms=round(1000.0 * st["latency_frames"] / RATE, 1),
        engine_dream_latency_ms=st["engine_dream_latency_ms"],
        late_blocks=st["late_blocks"],
        dream_blocks=st["dream_blocks"],
    )
    print(f"\nprocessBlock at {BLOCK} frames: p50 {t['p50_ms'] * 1000:.1f} us, p99 {t['p99_ms'] * 1000:.1f} us "
          f"({100 * t['p99_ms'] / 1000 / budget:.2f} % of the period); round trip p50 {st['round_trip_p50_ms']:.0f} ms, "
          f"p99 {st['round_trip_p99_ms']:.0f} ms; reported latency {1000 * st['latency_frames'] / RATE:.0f} ms; "
          f"late blocks {st['late_blocks']} of {st['dream_blocks']}")
    assert t["blocks"] > 0 and st["dream_blocks"] > 0


def test_plugin_late_blocks_under_load(benchmark, running_engine, wav, tmp_path):
    got = {}
    hog = "import time\nend = time.monotonic() + 600\nwhile time.monotonic() < end: pass\n"

    def run():
        hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]
        try:
            got["timing"], got["status"] = _host_run(running_engine, wav, tmp_path / "status.json")
        finally:
            for h in hogs:
                h.kill()
                h.wait()

    benchmark.pedantic(run, rounds=1, iterations=1)
    t, st = got["timing"], got["status"]
    benchmark.extra_info.update(
        pair="plugin under load (2 busy processes): round trip and late blocks, 64-frame blocks",
        role="ours",
        figure_s=st["round_trip_p99_ms"] / 1000.0,
        figure_label=f"round trip p99; {st['late_blocks']} of {st['dream_blocks']} blocks late",
        late_blocks=st["late_blocks"],
        dream_blocks=st["dream_blocks"],
        late_fraction=round(st["late_blocks"] / max(1, st["dream_blocks"]), 4),
        process_p99_us=round(t["p99_ms"] * 1000.0, 1),
        round_trip_p99_ms=round(st["round_trip_p99_ms"], 1),
        reported_latency_ms=round(1000.0 * st["latency_frames"] / RATE, 1),
    )
    print(f"\nunder load: late blocks {st['late_blocks']} of {st['dream_blocks']}; processBlock p99 {t['p99_ms'] * 1000:.1f} us; "
          f"round trip p99 {st['round_trip_p99_ms']:.0f} ms")
    assert st["dream_blocks"] > 0
