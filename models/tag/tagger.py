"""The models of a tagging job, and the rows they give.

A :class:`Tagger` loads its models once (per worker process or Ray actor)
and takes files one after another. Scores are the activations ``classify``
computes (sigmoid or softmax, as the model's metadata says), and a file's
score is the mean over its windows. A window is scored one of two ways:

* **Along the file, one window at a time**, for a model with the
  frame-branch methods (musicnn): the engine's
  :class:`~genredream.models.incremental.runner.FrameBranchRunner` computes the
  front end and mid end only where a window differs from the previous one
  of the same file. At the default hop (``--overlap 0``) windows share no
  frames and each is computed whole, but still faster than in a batch:
  the runner's step skips the zero padding's work, and one window's
  activations (the 38-band timbral convolution's output alone is 8 MB a
  window) stay nearer the cache than eight windows' (measured here, 6
  files of 30 s, 6 rounds alternated, 1 thread: 0.60 s a file through the
  runner, 0.62 through ``forward`` one window at a time, 0.73 in batches
  of 8). At ``--overlap 0.5`` a window shares half its frames with the
  last, and the timbral convolutions, most of musicnn's arithmetic, are
  computed once per frame instead of twice. Either way the result is the
  windowed network's (the runner reuses only outputs whose inputs are
  bit-identical), and it depends only on the file, not on which files a
  worker drew before, so the embedded and the Ray runs give identical rows.
* **Batched across files** otherwise (models without those methods): each
  file's windows join a queue per model, and a full queue is one
  ``forward`` call, so a short file's two windows share a call with the
  next files'. Every such call has the same batch shape (a last, partial
  batch is padded with zeros and the padding's outputs dropped): torch's
  CPU kernels can round differently for another batch size (by about 1e-6
  for musicnn), and a fixed shape makes a window's score independent of
  which files shared its batch.

Models run under ``torch.inference_mode`` (no autograd bookkeeping at all:
version counters and view tracking skipped on every operation; the step is
a few hundred small operations per window, and measured back to back it
took 2-4 % less time than under ``no_grad``, with bit-identical scores)
and without TorchScript's graph optimisation (the profiling
executor's), as the engine does (``engine.session.fast_jit``, which measured
seconds of compiling on each of the first calls against a steady state
within noise): here every worker would pay that compile, and no
run-dependent re-optimisation can change a score's last bits.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from genredream.models.data import AudioFileError, check_length
from genredream.models.inputs import InputSpec
from genredream.models.tag.output import error_row, file_row, window_rows
from genredream.models.tag.windows import FileWindows

__all__ = ["Tagger", "BATCH"]

#: Windows per forward call; 8 keeps a worker's padding waste small.
BATCH = 8


def _keep_freed_memory():
    """Let glibc keep freed blocks of up to 256 MB on the heap instead of unmapping them.

    A musicnn forward on 8 windows allocates activations above glibc's
    mmap threshold; each call then maps fresh pages and faults them in, and
    measured here that cost more system time than the network's own work
    (musicnn, 1 thread: 322 ms a window at batch 8, 112 ms of it in the
    kernel; 108 ms with this). The heap this keeps is bounded by one batch's
    activations, not by the file's length.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl): nothing to tune
        pass


#: Largest im2col patch matrix (frames x kernel taps, per band) a tagging
#: worker lets musicnn's temporal branches build; longer stretches use conv2d.
IM2COL_MAX_PATCH = 16384


def _prefer_convolution(module):
    """Have ``module``'s 1-band temporal convolutions (musicnn's) use conv2d where their im2col patches get large.

    A block with an ``im2col_max_frames`` attribute computes stretches of
    up to that many frames (512 in musicnn) as one matrix product over
    unfolded patches, frames x kernel taps per band: the faster way for the
    engine's 0.5 s hops, about 40 new frames. A tagging hop is 156 frames:
    an incremental step runs the 128-, 64- and 32-frame branches on 283,
    219 and 187 frames (a whole window on 440, 376, 344), and for the
    128-frame kernel the patches (96 bands x 283 x 128 floats, 14 MB) cost
    more than conv2d (measured here, 1 thread, best of 40: 10.6 ms im2col
    against 8.2 ms conv2d on a step's stretch, 15.1 against 12.5 on a whole
    window), while for the 64- and 32-frame kernels im2col stays the faster
    (4.4 against 4.8 ms, 2.0 against 4.5 ms). So a block keeps im2col up
    to :data:`IM2COL_MAX_PATCH` frames x taps, which sends only the
    128-frame kernel's stretches to conv2d at ``--overlap 0.5``; at the
    default hop, where each window is computed whole (313 real frames), the
    64-frame kernel's go to conv2d too (not measured on that stretch).
    The two ways agree to float32 rounding (scores within 2e-7 of each
    other), and the Ray path builds the same Tagger, so its rows stay
    identical to the embedded run's.
    """
    for _, sub in module.named_modules():
        if hasattr(sub, "im2col_max_frames"):
            taps = int(sub.conv.weight.shape[-1])
            sub.im2col_max_frames = min(int(sub.im2col_max_frames), IM2COL_MAX_PATCH // taps)


@dataclass
class _File:
    entry: object
    fw: FileWindows
    probs: list  # per model: {window_index: np.ndarray}
    pending: int = 0
    decoded: bool = False
    error: str | None = None
    windows: list = field(default_factory=list)


class Tagger:
    """Models loaded once; :meth:`tag` turns file entries into rows.

    Parameters
    ----------
    model_paths : list of str
        Resolved model files (:func:`genredream.models.contract.resolve_model`).
    overlap : float
        Fraction of a window shared with the next one (0 by default:
        ``classify``'s windows).
    batch : int
        Windows per forward call.
    per_window : bool
        Also return window rows.
    incremental : bool
        Score the windows of streaming models one at a time along each
        file, reusing what overlapping windows share (see the module's
        docstring); False batches every window's whole forward.

    Attributes
    ----------
    stats : collections.Counter
        ``windows`` scored, of them ``incremental`` and ``reused`` (computed
        from the previous window's outputs), and ``batched``.
    """

    def __init__(self, model_paths, overlap=0.0, batch=BATCH, per_window=False, incremental=True):
        import torch

        from genredream.models.contract import load

        _keep_freed_memory()
        self.torch = torch
        self.models = [load(p) for p in model_paths]
        for m in self.models:
            _prefer_convolution(m.module)
        self.specs = [InputSpec(m.meta) for m in self.models]
        self.overlap, self.batch, self.per_window = float(overlap), int(batch), bool(per_window)
        self.runners = [self._runner(m, s) if incremental else None for m, s in zip(self.models, self.specs)]
        self._queues = [[] for _ in self.models]  # (file, window_index, x)
        self.stats = collections.Counter()

    def _runner(self, model, spec):
        """The engine's runner for a streaming mel model (whatever the overlap), else None."""
        if spec.kind != "mel":
            return None
        from genredream.models.incremental.runner import FrameBranchRunner, supports_streaming

        if not supports_streaming(model.module):
            return None
        # The runner asks the model for its constants (musicnn's Toeplitz
        # matrices) once; under the profiling executor that first call also
        # optimises each method's graph: 0.25 s of a worker's start-up
        # against 0.14 s without (measured here), for the same numbers.
        with self.torch.jit.optimized_execution(False):
            return FrameBranchRunner(model.module)

    def _scores(self, i, logits):
        torch, meta = self.torch, self.models[i].meta
        return (torch.sigmoid(logits) if meta["activation"] == "sigmoid" else torch.softmax(logits, dim=1)).numpy()

    def tag(self, entries, data=None):
        """Yield ``(row, window_rows)`` for each entry, as each file's windows are all scored.

        ``data``: optional ``{path: bytes}`` for files that arrive as bytes
        (Ray's object store) rather than on a file system.
        Rows come out in an order that depends on batching; the writers sort them.
        """
        live = []
        for e in entries:
            fw = FileWindows(e.path, self.specs, self.overlap, data=(data or {}).get(e.path))
            f = _File(e, fw, [{} for _ in self.models])
            live.append(f)
            for r in self.runners:
                if r is not None:
                    r.reset()  # a file's first window is computed whole
            try:
                for i, w, start, x in f.fw:
                    if self.runners[i] is not None:
                        f.probs[i][w] = self._step(i, x, start)
                        continue
                    self._queues[i].append((f, w, x))
                    f.pending += 1
                    if len(self._queues[i]) >= self.batch:
                        self._run(i)
            except AudioFileError as exc:
                f.error = str(exc)
            except Exception as exc:  # a decoder's surprise must not stop a library-wide job
                f.error = f"{e.path}: {type(exc).__name__}: {exc}"
            if f.error is None and fw.duration_s is not None:
                try:  # under a second: refused, as run, classify and dream refuse it
                    check_length(round(fw.duration_s * fw.sample_rate), fw.sample_rate, e.path)
                except AudioFileError as exc:
                    f.error = str(exc)
            f.decoded = True
            yield from self._finished(live)
        for i in range(len(self.models)):
            while self._queues[i]:
                self._run(i)
        yield from self._finished(live)

    def _step(self, i, x, start):
        """One window of a file through model ``i``'s incremental runner: its scores."""
        r, torch = self.runners[i], self.torch
        before = r.stats["reused_windows"]
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            logits = r(x, start + self.specs[i].length)
        self.stats["windows"] += 1
        self.stats["incremental"] += 1
        self.stats["reused"] += r.stats["reused_windows"] - before
        return self._scores(i, logits)[0]

    def _run(self, i):
        q, self._queues[i] = self._queues[i][: self.batch], self._queues[i][self.batch :]
        x = np.stack([w[2] for w in q])
        if len(q) < self.batch:
            x = np.concatenate([x, np.zeros((self.batch - len(q),) + x.shape[1:], dtype=x.dtype)])
        torch = self.torch
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            p = self._scores(i, self.models[i].module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))))
        self.stats["windows"] += len(q)
        self.stats["batched"] += len(q)
        for (f, w, _), row in zip(q, p):
            f.probs[i][w] = row
            f.pending -= 1

    def _finished(self, live):
        done = [f for f in live if f.decoded and (f.pending == 0 or f.error)]
        for f in done:
            live.remove(f)
            if f.error:
                # Its windows still queued are scored with the batch and ignored.
                yield error_row(f.entry, f.error, f.fw), []
                continue
            probs = [np.stack([f.probs[i][w] for w in range(len(f.probs[i]))]).astype(float) for i in range(len(self.models))]
            row = file_row(f.entry, f.fw, self.models, probs)
            yield row, (window_rows(f.entry, f.fw, self.models, probs) if self.per_window else [])
