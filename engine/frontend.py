"""Per-configuration front ends between the input ring and the models.

The input ring holds the source's samples at the source's rate. Models want
their own rate and, for mel models, their own mel configuration. A
:class:`FrontEnds` keeps one :class:`RateStream` per model sample rate (a
streaming resampler and a ring at that rate) and one :class:`MelStream` per
distinct :class:`~genredream.engine.mel.MelConfig` on top of it, so models that share a
configuration share the computation: it is done once per hop, not once per
model.

All of this runs on the engine's front-end worker, never on the audio
callback.
"""

from __future__ import annotations

import numpy as np

from genredream.engine.mel import MelConfig, StreamingMel, apply_scaling
from genredream.engine.resample import StreamingResampler
from genredream.engine.ringbuffer import RingBuffer

__all__ = ["FrontEnds", "RateStream", "MelStream"]

# Extra history kept beyond one window, in seconds: room for a hop or two of
# scheduling jitter between the front end and inference.
_MARGIN_S = 2.0


class RateStream:
    """The input stream resampled to one model rate, with its own ring.

    Attributes
    ----------
    sr : int
        The model rate in Hz.
    ring : RingBuffer
        Samples at ``sr``; its ``total_written`` is this stream's clock.
    """

    def __init__(self, in_rate, sr, window_s, origin=0):
        self.sr = int(sr)
        self.origin = int(origin)  # input index of the first input sample this stream was fed
        self.resampler = StreamingResampler(in_rate, sr)
        self.ring = RingBuffer(int(np.ceil((window_s + _MARGIN_S) * sr)))
        self.mels: dict[MelConfig, MelStream] = {}

    def push(self, block):
        y = self.resampler.process(block)
        if y.size:
            self.ring.write(y)
            for m in self.mels.values():
                m.push(y)

    def input_index(self, index):
        """An index at this rate (counted from this stream's start) as an index at the input rate."""
        return self.origin + int(round(index / self.resampler.ratio))

    def waveform_window(self, n):
        """Newest ``n`` samples (copy) and the input-rate index one past the last."""
        y, end = self.ring.latest(n)
        return y, self.input_index(end)


class MelStream:
    """Streaming mel frames for one configuration (shared by its models)."""

    def __init__(self, cfg: MelConfig, window_s, origin=0):
        self.cfg = cfg
        self.origin = int(origin)  # model-rate index (of its RateStream) of the first sample it was fed
        self.n_frames = cfg.frames_for(int(round(cfg.sr * window_s)))
        keep = self.n_frames + int(np.ceil(_MARGIN_S * cfg.sr / cfg.hop_length))
        self.mel = StreamingMel.from_config(cfg, keep_frames=keep)

    def push(self, y):
        self.mel.push(y)

    @property
    def frames_out(self):
        """Frames computed so far: the index one past the newest frame."""
        return self.mel.frames_out

    def window(self, n_frames):
        """Scaled newest ``n_frames`` (float32 copy).

        Before a full window has streamed, the missing frames are the mel of
        silence (zeros before scaling), as the input ring zero-pads: the
        stream is taken to be silent before it started.

        Returns the frames and the model-rate index one past the newest
        sample they depend on (frame ``t`` reaches ``t * hop + n_fft // 2``).
        """
        have = min(self.mel.frames_out, n_frames, self.mel.keep_frames)
        out = np.zeros((self.cfg.n_mels, n_frames), dtype=np.float32)
        if have:
            out[:, n_frames - have :] = self.mel.latest(have)
        end = self.origin + max(0, (self.mel.frames_out - 1) * self.cfg.hop_length + self.cfg.n_fft // 2)
        return apply_scaling(out, self.cfg.scaling), end


class FrontEnds:
    """All front ends the loaded models need, fed from one input stream.

    Parameters
    ----------
    in_rate : int
        The source's sample rate in Hz.
    window_s : float
        The analysis window in seconds (how much history each stream keeps).
    """

    def __init__(self, in_rate, window_s, origin=0):
        self.in_rate = int(in_rate)
        self.window_s = float(window_s)
        self.samples_in = int(origin)  # the input clock: index of the next sample pushed
        self.rates: dict[int, RateStream] = {}

    def attach(self, sr, mel: MelConfig | None):
        """Make sure a stream exists for ``sr`` (and ``mel``); returns (RateStream, MelStream|None).

        A stream attached mid-run starts empty: its first windows are
        zero-padded at the front until a full window has passed through it.
        It starts on the stream's clock, though: its indices count input
        samples from the start of the stream, not from the attach.
        """
        rs = self.rates.get(int(sr))
        if rs is None:
            rs = self.rates[int(sr)] = RateStream(self.in_rate, sr, self.window_s, origin=self.samples_in)
        ms = None
        if mel is not None:
            ms = rs.mels.get(mel)
            if ms is None:
                ms = rs.mels[mel] = MelStream(mel, self.window_s, origin=rs.ring.total_written)
        return rs, ms

    def detach_unused(self, used):
        """Drop streams no model uses any more. ``used``: set of (sr, MelConfig|None)."""
        for sr in list(self.rates):
            rs = self.rates[sr]
            for cfg in list(rs.mels):
                if (sr, cfg) not in used:
                    del rs.mels[cfg]
            if not any(u[0] == sr for u in used):
                del self.rates[sr]

    def push(self, block):
        for rs in self.rates.values():
            rs.push(block)
        self.samples_in += len(block)

    def count(self):
        """(rate streams, mel streams): how many computations each hop costs."""
        return len(self.rates), sum(len(r.mels) for r in self.rates.values())


def warm_kernels(in_rate, window_s, sr, mel: MelConfig | None, block=1024):
    """Run a block of silence through a scratch input ring and front end for ``sr`` (and ``mel``).

    The first call of each Numba kernel in a process loads it from Numba's
    cache, and the very first one also starts Numba's compiler and its
    extensions (rocket-fft, and with it SciPy's FFT): 0.5-1 s that the first
    real block of audio would otherwise wait for. Nothing is kept; the
    engine's own rings and front ends are untouched.
    """
    z = np.zeros(int(block), dtype=np.float32)
    ring = RingBuffer(2 * len(z))
    ring.write(z)  # the input ring's kernels, as Engine.write and Engine.pump call them
    ring.read_since(0)
    ring.latest(len(z))
    scratch = FrontEnds(in_rate, window_s)
    _, ms = scratch.attach(sr, mel)
    scratch.push(z)
    if ms is not None:
        ms.window(ms.n_frames)
