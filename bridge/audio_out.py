"""OSC audio out: the dreamed audio, sent to each subscriber that asked for it.

Polls the dreamer's output ring (``engine.output``, and ``engine.output_ch``
when the input has channels) and sends ``/genredream/audio/out`` (blob, every
channel), ``/audio/out/f`` (floats, mono: the channels' mean, for patches that
read one signal) or ``/audio/out/fn`` (floats, every channel).
"""

from __future__ import annotations

import time

from genredream.bridge import protocol as P
from genredream.bridge.protocol import A

__all__ = ["AudioOut"]


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
        self._seq = 0

    def loop(self):
        bridge = self.bridge
        while bridge._running:
            self.send_once()

    def reset(self):
        self._cursor = None

    def send_once(self):
        """One turn of the audio-out thread: send what the dreamer wrote since the last turn."""
        rate = self.engine.sample_rate
        ring = getattr(self.engine, "output", None)  # the dreamer's output ring, at the input rate
        subs = [s for s in self.replies.subs if s.audio != "none"]
        if ring is None or not subs:
            self._cursor = None
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
        count, send = self.replies.count, self.replies.send
        data, start = ring.read_since(self._cursor, max_n=end - self._cursor)
        if start > self._cursor:
            count("audio_out_overruns")
            count("audio_out_samples_lost", start - self._cursor)
        self._cursor = start + data.size
        frames = None
        if fr is not None and fr.oldest_available <= start and fr.total_written >= start + data.size:
            frames, _ = fr.read(start, data.size)
        ch = 1 if frames is None else frames.shape[1]
        # Every packet stays under 8192 bytes: 5 bytes a float sample (tag and value).
        step = max(1, min(self.out_block, 1500 // ch))
        for i in range(0, data.size, step):
            chunk = data[i : i + step]
            fch = chunk[:, None] if frames is None else frames[i : i + step]
            blob = f = fn = None
            for s in subs:
                if s.audio == "b":
                    blob = blob or P.encode(A.AUDIO_OUT, self._seq, rate, ch, fch.astype(">f4").tobytes())
                    send(blob, s.addr)
                elif s.audio == "fn":
                    fn = fn or P.encode_floats(A.AUDIO_OUT_FN, [self._seq, ch], fch.ravel())
                    send(fn, s.addr)
                else:
                    f = f or P.encode_floats(A.AUDIO_OUT_F, [self._seq], chunk)  # the dreamed mid: mono patches keep working
                    send(f, s.addr)
            self._seq = (self._seq + 1) & 0x7FFFFFFF
            count("audio_out_packets")
            count("audio_out_samples", chunk.size)
