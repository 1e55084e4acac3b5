"""Incremental inference: compute a window's front end only where it changed.

Every hop the engine hands a model the newest window of mel frames, which
shares all but the hop's new frames with the previous window (at 16 kHz,
hop 256, a 0.5 s hop moves a 313-frame window by 31 or 32 frames). Running
the whole network on every window repeats most of the work: for musicnn
that is about 40-66 ms a hop, and it was what kept the default model from
its latency and throughput targets.

A model opts in with four TorchScript methods (the "frame-branch"
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
* ``stream_head(front[1, sum C_i, T]) -> logits``: everything after.

``forward(x)`` must equal ``stream_head(cat(stream_branch(i, xb, before_i,
after_i, constants_i)))``: :func:`streamed_forward` computes that, and the model
contract checks it.

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

"""

from __future__ import annotations

import collections

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["FrameBranchRunner", "STREAM_METHODS", "supports_streaming", "streamed_forward"]

STREAM_METHODS = ("stream_context", "stream_prepare", "stream_constants", "stream_branch", "stream_head")

# Branches whose context (before + after) is at most this many frames compute
# both edges in one call (musicnn's timbral branches, 3 + 3): on short
# stretches a call costs about as much as ten frames of output.
_JOIN_CONTEXT = 8


def supports_streaming(module) -> bool:
    """True if ``module`` has all of :data:`STREAM_METHODS`."""
    from models.contract import has_method  # not at the top: the contract imports this module

    return all(has_method(module, m) for m in STREAM_METHODS)


def streamed_forward(module, x):
    """``forward(x)`` computed through the frame-branch methods (whole windows).

    The model contract compares this with ``forward`` so that a model whose
    streaming methods disagree with its network never reaches the engine.
    """
    xb = module.stream_prepare(x)
    ctx = module.stream_context()
    outs = [module.stream_branch(i, xb, int(a), int(b), module.stream_constants(i)) for i, (a, b) in enumerate(ctx)]
    return module.stream_head(torch.cat(outs, dim=1))


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
        which say how much of the front end the cache saved.
    """

    def __init__(self, module):
        if not supports_streaming(module):
            raise TypeError("the model has no frame-branch methods (" + ", ".join(STREAM_METHODS) + ")")
        self.module = module
        self.context = [(int(a), int(b)) for a, b in module.stream_context()]
        if any(a < 0 or b < 0 for a, b in self.context):
            raise ValueError(f"stream_context() must be non-negative frame counts, got {self.context}")
        self.stats = collections.Counter()
        with torch.no_grad():
            self.constants = [module.stream_constants(i) for i in range(len(self.context))]
        self.reset()

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
        self._outs = None

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

    def _branch(self, i, xb, n, t):
        """Branch ``i``'s output ``[1, C_i, T]`` for this window, reusing the last one's where it can."""
        a, b = self.context[i]
        m = self.module
        if n is None or a + b >= t:
            self.stats["frames_computed"] += t
            return m.stream_branch(i, xb, a, b, self.constants[i])
        # The previous window's real-context outputs, moved by n, fill the middle.
        r0 = max(a, t - b - n)
        if a and a + b <= _JOIN_CONTEXT:
            # One call for both edges: the a + b outputs straddling the join
            # are thrown away, which costs less than a second call.
            joined = torch.cat([F.pad(xb[..., : a + b], (a, 0)), F.pad(xb[..., r0 - a :], (0, b))], dim=3)
            y = m.stream_branch(i, joined, 0, 0, self.constants[i])
            left, right = y[..., :a], y[..., 2 * a + b :]
        else:
            left = m.stream_branch(i, xb[..., : a + b], a, 0, self.constants[i]) if a else None
            right = m.stream_branch(i, xb[..., r0 - a :], 0, b, self.constants[i])
        parts = [left] if left is not None else []
        if r0 > a:
            parts.append(self._outs[i][..., a + n : r0 + n])
        parts.append(right)
        self.stats["frames_computed"] += a + t - r0
        self.stats["frames_reused"] += r0 - a
        return torch.cat(parts, dim=2)

    def __call__(self, x, end):
        """Logits ``[1, n_labels]`` of the scaled mel window ``x`` ``[n_mels, T]``.

        ``end`` is the absolute index one past the window's newest frame:
        the runner compares consecutive windows through it.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        t = x.shape[1]
        n = self._shift(x, end)
        with torch.no_grad():
            xb = self.module.stream_prepare(torch.from_numpy(x)[None])
            outs = [self._branch(i, xb, n, t) for i in range(len(self.context))]
            logits = self.module.stream_head(torch.cat(outs, dim=1))
        self._x, self._end, self._outs = x, int(end), outs
        self.stats["windows"] += 1
        if n is not None:
            self.stats["reused_windows"] += 1
        return logits
