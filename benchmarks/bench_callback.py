"""The audio callback's own duration, on a real JACK server at 256 frames.

A JACK dummy-driver server (48 kHz, 256-frame periods) is started as in
tests/test_realtime_jack.py; the duplex engine runs on it for a few seconds
with a model scoring (so the callback competes with the engine's workers, as
it does on stage). The figure of merit is not the timed round (that is just
the length of the run) but the distribution of the callback's durations,
which the callback itself records: p50 and p99 in microseconds and p99 as a
fraction of the 5.3 ms block period, in ``extra_info``.

Without jackd the benchmark skips locally and fails in CI
(``GENREDREAM_REQUIRE_COMPONENTS=1``), like the real-time tests.
"""

import time

import numpy as np
import pytest

from tests.test_realtime_jack import RATE, jack_server

BLOCK = 256
SECONDS = 4


@pytest.mark.realtime
def test_callback_duration_256_frames_under_jack(benchmark, tmp_path):
    from engine.io import device
    from engine.run import build_engine
    from models.archs import build
    from models.contract import save

    model = tmp_path / "geng.pt"
    m, meta = build("geng", ["a", "b", "c"])
    save(m.eval(), meta, model)

    with jack_server(BLOCK, str(tmp_path)):
        engine = build_engine(RATE, [str(model)], 5.0, 0.5)
        runner = device.DuplexRunner(engine, device="JACK", channels=2, samplerate=RATE, blocksize=BLOCK)

        def run():
            engine.start()
            runner.start()
            try:
                while runner.frames_in < SECONDS * RATE:
                    assert runner.active, "the stream stopped by itself"
                    time.sleep(0.05)
            finally:
                runner.stop()
                engine.stop(drain=True)

        benchmark.pedantic(run, rounds=1, iterations=1)
    st = runner.stats()
    assert st["callbacks"] > 0 and engine.ring.total_written == st["frames_in"] == st["frames_out"]
    benchmark.extra_info.update(
        pair="audio callback: 256-frame duplex block under JACK, 48 kHz",
        role="ours",
        target="p99 <= 10% of block period",
        budget_s=BLOCK / RATE,
        callback_p50_us=round(st["callback_p50_s"] * 1e6, 1),
        callback_p99_us=round(st["callback_p99_s"] * 1e6, 1),
        p99_fraction=round(st["callback_p99_fraction"], 4),
        figure_s=st["callback_p99_s"],
        figure_label="p99 callback duration",
        target_max_fraction=0.10,
        callbacks=st["callbacks"],
        xruns=st["xruns"],
    )
    print(
        f"\ncallback at {BLOCK} frames: p50 {st['callback_p50_s'] * 1e6:.0f} us, p99 {st['callback_p99_s'] * 1e6:.0f} us "
        f"= {st['callback_p99_fraction']:.1%} of the {BLOCK / RATE * 1e3:.2f} ms block; {st['callbacks']} callbacks, xruns {st['xruns']}"
    )


def _direct_runner(tmp_path):
    """A duplex runner opened on a JACK dummy server, whose callback the benchmark calls directly (no real-time pacing)."""
    from engine.channels import FrameRing
    from engine.io import device
    from engine.ringbuffer import RingBuffer
    from engine.runtime import Engine

    with jack_server(BLOCK, str(tmp_path)):
        engine = Engine(RATE)
        runner = device.DuplexRunner(engine, device="JACK", channels=2, samplerate=RATE, blocksize=BLOCK)
    n = 20000
    # A dreamer far ahead: every block is dreamed audio, mono ring or frame ring.
    runner.engine_out = RingBuffer((n + 10) * BLOCK)
    runner.engine_out.write(np.full((n + 10) * BLOCK, 0.25, np.float32))
    frames = FrameRing((n + 10) * BLOCK, 2)
    frames.write(np.full(((n + 10) * BLOCK, 2), 0.25, np.float32))
    return runner, frames


@pytest.mark.realtime
@pytest.mark.parametrize("path", ["stereo", "mono"])
def test_callback_dreamed_stereo_against_mono(benchmark, tmp_path, path):
    """The duplex callback playing dreamed audio: the input's two channels (engine.output_ch, the frame
    path) against the dreamed mid fanned out (the mono path, the reference), 256-frame stereo blocks."""
    import sounddevice as sd

    runner, frames = _direct_runner(tmp_path)
    runner._out_ch = frames if path == "stereo" else None
    indata = np.zeros((BLOCK, 2), np.float32)
    outdata = np.zeros((BLOCK, 2), np.float32)
    status = sd.CallbackFlags()
    cb = runner._duplex_callback

    def block():
        cb(indata, outdata, BLOCK, None, status)

    benchmark.pedantic(block, rounds=2000, iterations=5, warmup_rounds=50)
    assert np.all(outdata == 0.25) and runner.stats()["late_blocks"] == 0
    benchmark.extra_info.update(
        pair="audio callback: 256-frame duplex block playing dreamed audio, called directly",
        role="ours" if path == "stereo" else "reference",
        budget_s=BLOCK / RATE,
        label="the input's channels (frame ring)" if path == "stereo" else "the mid, fanned out (mono ring)",
    )
