"""Incremental inference: a window computed from the previous one, where it changed.

* :mod:`genredream.models.incremental.runner`: :class:`FrameBranchRunner`, which
  decides what to reuse and counts, and :func:`supports_streaming`;
* :mod:`genredream.models.incremental.step`: :class:`StreamStep`, the compiled
  arithmetic of one window.

It lives with the models because it is the other half of a model's
frame-branch methods: the contract (:mod:`genredream.models.contract`) checks
a model with the same runner the engine (:mod:`genredream.engine.runtime`) runs.
"""

from genredream.models.incremental.runner import STREAM_METHODS, FrameBranchRunner, streamed_forward, supports_streaming

__all__ = ["FrameBranchRunner", "STREAM_METHODS", "supports_streaming", "streamed_forward"]
