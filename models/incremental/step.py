"""One window through a frame-branch model, compiled: the arithmetic of
:class:`genredream.models.incremental.runner.FrameBranchRunner`.

The runner used to drive the model's streaming methods from Python: per
musicnn hop, 13 calls into TorchScript and some thirty slices, pads and
concatenations around them. Each call from Python costs tens of
microseconds before any arithmetic, and together that was about a tenth of
a hop (measured: 8.5-9.5 ms a hop driven from Python, 7.5-8.5 ms as one
compiled call, same windows, interleaved). So the whole step is one
TorchScript module wrapped around the model, and Python keeps only what
needs Python: deciding whether the last window can be reused, and counting.

Not imported under ``from __future__ import annotations``: TorchScript reads
the annotations below as types.
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# Stages whose context (before + after) is at most this many frames compute
# both edges in one call (musicnn's timbral branches and mid stages, 3 + 3):
# on short stretches a call costs about as much as ten frames of output.
JOIN_CONTEXT = 8

class StreamStep(nn.Module):
    """``forward(x, n, outs, mids) -> (logits, outs, mids, reused)``.

    ``x``: the scaled mel window ``[1, n_mels, T]``. ``n``: frames it moved
    on since the window that produced ``outs`` and ``mids`` (that window's
    branch and mid-stage outputs), with the frames both windows hold known
    to be identical; ``n < 0`` computes the window whole. Returns the
    logits, this window's branch and mid-stage outputs (for the next call),
    and per stage (branches, then mid stages) how many output frames were
    reused rather than computed.
    """

    constants: List[List[torch.Tensor]]
    mid_constants: List[List[torch.Tensor]]

    def __init__(
        self,
        model,
        context: List[List[int]],
        mid_context: List[List[int]],
        constants: List[List[torch.Tensor]],
        mid_constants: List[List[torch.Tensor]],
    ):
        super().__init__()
        self.model = model
        self.context = [[int(a), int(b)] for a, b in context]
        self.mid_context = [[int(a), int(b)] for a, b in mid_context]
        self.constants = constants
        self.mid_constants = mid_constants
        self.join_context = JOIN_CONTEXT

    def _call(self, mid: bool, i: int, x: torch.Tensor, pad_before: int, pad_after: int) -> torch.Tensor:
        if not mid:
            return self.model.stream_branch(i, x, pad_before, pad_after, self.constants[i])
        return self.model.stream_mid(i, x, pad_before, pad_after, self.mid_constants[i])

    def _stage(
        self, mid: bool, i: int, x: torch.Tensor, a: int, b: int, keep_lo: int, keep_hi: int, n: int, prev: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, int, int]:
        """Stage ``i``'s output on ``x`` (time last) and the range ``[lo, hi)`` of it taken from ``prev``.

        ``x[..., keep_lo:keep_hi]`` equals the previous window's input at
        ``[keep_lo + n, keep_hi + n)``. An output whose context ``a`` before
        and ``b`` after lies inside that range saw the same frames as the
        previous window's output ``n`` further on, so it is copied; only
        the two sides are computed. ``hi <= lo``: computed whole.
        """
        t = x.size(-1)
        lo = keep_lo + a
        hi = keep_hi - b
        if len(prev) == 0 or hi <= lo:
            return self._call(mid, i, x, a, b), 0, 0
        old = prev[0][..., lo + n : hi + n]
        if a + b <= self.join_context:
            # One call for both sides: the a + b outputs straddling the join
            # are thrown away, which costs less than a second call.
            joined = torch.cat([F.pad(x[..., : lo + b], [a, 0]), F.pad(x[..., hi - a :], [0, b])], dim=-1)
            y = self._call(mid, i, joined, 0, 0)
            return torch.cat([y[..., :lo], old, y[..., lo + a + b :]], dim=-1), lo, hi
        parts: List[torch.Tensor] = []
        if lo > 0:
            parts.append(self._call(mid, i, x[..., : lo + b], a, 0))
        parts.append(old)
        if hi < t:
            parts.append(self._call(mid, i, x[..., hi - a :], 0, b))
        return torch.cat(parts, dim=-1), lo, hi

    def forward(
        self, x: torch.Tensor, n: int, outs: List[torch.Tensor], mids: List[torch.Tensor]
    ) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor], List[int]]:
        t = x.size(-1)
        reuse = n >= 0 and len(outs) == len(self.context) and len(mids) == len(self.mid_context)
        xb = self.model.stream_prepare(x)
        new_outs: List[torch.Tensor] = []
        reused: List[int] = []
        # The mel frames [0, t - n) are the previous window's [n, t).
        keep_hi = t - n if reuse else 0
        # The front end equals the previous one's where every branch reused it.
        lo = 0
        hi = t
        for i in range(len(self.context)):
            prev: List[torch.Tensor] = [outs[i]] if reuse else []
            y, l, h = self._stage(False, i, xb, self.context[i][0], self.context[i][1], 0, keep_hi, n, prev)
            new_outs.append(y)
            reused.append(h - l)
            lo = max(lo, l)
            hi = min(hi, h) if h > l else 0
        front = torch.cat(new_outs, dim=1)
        new_mids: List[torch.Tensor] = []
        y = front
        for j in range(len(self.mid_context)):
            prev_mid: List[torch.Tensor] = [mids[j]] if reuse else []
            y, lo, hi = self._stage(True, j, y, self.mid_context[j][0], self.mid_context[j][1], lo, hi, n, prev_mid)
            new_mids.append(y)
            reused.append(hi - lo)
        return self.model.stream_tail(front, new_mids), new_outs, new_mids, reused
