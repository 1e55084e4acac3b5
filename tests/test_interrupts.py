"""Ctrl-C (SIGINT) and SIGTERM at any moment of `genredream run`, in each mode (issue 14).

The real command line runs in a subprocess: on a file (real-time pace), on
a JACK device (jackd2's dummy driver, as in tests/test_realtime_jack.py)
and with audio in over OSC. A signal arrives 0.5, 2 and 5 s after it
started: while Python imports torch, while models load, or while it runs.
Every time: no traceback, exit 130 (SIGINT) or 143 (SIGTERM), a closing
word (the summary of what was done, or that it stopped during start-up),
and the JSON lines written so far are whole lines.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import make_model_file

TIMES = (0.5, 2.0, 5.0)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_file("geng", tmp_path_factory.mktemp("model"))


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _interrupt(args, at, sig, tmp_path, env=None):
    out = tmp_path / f"out-{sig}-{at}.jsonl"
    env = dict(env or os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "genredream.engine.cli", "run", *args, "--no-view", "--jsonl", str(out), "--threads", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))
    time.sleep(at)
    assert p.poll() is None, f"it ended by itself before the signal: {p.communicate()}"
    p.send_signal(sig)
    try:
        stdout, stderr = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        stdout, stderr = p.communicate()
        pytest.fail(f"still running 60 s after the signal at {at} s:\n{stderr[-2000:]}")
    return p.returncode, stdout, stderr, out


def _check(code, stdout, stderr, out, sig, where):
    assert "Traceback" not in stderr, f"{where}:\n{stderr[-3000:]}"
    # 128 + the signal, or killed by the signal itself (-sig here): a shell reports both as 128 + the
    # signal. The second happens when the signal lands while the interpreter itself ends a KeyboardInterrupt
    # (CPython re-raises SIGINT at exit then); seen once in a fresh clone, at 0.5 s into start-up.
    assert code in (128 + sig, -sig), f"{where}: exit {code}\n{stderr[-2000:]}"
    said = stdout + stderr
    assert any(w in said for w in ("stream:", "stopped during start-up", "interrupted")), f"{where}: no closing word:\n{said[-2000:]}"
    if out.exists():
        for line in out.read_text().splitlines():
            json.loads(line)  # whole lines only: flushed and closed, not cut mid-line


def _modes(kind, model, tmp_path):
    if kind == "file":
        wav = tmp_path / "noise.wav"
        sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(8000 * 3)).astype(np.float32), 8000)
        return ["--input", str(wav), "--realtime", "--loop", "--duration", "300", "--model", str(model)]
    return ["--osc-port", str(_free_port()), "--model", str(model)]


@pytest.mark.parametrize("kind", ["file", "osc"])
def test_signals_at_start_up_and_while_running(kind, model, tmp_path):
    for at in TIMES:
        code, so, se, out = _interrupt(_modes(kind, model, tmp_path), at, signal.SIGINT, tmp_path)
        _check(code, so, se, out, signal.SIGINT, f"{kind}, SIGINT at {at} s")
    code, so, se, out = _interrupt(_modes(kind, model, tmp_path), 5.0, signal.SIGTERM, tmp_path)
    _check(code, so, se, out, signal.SIGTERM, f"{kind}, SIGTERM at 5 s")


@pytest.mark.realtime
def test_signals_on_a_jack_device(model, tmp_path):
    from tests.test_realtime_jack import jack_server

    with jack_server(256, str(tmp_path)) as srv:
        args = ["--device", "JACK", "--channels", "2", "--block", "256", "--model", str(model)]
        for at in TIMES:
            code, so, se, out = _interrupt(args, at, signal.SIGINT, tmp_path, env=srv.env)
            _check(code, so, se, out, signal.SIGINT, f"device, SIGINT at {at} s")
        code, so, se, out = _interrupt(args, 5.0, signal.SIGTERM, tmp_path, env=srv.env)
        _check(code, so, se, out, signal.SIGTERM, "device, SIGTERM at 5 s")
