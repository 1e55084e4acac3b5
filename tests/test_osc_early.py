"""`genredream run --osc-port N`: the port is bound before the models load (issue 14).

The real command line runs in a subprocess; a real UDP client (bridge.client)
asks ``/genredream/status`` from the moment the process starts. Asserted:
the answer is ``state loading`` while the models load (the time it took is
printed, not gated: machines are shared), and audio sent while loading is
kept: 2.5 s of audio are sent before the engine exists, nothing after, and
the run (``--duration 2``) ends by itself with results, which it could only
do if those packets reached the engine. A port in use is reported before
anything is loaded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A
from tests.conftest import make_model_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 8000


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmd(port, model, out, *extra):
    return [sys.executable, "-m", "genredream.engine.cli", "run", "--osc-port", str(port), "--samplerate", str(RATE), "--model", str(model),
            "--no-view", "--jsonl", str(out), "--threads", "1", *extra]


def test_status_says_loading_and_audio_sent_while_loading_is_kept(tmp_path):
    model = make_model_file("geng", tmp_path)
    port = _free_port()
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    proc = subprocess.Popen(_cmd(port, model, out, "--duration", "2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        with OscClient(port) as c:
            st = None
            while st is None:
                assert proc.poll() is None and time.monotonic() - t0 < 60, proc.communicate()
                try:
                    st = c.status(timeout=0.05)
                except TimeoutError:
                    pass
            first = time.monotonic() - t0
            assert st.get("state") == "loading", st
            y = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(2.5 * RATE)) / RATE)).astype(np.float32)
            for seq, i in enumerate(range(0, y.size, 400)):
                c.send_audio(seq, y[i : i + 400], RATE)
            st2 = c.status(timeout=5)
            print(f"\nfirst status after {first:.2f} s: {st}; after sending 2.5 s of audio: {st2}")
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    # Only if the engine took the packets kept while loading can the stream reach 2 s.
    assert "kept" in stderr and "arrived while loading" in stderr, stderr[-2000:]
    results = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert results and all(r["model"] == "test-geng" for r in results)


def test_port_in_use_is_reported_before_loading(tmp_path):
    model = tmp_path / "never-loaded.pt"  # does not exist: the port check must come first
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run(_cmd(port, model, tmp_path / "o.jsonl"), capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and f"cannot listen for OSC on 127.0.0.1:{port}" in r.stderr and "never-loaded" not in r.stderr, r.stderr[-2000:]
