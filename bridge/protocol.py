"""The genredream OSC namespace, and a strict codec around python-osc.

Everything lives under ``/genredream/`` (docs/osc.md has the full table).
Outgoing messages use only the types ``i``, ``f``, ``s`` and ``b``, so that
Pure Data's ``[oscparse]`` and Max's ``[udpreceive]`` read every one of them
(no ``T``/``F``/``N``/``h``), and every outgoing packet is a multiple of 4
bytes and at most :data:`MAX_PACKET` bytes.

Incoming datagrams are checked *before* python-osc parses them
(:func:`scan_message`, :func:`split_bundle`), because python-osc's parsers
accept or loop on some broken input: a negative bundle-element size walks
backwards forever, a negative blob size is taken at face value, padding
bytes are never checked, unknown type tags are skipped with a log line, and
invalid UTF-8 raises ``UnicodeDecodeError`` outside its ``ParseError``. Only a
datagram that passes the scan is decoded with :class:`pythonosc.osc_message.OscMessage`.

Audio blobs (``/genredream/audio/in`` and ``/genredream/audio/out``) carry
interleaved float32 samples in **big-endian** byte order (network order, the
same as OSC's own ``f`` arguments): NumPy dtype ``'>f4'``.
"""

from __future__ import annotations

import math
import re
import struct

import numpy as np
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

__all__ = [
    "PREFIX",
    "DEFAULT_PORT",
    "MAX_PACKET",
    "MAX_DATAGRAM",
    "MAX_FRAMES",
    "MAX_CHANNELS",
    "MIN_RATE",
    "MAX_RATE",
    "ProtocolError",
    "scan_message",
    "split_bundle",
    "decode",
    "encode",
    "encode_floats",
    "encode_kv",
    "address_part",
    "split_index",
    "join_index",
    "encode_result",
    "encode_names",
    "osc_num",
    "clip",
    "A",
]

PREFIX = "/genredream"
#: UDP port `genredream run --osc-port` listens on by default.
DEFAULT_PORT = 9137
#: Largest packet the server sends (Max, oscpack-based and python-osc receivers read 8192).
MAX_PACKET = 8192
#: Largest datagram the server accepts: 1024 frames x 8 channels of float32 and a header.
MAX_DATAGRAM = 33 * 1024
MAX_FRAMES = 1024
MAX_CHANNELS = 8
MIN_RATE, MAX_RATE = 1000, 384000
#: Bundles nested deeper than this are rejected (no unbounded recursion).
MAX_BUNDLE_DEPTH = 4
#: Exact sample positions are sent as two ints, ``hi * 2**24 + lo``: each part
#: is exact even in Pd, whose numbers are float32 (exact integers up to 2**24).
INDEX_BASE = 1 << 24

_BUNDLE = b"#bundle\x00"
_INT32 = (-(1 << 31), (1 << 31) - 1)
_ALLOWED_IN = frozenset("ifsb")


class A:
    """Addresses of the namespace (see docs/osc.md)."""

    # in: audio
    AUDIO_IN = PREFIX + "/audio/in"  # ,iiib  seq rate channels blob(>f4 interleaved)
    AUDIO_IN_F = PREFIX + "/audio/in/f"  # ,i|f f*  seq samples...
    AUDIO_IN_FORMAT = PREFIX + "/audio/in/format"  # rate channels, for the /f stream
    # in: control
    SUBSCRIBE = PREFIX + "/subscribe"  # host port [audio: none|b|f|fn|bi] [rate] [frames]
    UNSUBSCRIBE = PREFIX + "/unsubscribe"  # host port
    MODEL_LOAD = PREFIX + "/model/load"  # name_or_path [as_name]
    MODEL_UNLOAD = PREFIX + "/model/unload"  # name
    MODEL_LIST = PREFIX + "/model/list"  # -> /model/list (loaded), /model/available
    WINDOW = PREFIX + "/window"  # seconds (in); window report (out)
    HOP = PREFIX + "/hop"  # seconds
    DREAM = PREFIX + "/dream"  # 0|1
    DREAM_LAYER = PREFIX + "/dream/layer"  # s|i
    DREAM_TARGET = PREFIX + "/dream/target"  # s ("" leaves target mode)
    DREAM_AWAY = PREFIX + "/dream/away"  # 0|1: dream away from the target
    DREAM_STEPS = PREFIX + "/dream/steps"  # i
    DREAM_STEP_SIZE = PREFIX + "/dream/step_size"  # f
    DREAM_MIX = PREFIX + "/dream/mix"  # f 0..1
    DREAM_LATENCY = PREFIX + "/dream/latency"  # f ms
    DREAM_DEPTH = PREFIX + "/dream/depth"  # f 0..1: the performer's control (engine/dream/depth.py)
    STATUS = PREFIX + "/status"  # (in: ask) (out: key value ...)
    PING = PREFIX + "/ping"  # -> /pong with the same arguments
    # out
    ACK = PREFIX + "/ack"  # address [values...]
    ERROR = PREFIX + "/error"  # code message
    SCORES = PREFIX + "/scores"  # model (label value)*
    TOP = PREFIX + "/top"  # model label value
    LATENCY = PREFIX + "/latency"  # model ms
    AVAILABLE = PREFIX + "/model/available"  # names...
    AUDIO_OUT = PREFIX + "/audio/out"  # ,iiib seq rate channels blob
    AUDIO_OUT_F = PREFIX + "/audio/out/f"  # ,i f*  seq samples... (mono: the channels' mean)
    AUDIO_OUT_FN = PREFIX + "/audio/out/fn"  # ,ii f*  seq channels interleaved samples...
    AUDIO_OUT_BI = PREFIX + "/audio/out/bi"  # ,iiiiib seq rate channels hi lo blob: index of its first frame on the subscriber's stream
    PONG = PREFIX + "/pong"


class ProtocolError(Exception):
    """A datagram or message the server cannot use; ``code`` is the /genredream/error code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# -- incoming ------------------------------------------------------------------


def _scan_string(d, i, what):
    end = d.find(b"\x00", i)
    if end < 0:
        raise ProtocolError("malformed", f"{what}: string without its terminating NUL")
    stop = (end + 4) & ~3
    if stop > len(d):
        raise ProtocolError("malformed", f"{what}: string padding runs past the end of the packet")
    if d[end:stop].count(0) != stop - end:
        raise ProtocolError("bad_padding", f"{what}: string padding bytes are not zero")
    try:
        s = d[i:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("bad_utf8", f"{what}: not valid UTF-8") from None
    return s, stop


def scan_message(d):
    """Check a message datagram strictly; return ``(address, typetags)``.

    Checks: length a multiple of 4; address starts with ``/``, valid UTF-8,
    NUL-terminated and zero-padded; a type-tag string (``,``) using only
    ``i f s b``; every argument complete and padded with zeros; a blob size
    from 0 to what is left; nothing after the last argument.

    Raises
    ------
    ProtocolError
        ``malformed``, ``bad_padding``, ``bad_utf8``, ``bad_types``.
    """
    if len(d) % 4:
        raise ProtocolError("bad_padding", f"packet of {len(d)} bytes is not a multiple of 4")
    if not d.startswith(b"/"):
        raise ProtocolError("malformed", "an OSC message must start with '/'")
    address, i = _scan_string(d, 0, "address")
    if i == len(d):
        return address, ""  # no type tags: an old-style message without arguments
    tags, i = _scan_string(d, i, "type tags")
    if not tags.startswith(","):
        raise ProtocolError("malformed", f"{address}: type tags must start with ',', got {tags[:16]!r}")
    tags = tags[1:]
    bad = set(tags) - _ALLOWED_IN
    if bad:
        raise ProtocolError("bad_types", f"{address}: type tags {''.join(sorted(bad))!r} are not accepted (only i f s b)")
    n = len(d)
    for t in tags:
        if t in "if":
            i += 4
            if i > n:
                raise ProtocolError("malformed", f"{address}: truncated: argument past the end of the packet")
        elif t == "s":
            if i >= n:
                raise ProtocolError("malformed", f"{address}: truncated: string argument past the end")
            _, i = _scan_string(d, i, f"{address} string argument")
        else:  # b
            if i + 4 > n:
                raise ProtocolError("malformed", f"{address}: truncated: blob size past the end")
            (size,) = struct.unpack_from(">i", d, i)
            i += 4
            if size < 0 or size > n - i:
                raise ProtocolError("bad_blob", f"{address}: blob size {size} is negative or larger than the {n - i} bytes left")
            stop = i + ((size + 3) & ~3)
            if stop > n:
                raise ProtocolError("malformed", f"{address}: blob padding runs past the end")
            if d[i + size : stop].count(0) != stop - i - size:
                raise ProtocolError("bad_padding", f"{address}: blob padding bytes are not zero")
            i = stop
    if i != n:
        raise ProtocolError("malformed", f"{address}: {n - i} bytes after the last argument")
    return address, tags


def split_bundle(d, depth=0):
    """Check a bundle and return ``(timetag_seconds, [element datagrams])`` (nested bundles flattened).

    ``timetag_seconds`` is seconds since 1900 (NTP), 0 meaning "immediately";
    the caller never sleeps on it. Raises :class:`ProtocolError`.
    """
    if depth >= MAX_BUNDLE_DEPTH:
        raise ProtocolError("malformed", f"bundle nested more than {MAX_BUNDLE_DEPTH} deep")
    if len(d) % 4:
        raise ProtocolError("bad_padding", f"bundle of {len(d)} bytes is not a multiple of 4")
    if len(d) < 16:
        raise ProtocolError("malformed", "bundle shorter than its header and time tag")
    sec, frac = struct.unpack_from(">II", d, 8)
    when = 0.0 if (sec, frac) == (0, 1) else sec + frac / 2**32
    i, out = 16, []
    while i < len(d):
        if i + 4 > len(d):
            raise ProtocolError("malformed", "bundle element size runs past the end")
        (size,) = struct.unpack_from(">i", d, i)
        i += 4
        if size <= 0 or size % 4 or size > len(d) - i:
            raise ProtocolError("bad_blob", f"bundle element size {size} is not positive, a multiple of 4 and within the bundle")
        el = d[i : i + size]
        i += size
        if el.startswith(_BUNDLE):
            _, inner = split_bundle(el, depth + 1)
            out.extend(inner)
        else:
            out.append(el)
    return when, out


def is_bundle(d):
    return d.startswith(_BUNDLE)


def decode(d):
    """Scan then parse one message datagram: ``(address, typetags, [args])``.

    Blobs come back as ``bytes``, ints as ``int``, floats as ``float``.
    """
    address, tags = scan_message(d)
    try:
        msg = OscMessage(d)
        args = msg.params
    except Exception as e:  # python-osc raises more than its ParseError on bad input
        raise ProtocolError("malformed", f"{address}: {type(e).__name__}: {e}") from None
    if len(args) != len(tags):
        raise ProtocolError("malformed", f"{address}: {len(tags)} type tags but {len(args)} arguments parsed")
    return address, tags, args


# -- outgoing ------------------------------------------------------------------


def _arg(b, v):
    if isinstance(v, (bool, np.bool_)):
        b.add_arg(int(v), "i")  # never T/F
    elif isinstance(v, (int, np.integer)):
        b.add_arg(int(min(max(int(v), _INT32[0]), _INT32[1])), "i")  # never h
    elif isinstance(v, (float, np.floating)):
        b.add_arg(float(v), "f")
    elif isinstance(v, str):
        b.add_arg(v, "s")
    elif isinstance(v, (bytes, bytearray, memoryview)):
        if len(v) == 0:
            raise ValueError("an empty blob cannot be sent (python-osc and liblo reject it)")
        b.add_arg(bytes(v), "b")
    elif v is None:
        b.add_arg("", "s")  # never N
    else:
        raise TypeError(f"cannot send {type(v).__name__} over OSC")


def _check_out(d, address):
    if len(d) % 4 or len(d) > MAX_PACKET:
        raise ValueError(f"{address}: outgoing packet of {len(d)} bytes breaks the rule (multiple of 4, <= {MAX_PACKET})")
    return d


def encode(address, *args):
    """One message as bytes, types i/f/s/b only, checked: multiple of 4, <= MAX_PACKET."""
    b = OscMessageBuilder(address)
    for v in args:
        _arg(b, v)
    return _check_out(b.build().dgram, address)


def encode_floats(address, head, samples):
    """``address ,<head types>f...``: ints ``head`` then float32 ``samples``, fast.

    Equal byte for byte to :func:`encode` with the same values (tested), but the
    samples are packed by NumPy instead of one ``struct.pack`` per argument.
    """
    samples = np.asarray(samples, dtype=np.float32)
    tags = "," + "i" * len(head) + "f" * samples.size
    d = (
        osc_types.write_string(address)
        + osc_types.write_string(tags)
        + b"".join(struct.pack(">i", int(h)) for h in head)
        + samples.astype(">f4").tobytes()
    )
    return _check_out(d, address)


def _size(v):
    if isinstance(v, str):
        return (len(v.encode("utf-8")) + 4) & ~3
    if isinstance(v, (bytes, bytearray)):
        return 4 + ((len(v) + 3) & ~3)
    return 4


def encode_kv(address, head, pairs, limit=MAX_PACKET):
    """``address head... k1 v1 k2 v2 ...``, split into several messages so each fits ``limit``.

    Every message repeats ``head`` (e.g. the model name) so each part stands alone.
    """
    base = _size(address) + sum(_size(h) for h in head)
    out, cur, size = [], [], base
    for k, v in pairs:
        add = _size(k) + _size(v)
        tags = (1 + len(head) + len(cur) + 2 + 4) & ~3
        if cur and size + add + tags > limit:
            out.append(encode(address, *head, *cur))
            cur, size = [], base
        cur += [k, v]
        size += add
    out.append(encode(address, *head, *cur))
    return out


_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]")


def address_part(name):
    """A label or model name made safe as one OSC address part (Max [route], Pd [route]).

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``
    (``"female vocalists"`` -> ``female_vocalists``).
    """
    return _UNSAFE.sub("_", str(name)) or "_"


def split_index(index):
    """An absolute sample index as ``(hi, lo)`` with ``index = hi * 2**24 + lo``."""
    index = int(index)
    return index >> 24, index & (INDEX_BASE - 1)


def join_index(hi, lo):
    return int(hi) * INDEX_BASE + int(lo)


def as_int(v, what):
    """An OSC argument that must be an integer: ``i``, or an integral ``f`` (Pd sends numbers as f)."""
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 2**53:
        return int(v)
    raise ProtocolError("bad_args", f"{what} must be an integer, got {v!r}")


def as_float(v, what):
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    raise ProtocolError("bad_args", f"{what} must be a finite number, got {v!r}")


def osc_num(v):
    """A float for Pd/Max: NaN and None (unknown) are sent as -1."""
    if v is None:
        return -1.0
    v = float(v)
    return v if math.isfinite(v) else -1.0


def clip(s, n=400):
    """A message string cut to ``n`` characters, so an error reply stays one small packet."""
    s = str(s)
    return s if len(s) <= n else s[: n - 3] + "..."


def encode_names(address, names):
    """``address name1 name2 ...``, split into several messages so each fits :data:`MAX_PACKET`."""
    out, cur, size = [], [], len(address) + 8
    for n in names:
        add = len(n.encode()) + 5
        if cur and size + add + len(cur) + 8 > MAX_PACKET:
            out.append(encode(address, *cur))
            cur, size = [], len(address) + 8
        cur.append(n)
        size += add
    out.append(encode(address, *cur))
    return out


def encode_result(res):
    """The messages for one :class:`genredream.engine.runtime.Result`, scores first."""
    if res.error:
        return [encode(A.ERROR, "model_error", clip(res.error))]
    model = res.model
    part = address_part(model)
    pkts = encode_kv(A.SCORES, [model], list(zip(res.labels, (float(s) for s in res.scores))))
    score = dict(zip(res.labels, res.scores))
    for label in res.genre_labels:
        if label in score:
            pkts.append(encode(f"{A.SCORES}/{part}/{address_part(label)}", float(score[label])))
    top, top_score = res.top
    pkts.append(encode(A.TOP, model, top, float(top_score)))
    hi, lo = split_index(res.end_index)
    pkts.append(encode(A.WINDOW + "/end", model, res.seq, hi, lo, float(res.end_s), float(res.level_db), int(res.low_energy),
                       int(getattr(res, "partial", False))))
    pkts.append(encode(A.LATENCY, model, osc_num(res.latency_ms)))
    return pkts
