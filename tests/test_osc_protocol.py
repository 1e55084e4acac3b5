"""bridge/protocol.py and bridge/jitter.py: the codec's strictness, the jitter buffer's bookkeeping."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc.osc_message_builder import OscMessageBuilder

from genredream.bridge import protocol as P
from genredream.bridge.jitter import JitterBuffer, seq_diff


def _tags(d):
    _, tags = P.scan_message(d)
    return tags


# -- encoding ----------------------------------------------------------------------


def test_encode_uses_only_ifsb_and_is_a_multiple_of_4():
    d = P.encode("/genredream/x", True, np.int64(2**40), -(2**40), 1.5, np.float32(0.25), "s", b"\x01\x02\x03", None)
    assert len(d) % 4 == 0
    assert _tags(d) == "iiiffsbs"  # bools -> i, int64 clamped to i (never h/T/F/N)
    _, _, args = P.decode(d)
    assert args[:3] == [1, 2**31 - 1, -(2**31)]
    assert args[6] == b"\x01\x02\x03" and args[7] == ""


def test_encode_refuses_oversized_packets_and_empty_blobs():
    with pytest.raises(ValueError, match="8192"):
        P.encode("/genredream/x", b"\x00" * 8200)
    with pytest.raises(ValueError, match="empty blob"):
        P.encode("/genredream/x", b"")


def test_encode_floats_equals_python_osc_builder():
    x = np.random.default_rng(0).standard_normal(1024).astype(np.float32)
    b = OscMessageBuilder("/genredream/audio/out/f")
    b.add_arg(7, "i")
    for v in x:
        b.add_arg(float(v), "f")
    assert P.encode_floats("/genredream/audio/out/f", [7], x) == b.build().dgram
    assert len(P.encode_floats("/genredream/audio/out/f", [7], x)) <= P.MAX_PACKET


def test_audio_blob_of_1024_samples_fits_8192():
    d = P.encode(P.A.AUDIO_OUT, 1, 48000, 1, np.zeros(1024, ">f4").tobytes())
    assert len(d) <= P.MAX_PACKET and len(d) % 4 == 0


def test_encode_kv_splits_long_label_lists_into_messages_that_each_fit():
    pairs = [(f"label-number-{i:04d}-with-a-long-name", i / 1000) for i in range(400)]
    pkts = P.encode_kv(P.A.SCORES, ["model"], pairs)
    assert len(pkts) > 1
    got = []
    for d in pkts:
        assert len(d) <= P.MAX_PACKET and len(d) % 4 == 0
        _, _, args = P.decode(d)
        assert args[0] == "model"
        got += list(zip(args[1::2], args[2::2]))
    assert [k for k, _ in got] == [k for k, _ in pairs]
    assert np.allclose([v for _, v in got], [v for _, v in pairs])


def test_address_part_and_split_index():
    assert P.address_part("female vocalists") == "female_vocalists"
    assert P.address_part("hip-hop") == "hip-hop"
    assert P.address_part("r&b/soul") == "r_b_soul"
    for n in (0, 1, 2**24 - 1, 2**24, 123456789012):
        hi, lo = P.split_index(n)
        assert 0 <= lo < 2**24 and P.join_index(hi, lo) == n
        assert float(np.float32(hi)) == hi and float(np.float32(lo)) == lo  # exact in Pd's float32


# -- strict scanning ----------------------------------------------------------------

GOOD = P.encode("/genredream/subscribe", "127.0.0.1", 9000, "f")


@pytest.mark.parametrize(
    "dgram, code",
    [
        (GOOD[:-4], "malformed"),  # truncated
        (GOOD[:-1], "bad_padding"),  # not a multiple of 4
        (GOOD[:22] + b"\x01" + GOOD[23:], "bad_padding"),  # address padding not zero
        (b"/gen\xff\xfe\x00\x00,\x00\x00\x00", "bad_utf8"),
        (b"/genredream/x\x00\x00\x00,h\x00\x00" + b"\x00" * 8, "bad_types"),
        (b"/genredream/x\x00\x00\x00,T\x00\x00", "bad_types"),
        (b"/genredream/x\x00\x00\x00,b\x00\x00" + struct.pack(">i", -8) + b"\x00" * 8, "bad_blob"),
        (b"/genredream/x\x00\x00\x00,b\x00\x00" + struct.pack(">i", 2**30) + b"\x00" * 8, "bad_blob"),
        (b"/genredream/x\x00\x00\x00,b\x00\x00" + struct.pack(">i", 3) + b"abcd", "bad_padding"),
        (b"/genredream/x\x00\x00\x00,i\x00\x00" + b"\x00" * 8, "malformed"),  # trailing bytes
        (b"/genredream/x\x00\x00\x00i\x00\x00\x00" + b"\x00" * 4, "malformed"),  # tags without ','
        (b"genredream\x00\x00", "malformed"),
        (b"/genredream", "bad_padding"),
    ],
)
def test_scan_rejects(dgram, code):
    with pytest.raises(P.ProtocolError) as ei:
        P.decode(dgram)
    assert ei.value.code == code


def test_bundle_with_negative_element_size_is_rejected_not_looped_on():
    b = b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -8) + b"\x00" * 8
    with pytest.raises(P.ProtocolError):
        P.split_bundle(b)


def test_nested_bundles_are_flattened_and_depth_is_bounded():
    msg = P.encode("/genredream/ping", 1)
    inner = b"#bundle\x00" + struct.pack(">II", 0, 1) + struct.pack(">i", len(msg)) + msg
    outer = b"#bundle\x00" + struct.pack(">II", 0, 1) + struct.pack(">i", len(inner)) + inner + struct.pack(">i", len(msg)) + msg
    when, els = P.split_bundle(outer)
    assert when == 0.0 and els == [msg, msg]
    deep = msg
    for _ in range(P.MAX_BUNDLE_DEPTH + 1):
        deep = b"#bundle\x00" + struct.pack(">II", 0, 1) + struct.pack(">i", len(deep)) + deep
    with pytest.raises(P.ProtocolError, match="nested"):
        P.split_bundle(deep)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_decode_raises_only_protocol_errors(data):
    try:
        P.decode(b"/genredream/x\x00\x00\x00" + data)
    except P.ProtocolError:
        pass
    try:
        P.split_bundle(b"#bundle\x00" + data)
    except P.ProtocolError:
        pass


def test_as_int_accepts_integral_floats_from_pd():
    assert P.as_int(9000.0, "port") == 9000
    with pytest.raises(P.ProtocolError):
        P.as_int(1.5, "port")
    with pytest.raises(P.ProtocolError):
        P.as_int("x", "port")


# -- jitter buffer --------------------------------------------------------------------


def _run(jb, seqs, now=0.0):
    ev = []
    for s in seqs:
        ev += jb.push(s, s, now)
    return ev


def test_in_order_passes_straight_through():
    jb = JitterBuffer(depth=4)
    ev = _run(jb, range(10))
    assert [e[1] for e in ev if e[0] == "data"] == list(range(10))
    assert jb.waiting == 0 and jb.counters["lost"] == 0


def test_swaps_are_reordered_and_duplicates_dropped():
    jb = JitterBuffer(depth=4)
    ev = _run(jb, [0, 2, 1, 3, 3, 1, 5, 4, 6])
    assert [e[1] for e in ev if e[0] == "data"] == list(range(7))
    assert jb.counters["reordered"] == 2 and jb.counters["duplicates"] == 2 and jb.counters["lost"] == 0


def test_a_gap_is_given_up_after_depth_packets_or_max_wait():
    jb = JitterBuffer(depth=3, max_wait=0.05)
    ev = _run(jb, [0, 2, 3, 4])
    assert ev == [("data", 0, 0)]
    ev = jb.push(5, 5, 0.0)  # the 4th packet behind the gap
    assert ev[0] == ("gap", 1, 1) and [e[1] for e in ev[1:]] == [2, 3, 4, 5]
    assert jb.counters["lost"] == 1 and jb.counters["gaps"] == 1
    # a late arrival of the given-up packet is counted late, not duplicate
    assert jb.push(1, 1, 0.0) == [] and jb.counters["late"] == 1
    # the time rule
    assert jb.push(8, 8, 1.0) == []
    assert jb.poll(1.01) == []
    assert jb.poll(1.06) == [("gap", 6, 2), ("data", 8, 8)]


def test_sequence_jumping_back_restarts_cleanly():
    jb = JitterBuffer(depth=4, restart_back=16)
    _run(jb, range(100, 200))
    ev = _run(jb, range(0, 5))
    assert ev[0] == ("restart", 0, None) and [e[1] for e in ev[1:]] == [0, 1, 2, 3, 4]
    assert jb.counters["restarts"] == 1 and jb.counters["duplicates"] == 0 and jb.counters["lost"] == 0


def test_huge_forward_jump_restarts_instead_of_zero_filling():
    jb = JitterBuffer(depth=4, max_gap=64)
    _run(jb, range(10))
    ev = jb.push(10**6, "x", 0.0)
    assert ev[0][0] == "restart" and jb.counters["lost"] == 0


def test_sequence_wraps_around_int32():
    jb = JitterBuffer(depth=4)
    seqs = [(2**32 - 3 + k) % 2**32 for k in range(6)]
    ev = _run(jb, seqs)
    assert [e[1] for e in ev if e[0] == "data"] == seqs
    assert seq_diff(0, 2**32 - 1) == 1


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_loss_duplicates_and_swaps_are_accounted_for_exactly(data):
    n = data.draw(st.integers(20, 200))
    seqs = list(range(n))
    dropped = set(data.draw(st.sets(st.integers(1, n - 2), max_size=n // 10)))
    order = [s for s in seqs if s not in dropped]
    for i in data.draw(st.lists(st.integers(0, len(order) - 2), max_size=n // 10)):
        order[i], order[i + 1] = order[i + 1], order[i]
    dups = data.draw(st.lists(st.integers(0, len(order) - 1), max_size=n // 10))
    for i in sorted(dups, reverse=True):
        order.insert(i + 1, order[i])
    jb = JitterBuffer(depth=64, max_wait=1e9, max_gap=256)  # depth deep enough for any swap chain here
    ev = _run(jb, order) + jb.flush()
    got = []
    for kind, s, x in ev:
        if kind == "data":
            got.append(s)
        elif kind == "gap":
            got += [None] * x
    assert len(got) == n
    assert [s for s in got if s is not None] == sorted(set(seqs) - dropped)
    assert jb.counters["lost"] == len(dropped)
    assert jb.counters["duplicates"] == len(dups)
