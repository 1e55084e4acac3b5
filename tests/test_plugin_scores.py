"""The scores reach the host as parameters: a host built on JUCE's own hosting
classes (plugin/Host/ScoreHost.cpp) loads the VST3, plays a recording through
it at real-time pace while the engine runs, and prints every `score <genre>`
parameter value the moment the host sees it move. Each must be a score the
engine computed for that genre (its --jsonl lines), in the engine's order.
pedalboard and dawdreamer cannot read back a parameter the plugin sets
itself, hence this host.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from plugin.gen_labels import shipped_labels

from tests.plugin_support import (ENGINE_MODEL, SCORE_HOST, VST3, engine, plugin_env, recording, require_bundle)

pytestmark = pytest.mark.slow


def test_score_parameters_a_host_reads_are_the_scores_the_engine_computed(tmp_path_factory, tmp_path):
    host = require_bundle(SCORE_HOST)
    wav = recording(tmp_path_factory, seconds=10.0, genre="jazz", seed=7)
    with engine(tmp_path) as e, plugin_env(e.port, tmp_path / "status.json") as env:
        run = subprocess.run([str(host), str(require_bundle(VST3)), str(wav), "--block", "512"], env=env, capture_output=True,
                             text=True, timeout=120)
        results = [r for r in e.results() if r.get("type") == "scores" and r["model"] == ENGINE_MODEL]
    assert run.returncode == 0, run.stderr
    events = [json.loads(ln) for ln in run.stdout.splitlines() if ln.startswith("{")]
    seen = [ev for ev in events if ev["event"] == "score"]
    ccs = [ev for ev in events if ev["event"] == "cc"]
    print(f"\nengine: {len(results)} windows; host saw {len(seen)} score parameter moves and {len(ccs)} MIDI CCs")
    assert len(results) >= 5, "the engine scored too few windows to compare"
    labels = sorted(results[0]["scores"])
    by_label = {lab: [ev for ev in seen if ev["param"] == f"score {lab}"] for lab in labels}
    for lab in labels:
        engine_values = np.array([r["scores"][lab] for r in results])
        host_values = [ev["value"] for ev in by_label[lab]]
        assert len(host_values) >= 3, f"score {lab}: the host saw it move only {len(host_values)} times"
        # Each value the host saw is one the engine computed (float32 over OSC, 6
        # decimals printed), in the engine's order: each found at or after the last.
        at = 0
        for v in host_values:
            hits = np.flatnonzero(np.abs(engine_values[at:] - v) < 2e-6)
            assert hits.size, f"score {lab} = {v}: not a value the engine computed from window {at} on ({engine_values[at : at + 8]} ...)"
            at += int(hits[0])
    # Scores of labels the engine's model does not have never move.
    assert all(ev["param"][len("score ") :] in labels for ev in seen)
    # One MIDI CC per genre (CC 20 + its place among the plugin's score labels) follows the scores.
    _, _, score_labels = shipped_labels()
    for lab in labels:
        cc = [ev["value"] for ev in ccs if ev["cc"] == 20 + score_labels.index(lab)]
        assert cc and cc[-1] == int(np.floor(by_label[lab][-1]["value"] * 127 + 0.5)), f"CC of {lab}: {cc[-3:]}"
