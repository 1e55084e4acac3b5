"""Warming a model before it takes audio: its TorchScript step and the front end's Numba kernels, side by side.

:meth:`genredream.engine.runtime.Engine.load_model` starts
:func:`start_kernel_warm` and calls :func:`prepare` on the loading thread
(never the audio path), so that the first window a model scores, and the
first block the front end computes, run at their steady speed; the device
stream opens after that. It is part of every start-up (the target: the first
result within 3 s of ``genredream run`` starting), hence three measures:

* the warm-up runs with the inference worker's torch thread count, not
  torch's default of one per core: on the loaded 2-core machine each warm-up
  window took 0.9 s with two threads against 0.05 s with one;
* the front end's Numba kernels are loaded from Numba's cache on a helper
  thread while the model loads and warms up (the first load of a process
  only). Loading them is Python and holds the GIL
  (0.5-1 s for the first, which also starts Numba's compiler and
  rocket-fft); a TorchScript call releases the GIL while it computes, so
  the two share the machine's two cores instead of taking turns;
* Numba's start is lightened: its first kernel call imports its extension
  rocket-fft (``np.fft`` inside kernels, engine/mel.py) and its numpy
  registries, which import ``scipy.fft`` and ``scipy.linalg`` when SciPy is
  installed, for rocket-fft's ``scipy.fft`` overloads and a BLAS check
  (``_HAVE_BLAS``, used by ``np.convolve``/``np.correlate`` in kernels).
  No kernel of ours uses either, and the two imports (with SciPy's array-API
  layer and ``numpy.f2py`` under them) were 0.35-0.6 of the 0.8-1.0 s of
  CPU that Numba's first kernel call took on the loaded machine; so they
  are skipped (:func:`_import_numba_extensions`).
"""

from __future__ import annotations

import logging
import sys
import threading

import numpy as np

from genredream.engine.frontend import warm_kernels
from genredream.engine.mel import MelConfig

__all__ = ["prepare", "start_kernel_warm"]

log = logging.getLogger(__name__)

_warmed = False  # this process has run the kernels


def prepare(module, spec, hop, torch_threads):
    """The model's FrameBranchRunner, warmed up (None for a model without frame-branch methods).

    Raises what FrameBranchRunner raises.
    """
    from genredream.models.incremental import FrameBranchRunner, supports_streaming

    if spec.mel is None or not supports_streaming(module):
        return None
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, torch_threads))
    try:
        runner = FrameBranchRunner(module)
        hop_frames = hop * spec.mel.sr / spec.mel.hop_length
        # Without the graph optimisation (engine/session.py fast_jit) TorchScript builds one plan at the
        # first call and keeps it: one round (the whole window, then each hop) is warm, measured at the
        # steady speed from the second call on. With it (GENREDREAM_JIT_OPTIMIZE=1) the profiling
        # executor specialises over the first calls: three rounds, as before.
        repeats = 3 if torch._C._get_graph_executor_optimize() else 1
        hops = sorted({int(hop_frames), int(np.ceil(hop_frames))})
        # warm_up moves the window by each hop after each call: one more hop at the end makes every hop size run.
        runner.warm_up(spec.mel.n_mels, spec.length, hops=hops + hops[:1] if repeats == 1 else hops, repeats=repeats)
    finally:
        torch.set_num_threads(before)
    return runner


def start_kernel_warm(in_rate, window):
    """Run the front end's Numba kernels once, on a helper thread: returns the thread (join it), or None if done before.

    A kernel's machine code depends on its arguments' types, not on the mel
    configuration's values, so one configuration warms every model's.
    """
    if _warmed:
        return None

    def warm():
        global _warmed
        try:
            _import_numba_extensions()
            warm_kernels(in_rate, window, in_rate, MelConfig(sr=int(in_rate)))
            _warmed = True
        except Exception as e:  # noqa: BLE001 - only a warm-up: the first real block meets the same error and reports it
            log.debug("front-end warm-up failed: %s", e)

    t = threading.Thread(target=warm, name="genredream-warm-kernels", daemon=True)
    t.start()
    return t


#: SciPy modules Numba's extensions import at their start and genredream's kernels never use.
_SCIPY_UNUSED = ("scipy.fft", "scipy.linalg")


def _import_numba_extensions():
    """Import rocket-fft and Numba's numpy registries without ``scipy.fft`` and ``scipy.linalg`` (module docstring).

    Only in a process that has imported none of them yet (the start of a
    run): elsewhere nothing changes. Afterwards ``import scipy.fft`` and
    ``scipy.linalg`` work as usual (Numba's ``np.dot`` checks for BLAS again
    when a kernel uses it); in this process only a kernel calling
    ``scipy.fft`` would not compile, and ``np.convolve`` in a kernel loops
    instead of calling BLAS. genredream's kernels do neither. For the few
    milliseconds of these imports another thread's ``import scipy.fft`` would
    fail: at start-up the other thread loads the model (zipfile, torch),
    which imports neither (tests/test_warm.py runs it).
    """
    if any(m in sys.modules for m in ("rocket_fft", "numba.np.arraymath", *_SCIPY_UNUSED)):
        return
    for m in _SCIPY_UNUSED:
        sys.modules[m] = None  # `import scipy.fft` raises ImportError, which both packages expect when SciPy is absent
    try:
        import numba.np.arraymath  # noqa: F401  (its BLAS check: scipy.linalg)
        import rocket_fft  # noqa: F401  (its scipy.fft overloads)
    finally:
        for m in _SCIPY_UNUSED:
            if m in sys.modules and sys.modules[m] is None:
                del sys.modules[m]
