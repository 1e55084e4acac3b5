"""Warming a model before it takes audio: its TorchScript step and the front end's Numba kernels, side by side.

:meth:`genredream.engine.runtime.Engine.load_model` calls :func:`prepare`
once per load, on the loading thread (never the audio path), so that the
first window a model scores, and the first block the front end computes, run
at their steady speed. It is part of every start-up (issue 14: the first
result within 3 s of ``genredream run`` starting), hence two measures:

* the warm-up runs with the inference worker's torch thread count, not
  torch's default of one per core: on the loaded 2-core machine each warm-up
  window took 0.9 s with two threads against 0.05 s with one;
* the front end's Numba kernels are loaded from Numba's cache on a helper
  thread while the model warms up. Loading them is Python and holds the GIL
  (0.5-1 s for the first, which also starts Numba's compiler and
  rocket-fft); a TorchScript call releases the GIL while it computes, so
  the two share the machine's two cores instead of taking turns. Numba's
  first kernel call imports its extension rocket-fft (``np.fft`` inside
  kernels, engine/mel.py), which also registers ``scipy.fft`` overloads when
  SciPy is there; importing ``scipy.fft`` (with ``scipy.special``, whose
  import rewrites hundreds of docstrings) was 0.32 of rocket-fft's 0.47 s
  of CPU here. No kernel of ours calls ``scipy.fft``, so rocket-fft is
  imported without it (:func:`_import_rocket_fft`).
"""

from __future__ import annotations

import logging
import sys
import threading

import numpy as np

from genredream.engine.frontend import warm_kernels

__all__ = ["prepare"]

log = logging.getLogger(__name__)

_warmed = set()  # (input rate, model rate, mel config) whose kernels this process has run


def prepare(module, spec, in_rate, window, hop, torch_threads):
    """The model's FrameBranchRunner, warmed up (None for a model without frame-branch methods).

    The front-end kernels for ``spec`` at ``in_rate`` are warm too when this
    returns. Raises what FrameBranchRunner raises.
    """
    from genredream.models.incremental import FrameBranchRunner, supports_streaming

    helper = _start_kernel_warm(in_rate, window, spec)
    try:
        if spec.mel is None or not supports_streaming(module):
            return None
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(max(1, torch_threads))
        try:
            runner = FrameBranchRunner(module)
            hop_frames = hop * spec.mel.sr / spec.mel.hop_length
            runner.warm_up(spec.mel.n_mels, spec.length, hops=sorted({int(hop_frames), int(np.ceil(hop_frames))}))
        finally:
            torch.set_num_threads(before)
        return runner
    finally:
        if helper is not None:
            helper.join()


def _start_kernel_warm(in_rate, window, spec):
    key = (int(in_rate), int(spec.sample_rate), spec.mel)
    if key in _warmed:
        return None

    def warm():
        try:
            _import_rocket_fft()
            warm_kernels(in_rate, window, spec.sample_rate, spec.mel)
            _warmed.add(key)
        except Exception as e:  # noqa: BLE001 - only a warm-up: the first real block meets the same error and reports it
            log.debug("front-end warm-up failed: %s", e)

    t = threading.Thread(target=warm, name="genredream-warm-kernels", daemon=True)
    t.start()
    return t


def _import_rocket_fft():
    """Import rocket-fft, Numba's ``np.fft``, without its ``scipy.fft`` overloads (module docstring).

    Only in a process that has imported neither: elsewhere (a test that
    imported SciPy's FFT, a second load) nothing changes. ``import scipy.fft``
    works as usual afterwards; only a Numba kernel calling ``scipy.fft``
    (there is none in genredream) would not compile in this process.
    """
    if "rocket_fft" in sys.modules or "scipy.fft" in sys.modules:
        return
    sys.modules["scipy.fft"] = None  # rocket-fft's `import scipy.fft` raises ImportError, and it skips those overloads
    try:
        import rocket_fft  # noqa: F401
    finally:
        if "scipy.fft" in sys.modules and sys.modules["scipy.fft"] is None:
            del sys.modules["scipy.fft"]
