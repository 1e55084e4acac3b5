"""Incremental inference: compute a window's front end and mid end only where they changed.

Every hop the engine hands a model the newest window of mel frames, which
shares all but the hop's new frames with the previous window (at 16 kHz,
hop 256, a 0.5 s hop moves a 313-frame window by 31 or 32 frames). Running
the whole network on every window repeats most of the work: for musicnn
that is about 25-50 ms a hop, and it was what kept the default model from
its latency and throughput targets.

A model opts in with eight TorchScript methods (the "frame-branch"
interface; ``models/archs/musicnn.py`` has them):

* ``stream_context() -> List[List[int]]``: for each front-end branch,
  ``[before, after]``: output frame ``t`` depends on input frames
  ``t - before .. t + after`` and nothing else;
* ``stream_prepare(x[1, n_mels, T]) -> xb``: the per-frame part before the
  branches (time is the last axis);
* ``stream_constants(i) -> List[Tensor]``: what branch ``i`` can reuse
  from call to call (computed from the weights; the runner asks once);
* ``stream_branch(i, xb, pad_before, pad_after, constants) -> [1, C_i, T']``:
  branch ``i`` on ``xb`` with that many zero frames in front and behind
  and no other padding, ``T' = pad_before + T + pad_after - before -
  after``, so the model may skip the zeros' work (musicnn's temporal
  branches compute their edges as one product with a Toeplitz matrix of
  the weights, the constants);
* ``stream_mid_context() -> List[List[int]]``: ``[before, after]`` of each
  mid stage, a chain of layers along time after the front end (``[]`` for
  none);
* ``stream_mid_constants(j) -> List[Tensor]``: like ``stream_constants``,
  for mid stage ``j``;
* ``stream_mid(j, x, pad_before, pad_after, constants) -> y``: mid stage
  ``j`` on its input (stage 0: the concatenated branch outputs
  ``[1, sum C_i, T]``; stage ``j``: stage ``j - 1``'s output), padded like
  ``stream_branch``;
* ``stream_tail(front, mids) -> logits``: everything after, from the front
  end's output and every mid stage's (musicnn pools all of them over time).

``forward(x)`` must equal ``stream_tail(front, mids)`` with ``front =
cat(stream_branch(i, xb, before_i, after_i, constants_i))`` and each mid
stage computed on the last with its own context as padding:
:func:`streamed_forward` computes that, and the model contract checks it.

Why the result is the windowed network's, not an approximation: in a
window ``[0, T)``, branch outputs at ``t in [before, T - after)`` see only
real frames of the window; the ones nearer the edges see zero padding. When
the window moves on by ``n`` frames, the old window's real-context outputs
at ``[before + n, T - after)`` are, frame for frame, the new window's at
``[before, T - after - n)``: same frames in, same numbers out. Only three
stretches are computed: the left edge ``[0, before)`` (zero-padded; it
depends on where the window starts), the frames whose context has just
arrived, and the right edge ``[T - after, T)``. For musicnn that is about a
sixth of the front end's work. Reuse also requires the overlapping frames
to be equal to the previous window's, bit for bit (a cheap check): after a
gap, a restart or a changed hop that does not hold, and the window is
computed whole.

The mid stages are reused the same way, one level further: the front end's
output now differs from the previous window's not only at the edges but
wherever any branch recomputed (for musicnn, its first 63 and last 95 or
so frames, the reach of the 128-frame branch), and each stage widens that
by its own context. What lies between is again the previous window's,
moved by ``n``; for musicnn about half of the mid end is reused.

"""

from __future__ import annotations

import collections

import numpy as np
import torch

from genredream.models.incremental.step import StreamStep

__all__ = ["FrameBranchRunner", "STREAM_METHODS", "supports_streaming", "streamed_forward"]

STREAM_METHODS = (
    "stream_context",
    "stream_prepare",
    "stream_constants",
    "stream_branch",
    "stream_mid_context",
    "stream_mid_constants",
    "stream_mid",
    "stream_tail",
)


def supports_streaming(module) -> bool:
    """True if ``module`` has all of :data:`STREAM_METHODS`."""
    from genredream.models.contract import has_method  # not at the top: the contract imports this module

    return all(has_method(module, m) for m in STREAM_METHODS)


def streamed_forward(module, x):
    """``forward(x)`` computed through the frame-branch methods (whole windows, any batch).

    The model contract compares this with ``forward`` so that a model whose
    streaming methods disagree with its network never reaches the engine.
    """
    return FrameBranchRunner(module).whole(x)


def _contexts(pairs, what):
    out = [(int(a), int(b)) for a, b in pairs]
    if any(a < 0 or b < 0 for a, b in out):
        raise ValueError(f"{what}() must be non-negative frame counts, got {out}")
    return out


class FrameBranchRunner:
    """Runs one frame-branch model on successive windows of one stream.

    Not thread-safe: one runner per model, used by the inference worker only.

    Parameters
    ----------
    module : torch.jit.ScriptModule
        A model with the frame-branch methods (:func:`supports_streaming`).

    Attributes
    ----------
    stats : collections.Counter
        ``windows``; ``reused_windows`` (computed incrementally);
        ``frames_computed`` and ``frames_reused``, summed over branches,
        which say how much of the front end the cache saved;
        ``mid_frames_computed`` and ``mid_frames_reused``, the same for the
        mid stages.
    """

    def __init__(self, module):
        if not supports_streaming(module):
            raise TypeError("the model has no frame-branch methods (" + ", ".join(STREAM_METHODS) + ")")
        self.context = _contexts(module.stream_context(), "stream_context")
        self.mid_context = _contexts(module.stream_mid_context(), "stream_mid_context")
        self.stats = collections.Counter()
        with torch.no_grad():
            constants = [list(module.stream_constants(i)) for i in range(len(self.context))]
            mid_constants = [list(module.stream_mid_constants(j)) for j in range(len(self.mid_context))]
        step = StreamStep(module, self.context, self.mid_context, constants, mid_constants)
        if not isinstance(module, torch.jit.ScriptModule):
            # Exported programs (a .pt2 file) or an eager module: the step runs as Python
            # around them, no TorchScript (models/pt2.py; BENCHMARKS.md compares the two).
            self.step = step
            self.reset()
            return
        try:
            self.step = torch.jit.script(step)
        except Exception as e:  # a model whose methods' types the compiled step cannot call
            raise TypeError(f"the model's frame-branch methods cannot be compiled into a step: {str(e).strip().splitlines()[0]}") from None
        self.reset()

    def whole(self, x):
        """Logits of whole windows ``x`` ``[B, n_mels, T]`` through the compiled step, nothing reused."""
        with torch.no_grad():
            return self.step(x, -1, [], [])[0]

    def warm_up(self, n_mels, frames, hops=(31, 32), repeats=3):
        """Run a few successive windows of noise, then forget them.

        TorchScript's profiling executor specialises each method on its
        first calls with a given shape; without this, a performer's first
        results after loading are 3-4 times slower than the rest (measured:
        result latency p99 45 ms over a 30 s file against 19 ms warmed).
        """
        rng = np.random.default_rng(0)
        stream = rng.random((n_mels, frames + repeats * len(hops) * max(hops)), dtype=np.float32)
        end = frames
        for _ in range(repeats):
            for n in hops:
                self(stream[:, end - frames : end], end)
                end += n
        self.reset()
        self.stats.clear()

    def reset(self):
        """Forget the previous window: the next one is computed whole."""
        self._x = None
        self._end = None
        self._outs = []
        self._mids = []

    def _shift(self, x, end):
        """Frames the window moved on since the last call, or None if nothing can be reused."""
        prev = self._x
        if prev is None or prev.shape != x.shape:
            return None
        n = int(end) - int(self._end)
        t = x.shape[1]
        if not (0 <= n < t):
            return None
        # The frames both windows hold must be identical, or the cache is stale
        # (a gap in the input, a re-created front end).
        if not np.array_equal(x[:, : t - n], prev[:, n:]):
            return None
        return n

    def __call__(self, x, end):
        """Logits ``[1, n_labels]`` of the scaled mel window ``x`` ``[n_mels, T]``.

        ``end`` is the absolute index one past the window's newest frame:
        the runner compares consecutive windows through it.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = x.shape[1]
        n = self._shift(x, end)
        with torch.no_grad():
            logits, outs, mids, reused = self.step(torch.from_numpy(x)[None], -1 if n is None else n, self._outs, self._mids)
        self._x, self._end, self._outs, self._mids = x, int(end), outs, mids
        nb = len(self.context)
        self.stats["frames_reused"] += sum(reused[:nb])
        self.stats["frames_computed"] += nb * t - sum(reused[:nb])
        self.stats["mid_frames_reused"] += sum(reused[nb:])
        self.stats["mid_frames_computed"] += len(self.mid_context) * t - sum(reused[nb:])
        self.stats["windows"] += 1
        if n is not None:
            self.stats["reused_windows"] += 1
        return logits
