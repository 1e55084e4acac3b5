"""Where results and the output stream go: JSON lines, a WAV file, and a run summary.

A result sink is any callable taking a :class:`genredream.engine.runtime.Result`; it runs on
the inference worker, so it must be quick (a line to a file, a dict update).
An output sink (:class:`WavWriter`) takes the blocks the engine's output
transform (engine/transform.py) writes, with their input index.
"""

from __future__ import annotations

import json
import sys

import numpy as np

__all__ = ["JsonlSink", "WavWriter", "add_wav_output", "summary"]


class JsonlSink:
    """One JSON object per result, one per line (``-`` for stdout).

    Every line has ``type`` ("scores" or "error"), ``model``, ``seq``,
    ``end_index`` (input samples), ``start_s``/``end_s`` (stream time),
    ``latency_ms``, ``level_db``, ``low_energy``, ``repaired`` (input samples
    of this hop that were NaN/Inf or beyond +-32 full scale, repaired),
    ``over_full_scale`` (input samples of this hop above 0 dBFS), ``partial``
    (the window still reaches back before the stream's first sample),
    ``scores`` {label: value}, ``top``, ``top_score`` and ``error``.
    """

    def __init__(self, path):
        self.path = path
        self._f = sys.stdout if path == "-" else open(path, "w", buffering=1)

    def __call__(self, result):
        self._f.write(json.dumps(result.to_dict()) + "\n")

    def write(self, record):
        """Another JSON line (a dict with its own ``type``), e.g. the input file's summary."""
        self._f.write(json.dumps(record) + "\n")

    def close(self):
        if self._f is not sys.stdout:
            self._f.close()
        else:
            self._f.flush()


class WavWriter:
    """An output sink of the engine's output transform: the stream it writes, as a 16-bit PCM WAV at the input rate.

    The file starts at the stream's sample 0 (``engine.output`` index 0), so
    it lines up sample for sample with the input file. It has the channels
    of the first block it gets (``[n]`` mono, ``[n, channels]`` frames: the
    dreamer sends the input's channels when the engine keeps them), or
    ``channels`` when given; a later block with another channel count is
    folded to its mean on every channel.
    """

    def __init__(self, path, sample_rate, channels=None):
        self.path = str(path)
        self.sample_rate = int(sample_rate)
        self.channels = None if channels is None else int(channels)
        self._f = None
        self.frames = 0
        if self.channels is not None:
            self._open()

    def _open(self):
        import soundfile as sf

        self._f = sf.SoundFile(self.path, "w", samplerate=self.sample_rate, channels=self.channels, subtype="PCM_16", format="WAV")

    def __call__(self, block, start):
        x = block.reshape(-1, 1) if block.ndim == 1 else block
        if self._f is None:
            self.channels = x.shape[1]
            self._open()
        if x.shape[1] != self.channels:
            x = np.repeat(x.mean(axis=1, keepdims=True, dtype=np.float32), self.channels, axis=1)
        if start > self.frames:  # a gap (the transform attached mid-run): silence
            self._f.write(np.zeros((start - self.frames, self.channels), np.float32))
            self.frames = start
        skip = self.frames - start
        if skip < x.shape[0]:
            self._f.write(x[skip:])
            self.frames += x.shape[0] - skip

    def close(self):
        if self._f is None:  # nothing was written: an empty mono file, so the path exists as promised
            self.channels = 1
            self._open()
        self._f.close()


def add_wav_output(transform, path, sample_rate, writers=None):
    """Write what the engine's output transform (dreamer or continuer) emits to a WAV file.

    The writer joins ``transform.output_sinks``; it is also appended to
    ``writers`` (when given) so the caller can close it at the end.
    """
    w = WavWriter(path, sample_rate)
    transform.output_sinks.append(w)
    if writers is not None:
        writers.append(w)
    return w


def summary(engine):
    """The end-of-run summary as text lines."""
    st = engine.status()
    lines = [
        f"stream: {st['stream_s']:.2f} s at {st['sample_rate']} Hz; windows {st['windows']}, results {st['results']}, "
        f"skipped windows {st['skipped_windows']}, low-energy {st['low_energy_results']}, model errors {st['model_errors']}",
    ]
    for name in engine.models:
        ls = engine.latency_stats(name)
        last = engine.last_results.get(name)
        # The tag's own probability (sigmoid) or the class probability (softmax): the live view shows
        # sigmoid tags renormalised to shares, so it names its figure too.
        kind = "tag probability" if last is not None and last.activation == "sigmoid" else "probability"
        top = f"; last top genre {last.top[0]} ({kind} {last.top[1]:.0%})" if last is not None and not last.error else ""
        lines.append(f"{name}: latency p50 {ls['p50']:.1f} ms, p99 {ls['p99']:.1f} ms over {ls['n']} results{top}")
    if getattr(engine, "transform", None) is not None:
        lines.append(engine.transform.summary())
    if st["nonfinite_repaired"] or st["out_of_range_repaired"] or st["input_overruns"]:
        lines.append(f"input repairs: {st['nonfinite_repaired']} NaN/Inf samples zeroed, "
                     f"{st['out_of_range_repaired']} samples beyond +-32 full scale clipped, {st['input_overruns']} overruns")
    if st["over_full_scale"]:
        lines.append(f"input above 0 dBFS: {st['over_full_scale']} samples (kept; clipped only beyond +-32 full scale)")
    sup = getattr(engine, "supervisor", None)
    if sup is not None and sup.errors:
        down = [f"{n} DISABLED ({w.last_error})" for n, w in sup.workers.items() if w.state == "disabled"]
        lines.append(f"worker failures: {sup.errors}; " + ("; ".join(down) if down else "every worker restarted"))
    return lines
