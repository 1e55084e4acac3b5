"""Streaming sample-rate conversion on libsoxr.

:class:`StreamingResampler` wraps ``soxr.ResampleStream`` so that feeding a
signal in blocks of any size gives the same samples as one-shot
``soxr.resample`` on the whole signal, and says at every moment how far its
output lags its input. Sources (an audio interface at 48 kHz, an OSC sender at
44.1 kHz) and models (8, 16, 22.05 kHz) rarely share a rate; one resampler per
(source rate, model rate) pair sits between the input ring and each front end,
off the audio callback.
"""

from __future__ import annotations

import math

import numpy as np
import soxr

__all__ = ["StreamingResampler", "QUALITIES"]

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class StreamingResampler:
    """Mono float32 resampler for a stream of blocks.

    Parameters
    ----------
    in_rate, out_rate : float
        Sample rates in Hz, both > 0.
    quality : {"QQ", "LQ", "MQ", "HQ", "VHQ"}
        soxr's recipe; "HQ" (the soxr default) is transparent for 16-bit audio.

    Notes
    -----
    soxr compensates its filter's group delay, so output sample ``k`` lines up
    with input time ``k / out_rate``. What the stream cannot give at once are
    the newest output samples, which need input that has not arrived: their
    number is :attr:`delay` (output samples), and :meth:`flush` releases them.
    When the rates are equal the block is passed through unchanged (zero delay).
    """

    def __init__(self, in_rate, out_rate, quality="HQ"):
        for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
            if not (isinstance(rate, (int, float, np.integer, np.floating)) and rate > 0 and math.isfinite(rate)):
                raise ValueError(f"{name} must be a positive number of Hz, got {rate!r}")
        if quality not in QUALITIES:
            raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")
        self.in_rate, self.out_rate, self.quality = float(in_rate), float(out_rate), quality
        self.passthrough = self.in_rate == self.out_rate
        self.reset()

    def reset(self):
        """Start a new stream."""
        self._stream = None if self.passthrough else soxr.ResampleStream(
            self.in_rate, self.out_rate, 1, dtype="float32", quality=self.quality
        )
        self.samples_in = 0
        self.samples_out = 0
        self._finished = False

    @property
    def ratio(self):
        """Output samples per input sample."""
        return self.out_rate / self.in_rate

    @property
    def delay(self):
        """Output samples owed for the input already given (0 after :meth:`flush`)."""
        if self.passthrough or self._finished:
            return 0.0
        return float(self._stream.delay())

    def process(self, block):
        """Resample one block.

        Parameters
        ----------
        block : np.ndarray, float, shape [n]
            Mono samples at ``in_rate`` (n may be 0).

        Returns
        -------
        np.ndarray, float32, shape [m]
            Samples at ``out_rate``; ``m`` varies from block to block.
        """
        if self._finished:
            raise RuntimeError("process after flush: call reset() to start a new stream")
        x = np.asarray(block)
        if x.ndim != 1:
            raise ValueError(f"block must be 1-D mono, got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.samples_in += x.size
        y = x.copy() if self.passthrough else self._stream.resample_chunk(x, last=False)
        self.samples_out += y.size
        return y

    def flush(self):
        """End the stream and return the samples still inside the filter."""
        if self._finished:
            return np.zeros(0, dtype=np.float32)
        if self.passthrough:
            y = np.zeros(0, dtype=np.float32)
        else:
            y = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self.samples_out += y.size
        self._finished = True
        return y
