"""What the C runner really plays, recorded by another JACK client and checked sample by sample.

A jackd2 dummy-driver server (48 kHz, 256-frame periods) carries two
``jack_metro`` clicks of different tempi (240 and 217 bpm: together they do
not repeat within the run) into the engine's two inputs. ``jack_rec`` (a C
client shipped with jackd2) records four ports in the same JACK cycles:
both metronomes and both of the engine's outputs. Within one cycle the
engine's input is what the metronomes wrote, and what the engine wrote is
what jack_rec reads (it runs after us in the graph), so the recording puts
our input and our output on one clock.

Asserted, for every recorded frame ``t`` at or after the runner's reported
``output_delay`` ``D``:

* dry (no dreamer): output channel c at ``t`` is input channel c at ``t - D``
  (``D`` = the runner's ``output_delay`` plus the block PortAudio's JACK
  host holds back, which it reports in its output latency);
* dreaming: each output frame is either the engine's output ring at input
  index ``p - D`` (``p`` our stream's frame, found by matching the recorded
  input against the engine's input ring), on both channels, or the dry
  fallback ``D`` behind; the fallback frames are no more than the runner
  counted, and most of the recording is the dream.

The tolerance is the recording's 32-bit PCM quantisation (2**-31), far
below what a one-frame misalignment or a wrong channel changes.
"""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

from tests.conftest import require_program
from tests.test_realtime_jack import RATE, _device_module, jack_server

pytestmark = pytest.mark.realtime

PERIOD = 256
RECORD_S = 4
ATOL = 2.0**-29  # PCM_32 round trip (2**-31) with room for the 2**31 - 1 scale some writers use


def _start_metro(srv, name, bpm, freq):
    proc = subprocess.Popen(["jack_metro", "-n", name, "-b", str(bpm), "-f", str(freq), "-A", "0.4", "-D", "60"],
                            env=srv.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        ports = [p for p in srv.run("jack_lsp", check=False).stdout.split() if p.startswith(f"{name}:")]
        if ports:
            return proc, ports[0]
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"jack_metro {name} did not register its port")
        time.sleep(0.1)


def _record_run(srv, engine, runner, wav, seconds=RECORD_S):
    """Stream with two metronomes in, while jack_rec records (metro, metro2, out_0, out_1); returns the runner's stats."""
    require_program("jack_rec", "jackd2")
    procs = []
    try:
        for name, bpm, freq in (("metro", 240, 880), ("metro2", 217, 550)):
            procs.append(_start_metro(srv, name, bpm, freq))
        (_, m1), (_, m2) = procs
        # A shell started now makes the connections once our client is active and
        # starts the recorder once our stream has started, so this process forks
        # nothing while the stream runs.
        script = (
            'n=0; until jack_connect "$0" genredream:in_0 2>/dev/null; do n=$((n+1)); [ $n -gt 200 ] && exit 1; sleep 0.05; done; '
            'jack_connect "$1" genredream:in_1 || exit 1; '
            'n=0; until [ -e "$4" ]; do n=$((n+1)); [ $n -gt 1000 ] && exit 1; sleep 0.02; done; '
            'exec jack_rec -f "$2" -d "$3" -b 32 "$0" "$1" genredream:out_0 genredream:out_1'
        )
        started = wav.with_suffix(".started")  # the recorder waits for our stream (PortAudio's client is active before it starts)
        rec = subprocess.Popen(["sh", "-c", script, m1, m2, str(wav), str(seconds), str(started)], env=srv.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        engine.start()
        runner.start()
        started.touch()
        latency = runner._streams[0].latency
        try:
            deadline = time.monotonic() + seconds + 30
            while rec.poll() is None:
                assert runner.active, f"the stream stopped by itself ({runner.stats()['pump_error']})"
                assert time.monotonic() < deadline, "jack_rec did not finish"
                time.sleep(0.05)
        finally:
            runner.stop()
            engine.stop(drain=True)
            if rec.poll() is None:
                rec.kill()
            err = rec.communicate(timeout=10)[1]
        assert rec.returncode == 0, f"connecting or recording failed: {err.decode(errors='replace')[-500:]}"
    finally:
        for p, _ in procs:
            p.terminate()
            p.wait(timeout=5)
    return runner.stats(), latency


def _read(wav):
    import soundfile as sf

    rec, sr = sf.read(str(wav), dtype="float64", always_2d=True)
    assert sr == RATE and rec.shape[1] == 4, (sr, rec.shape)
    assert rec.shape[0] >= (RECORD_S - 0.5) * RATE, rec.shape
    return rec


def _host_block(latency):
    """The block PortAudio's JACK host holds back on output; checked against the output latency it reports.

    PortAudio's buffer processor, for a host buffer size it cannot rely on,
    delays the output by one user block: what the callback writes in cycle
    k leaves our port in cycle k + 1. The output latency PortAudio reports
    is JACK's playback latency (one period, for the dummy driver) plus that
    block; the runner's ``output_delay`` counts frames of the stream it is
    given, so the block is on top of it.
    """
    lat_in, lat_out = (round(x * RATE) for x in latency)
    assert (lat_in, lat_out) == (0, 2 * PERIOD), latency
    return PERIOD


def _ring_segment(ring, start, n):
    out = np.zeros(n, np.float32)
    got, k = ring.read_into(start, out)
    assert got == start and k == n, (start, n, got, k)
    return out.astype(np.float64)


def _align(engine, inp):
    """Our stream's frame at the recording's first frame, and the first recorded frame from which our input is the recording's.

    The engine's input ring (mono: the mean of the two channels) is matched
    against the recorded metronomes (their sum does not repeat, so one offset
    fits). Until JACK has the new connections in force (a few cycles after
    jack_connect returns) our input can still be silent; from then on it
    must equal what the metronomes wrote, frame for frame.
    """
    ring = engine.ring
    oldest, end = max(0, ring.total_written - ring.capacity), ring.total_written
    have = _ring_segment(ring, oldest, end - oldest)
    mix = inp.mean(axis=1)
    n = len(mix)
    size = 2 * len(have)
    corr = np.fft.irfft(np.fft.rfft(have, size) * np.conj(np.fft.rfft(mix, size)), size)
    assert len(have) > n, (len(have), n, ring.capacity, ring.total_written)
    p0 = oldest + int(np.argmax(corr[: len(have) - n + 1]))
    same = np.abs(_ring_segment(ring, p0, n) - mix) <= 1e-6
    settled = int(np.flatnonzero(~same)[-1]) + 1 if not same.all() else 0
    assert settled < RATE // 2, f"our input differs from what the metronomes wrote until {settled} frames into the recording"
    return p0, settled


def test_dry_output_is_the_input_delayed_by_the_reported_delay(tmp_path):
    _device_module()
    from genredream.engine.io.cring import CRingRunner
    from genredream.engine.runtime import Engine

    wav = tmp_path / "dry.wav"
    with jack_server(PERIOD, str(tmp_path)) as srv:
        engine = Engine(RATE)
        runner = CRingRunner(engine, device="JACK", channels=2, samplerate=RATE, blocksize=PERIOD, when_late="dry")
        st, latency = _record_run(srv, engine, runner, wav)
    rec = _read(wav)
    d = runner.output_delay + _host_block(latency)
    assert runner.output_delay == runner.lead > 0
    inp, out = rec[:, :2], rec[:, 2:]
    assert np.abs(inp).max() > 0.3, "no click reached the recording"
    _, k = _align(engine, inp)
    # Output channel c at t == input channel c at t - D, for every frame the recording holds both
    # (from the frame our input is the metronomes').
    np.testing.assert_allclose(out[d + k :], inp[k:-d], rtol=0, atol=ATOL)
    # The check can tell: one frame off, or the channels swapped, is far off.
    assert np.abs(out[d + 1 :] - inp[: -d - 1]).max() > 0.01
    assert np.abs(out[d:, 0] - inp[:-d, 1]).max() > 0.01
    assert st["output_ring_empty"] == 0 and st["input_ring_full"] == 0, st


def test_dreamed_output_is_the_output_ring_shifted_by_the_reported_delay(tmp_path):
    _device_module()
    import torch

    from genredream.engine.dream import Dreamer
    from genredream.engine.io.cring import CRingRunner
    from genredream.engine.session import build_engine

    torch.set_num_threads(1)
    wav = tmp_path / "dream.wav"
    with jack_server(PERIOD, str(tmp_path)) as srv:
        engine = build_engine(RATE, ["geng"], 5.0, 0.5)
        dreamer = Dreamer(engine.models["geng"].loaded, layer="all", step_size=0.003, steps=2)
        engine.set_transform(dreamer)
        runner = CRingRunner(engine, device="JACK", channels=2, samplerate=RATE, blocksize=PERIOD, when_late="dry",
                             output_delay=dreamer.latency_samples)
        st, latency = _record_run(srv, engine, runner, wav)
    rec = _read(wav)
    assert runner.output_delay == dreamer.latency_samples + runner.lead
    d = runner.output_delay + _host_block(latency)
    inp, out = rec[:, :2], rec[:, 2:]
    n = len(rec)
    p0, k = _align(engine, inp)
    # Frames t >= D: the dream at input index p0 + t - D (both channels), or the dry input D behind.
    n = len(rec)
    t = np.arange(d + k, n)
    dream = _ring_segment(engine.output, p0 + k, n - d - k)  # engine.output[p0 + t - d]
    dry = inp[k : n - d]
    is_dream = np.all(np.abs(out[d + k :] - dream[:, None]) <= ATOL, axis=1)
    is_dry = np.all(np.abs(out[d + k :] - dry) <= ATOL, axis=1)
    bad = np.flatnonzero(~(is_dream | is_dry))
    assert bad.size == 0, f"{bad.size} frames are neither the dream nor the dry input D behind; first at t={t[bad[0]]}"
    dry_only = int(np.sum(is_dry & ~is_dream))
    assert dry_only <= st["fallback_frames"], (dry_only, st["fallback_frames"])
    assert np.sum(is_dream & ~is_dry) > 0.5 * len(t), "the dream was not what played"
    # One frame off would not pass.
    assert not np.all(np.abs(out[d + k + 1 :, 0] - dream[:-1]) <= ATOL)
