"""The VST3 in a real host (pedalboard, Spotify's JUCE-based host) against a real engine.

pedalboard loads build/plugin/genredream.vst3 and feeds a FluidSynth
recording block by block (512 frames, 48 kHz), at real-time pace while an
engine dreams. With no engine the plugin must be a pure delay of exactly the
latency it reports; with one, the output lined up by that latency must be
the dream: audibly changed, but the same music (-20 to -3 dB from the dry
input once the best gain is taken out).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from tests.plugin_support import (BLOCK, RATE, VST3, engine, free_udp_port, gain_aligned_db, plugin_env, read_status, recording,
                                  require_bundle, wait_status)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    y, sr = sf.read(recording(tmp_path_factory), dtype="float32", always_2d=True)
    return np.ascontiguousarray(y.T)   # [channels, frames], as pedalboard takes it


# pedalboard reads a plugin's latency while preparing it, just before the
# plugin itself prepares at the new rate (JUCE's VST3 hosting order); a DAW
# re-reads it when the plugin says it changed (restartComponent), which
# pedalboard never dispatches. Preparing at 48 kHz twice, the second time with
# a larger block, makes it read the latency the plugin computed at 48 kHz.
# The plugin keeps its stream across the second preparation (same rate).
PRIME = (512, 1024)
MIX = 0.4


def load(engine_port, status, **params):
    """The VST3 in pedalboard with `params` set, primed: (plugin, the frames fed so far, their output)."""
    import pedalboard

    with plugin_env(engine_port, status):
        plugin = pedalboard.load_plugin(str(require_bundle(VST3)))
    for name, value in params.items():
        setattr(plugin, name, value)
    fed = np.zeros((2, sum(PRIME)), np.float32)
    out = [plugin.process(fed[:, :n], RATE, buffer_size=n, reset=False) for n in PRIME]
    return plugin, fed, out


def play(plugin, x, paced, out):
    """x through the plugin in BLOCK-frame calls (state kept between calls), at real-time pace if `paced`."""
    t0 = time.monotonic()
    for i in range(0, x.shape[1], BLOCK):
        out.append(plugin.process(x[:, i : i + BLOCK], RATE, buffer_size=BLOCK, reset=False))
        if paced:
            time.sleep(max(0.0, t0 + (i + BLOCK) / RATE - time.monotonic()))
    return np.concatenate(out, axis=1)


def pedalboard_shift(plugin, fed, out):
    """Where pedalboard's output lines up with what was fed: out[shift + k] is fed[k]'s output.

    pedalboard compensates the reported latency itself, by returning nothing
    until it has counted `latency` frames through the plugin. Its count also
    holds frames it ran through the plugin while loading it (before the
    plugin was prepared at 48 kHz, so not part of this stream), which it
    returns as leading output: `shift` is that many, from the lengths alone.
    """
    latency = plugin.reported_latency_samples
    shift = latency - (fed.shape[1] - out.shape[1])
    assert 0 <= shift < BLOCK * 64, (latency, fed.shape, out.shape)
    return latency, shift


def test_without_an_engine_the_output_is_the_input_delayed_by_the_reported_latency_bit_for_bit(rec, tmp_path):
    status = tmp_path / "status.json"
    plugin, fed, out = load(free_udp_port(), status)   # a port nobody listens on
    x = rec[:, : 4 * RATE]
    out = play(plugin, x, paced=False, out=out)
    fed = np.concatenate([fed, x], axis=1)
    time.sleep(0.3)
    latency, shift = pedalboard_shift(plugin, fed, out)
    st = read_status(status)
    print(f"\nno engine: reported latency {latency} frames ({1000 * latency / RATE:.0f} ms), the plugin's own {st['latency_frames']}; "
          f"connected {st['connected']}; pedalboard's leading frames {shift}")
    assert latency == st["latency_frames"] > 0 and not st["connected"]
    # The output is the input delayed by exactly the reported latency, sample for sample.
    assert not out[:, :shift].any()
    assert np.array_equal(out[:, shift:], fed[:, : out.shape[1] - shift])


def test_with_the_engine_dreaming_the_aligned_output_is_the_dream_3_to_20_db_from_dry(rec, tmp_path):
    status = tmp_path / "status.json"
    with engine(tmp_path) as e:
        plugin, fed, out = load(e.port, status)
        # 40 % of the dream (the plugin sends /genredream/dream/mix 0.4): the full one
        # (geng towards rock) moves this recording about 1 dB from dry, too far to be the same music.
        plugin.mix = MIX
        wait_status(status, lambda s: s["streaming"], what="a stream to the engine")
        x = rec
        out = play(plugin, x, paced=True, out=out)
        time.sleep(0.3)
        st = read_status(status)
    fed = np.concatenate([fed, x], axis=1)
    latency, shift = pedalboard_shift(plugin, fed, out)
    out = out[:, shift:]
    print(f"\nreported latency {latency} frames ({1000 * latency / RATE:.0f} ms: engine dream latency {st['engine_dream_latency_ms']} ms + margin); "
          f"late blocks {st['late_blocks']} of {st['dream_blocks']}; frames dreamed {st['dream_frames']}, dry {st['dry_frames']}; "
          f"round trip p50 {st['round_trip_p50_ms']:.0f} ms, p99 {st['round_trip_p99_ms']:.0f} ms; min slack {st['min_slack_ms']:.0f} ms")
    assert latency == st["latency_frames"] > 0
    # pedalboard has lined the output up by the reported latency; compare the
    # second half of the recording, where the dream has long been flowing.
    start, n = fed.shape[1] // 2, out.shape[1]
    db = gain_aligned_db(out[:, start:n], fed[:, start:n])
    # The same comparison 50 ms out of line: no longer the same music.
    off = gain_aligned_db(out[:, start + 2400 : n], fed[:, start : n - 2400])
    print(f"dream vs dry, gain-aligned: {db:.1f} dB (misaligned by 50 ms: {off:.1f} dB)")
    assert st["dream_frames"] > 0.5 * x.shape[1], st
    assert -20.0 <= db <= -3.0


def test_the_engine_address_is_saved_with_the_project(tmp_path):
    """The engine's address is plugin state: a project reopened (state restored) talks to the same engine."""
    saved_port, other_port = free_udp_port(), free_udp_port()
    first, _, _ = load(saved_port, tmp_path / "first.json")
    state = first.raw_state
    second, _, _ = load(other_port, tmp_path / "second.json")
    wait_status(tmp_path / "second.json", lambda s: s["engine"] == f"127.0.0.1:{other_port}", what="its default engine")
    second.raw_state = state
    wait_status(tmp_path / "second.json", lambda s: s["engine"] == f"127.0.0.1:{saved_port}", what="the saved engine")


def test_with_the_dream_off_it_reports_no_latency_and_passes_the_input_through(rec, tmp_path):
    with engine(tmp_path) as e:
        plugin, fed, out = load(e.port, tmp_path / "status.json", dream=False)
        wait_status(tmp_path / "status.json", lambda s: s["streaming"], what="a stream to the engine")
        x = rec[:, : 3 * RATE]
        out = play(plugin, x, paced=True, out=out)
    fed = np.concatenate([fed, x], axis=1)
    assert plugin.reported_latency_samples == 0
    # pedalboard may drop its first call's output: it first prepared the plugin
    # while still holding the latency the plugin had at load (dream on).
    dropped = fed.shape[1] - out.shape[1]
    assert dropped in (0, PRIME[0]), dropped
    assert np.array_equal(out, fed[:, dropped:])
