"""The Engine: source -> ring -> front ends -> models -> results.

Threads and who does what (docs/architecture.md, "Data flow"):

* the **producer** (audio callback, file player or OSC receiver) calls
  :meth:`Engine.write`: a copy into the input ring and a timestamp into a
  preallocated arrival log. Nothing else: no allocation of arrays, no lock,
  no torch.
* the **front-end worker** (:meth:`Engine.pump`) reads what arrived since its
  cursor, resamples and computes mel frames once per distinct configuration,
  and at every hop boundary (every ``hop`` seconds of *stream* time) takes a
  snapshot of each model's window and queues it.
* the **inference worker** runs the models on the snapshots and hands
  :class:`Result` objects to the sinks; then, when an output transform is
  attached (:meth:`Engine.set_transform`, :mod:`genredream.engine.transform`: the
  dream or the continuation), it transforms the hop and writes
  :attr:`Engine.output`, the stream played back at the input rate. Its
  queue is bounded: when inference falls behind, the stalest window is dropped and counted in
  ``skipped_windows``, never queued without end.

The workers' loops are in engine/workers.py, the records they pass
(:class:`Result`, the model slot, the window job) in engine/results.py, and
:meth:`Engine.status` in engine/status.py.

For a file analysed as fast as possible (:meth:`Engine.run_blocks` with
``realtime=False``) the same steps run inline on one thread, so every window
is scored and the result is deterministic.

Every result carries the model, its labels and scores, the absolute input
sample index one past the newest sample the window depends on, the window's
start and end in seconds of stream time, and the latency in ms from the
arrival of that newest sample to the moment the result is emitted.
"""

from __future__ import annotations

import collections
import functools
import threading
import time

import numpy as np

from genredream.engine.frontend import FrontEnds
from genredream.engine.results import ModelSlot, Result, WindowJob
from genredream.engine.ringbuffer import RingBuffer
from genredream.engine.status import engine_status, latency_stats
from genredream.engine.supervise import Supervisor
from genredream.engine.workers import frontend_loop, inference_loop, reset_frontends

__all__ = ["Engine", "Result", "ModelLoadError", "LOW_ENERGY_DB"]

from genredream.models.data import LOW_ENERGY_DB  # noqa: E402  (flagged low-energy below it; models/data.py says why)

_ARRIVALS = 4096  # blocks remembered for latency: > window / smallest block


class ModelLoadError(Exception):
    """A model could not be loaded or validated; the running models are untouched."""


class Engine:
    """The streaming runtime.

    Parameters
    ----------
    sample_rate : int
        The source's sample rate in Hz (the engine's clock counts these samples).
    window : float
        Seconds each model sees (default 5).
    hop : float
        Seconds of stream time between windows (default 0.5).
    queue_size : int
        Windows that may wait for inference before the stalest is skipped.
    torch_threads : int
        Threads torch may use for inference. One keeps a core free for the
        audio callback and the front end on a two-core machine.
    low_energy_db : float
        RMS level (dBFS) under which a window is flagged low-energy.
    """

    def __init__(self, sample_rate, window=5.0, hop=0.5, queue_size=2, torch_threads=1, low_energy_db=LOW_ENERGY_DB):
        if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
            raise ValueError(f"sample_rate must be a positive integer of Hz, got {sample_rate!r}")
        if not (0 < hop <= window):
            raise ValueError(f"hop ({hop} s) must be > 0 and at most the window ({window} s)")
        if window > 30:
            raise ValueError(f"window ({window} s) is longer than the 30 s the engine keeps")
        self.sample_rate = int(sample_rate)
        self.window = float(window)
        self.hop = float(hop)
        self.hop_samples = max(1, int(round(hop * sample_rate)))
        self.window_samples = int(round(window * sample_rate))
        self.low_energy_db = float(low_energy_db)
        self.torch_threads = int(torch_threads)
        self.ring = RingBuffer(self.window_samples + 2 * self.sample_rate)
        self.frontends = FrontEnds(self.sample_rate, self.window)
        self.models: dict[str, ModelSlot] = {}
        self.sinks = []
        # Arrival log: (total_written after the block, perf_counter time), a ring.
        self._arrivals = np.zeros((_ARRIVALS, 2), dtype=np.float64)
        self._n_arrivals = 0
        self._cursor = 0
        self._next_boundary = self.hop_samples
        self._seq = 0
        self._lock = threading.RLock()  # models and front ends vs. the workers; never taken by write()
        self._queue = collections.deque()
        self._queue_size = int(queue_size)
        self._cv = threading.Condition()
        # Jobs between the ring and a result, for stop(drain=True): a window
        # the front end has cut but not yet queued, or the inference worker
        # has taken but not yet scored, is in neither the cursor nor the queue.
        self._cutting = False
        self._scoring = False
        self._threads = []
        self._running = False
        self.counters = collections.Counter()
        self.latencies = {}  # model -> deque of ms
        self.last_results = {}  # model -> Result
        self.errors = collections.deque(maxlen=100)
        # The output transform (engine/transform.py: the dream or the continuation) and
        # the stream it writes at the input rate: output[j] = input sample j transformed.
        self.output = RingBuffer(self.window_samples + 5 * self.sample_rate)
        self.transform = None
        # Workers run under a supervisor (engine/supervise.py): a failure is
        # logged, counted, reported and the worker restarted; never a silent death.
        self.supervisor = Supervisor()
        # Repairs made before audio reached write() (the OSC bridge sanitises before
        # it resamples), by kind: engine/sanitize.py's NONFINITE, OUT_OF_RANGE, OVER_FULL_SCALE.
        from genredream.engine.sanitize import new_counts

        self.source_repairs = new_counts()
        self._repairs_seen = (0, 0)
        self._started = time.monotonic()
        self.last_result_time = None  # time.monotonic() of the newest result
        # Channels (engine/channels.py): the input frames as they came, and the
        # dreamed frames (the mid's change added to each channel), on the same
        # clock; None while the source is mono (set_channels).
        self.channels = 1
        self.ring_ch = None
        self.output_ch = None

    # -- producer side (audio thread) ---------------------------------------

    def set_channels(self, channels):
        """Keep the source's ``channels`` (> 1) beside the mono mid the models see, so dreamed output has them too.

        Call it from the producer's thread (or before the source starts):
        the frame rings start at the current input index. 1 goes back to mono.
        """
        from genredream.engine.channels import FrameRing

        channels = int(channels)
        if channels == self.channels:
            return
        if channels <= 1:
            self.ring_ch = self.output_ch = None
            self.channels = 1
            return
        start = self.ring.total_written
        out = FrameRing(self.output.capacity, channels, start=self.output.total_written)
        ring = FrameRing(self.ring.capacity, channels, start=start)
        self.output_ch, self.ring_ch, self.channels = out, ring, channels

    def write(self, block):
        """Feed a block from the source. Audio-thread safe: copies and timestamps only."""
        self.ring.write(block)
        if self.ring_ch is not None:
            self.ring_ch.write(block)
        i = self._n_arrivals % _ARRIVALS
        self._arrivals[i, 0] = self.ring.total_written
        self._arrivals[i, 1] = time.perf_counter()
        self._n_arrivals += 1

    # -- models ----------------------------------------------------------------

    def load_model(self, name_or_path, name=None):
        """Load, validate and start a model (or replace one of the same name).

        Runs on the caller's thread (validation runs the model), never on
        the audio path. On failure the running models are untouched and
        :class:`ModelLoadError` says why; the error is also recorded.
        """
        from genredream.engine.warm import start_kernel_warm

        # The front end's Numba kernels load on a helper thread meanwhile (the first time only; engine/warm.py).
        kernels = start_kernel_warm(self.sample_rate, self.window)
        try:
            return self._load_model(name_or_path, name)
        finally:
            if kernels is not None:
                kernels.join()

    def _load_model(self, name_or_path, name):
        from genredream.engine.warm import prepare
        from genredream.models.contract import ModelFileError
        from genredream.models.registry import resolve_model
        from genredream.models.inputs import InputSpec
        from genredream.models.validated import validate_once

        try:
            path = resolve_model(name_or_path)
            loaded, _ = validate_once(path)  # runs the checks once per file content (models/validated.py)
            spec = InputSpec(loaded.meta)
        except (ModelFileError, ValueError, KeyError) as e:
            self.errors.append(str(e))
            self.counters["model_load_errors"] += 1
            raise ModelLoadError(str(e)) from e
        if abs(float(loaded.meta["window_seconds"]) - self.window) > 1e-9:
            # The model was built for a fixed input length; the engine window follows it.
            msg = f"{loaded.name}: model window {loaded.meta['window_seconds']} s differs from the engine's {self.window} s"
            self.errors.append(msg)
            raise ModelLoadError(msg)
        name = name or loaded.name
        # A model with frame-branch methods (musicnn) is run incrementally:
        # only what changed since the last window is computed (models/incremental/runner.py).
        # It is warmed up here, with the front end's kernels, before it takes audio.
        runner = prepare(loaded.module, spec, self.hop, self.torch_threads)  # engine/warm.py
        with self._lock:
            rate, mel = self.frontends.attach(spec.sample_rate, spec.mel)
            self.models[name] = ModelSlot(name, loaded, spec, rate, mel, runner=runner)
            self.latencies.setdefault(name, collections.deque(maxlen=20000))
            self._prune_frontends()
        return name

    def unload_model(self, name):
        """Unload a classifier. Returns a warning sentence, or None.

        The dream is not a classifier: the dreamer holds its own copy of its
        model (loaded by ``--dream``), so unloading a classifier, even one of
        the same name or the last one, never stops it. The warning says so
        when that may surprise: the unloaded model was the dream's, or no
        classifier is left while the dream runs. ``/genredream/dream 0`` (or
        ``set_params(enabled=False)``) stops the dream.
        """
        with self._lock:
            if name not in self.models:
                raise KeyError(f"no model {name!r} is loaded; loaded: {', '.join(self.models) or 'none'}")
            slot = self.models.pop(name)
            self._prune_frontends()
            d = self.transform
            if d is not None and d.kind == "dream" and (d.name in (name, slot.loaded.name) or not self.models):
                return (f"the dream keeps running on its own copy of {d.name}"
                        + ("; no classifier is loaded" if not self.models else "")
                        + " (send /genredream/dream 0 to stop dreaming)")
        return None

    def _prune_frontends(self):
        used = {(s.spec.sample_rate, s.spec.mel) for s in self.models.values()}
        used |= {(s.spec.sample_rate, None) for s in self.models.values()}
        if self.transform is not None:  # the transform's waveform stream at its rate
            used.add((self.transform.sample_rate, None))
        self.frontends.detach_unused(used)

    # -- the output transform (engine/transform.py) ---------------------------------

    def set_transform(self, transform):
        """Start an output transform (:class:`genredream.engine.transform.OutputTransform`: the
        streaming :class:`~genredream.engine.dream.stream.Dreamer` or the
        :class:`~genredream.engine.continuation.Continuer`); None stops it.

        The transform is prepared (laid out, warmed up, timed) on the caller's
        thread without the engine's lock, then attached under it. From the
        next hop boundary the inference worker calls it once per job, after
        the models, and it writes ``self.output``.
        """
        if transform is not None:
            transform.prepare(self)
        with self._lock:
            if self.transform is not None:
                self.transform.detach(self)
            self.transform = transform
            if transform is not None:
                transform.attach(self)
            self._prune_frontends()

    def _dream(self, job):
        # A failing dream must not stop scoring: the supervisor's guard logs,
        # counts and reports it, and disables the dream if it keeps failing.
        g = self.supervisor.guard("dream")
        before = g.failures
        g.run(self.transform.process, self, job)
        if g.failures > before:
            self.counters["dream_errors"] += 1
            self.errors.append(f"{self.transform.kind}: {g.last_error}")

    def set_hop(self, hop):
        """Change the hop while running; the next window ends one new hop after
        what has been processed. Returns the hop applied (whole samples)."""
        if not (0 < hop <= self.window):
            raise ValueError(f"hop ({hop} s) must be > 0 and at most the window ({self.window} s)")
        if self.transform is not None:
            # The transform lays out its window and output in hops.
            raise RuntimeError(f"the {self.transform.kind} is laid out for a {self.hop:g} s hop; stop it (or restart with --hop) to change it")
        with self._lock:
            self.hop_samples = max(1, int(round(hop * self.sample_rate)))
            self.hop = self.hop_samples / self.sample_rate
            self._next_boundary = self._cursor + self.hop_samples
        return self.hop

    # -- front-end worker --------------------------------------------------------

    def pump(self):
        """Process everything that arrived; return the jobs of the hop boundaries crossed."""
        jobs = []
        with self._lock:
            data, start = self.ring.read_since(self._cursor)
            if start > self._cursor:
                # The worker fell more than the ring's margin behind: feed silence
                # for what was lost so every stream's clock stays exact.
                gap = start - self._cursor
                self.counters["frontend_samples_lost"] += gap
                self._advance(np.zeros(gap, np.float32), jobs)
            self._advance(data, jobs)
        return jobs

    def _advance(self, data, jobs):
        pos = 0
        while pos < data.size:
            take = min(data.size - pos, self._next_boundary - self._cursor)
            self.frontends.push(data[pos : pos + take])
            pos += take
            self._cursor += take
            if self._cursor == self._next_boundary:
                jobs.append(self._snapshot())
                self._next_boundary += self.hop_samples

    def _snapshot(self):
        self._seq += 1
        wave, _ = self.ring.latest(min(self.window_samples, self.ring.capacity))
        # A BLAS dot product: no float64 copy of the window (0.5 ms a hop at
        # 48 kHz otherwise); float32 sums are ample for a level in dB.
        rms = float(np.sqrt(max(float(np.dot(wave, wave)), 0.0) / wave.size))
        job = WindowJob(self._seq, self._cursor, float(20 * np.log10(max(rms, 1e-10))))
        rep, over = self._repairs()
        job.repaired, job.over_full_scale = rep - self._repairs_seen[0], over - self._repairs_seen[1]
        self._repairs_seen = (rep, over)
        for name, slot in self.models.items():
            if slot.disabled:
                continue
            frames = None
            if slot.mel is not None:
                x, end_model = slot.mel.window(slot.spec.length)
                end = slot.rate.input_index(end_model)
                frames = slot.mel.frames_out
            else:
                # the newest resampled samples: lowest latency (README, "Spacing", says why ends are not evenly spaced)
                x, end = slot.rate.waveform_window(slot.spec.length)
            job.inputs[name] = (slot, x, min(end, self._cursor), frames)
        if self.transform is not None:
            job.dream = self.transform.snapshot()
        self.counters["windows"] += 1
        return job

    # -- inference ------------------------------------------------------------------

    def _arrival_time(self, index):
        """When input sample ``index - 1`` arrived (perf_counter seconds), or None."""
        n = min(self._n_arrivals, _ARRIVALS)
        if n == 0:
            return None
        first = self._n_arrivals - n
        order = np.arange(first, first + n) % _ARRIVALS
        ends = self._arrivals[order, 0]
        j = int(np.searchsorted(ends, index, side="left"))
        if j >= n:
            return None
        return float(self._arrivals[order[j], 1])

    def infer(self, job):
        """Run every model of a job and emit its results (inference worker)."""
        import torch

        # Flush denormal floats to zero while the models run: musicnn's mid end
        # produces them, and each costs a slow microcode path on x86 (its
        # head took 3.5 ms instead of 2.1 per window). Values below 1.2e-38
        # change no score. Per thread, so it is set here and undone after.
        torch.set_flush_denormal(True)
        try:
            return self._infer(job, torch)
        finally:
            torch.set_flush_denormal(False)

    def _infer(self, job, torch):
        results = []
        for name, (slot, x, end, frames) in job.inputs.items():
            if self.models.get(name) is not slot:
                continue  # unloaded (or replaced) since the window was taken: no result for it
            meta = slot.loaded.meta
            arrived = self._arrival_time(end)
            common = dict(
                model=name,
                labels=list(meta["labels"]),
                activation=meta["activation"],
                genre_labels=list(meta.get("genre_labels") or meta["labels"]),
                end_index=int(end),
                start_s=(end - self.window_samples) / self.sample_rate,
                end_s=end / self.sample_rate,
                level_db=job.level_db,
                low_energy=bool(job.level_db < self.low_energy_db),
                seq=job.seq,
                repaired=job.repaired,
                over_full_scale=job.over_full_scale,
                partial=bool(end < self.window_samples),
            )
            try:
                with torch.no_grad():
                    if slot.runner is not None:
                        logits = slot.runner(x, frames)
                    else:
                        logits = slot.loaded.module(torch.from_numpy(np.ascontiguousarray(x))[None])
                    probs = torch.sigmoid(logits) if meta["activation"] == "sigmoid" else torch.softmax(logits, dim=1)
                scores = probs[0].double().tolist()
                if not all(np.isfinite(scores)):
                    raise FloatingPointError("non-finite output")
            except Exception as e:  # a broken model must not stop the others
                slot.disabled = f"{type(e).__name__}: {e}"
                msg = f"model {name} disabled after an inference error: {slot.disabled}"
                self.errors.append(msg)
                self.counters["model_errors"] += 1
                res = Result(scores=[], latency_ms=float("nan"), error=msg, **common)
            else:
                now = time.perf_counter()
                lat = (now - arrived) * 1e3 if arrived is not None else float("nan")
                res = Result(scores=scores, latency_ms=lat, **common)
                self.latencies[name].append(lat)
                self.counters["results"] += 1
                self.last_result_time = time.monotonic()
                if res.low_energy:
                    self.counters["low_energy_results"] += 1
            self.last_results[name] = res
            for sink in self.sinks:
                try:
                    sink(res)
                except Exception as e:  # a failing sink (full disk, closed pipe) must not stop scoring
                    self.counters["sink_errors"] += 1
                    self.errors.append(f"sink {sink!r}: {type(e).__name__}: {e}")
            results.append(res)
        if self.transform is not None and job.dream is not None:
            self._dream(job)
        return results

    # -- running -------------------------------------------------------------------

    def run_blocks(self, blocks, realtime=False, duration=None):
        """Feed an iterable of blocks and process them.

        ``realtime=False`` (files): inline, one thread, every window scored.
        ``realtime=True``: paced to the stream's sample rate, with the
        front-end and inference workers running as they do for a device.
        Stops after ``duration`` seconds of stream time if given.
        """
        import torch

        limit = None if duration is None else int(round(duration * self.sample_rate))

        def clipped():
            for block in blocks:
                if limit is not None and self.ring.total_written >= limit:
                    return
                if limit is not None and self.ring.total_written + len(block) > limit:
                    block = block[: limit - self.ring.total_written]
                yield block

        if not realtime:
            torch.set_num_threads(max(1, self.torch_threads))
            for block in clipped():
                self.write(block)
                for job in self.pump():
                    self.infer(job)
            return
        self.start()
        try:
            t0 = time.perf_counter()
            for block in clipped():
                due = t0 + self.ring.total_written / self.sample_rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self.write(block)
        finally:
            self.stop(drain=True)

    def start(self):
        """Start the front-end and inference workers (for live sources)."""
        if self._running:
            return
        self._running = True
        sup = self.supervisor
        self._threads = [
            sup.spawn("frontend", functools.partial(frontend_loop, self), reset=functools.partial(reset_frontends, self)),
            sup.spawn("inference", functools.partial(inference_loop, self)),
        ]

    def stop(self, drain=False):
        """Stop the workers; with ``drain``, first score what has already arrived."""
        if not self._running:
            return
        if drain:
            # Read in this order: the front end raises _cutting before it
            # moves the cursor and lowers it after queueing; the inference
            # worker raises _scoring as it takes a job. So "all quiet" here
            # means every window that arrived was scored (CI once lost the
            # last windows on a loaded machine: the worker saw an empty
            # queue and a stopped engine while the front end was still
            # queueing). 30 s: the first forward pass of a cold TorchScript
            # model on a loaded machine is seconds.
            deadline = time.perf_counter() + 30
            while time.perf_counter() < deadline and (
                self._cutting or self._cursor < self.ring.total_written or self._queue or self._scoring
            ):
                time.sleep(0.005)
        self._running = False
        with self._cv:
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []

    # -- reporting -------------------------------------------------------------------

    def latency_stats(self, name=None):
        """{"p50": ms, "p99": ms, "n": count} over one model or all (engine/status.py)."""
        return latency_stats(self.latencies, name)

    def _repairs(self):
        """(samples repaired, samples over 0 dBFS) so far, all input paths."""
        r = self.ring
        return (r.nonfinite_repaired + r.out_of_range_repaired + int(self.source_repairs[0]) + int(self.source_repairs[1]),
                r.over_full_scale)

    def last_result_age(self):
        """Seconds since the last result (since the engine was made, before the first)."""
        t = self.last_result_time
        return time.monotonic() - (self._started if t is None else t)

    def status(self):
        """A snapshot of the engine's state and counters (for views and OSC status; engine/status.py)."""
        return engine_status(self)
