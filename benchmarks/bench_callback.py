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
