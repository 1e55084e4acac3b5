"""benchmarks/report.py's verdicts: on what one run measured against another, never on an absolute time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_report", Path(__file__).parents[1] / "benchmarks" / "report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def row(name, median, **info):
    return dict(name=name, file="b.py", median=median, p_iqr=0.0, rounds=5, info=info)


def table(rows):
    text = report.render({"benchmarks": []}, rows, None)
    return {ln.split(" | ")[0].lstrip("| "): ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln}


RING = dict(pair="ring", target=">= 5x the reference", target_min_ratio=5.0, target_abs_s=5e-6)


def test_a_ratio_target_is_judged_on_the_same_run_ratio_not_the_absolute_time():
    fast_ref = table([row("ours", 1e-6, role="ours", **RING), row("ref", 3e-6, role="reference", pair="ring")])["ring"]
    assert "NOT met" in fast_ref and "information only" in fast_ref  # 1 us is under 5 us, but only 3x the reference
    slow_machine = table([row("ours", 9e-6, role="ours", **RING), row("ref", 90e-6, role="reference", pair="ring")])["ring"]
    assert "— met" in slow_machine  # 9 us is over 5 us: shown, not judged


def test_an_absolute_bound_alone_is_information_never_a_verdict():
    line = table([row("p99", 0.2, role="ours", pair="lat", target="p99 <= 10 ms", target_abs_s=0.01)])["lat"]
    assert "information only" in line and "met" not in line.replace("information", "")


def test_a_ratio_between_two_runs_of_one_benchmark():
    rss = dict(pair="rss", role="ours", target="within 10 %", target_max_ratio=1.10, ratio_key="long_over_short")
    assert "— met" in table([row("r", 1.0, long_over_short=1.02, **rss)])["rss"]
    assert "NOT met" in table([row("r", 1.0, long_over_short=1.3, **rss)])["rss"]


def test_counts_against_the_reference():
    x = dict(pair="x", target="C <= Python xruns", target_counts_key="xruns")
    assert "— met" in table([row("c", 15.0, role="ours", xruns=0, **x), row("py", 15.0, role="reference", xruns=17, pair="x")])["x"]
    line = table([row("c", 15.0, role="ours", xruns=5, **x), row("py", 15.0, role="reference", xruns=2, pair="x")])["x"]
    assert "NOT met" in line and "5 xruns" in line


def test_a_target_no_check_covers_is_an_error():
    with pytest.raises(report.UncheckedTarget, match="checked by nothing"):
        table([row("r", 1.0, role="ours", pair="rss", target="within 10 %")])
