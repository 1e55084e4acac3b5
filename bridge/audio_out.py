"""OSC audio out: the dreamed audio, sent to each subscriber that asked for it, at its rate.

Polls the dreamer's output ring (``engine.output``, and ``engine.output_ch``
when the input has channels; both at the engine's rate, sample ``j`` being
input sample ``j`` dreamed) and sends ``/genredream/audio/out`` (blob, every
channel), ``/audio/out/f`` (floats, mono: the channels' mean, for patches that
read one signal), ``/audio/out/fn`` (floats, every channel) or
``/audio/out/bi`` (blob, every channel, with the position of its first frame
on the subscriber's own stream).

Each subscriber gets its audio at its rate (:meth:`AudioOut.rate_of`: the rate
it asked for, else the rate it declared for its own audio in, else the
engine's), resampled here, on this thread, by streaming soxr: one resampler
per distinct rate for ``b``/``f``/``fn``, one per ``bi`` subscriber, started
where its frame count lines up exactly with the engine's clock.
"""

from __future__ import annotations

import math
import time

import numpy as np

from genredream.bridge import protocol as P
from genredream.bridge.protocol import A
from genredream.engine.channels import FrameResampler

__all__ = ["AudioOut", "step_for"]

#: OSC arguments (f) or blob bytes that keep a packet under MAX_PACKET with its header.
_FLOAT_ROOM = 1500
_BLOB_ROOM = (P.MAX_PACKET - 64) // 4


def step_for(audio, channels, frames):
    """Frames per packet for a subscriber asking ``frames``: at most what keeps it under 8192 bytes."""
    if audio == "f":
        room = _FLOAT_ROOM
    elif audio == "fn":
        room = _FLOAT_ROOM // channels
    else:
        room = _BLOB_ROOM // channels
    return max(1, min(int(frames), room, P.MAX_FRAMES))


class _Stream:
    """Dreamed audio from engine sample ``start`` on, resampled to ``rate``.

    Frames are stacked ``[mono | channels...]`` (``width`` columns; a mono
    input has one), so the ``f`` and the blob subscribers of one rate share
    one resampler. ``index``: the position of the next output frame on a
    ``bi`` subscriber's count (None for shared streams).
    """

    def __init__(self, in_rate, rate, width, start, index=None, segment=None):
        self.rate, self.width, self.start, self.index, self.segment = int(rate), int(width), int(start), index, segment
        self.rs = FrameResampler(in_rate, rate, width)
        self.process = self.rs.process


class AudioOut:
    """The bridge's audio-out thread: :meth:`loop`, one :meth:`send_once` per turn."""

    def __init__(self, bridge, out_block=512):
        if not (1 <= out_block <= P.MAX_FRAMES):
            raise ValueError(f"out_block must be 1..{P.MAX_FRAMES}, got {out_block}")
        self.bridge = bridge
        self.engine = bridge.engine
        self.replies = bridge.replies
        self.out_block = int(out_block)
        self._cursor = None
        self._seqs = {}  # (host, port) -> the next sequence number of its audio packets
        self._shared = {}  # rate -> _Stream (b, f, fn subscribers)
        self._indexed = {}  # (host, port) -> _Stream (bi subscribers)
        self._last_sweep = 0.0

    def loop(self):
        bridge = self.bridge
        while bridge._running:
            self.sweep()
            self.send_once()

    def reset(self):
        self._cursor = None
        self._shared.clear()
        self._indexed.clear()

    def sweep(self, every=0.25):
        """Expire the leases that ran out (at most every ``every`` seconds)."""
        now = time.monotonic()
        if now - self._last_sweep >= every:
            self._last_sweep = now
            self.replies.table.expire(now)

    def rate_of(self, sub):
        """The rate ``sub`` gets its dreamed audio at: asked for, else declared by its host:port
        (or by the address it subscribed from), else the engine's."""
        if sub.rate:
            return int(sub.rate)
        inlet = getattr(self.bridge, "inlet", None)
        declared = inlet.declared_rate(sub.addr, sub.origin) if inlet is not None else None
        return int(declared or self.engine.sample_rate)

    def send_once(self):
        """One turn of the audio-out thread: send what the dreamer wrote since the last turn."""
        ring = getattr(self.engine, "output", None)  # the dreamer's output ring, at the input rate
        subs = [s for s in self.replies.subs if s.audio != "none"]
        if ring is None or not subs:
            self._cursor = None
            self._shared.clear()
            self._indexed.clear()
            time.sleep(0.005)
            return
        if self._cursor is None:
            self._cursor = ring.total_written
        # The input's channels (engine.output_ch), on the same clock, when the engine keeps them.
        fr = getattr(self.engine, "output_ch", None)
        end = ring.total_written
        if fr is not None and fr.first <= self._cursor:
            end = min(end, fr.total_written)  # the dreamer writes the mono ring first
        if end <= self._cursor:
            time.sleep(0.002)
            return
        count = self.replies.count
        data, start = ring.read_since(self._cursor, max_n=end - self._cursor)
        if start > self._cursor:
            count("audio_out_overruns")
            count("audio_out_samples_lost", start - self._cursor)
            self._indexed.clear()  # their count would jump: each starts again where it lines up
        self._cursor = start + data.size
        frames = None
        if fr is not None and fr.oldest_available <= start and fr.total_written >= start + data.size:
            frames, _ = fr.read(start, data.size)
        x = data[:, None] if frames is None else np.concatenate([data[:, None], frames], axis=1)
        self._send(subs, x, start)
        count("audio_out_samples", data.size)

    # -- per rate, per subscriber ----------------------------------------------------

    def _send(self, subs, x, start):
        live = {s.addr for s in subs}
        for d in (self._seqs, self._indexed):
            for a in [a for a in d if a not in live]:
                del d[a]
        by_rate = {}
        for s in subs:
            if s.audio == "bi":
                for y, index in self._indexed_blocks(s, x, start):
                    self._packets(s, y, index)
            else:
                by_rate.setdefault(self.rate_of(s), []).append(s)
        for rate in [r for r in self._shared if r not in by_rate]:
            del self._shared[rate]
        in_rate = self.engine.sample_rate
        for rate, group in by_rate.items():
            st = self._shared.get(rate)
            if st is None or st.width != x.shape[1]:
                st = self._shared[rate] = _Stream(in_rate, rate, x.shape[1], start)
            y = st.process(x)
            for s in group:
                self._packets(s, y, None)

    def _indexed_blocks(self, sub, x, start):
        """``(frames, index)`` for a ``bi`` subscriber: ``x`` (engine samples from ``start``) at its rate,
        each with the position of its first frame on the subscriber's own stream."""
        from genredream.bridge.audio_in import Segment

        R, rate = int(self.engine.sample_rate), self.rate_of(sub)
        inlet = getattr(self.bridge, "inlet", None)
        mine = [g for g in (inlet.segments if inlet is not None else ()) if g.addr == sub.addr]
        if not mine:  # it sends no audio: the engine's input clock, at its rate
            mine = [Segment(sub.addr, 0, 0, rate)]
        out, p, stop = [], start, start + x.shape[0]
        while p < stop:
            seg = next((g for g in reversed(mine) if g.engine_start <= p), None)
            if seg is None:  # before its first stream: not its audio
                p = min(stop, mine[0].engine_start)
                continue
            nxt = next((g.engine_start for g in mine if g.engine_start > p), stop)
            q = min(stop, nxt)
            st = self._indexed.get(sub.addr)
            if st is None or st.segment != seg or st.rate != rate or st.width != x.shape[1]:
                if st is not None and st.segment != seg:
                    tail = st.rs.flush()  # the rest of the old stream, on its own count
                    if tail.shape[0]:
                        out.append((tail, st.index))
                st = self._indexed[sub.addr] = self._aligned(seg, R, rate, x.shape[1], p)
            if q > st.start:
                lo = max(p, st.start)
                y = st.process(x[lo - start : q - start])
                if y.shape[0]:
                    out.append((y, st.index))
                    st.index += y.shape[0]
            p = q
        return out

    @staticmethod
    def _aligned(seg, in_rate, rate, width, p):
        """A stream for ``seg`` starting at the first engine sample at or after ``p`` that is a whole
        subscriber frame: every ``in_rate/g`` engine samples are exactly ``rate/g`` of its frames."""
        g = math.gcd(int(in_rate), int(rate))
        se, ss = in_rate // g, rate // g
        m = -(-(p - seg.engine_start) // se)
        e0 = seg.engine_start + m * se
        index = int(round(seg.sender_start * rate / seg.rate)) + m * ss
        return _Stream(in_rate, rate, width, e0, index=index, segment=seg)

    def _packets(self, sub, y, index):
        """Send frames ``y`` ([n, width], stacked mono | channels) to ``sub`` in packets of its size."""
        if not y.shape[0]:
            return
        rate = self.rate_of(sub)
        chans = y[:, 1:] if y.shape[1] > 1 else y
        ch = chans.shape[1]
        step = step_for(sub.audio, ch, sub.frames)
        send, seq = self.replies.send, self._seqs.get(sub.addr, 0)
        for i in range(0, y.shape[0], step):
            if sub.audio == "f":
                pkt = P.encode_floats(A.AUDIO_OUT_F, [seq], y[i : i + step, 0])  # the dreamed mid: mono patches keep working
            elif sub.audio == "fn":
                pkt = P.encode_floats(A.AUDIO_OUT_FN, [seq, ch], chans[i : i + step].ravel())
            elif sub.audio == "bi":
                hi, lo = P.split_index(index + i)
                pkt = P.encode(A.AUDIO_OUT_BI, seq, rate, ch, hi, lo, chans[i : i + step].astype(">f4").tobytes())
            else:
                pkt = P.encode(A.AUDIO_OUT, seq, rate, ch, chans[i : i + step].astype(">f4").tobytes())
            send(pkt, sub.addr)
            seq = (seq + 1) & 0x7FFFFFFF
            self.replies.count("audio_out_packets")
        self._seqs[sub.addr] = seq
