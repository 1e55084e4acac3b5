"""The real-time rule (tests/jack_rule.py) on jackd's own words: which xruns it excuses and which fail.

The log lines are jackd2 1.9.21's, as written during the real-time tests on
this VM; the stats are what CRingRunner.stats() reports. Each case is a way
the engine can be at fault that the rule must not excuse, or a stall of the
machine it must tell apart.
"""

from __future__ import annotations

import pytest

from tests import jack_rule

OURS = jack_rule.OURS  # the engine's JACK client, "genredream"
OURS_TRIGGERED = f"JackEngine::XRun: client = {OURS} was not finished, state = Triggered"
OURS_RUNNING = f"JackEngine::XRun: client = {OURS} was not finished, state = Running"
OURS_AFTER = f"JackEngine::XRun: client {OURS} finished after current callback"
METRO_LATE = "JackEngine::XRun: client = metro was not finished, state = Triggered"
METRO_AFTER = "JackEngine::XRun: client metro finished after current callback"
END = "JackAudioDriver::ProcessGraphAsyncMaster: Process error"
DRIVER = "JackTimedDriver::Process XRun = 18 usec"
RT_LOG = "JACK server starting in realtime mode with priority 10\n"


def stats(xruns=0, **kw):
    return dict(dict(xruns=xruns, output_ring_empty=0, input_ring_full=0, dream_late_blocks=0, audio_realtime=True), **kw)


def verdict(st, lines, log=RT_LOG, realtime_needed=True):
    return jack_rule.judge(st, lines, log, realtime_needed)[0]


def test_a_clean_run_is_clean():
    assert verdict(stats(0), []) == "clean"


def test_our_client_alone_is_excused_apart():
    """No witness in the cycle: not proof of the machine, so not "excused" but "excused, ours alone", counted."""
    assert verdict(stats(1), [OURS_RUNNING, END]) == "excused, ours alone"
    assert verdict(stats(1), [OURS_TRIGGERED, END]) == "excused, ours alone"


def test_the_witness_late_in_the_same_cycle_excuses():
    assert verdict(stats(1), [OURS_TRIGGERED, METRO_LATE, END]) == "excused"
    assert verdict(stats(1), [OURS_RUNNING, METRO_AFTER, END]) == "excused"
    assert verdict(stats(1), [METRO_LATE, END]) == "excused"  # the notification reached us too


def test_the_witness_late_in_another_cycle_does_not():
    lines = [METRO_LATE, END, OURS_RUNNING, END]
    assert jack_rule.cycles(lines)[1]["clients"] == {OURS: "Running"}
    assert verdict(stats(2), lines) == "excused, ours alone"


def test_a_late_driver_pass_excuses_its_cycle_and_the_next_only():
    assert verdict(stats(2), [OURS_TRIGGERED, END, DRIVER]) == "excused"  # the same pass
    assert verdict(stats(2), [DRIVER, OURS_RUNNING, END]) == "excused"  # the cycle that late pass cut short
    assert verdict(stats(1), [DRIVER]) == "excused"
    # Two cycles later the driver is no evidence.
    assert verdict(stats(3), [DRIVER, METRO_LATE, END, OURS_RUNNING, END]) == "excused, ours alone"


def test_our_python_side_falling_behind_is_never_excused():
    stalled = [OURS_TRIGGERED, METRO_LATE, END, DRIVER]
    assert verdict(stats(2, output_ring_empty=1), stalled) == "fail"
    assert verdict(stats(2, input_ring_full=1), stalled) == "fail"
    assert verdict(stats(1, dream_late_blocks=3), stalled) == "fail"


def test_more_xruns_than_jackd_reported_fails():
    assert verdict(stats(1), []) == "fail"
    assert verdict(stats(3), [METRO_LATE, END]) == "fail"


def test_no_realtime_fails_where_the_machine_grants_it():
    no_rt = "JACK server starting in non-realtime mode\n"
    assert verdict(stats(0), [], log=no_rt) == "fail"
    assert verdict(stats(0), [], log=RT_LOG + "Cannot use real-time scheduling (RR/10) (1: Operation not permitted)\n") == "fail"
    assert verdict(stats(0, audio_realtime=False), []) == "fail"
    assert verdict(stats(0, audio_realtime=False), [], log=no_rt, realtime_needed=False) == "clean"


def test_excused_runs_are_counted_and_limited(monkeypatch, request):
    monkeypatch.setattr(jack_rule, "LEDGER", [])
    jack_rule.apply(request, stats(0), [], RT_LOG, realtime_needed=True)
    with pytest.raises(pytest.xfail.Exception):
        jack_rule.apply(request, stats(1), [METRO_LATE, END], RT_LOG, realtime_needed=True)
    with pytest.raises(pytest.fail.Exception):
        jack_rule.apply(request, stats(1, output_ring_empty=1), [METRO_LATE, END], RT_LOG, realtime_needed=True)
    with pytest.raises(pytest.xfail.Exception):
        jack_rule.apply(request, stats(1), [OURS_TRIGGERED, END], RT_LOG, realtime_needed=True)
    # A failed run is a failure, not a ledger entry.
    assert [v for _, v in jack_rule.LEDGER] == ["clean", "excused", "excused, ours alone"]
    runs, excused, allowed = jack_rule.summary()
    assert (runs, excused, allowed) == (3, 2, 2)
    jack_rule.LEDGER.extend([("x", "excused")] * 10)
    runs, excused, allowed = jack_rule.summary()
    assert excused > allowed  # the session would fail


def test_stamped_lines_read_like_plain_ones():
    assert verdict(stats(1), [(1.0, OURS_TRIGGERED), (1.0, METRO_LATE), (1.0, END)]) == "excused"


def test_another_client_is_judged_by_its_own_name():
    """The plugin in jalv (``jalv -n gdplug``): its blames count, not the engine's; jalv counts no xruns of its own."""
    plug = "JackEngine::XRun: client = gdplug was not finished, state = Running"
    assert verdict(stats(0), [plug, END]) == "clean"  # judged as the engine: the plugin's blame is not ours
    assert jack_rule.judge(stats(0), [plug, END], RT_LOG, True, client="gdplug")[0] == "excused, ours alone"
    assert jack_rule.judge(stats(0), [plug, METRO_LATE, END], RT_LOG, True, client="gdplug")[0] == "excused"
    assert jack_rule.judge(stats(0), [OURS_RUNNING, END], RT_LOG, True, client="gdplug")[0] == "clean"
    assert jack_rule.judge(stats(0, audio_realtime=False), [], RT_LOG, True, client="gdplug")[0] == "fail"


def test_the_tally_counts_cycles_not_lines():
    """What the soak and the benchmarks report: a blame "finished after" counts as one too, a cycle once."""
    lines = [OURS_TRIGGERED, METRO_LATE, END, DRIVER, OURS_AFTER, END, DRIVER, DRIVER, METRO_AFTER, END, OURS_RUNNING, END]
    assert jack_rule.tally(lines) == {
        "late_cycles": 5, "jackd_blames_us": 3, "ours_alone": 1, "jackd_driver_late": 3, "jack_metro_late": 2,
    }
