"""What the engine hands out and keeps per model: the result record, the model slot, the window job.

:class:`Result` is one model's answer for one window (what sinks, the live
view and OSC subscribers receive); :class:`ModelSlot` is a loaded model with
its front-end streams; :class:`WindowJob` is what the front-end worker queues
for the inference worker at each hop boundary (engine/runtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Result", "ModelSlot", "WindowJob"]


@dataclass
class Result:
    """One model's answer for one window (or its error)."""

    model: str
    labels: list
    scores: list  # activations (softmax or sigmoid), one per label; [] on error
    activation: str
    genre_labels: list
    end_index: int  # input samples; one past the newest sample the window depends on
    start_s: float
    end_s: float
    latency_ms: float
    level_db: float
    low_energy: bool
    seq: int  # hop number since the engine started
    error: str | None = None
    repaired: int = 0  # input samples repaired (NaN/Inf zeroed, beyond +-32 clipped) during this hop
    over_full_scale: int = 0  # input samples above 0 dBFS during this hop
    # The window reaches back before the stream's first sample: part of what the model saw is the
    # ring's initial silence, so these scores describe less than a window of music.
    partial: bool = False

    @property
    def top(self):
        """(label, score) of the best genre label, or (None, nan) on error."""
        if not self.scores:
            return None, float("nan")
        idx = [self.labels.index(g) for g in self.genre_labels if g in self.labels] or range(len(self.labels))
        best = max(idx, key=lambda i: self.scores[i])
        return self.labels[best], self.scores[best]

    def to_dict(self):
        top, top_score = self.top
        return {
            "type": "error" if self.error else "scores",
            "model": self.model,
            "seq": self.seq,
            "end_index": self.end_index,
            "start_s": round(self.start_s, 6),
            "end_s": round(self.end_s, 6),
            # None rather than NaN: JSON lines must parse anywhere.
            "latency_ms": round(float(self.latency_ms), 3) if np.isfinite(self.latency_ms) else None,
            "level_db": round(float(self.level_db), 2),
            "low_energy": bool(self.low_energy),
            "repaired": int(self.repaired),
            "over_full_scale": int(self.over_full_scale),
            "partial": bool(self.partial),
            "activation": self.activation,
            "scores": {k: float(v) for k, v in zip(self.labels, self.scores)},
            "top": top,
            "top_score": None if top is None else float(top_score),
            "error": self.error,
        }


@dataclass
class ModelSlot:
    """A loaded model, its input spec and its front-end streams (rate, mel)."""

    name: str
    loaded: object  # models.contract.LoadedModel
    spec: object  # models.inputs.InputSpec
    rate: object
    mel: object
    disabled: str | None = None
    runner: object = None  # models.incremental.FrameBranchRunner for models that stream


@dataclass
class WindowJob:
    """One hop boundary's snapshot: each model's window, the level and the repairs since the last."""

    seq: int
    boundary: int
    level_db: float
    repaired: int = 0
    over_full_scale: int = 0
    inputs: dict = field(default_factory=dict)  # name -> (slot, x, end_index, newest frame + 1 or None)
    dream: object = None  # transform.snapshot() at the boundary, when an output transform is attached
