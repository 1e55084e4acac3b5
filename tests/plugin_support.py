"""What the plugin's tests share: the built bundles, a real engine in a
subprocess, a real recording, and the plugin's status file.

The plugin is built by `make plugin` (`make test` depends on it); a test
finding no bundle fails in CI and skips locally with the command to run.
The plugin writes a JSON status line to $GENREDREAM_PLUGIN_STATUS every
200 ms (connection, latency, late blocks, frames played dreamed and dry):
that is how a test sees inside a plugin running in another host.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import require_component, require_program

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "plugin"
VST3 = BUILD / "genredream.vst3"
LV2 = BUILD / "genredream.lv2"
SCORE_HOST = BUILD / "genredream_score_host_artefacts" / "Release" / "genredream_score_host"
LV2_URI = "https://genredream.invalid/plugins/genredream"
RATE = 48000
BLOCK = 512
# The engine's dream model: geng (8 kHz waveform) dreams in real time on a
# shared 2-core machine; its labels (rock, pop, ...) are among the plugin's.
ENGINE_MODEL = "geng"
TARGET = "rock"


def require_bundle(path: Path) -> Path:
    require_component(str(path.relative_to(REPO)), path.exists(), "make plugin")
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recording(tmp_path_factory, seconds=14.0, genre="rock", seed=5) -> Path:
    """A real recording: one FluidSynth-rendered song (General MIDI soundfont), stereo 48 kHz WAV."""
    from genredream.models.corpus.build import build_corpus

    require_program("fluidsynth", "fluidsynth fluid-soundfont-gm")
    out = tmp_path_factory.mktemp("plugin-recording")
    rep = build_corpus(out / "corpus", [genre], 1, seconds, seed, progress=False, jobs=1, sample_rate=RATE)
    y, sr = sf.read(rep.files[0], dtype="float32", always_2d=True)
    assert sr == RATE
    if y.shape[1] == 1:
        y = np.repeat(y, 2, axis=1)
    y = 0.5 * y / max(1e-6, float(np.abs(y).max()))   # leave headroom for the dream
    path = out / "recording.wav"
    sf.write(path, y, RATE, subtype="FLOAT")
    return path


class Engine:
    """`genredream run --osc-port PORT --dream --target T` in a subprocess, killed by its own handle."""

    def __init__(self, port, jsonl, *extra):
        self.port, self.jsonl = port, Path(jsonl)
        self.cmd = [sys.executable, "-m", "genredream.engine.cli", "run", "--osc-port", str(port), "--samplerate", str(RATE),
                    "--model", ENGINE_MODEL, "--dream", "--target", TARGET, "--no-view", "--jsonl", str(jsonl), "--threads", "1", *extra]
        self.proc = None
        self.log = Path(str(jsonl) + ".log")

    def start(self, timeout=90.0):
        from genredream.bridge.client import OscClient

        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        with OscClient(self.port) as c:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    st = c.status(timeout=0.2)
                    if "sample_rate" in st:
                        return st
                except TimeoutError:
                    pass
        raise AssertionError(f"the engine did not start within {timeout} s:\n{self.log.read_text()}")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def results(self):
        return [json.loads(ln) for ln in self.jsonl.read_text().splitlines() if ln.strip()] if self.jsonl.exists() else []


@contextlib.contextmanager
def engine(tmp_path, port=None, *extra):
    e = Engine(port or free_udp_port(), tmp_path / "engine.jsonl", *extra)
    try:
        e.start()
        yield e
    finally:
        e.kill()


def read_status(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def wait_status(path: Path, pred, timeout=20.0, what="") -> dict:
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        st = read_status(path)
        if st is not None and pred(st):
            return st
        time.sleep(0.1)
    raise AssertionError(f"plugin status never showed {what} within {timeout} s; last: {st}")


@contextlib.contextmanager
def plugin_env(engine_port, status_path):
    """Point the plugin (loaded in this process or started from it) at an engine and a status file."""
    old = {k: os.environ.get(k) for k in ("GENREDREAM_ENGINE", "GENREDREAM_PLUGIN_STATUS")}
    os.environ["GENREDREAM_ENGINE"] = f"127.0.0.1:{engine_port}"
    os.environ["GENREDREAM_PLUGIN_STATUS"] = str(status_path)
    try:
        yield dict(os.environ)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def gain_aligned_db(out: np.ndarray, ref: np.ndarray) -> float:
    """How far `out` is from `ref` once the best gain is taken out: 10 log10(|out - g ref|^2 / |g ref|^2)."""
    out, ref = out.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    g = float(out @ ref) / float(ref @ ref)
    return 10.0 * np.log10(float(np.sum((out - g * ref) ** 2)) / float(np.sum((g * ref) ** 2)))
