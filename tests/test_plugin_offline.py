"""Offline bounce: a host rendering faster than real time (non-realtime mode)
gets the dream, not the dry fallback. The JUCE test host
(plugin/Host/ScoreHost.cpp) renders a recording through the VST3 with
`--realtime 0` (no pacing, the plugin told it is non-realtime) while the
engine dreams: the plugin waits (bounded) for each block's dreamed frames and
sends no faster than 3x real time, so the render is the dream lined up by the
reported latency, with no block played dry.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import soundfile as sf

from tests.plugin_support import (SCORE_HOST, VST3, engine, gain_aligned_db, plugin_env, read_status, recording, require_bundle)

pytestmark = pytest.mark.slow


def test_a_faster_than_real_time_render_waits_for_the_dream(tmp_path_factory, tmp_path):
    host = require_bundle(SCORE_HOST)
    wav = recording(tmp_path_factory, seconds=10.0, genre="rock", seed=13)
    out_wav = tmp_path / "bounce.wav"
    status = tmp_path / "status.json"
    with engine(tmp_path) as e, plugin_env(e.port, status) as env:
        t0 = time.monotonic()
        run = subprocess.run([str(host), str(require_bundle(VST3)), str(wav), "--block", "512", "--realtime", "0", "--out", str(out_wav)],
                             env=env, capture_output=True, text=True, timeout=180)
        took = time.monotonic() - t0
    assert run.returncode == 0, run.stderr
    timing = next(json.loads(ln) for ln in run.stdout.splitlines() if '"timing"' in ln)
    st = read_status(status)
    x, sr = sf.read(wav, dtype="float32", always_2d=True)
    y, _ = sf.read(out_wav, dtype="float32", always_2d=True)
    latency = timing["latency"]
    print(f"\nbounce of {x.shape[0] / sr:.1f} s took {took:.1f} s; latency {latency} frames; late blocks {st['late_blocks']} of "
          f"{st['dream_blocks']}; offline waits given up {st['offline_waits']}; dreamed frames {st['dream_frames']}, dry {st['dry_frames']}")
    assert latency == st["latency_frames"] > 0
    # Every block after the stream began was dreamed: none late, none given up on.
    assert st["late_blocks"] == 0 and st["offline_waits"] == 0, st
    assert st["dream_frames"] > 0.7 * (x.shape[0] - latency), st
    start = x.shape[0] // 2
    db = gain_aligned_db(y[start:], x[start - latency : x.shape[0] - latency])
    print(f"bounce vs dry, gain-aligned: {db:.1f} dB")
    # Dreamed (the dry input delayed by the latency would be -inf dB) and lined
    # up (out of line by 50 ms it is about +20 dB: test_plugin_pedalboard).
    assert -20.0 < db < 0.0
