"""Depth: the one dream control a performer turns (``--depth``, ``/genredream/dream/depth``).

One number from 0 to 1 that trades how strongly the music is dreamed for
what it costs: steps per hop (CPU), dream latency (how long each sample is
dreamed before it is played) and how much of the change is heard. The whole
mapping is :func:`depth_settings`; retune it here and nowhere else
(docs/dream.md, "Depth", shows the table it gives).

* **0 to 0.5: how much.** Steps per hop rise from 1 to the model's budget
  (``base_steps``: the steps one hop may take at a real-time factor of 0.5,
  engine/dream/defaults.py, or timed at load) and the change's
  gain from 0 to 1, at the shortest latency (one hop). Fewer steps also
  leave CPU to the rest of the set.
* **0.5 to 1: how deep.** Full gain and budget; the dream latency grows from
  one hop to three, so every sample gets up to three times the steps
  (``steps x latency / hop``) for the same CPU per hop.
* **Exactly 0**: no steps, gain 0: the output is the dry input, sample for
  sample (after the output delay).

The gain multiplies ``--mix`` (which stays the wet/dry setting). The latency
lays out the dreamer's window and sets the output delay a device plays
with, which cannot jump while audio plays: it is taken from the depth the
dreamer starts with (unless ``--dream-latency`` gives it); a depth turned
live changes steps and gain from the next hop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DepthSettings", "depth_settings", "check_depth", "MAX_LATENCY_HOPS"]

#: Dream latency at depth 1, in hops.
MAX_LATENCY_HOPS = 3.0


@dataclass(frozen=True)
class DepthSettings:
    """What a depth means for one hop."""

    depth: float
    steps: int  # gradient steps per hop
    latency_hops: float  # dream latency in hops (applied when the dreamer is laid out)
    gain: float  # multiplies --mix: the share of the change that is heard


def check_depth(depth):
    """``depth`` as a float in [0, 1]; ValueError with a clear message otherwise."""
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) and not hasattr(depth, "__float__"):
        raise ValueError(f"depth must be a number from 0 to 1, got {depth!r}")
    d = float(depth)
    if not (math.isfinite(d) and 0.0 <= d <= 1.0):
        raise ValueError(f"depth must be a number from 0 to 1, got {depth!r}")
    return d


def depth_settings(depth, base_steps):
    """The steps per hop, dream latency (hops) and gain of ``depth`` (0..1) for a model whose budget is ``base_steps`` per hop."""
    d = check_depth(depth)
    base = max(1, int(base_steps))
    if d == 0.0:
        return DepthSettings(0.0, 0, 1.0, 0.0)
    low = min(1.0, 2.0 * d)  # 0..0.5 -> 0..1
    high = max(0.0, 2.0 * d - 1.0)  # 0.5..1 -> 0..1
    steps = max(1, int(math.ceil(base * low)))
    return DepthSettings(d, steps, 1.0 + (MAX_LATENCY_HOPS - 1.0) * high, low)
