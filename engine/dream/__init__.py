"""Audio deep dream (Geng, Ren & Ogihara 2017), made to transfer and to stream. docs/dream.md tells the story.

By what each part is:

* :mod:`~genredream.engine.dream.objective`: what a dream ascends (one layer, all layers, a target) and the measures of a dream (a target's logit, a judge's score);
* :mod:`~genredream.engine.dream.wave`: Geng et al.'s waveform ascent with its constraints (normalised steps, spectral mask), offline and one step at a time;
* :mod:`~genredream.engine.dream.eq`: the perceptual parametrisation, a time-varying EQ plus texture, offline and streaming;
* :mod:`~genredream.engine.dream.transfer`: the default toward a target, an ensemble ascending the EQ through random transformations;
* :mod:`~genredream.engine.dream.offline`: the offline dream of a file (``genredream dream``, whose command line is engine/cli/dream.py);
* :mod:`~genredream.engine.dream.plot`: the before/after/difference pictures;
* :mod:`~genredream.engine.dream.stream`: the streaming :class:`Dreamer`, the engine's output transform (engine/transform.py), with
  :mod:`~genredream.engine.dream.output` (its output at the input rate, every channel), :mod:`~genredream.engine.dream.params`
  (what it accepts while running) and :mod:`~genredream.engine.dream.depth` (the performer's one control);
* :mod:`~genredream.engine.dream.defaults`: defaults by what a model is (its architecture).

Importing this package loads nothing heavy: ``Dreamer``, ``DreamError`` and
``PARAMS`` are imported from their modules on first use.
"""

from __future__ import annotations

__all__ = ["Dreamer", "DreamError", "PARAMS"]

_FROM = {"Dreamer": "stream", "PARAMS": "params", "DreamError": "objective"}


def __getattr__(name):
    # PEP 562: `from genredream.engine.dream import Dreamer` works without this
    # package importing torch for callers that only need depth or defaults.
    if name in _FROM:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
