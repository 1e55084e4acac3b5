"""The engine-side contract the plugin's alignment rests on (docs/osc.md, `bi`):
a stream's frames are counted from its own sequence 0, so a sender that
restarts (sequence back to 0), or a new sender after the last one went
quiet (a plugin instance reloaded, a second host), gets indices it can place.
The dreamer is dry here (mix 0), so dreamed frame i is exactly sent frame i.
"""

from __future__ import annotations

import time

import numpy as np

from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A, join_index
from tests.test_osc_rate import ENGINE_SR, chirp, collect, dry_engine, geng_file, stream  # noqa: F401 (fixture)


def _new_stream_blobs(got):
    """The blobs after the index first goes back (the new stream), as (index, samples)."""
    out, back, last = [], False, -1
    for _seq, rate, _ch, hi, lo, blob in got:
        i = join_index(hi, lo)
        back = back or i < last
        last = i
        if back:
            out.append((i, np.frombuffer(blob, ">f4")))
    return out


def _check(blobs, y):
    n = 0
    for i, v in blobs:
        np.testing.assert_array_equal(v, y[i : i + v.size])
        n += v.size
    assert n > ENGINE_SR // 2, n


def test_a_sender_restarting_at_sequence_0_is_counted_from_0_again(served, geng_file):
    e = dry_engine(geng_file)
    b, c = served(e)
    e.start()
    c.subscribe("bi", port=c.port)
    c.wait_for(A.ACK, pred=lambda a: a[0] == A.SUBSCRIBE)
    first, second = chirp(2.0, ENGINE_SR), chirp(2.0, ENGINE_SR, f0=2000.0, f1=200.0)
    stream(c, first, ENGINE_SR, 512)   # 187 packets: sequence 0 again is far behind, a restart
    stream(c, second, ENGINE_SR, 512)
    _check(_new_stream_blobs(collect(c, A.AUDIO_OUT_BI)), second)


def test_a_new_sender_after_the_last_went_quiet_is_counted_from_its_own_0(served, geng_file):
    e = dry_engine(geng_file)
    b, c = served(e)
    e.start()
    first, second = chirp(2.0, ENGINE_SR), chirp(2.0, ENGINE_SR, f0=2000.0, f1=200.0)
    stream(c, first, ENGINE_SR, 512)
    time.sleep(1.2)   # the engine takes a new sender once the last has been quiet for a second
    with OscClient(b.port) as d:
        d.subscribe("bi", port=d.port)
        d.wait_for(A.ACK, pred=lambda a: a[0] == A.SUBSCRIBE)
        stream(d, second, ENGINE_SR, 512)
        got = collect(d, A.AUDIO_OUT_BI)
    _check([(join_index(hi, lo), np.frombuffer(blob, ">f4")) for _s, _r, _c, hi, lo, blob in got], second)
