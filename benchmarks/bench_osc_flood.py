"""The control plane under a flood: /genredream/status round trip, flooded beside quiet.

A real engine (test-geng at 8 kHz behind a 48 -> 8 kHz resampler, workers
running) and the real OSC server on 127.0.0.1. A client asks for
``/genredream/status`` and waits for the answer, one request at a time:

* **quiet** (the reference): nothing else on the socket;
* **flooded** (ours, twice: the request sent to the flooded main port, and
  to the control port, ``--osc-control-port``): meanwhile a separate process
  (``benchmarks/osc_flood.py``) sends as fast as it can, alternately valid
  512-sample audio packets (far faster than real time, so the audio queue
  overflows and audio handling is overloaded) and random garbage.

Each round is one request; a request with no answer within 100 ms is sent
again, and the round's time runs until an answer arrives, so a datagram the
kernel dropped shows up as time, never as a silent gap. ``extra_info`` has
p50/p99/max (ms), the requests resent, the flood's achieved rate and how many
datagrams the server handled and rejected as ``overloaded``. The issue's
target is an answer within 100 ms; as everywhere here, nothing is asserted on
an absolute time (under ``make test`` the rounds run once, untimed).
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A
from genredream.bridge.server import OscBridge
from genredream.engine.runtime import Engine
from tests.conftest import make_model_file

ROUNDS = 200
FLOOD = os.path.join(os.path.dirname(__file__), "osc_flood.py")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    e = Engine(48000)
    e.load_model(make_model_file("geng", tmp_path_factory.mktemp("models"), ["a", "b", "c"], seed=0))
    b = OscBridge(e, port=0, control_port=0).start()
    e.start()
    c = OscClient(b.port)
    cc = OscClient(b.control_port)
    yield e, b, c, cc
    cc.close()
    c.close()
    b.stop()
    e.stop()


#: A request the engine has not answered after this long (re-sent every 100 ms) fails the benchmark: no answer
#: at all is a fault, not a slow figure.
ANSWER_DEADLINE_S = 10.0


def _round_trip(c, stats):
    """One /status request, re-sent every 100 ms until answered (at most :data:`ANSWER_DEADLINE_S`); returns seconds."""
    c.drain(0.0)
    t0 = time.perf_counter()
    while True:
        c.send(A.STATUS)
        try:
            c.wait_for(A.STATUS, timeout=0.1)
            break
        except TimeoutError:
            stats["resent"] += 1
            if time.perf_counter() - t0 > ANSWER_DEADLINE_S:
                raise AssertionError(f"/status unanswered after {ANSWER_DEADLINE_S:g} s ({stats['resent']} re-sends)") from None
    dt = time.perf_counter() - t0
    stats["times"].append(dt)
    return dt


def _pause():
    time.sleep(0.01)  # between requests, untimed: a patch polls, it does not flood
    return (), {}


def _report(benchmark, stats, **extra):
    t = np.array(stats["times"]) * 1e3
    benchmark.extra_info.update(
        pair="osc /status round trip: socket flooded vs quiet",
        figure_s=float(np.percentile(t, 99)) / 1e3,  # the table shows the p99: the bound is on every answer
        target_abs_s=0.1,
        status_p50_ms=round(float(np.percentile(t, 50)), 3),
        status_p99_ms=round(float(np.percentile(t, 99)), 3),
        status_max_ms=round(float(t.max()), 3),
        over_100ms=int((t > 100).sum()),
        requests=int(t.size),
        resent=stats["resent"],
        target="p99 <= 100 ms",
        **extra,
    )


def test_status_round_trip_quiet(benchmark, served):
    _, _, c, _ = served
    stats = {"times": [], "resent": 0}
    benchmark.pedantic(lambda: _round_trip(c, stats), setup=_pause, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    benchmark.extra_info.update(role="reference", label="quiet socket, p99")
    _report(benchmark, stats)


@pytest.mark.parametrize("via", ["main port", "control port"])
def test_status_round_trip_flooded(benchmark, served, via):
    """The flood goes to the main port; the request goes to the main port or to the control port."""
    e, b, main, control = served
    c = main if via == "main port" else control
    stats = {"times": [], "resent": 0}
    seconds = ROUNDS * 0.03 + 10
    before = dict(b.counters)
    flood = subprocess.Popen([sys.executable, FLOOD, str(b.port), str(seconds), "mix"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the flood is running and the socket is full
        benchmark.pedantic(lambda: _round_trip(c, stats), setup=_pause, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    finally:
        out, _ = flood.communicate(timeout=seconds + 30)
    handled = b.counters["packets"] - before.get("packets", 0)
    benchmark.extra_info.update(role="ours", figure_label=f"p99, flooded, request to the {via}")
    _report(benchmark, stats, flood_rate_per_s=int(float(out.strip() or 0)), handled=handled,
            overloaded=b.counters["rejected_overloaded"] - before.get("rejected_overloaded", 0),
            worker_errors=e.supervisor.errors)
    assert e.supervisor.errors == 0
    # the engine kept working through it
    st = c.status()
    assert st["packets"] == st["accepted"] + st["rejected"]
