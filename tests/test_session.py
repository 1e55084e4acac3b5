"""The Session runs any Source the same way (issue 15): a new source is one class.

Real engine, real (untrained) geng model, real WAV files; the sources here
are small classes written as docs/architecture.md tells a contributor to.
"""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import soundfile as sf

from genredream.engine.cli import main as cli
from genredream.engine.io.source import DURATION, END, Source
from genredream.engine.session import Session
from tests.conftest import make_model_file

SR = 8000


@pytest.fixture(scope="module")
def geng(tmp_path_factory):
    return str(make_model_file("geng", tmp_path_factory.mktemp("models"), ["blues", "jazz", "rock"], seed=1))


def music(seconds, sr=SR, channels=1, seed=0):
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    y = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return y if channels == 1 else np.stack([y, 0.5 * y[::-1]], axis=1)


class Recorded(Source):
    """A source written as a contributor would, recording what the session asked of it."""

    def __init__(self, audio, fail_at=None):
        self.audio, self.sample_rate, self.fail_at = audio, SR, fail_at
        self.channels = audio.shape[1] if audio.ndim == 2 else 1
        self.calls = []

    def start(self, session):
        self.calls.append(("start", session.engine is not None, session.engine.channels))
        if self.fail_at == "start":
            raise ValueError("no such input")

    def run(self, session):
        self.calls.append(("run",))
        blocks = [self.audio[i : i + 512] for i in range(0, self.audio.shape[0], 512)]
        if self.fail_at == "run":  # a Ctrl-C half way through the stream
            session.engine.run_blocks(blocks[: len(blocks) // 2])
            raise KeyboardInterrupt
        session.engine.run_blocks(blocks, duration=session.duration)
        return END if session.duration is None else DURATION

    def stop(self, session):
        self.calls.append(("stop", None if session.engine is None else session.engine.ring.total_written))

    def close(self, session):
        self.calls.append(("close",))

    def summary_lines(self):
        return ["recorded: one line of its own"]

    def describe(self):
        return {"type": "input", "what": "recorded"}


def test_a_new_source_is_one_class_and_gets_sinks_summary_and_stereo(geng, tmp_path):
    src = Recorded(music(6.0, channels=2))
    jsonl = tmp_path / "r.jsonl"
    res = Session([geng], jsonl=str(jsonl)).run(src)
    assert [c[0] for c in src.calls] == ["start", "run", "stop", "close"]
    assert src.calls[0] == ("start", True, 2)  # built at its rate, its channels kept before it starts
    assert res.stopped_by == END and res.interrupted is None and res.engine.sample_rate == SR
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert sum(x["type"] == "scores" for x in lines) == res.engine.counters["results"] == 12
    assert lines[-1] == {"type": "input", "what": "recorded"}  # describe() closes the JSON lines
    assert res.summary[0].startswith("stream: 6.00 s at 8000 Hz") and res.summary[-1] == "recorded: one line of its own"


def test_a_duration_stops_the_source(geng):
    src = Recorded(music(6.0))
    res = Session([geng], duration=2.0).run(src)
    assert res.stopped_by == DURATION and res.engine.ring.total_written == 2 * SR


def test_a_failed_start_still_stops_and_closes_and_says_why(geng, tmp_path):
    src = Recorded(music(3.0), fail_at="start")
    jsonl = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match="no such input"):
        Session([geng], jsonl=str(jsonl)).run(src)
    assert [c[0] for c in src.calls] == ["start", "stop", "close"]
    assert jsonl.read_text() == ""  # opened, closed, nothing half-written


def test_a_ctrl_c_in_the_middle_gives_the_summary_of_what_was_done(geng, tmp_path):
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    said = []
    try:
        src = Recorded(music(6.0), fail_at="run")
        res = Session([geng], notify=lambda text, kind="info": said.append(text)).run(src)
    finally:
        for s, h in old.items():  # the session calms the signals while it cleans up
            signal.signal(s, h)
    assert isinstance(res.interrupted, KeyboardInterrupt) and res.stopped_by is None
    assert [c[0] for c in src.calls] == ["start", "run", "stop", "close"] and said == ["stopped"]
    played = (len(range(0, 6 * SR, 512)) // 2) * 512  # the half the source wrote before the Ctrl-C
    assert res.engine.ring.total_written == played and res.summary[0].startswith(f"stream: {played / SR:.2f} s")
    assert res.engine.counters["results"] == int(played / SR / 0.5)


class Swallowing(Recorded):
    """A source whose start-up, like some library code, swallows the KeyboardInterrupt a real Ctrl-C raised in it."""

    def start(self, session):
        super().start(session)
        import os
        import time

        try:
            os.kill(os.getpid(), signal.SIGINT)  # a real signal, through the handler the CLI installs
            time.sleep(1.0)  # the handler runs here; the sleep is cut short
        except BaseException:  # noqa: BLE001 - the library's bare except, which this test is about
            pass


def test_a_ctrl_c_that_start_up_swallowed_still_stops_the_run(geng):
    from genredream.engine import interrupt

    said = []
    with interrupt.handling():  # as `genredream run` does
        src = Swallowing(music(6.0))
        res = Session([geng], notify=lambda text, kind="info": said.append(text)).run(src)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # the stop took the signal (calm)
    assert isinstance(res.interrupted, KeyboardInterrupt) and res.stopped_by is None
    assert [c[0] for c in src.calls] == ["start", "stop", "close"] and said == ["stopped"]  # never ran
    assert res.engine.ring.total_written == 0
    interrupt.check()  # taken: nothing left to raise


def test_an_unknown_model_is_an_error_before_the_source_starts(tmp_path):
    src = Recorded(music(3.0))
    with pytest.raises(Exception, match="no-such-model"):
        Session(["no-such-model"]).run(src)
    assert [c[0] for c in src.calls] == ["stop", "close"]


def test_demo_front_end_agrees_with_the_offline_mel(capfd):
    assert cli(["demo", "--frontend", "--seconds", "2"]) == 0
    out = capfd.readouterr().out
    assert "agree" in out and "DISAGREE" not in out and "ring write per block" in out


def test_demo_plays_its_clip_through_a_session(geng, tmp_path, capfd, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "genredream").mkdir(parents=True)
    sf.write(cache / "genredream" / "demo-clip.wav", music(6.0, 22050), 22050)  # the clip, already rendered
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert cli(["demo", "--fast", "--no-view", "--model", geng]) == 0
    out = capfd.readouterr().out
    assert "genredream demo" in out and "stream: 6.00 s at 22050 Hz" in out and "test-geng: latency" in out


def test_the_command_line_exit_codes(geng, tmp_path, capfd):
    """2 for a usage error, 1 for a failure no command explained (one line on stderr, no traceback)."""
    assert cli(["run", "--no-such-option"]) == 2
    err = capfd.readouterr().err
    assert "unrecognized arguments: --no-such-option" in err and "Traceback" not in err
    # A --jsonl path that cannot be written: the session's OSError reaches main().
    wav = tmp_path / "a.wav"
    sf.write(wav, music(2.0), SR)
    assert cli(["run", "--input", str(wav), "--no-view", "--jsonl", str(tmp_path / "no-such-dir" / "r.jsonl"), "--model", geng]) == 1
    err = capfd.readouterr().err
    assert err.startswith("genredream run: FileNotFoundError") and "Traceback" not in err, err


def test_the_documented_example_source_runs_stereo_audio(geng):
    """engine/demo.py's ArraySource, the example in docs/architecture.md, as the docs use it."""
    from genredream.engine.demo import ArraySource

    y = music(3.0, channels=2)
    res = Session([geng], view=False).run(ArraySource(y, SR, realtime=False))
    assert res.stopped_by == END and res.engine.channels == 2 and res.engine.ring.total_written == y.shape[0]
    assert res.engine.counters["results"] == int(3.0 / 0.5) and res.summary[0].startswith("stream: 3.00 s at 8000 Hz")
