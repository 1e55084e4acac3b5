"""The output transform: what turns the engine's input into the stream it plays back.

The engine has one slot for it, :attr:`genredream.engine.runtime.Engine.transform`
(:meth:`Engine.set_transform`). Two transforms exist: the streaming deep
dream (:class:`genredream.engine.dream.stream.Dreamer`) and the continuation
(:class:`genredream.engine.continuation.Continuer`). Both subclass
:class:`OutputTransform`, which names the interface the engine, the device
runners, the OSC bridge and the summary rely on, and holds what both need
the same way: the raised-cosine fade, the latency arithmetic and the
hand-off of every written block to the output sinks.

The contract
------------
``engine.output[j]`` is what plays for input sample ``j``. After the job of
hop boundary ``B`` (input samples) a transform has written
``engine.output`` exactly up to ``B - lag_samples``. A device plays
``engine.output[k - latency_samples]`` at its output sample ``k``:
:func:`output_latency` is ``lag`` + one hop (until the next job) + the
share of a hop the job may take to finish + a device block of slack.

Threads: :meth:`~OutputTransform.prepare` on the caller's thread without
the engine's lock (it may load and run models); :meth:`~OutputTransform.attach`
and :meth:`~OutputTransform.detach` under the engine's lock;
:meth:`~OutputTransform.snapshot` on the front-end worker at a hop boundary;
:meth:`~OutputTransform.process` and :meth:`~OutputTransform.finish` on the
inference worker (inline for files); :meth:`~OutputTransform.status` and
``set_params`` on any thread.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OutputTransform", "fade", "output_latency", "BLOCK_MARGIN", "FADE_S"]

#: A device block of slack in the reported latency (input samples).
BLOCK_MARGIN = 1024
#: Length of the raised-cosine fades where a transform's change starts or stops (no clicks).
FADE_S = 0.03


def fade(n):
    """Raised-cosine ramp 0 -> 1 of ``n`` samples (float32; empty for ``n <= 0``)."""
    if n <= 0:
        return np.zeros(0, np.float32)
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def output_latency(lag_samples, hop_samples, headroom=1.0):
    """The output delay (input samples) a device plays with: ``lag`` + a hop + ``headroom`` of a hop + :data:`BLOCK_MARGIN`."""
    return int(lag_samples) + int(hop_samples) + int(math.ceil(headroom * hop_samples)) + BLOCK_MARGIN


class OutputTransform:
    """Base of the engine's output transforms (see the module docstring for the contract).

    Attributes every transform has
    ------------------------------
    kind : str
        ``"dream"`` or ``"continuation"``.
    name : str
        What the summary and ``/status`` call it (the dream: its model's name).
    sample_rate : int
        The rate it works at; the engine keeps a waveform front end at this rate alive while it is attached.
    latency_samples, lag_samples : int or None
        Set by :meth:`prepare`.
    output_sinks : list of callable(block, start_index)
        Called with every block written to ``engine.output`` (float32 ``[n]``,
        or ``[n, channels]`` frames when the engine keeps the input's
        channels) and its absolute input index: e.g. the WAV writer
        (:func:`genredream.engine.io.sinks.add_wav_output`).
    history : deque of dict
        One entry per hop.
    counters : collections.Counter
    """

    kind = "transform"
    name = "transform"
    sample_rate = None
    latency_samples = None
    lag_samples = None

    def prepare(self, engine):
        """Lay out for ``engine``'s hop and rates, load and warm up (caller's thread, no lock)."""
        raise NotImplementedError

    def attach(self, engine):
        """Start on ``engine`` from its current position (under the engine's lock)."""
        raise NotImplementedError

    def detach(self, engine):
        """Stop writing."""
        self._finished = True

    def reattach(self, engine):
        """The engine rebuilt its front ends (a worker restarted): anchor again on the new streams."""
        self.detach(engine)
        self._finished = False
        self.attach(engine)

    def snapshot(self):
        """At a hop boundary (front-end worker): the tag the engine puts on the hop's job (``job.dream``)."""
        return (self, None)

    def process(self, engine, job):
        """One hop (inference worker, after the classifiers): write ``engine.output`` up to ``job.boundary - lag_samples``."""
        raise NotImplementedError

    def finish(self, engine):
        """End of a file: write ``engine.output`` to the input's end."""
        raise NotImplementedError

    def status(self):
        """A dict for the view and OSC ``/status``."""
        raise NotImplementedError

    def summary(self):
        """One line for the end-of-run summary."""
        raise NotImplementedError

    # -- shared by the transforms --------------------------------------------------

    @staticmethod
    def read_input(engine, o, n):
        """Input samples ``[o, o + n)`` from the engine's ring; what is gone (or not there yet) reads as silence."""
        dry, start = engine.ring.read_since(o, max_n=n)
        if start > o or dry.size < n:
            full = np.zeros(n, np.float32)
            # After an overrun read_since starts at the oldest sample and may run past the block:
            # keep only what falls inside it (a dream far behind on a loaded machine).
            k = max(0, min(dry.size, n - (start - o)))
            full[start - o : start - o + k] = dry[:k]
            dry = full
        return dry

    def to_sinks(self, engine, block, start):
        """Hand a block written at input index ``start`` to every output sink; a failing sink (a full disk) is counted, never fatal."""
        for sink in self.output_sinks:
            try:
                sink(block, start)
            except Exception as e:
                self.counters["sink_errors"] += 1
                engine.errors.append(f"{self.kind} output sink {sink!r}: {type(e).__name__}: {e}")
