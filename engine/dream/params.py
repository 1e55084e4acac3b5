"""The streaming dream's parameters: what :meth:`Dreamer.set_params` accepts, checked all at once."""

from __future__ import annotations

import numpy as np

from genredream.engine.dream.depth import depth_settings
from genredream.engine.dream.objective import DreamError

__all__ = ["PARAMS", "checked_params"]

#: What :meth:`genredream.engine.dream.stream.Dreamer.set_params` accepts.
PARAMS = ("enabled", "layer", "target", "away", "steps", "step_size", "mix", "depth", "max_db", "param")


def checked_params(kw, base, objective_of):
    """``base`` updated with ``kw``, every value checked; raises :class:`DreamError` (and changes nothing) on a bad one.

    ``objective_of(params)`` builds the objective, so an unknown layer or
    label is refused with the model's layers or labels.
    """
    unknown = sorted(set(kw) - set(PARAMS))
    if unknown:
        raise DreamError(f"unknown dream parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMS)}")
    p = dict(base)
    if "layer" in kw and "target" not in kw:
        p["target"] = None  # choosing a layer leaves target mode
        p["away"] = False
    p.update(kw)
    if p["target"] is None:
        p["away"] = False
    steps = p["steps"]
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer, float)) or int(steps) != steps or not 0 <= steps <= 256:
        raise DreamError(f"steps must be an integer from 0 to 256, got {steps!r}")
    p["steps"] = int(steps)
    for key, lo, hi in (("step_size", 0.0, 1.0), ("mix", 0.0, 1.0)):
        v = p[key]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (lo <= float(v) <= hi):
            raise DreamError(f"{key.replace('_', ' ')} must be a number from {lo:g} to {hi:g}, got {v!r}")
        p[key] = float(v)
    if p["depth"] is not None:
        try:
            p["depth"] = depth_settings(p["depth"], 1).depth
        except ValueError as e:
            raise DreamError(str(e)) from None
    v = p["max_db"]
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (0.0 <= float(v) <= 40.0):
        raise DreamError(f"max dB must be a number from 0 to 40, got {v!r}")
    p["max_db"] = float(v)
    if p["param"] not in ("eq", "wave"):
        raise DreamError(f"param must be eq or wave, got {p['param']!r}")
    p["enabled"] = bool(p["enabled"])
    p["away"] = bool(p["away"])
    obj = objective_of(p)  # raises DreamError with the layers or labels
    if obj.kind != "target":
        p["layer"] = obj.name
    else:
        p["target"] = obj.name
    return p
