"""A fresh `genredream run` process's start, made shorter: two parts of torch's import deferred, and the garbage collector paused.

The target is the first musicnn-msd result within 3 s of ``genredream
run`` starting (BENCHMARKS.md, "start-up"). Without these measures ``import
torch`` is about half of that start (BENCHMARKS.md's start-up row records
``import_torch_s`` next to ``full_import_s``), all of it Python holding the
GIL, so nothing can overlap it. Two measures remove work instead; the command line
calls :func:`begin` first thing and the session calls :func:`settle` once the
models are warm, right before the source starts; the command calls
:func:`end` when the run is over.

* **Deferred parts of torch.** torch's ``__init__`` imports
  ``torch._meta_registrations`` (with ``torch._decomp``, ``torch._prims`` and
  ``torch._refs`` under it) and ``torch.export``: 0.67 s and 0.25 s of
  ``python -X importtime -c "import torch"`` on this machine (torch 2.13).
  The first registers Python kernels for meta tensors, which only fake-tensor
  tracing uses (``torch.compile``, ``torch.export``); TorchScript models, eager
  autograd (the dream) and ``torch.jit.load`` do not touch either, and
  a TorchScript model file needs neither; a ``.pt2`` model file
  (models/pt2.py) reads ``torch.export`` when it loads, which imports both
  then (below). One thing of torch's does depend on that import:
  ``torch.Generator()`` needs ``torch._prims.rng_prims``, which
  models/rng.py imports before it makes our seeded generators
  (tests/test_startup.py found it). Each is replaced by a placeholder
  module; the first time anything reads a name from one, or imports
  ``torch._dynamo``, ``torch._inductor`` or a submodule of ``torch.export``,
  both real modules are imported, so compiling or exporting in the same
  process still finds its meta kernels. Python's own
  ``importlib.util.LazyLoader`` does not serve here: ``inspect.getmodule``,
  which torch calls while it registers operators, reads ``__file__`` of
  every module in ``sys.modules`` and so loads a lazy module at once; the
  placeholder answers dunder names itself without loading.
* **No cyclic garbage collection while starting.** The imports and the model
  load make about 230 000 tracked objects and almost no cyclic garbage: with
  the collector running, its generation-0 and -1 passes walk them over and
  over. :func:`settle` then moves everything alive into the permanent
  generation (``gc.freeze``) before turning the collector back on, so the
  first collections of the run do not walk the start's objects either (the
  device path collects and freezes again as its stream opens,
  engine/io/duplex.py). Freezing without collecting first keeps the start's
  little cyclic garbage (1 028 objects after musicnn-msd loaded, measured
  with ``gc.collect()``) for the life of the process, and saves the 0.13 s
  that collection takes before the first result. :func:`end` unfreezes it
  all when the run is over, so the interpreter's last collection sees it.

Both apply only to a process that has not imported torch yet (the command
line's); in any other (a test calling the command in-process) :func:`begin`
does nothing. ``GENREDREAM_FULL_TORCH_IMPORT=1`` turns both off
(benchmarks/bench_startup.py times the start without them that way, in the
same rounds: 2.77 s median to the first result with them, 3.53 s without, on
the quiet 2-core machine; BENCHMARKS.md).
"""

from __future__ import annotations

import gc
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import types

__all__ = ["DEFERRED", "begin", "settle", "end", "active"]

#: torch's modules whose import is deferred until something reads a name from them.
DEFERRED = ("torch._meta_registrations", "torch.export")

#: Importing any of these (or a submodule of a deferred package) first imports every deferred module:
#: they trace with fake tensors, which need the meta kernels.
_NEEDS_ALL = ("torch._dynamo", "torch._inductor")

_lock = threading.RLock()
_pending: set[str] = set()  # deferred modules still a placeholder
_paused_gc = False  # begin() turned the collector off and settle() has not turned it back on
_froze = False  # settle() froze the start's objects and end() has not unfrozen them


class _Placeholder(types.ModuleType):
    """Stands in for a deferred module: the first name read from it imports the real module."""

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            # inspect.getmodule and friends probe __file__, __spec__...: answering "absent" keeps
            # the module deferred (see the module docstring). The exception is __path__ once the
            # import system has set this module up (it probes __path__ while doing so): it is read
            # to import a submodule, which needs the real package.
            if attr != "__path__" or self.__dict__.get("_genredream_setting_up", False):
                raise AttributeError(attr)
        _load_all()  # all of them: torch.export traces with fake tensors, which need the meta kernels
        return getattr(sys.modules[self.__name__], attr)


class _PlaceholderLoader(importlib.abc.Loader):
    def create_module(self, spec):
        m = _Placeholder(spec.name)
        m._genredream_setting_up = True
        return m

    def exec_module(self, module):
        # The real module's code runs in _load, when first needed.
        module.__dict__.pop("_genredream_setting_up", None)


class _ImportedLoader(importlib.abc.Loader):
    """Hands the import system a module that loading the deferred ones has just imported."""

    def create_module(self, spec):
        return sys.modules[spec.name]

    def exec_module(self, module):
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in _pending:
            return importlib.machinery.ModuleSpec(name, _PlaceholderLoader())
        below_deferred = any(name.startswith(d + ".") for d in DEFERRED)
        if _pending and (below_deferred or name.startswith(_NEEDS_ALL)):
            _load_all()
        if below_deferred and name in sys.modules:
            # Reading the placeholder's __path__, or the line above, has imported the real package
            # and this submodule with it; the import that asked for it goes on regardless, and must
            # not run the submodule a second time.
            return importlib.machinery.ModuleSpec(name, _ImportedLoader())
        return None  # the usual finders import it


_finder = _Finder()


def _load_all():
    """Import every module still deferred, and put the real names into its placeholder."""
    with _lock:
        for name in DEFERRED:
            if name not in _pending:
                continue
            _pending.discard(name)
            placeholder = sys.modules.pop(name, None)
            real = importlib.import_module(name)  # also sets the attribute on its parent package
            if isinstance(placeholder, _Placeholder):
                # Whoever bound the placeholder (torch's ``from torch import export``) now finds the real names.
                placeholder.__dict__.update(real.__dict__)


def active() -> bool:
    """True while a deferred module is still a placeholder in this process."""
    return bool(_pending)


def begin():
    """At the very start of the command: defer torch's two modules and pause the garbage collector.

    Does nothing in a process that has imported torch already, or with
    ``GENREDREAM_FULL_TORCH_IMPORT=1``.
    """
    global _paused_gc
    if "torch" in sys.modules or os.environ.get("GENREDREAM_FULL_TORCH_IMPORT") == "1":
        return
    with _lock:
        _pending.update(DEFERRED)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
    if gc.isenabled():
        gc.disable()
        _paused_gc = True


def settle():
    """The models are warm: freeze what the start made and turn the collector back on (idempotent).

    The deferred modules stay deferred: nothing the run does reads them.
    """
    global _paused_gc, _froze
    if _paused_gc:
        _paused_gc = False
        gc.freeze()
        _froze = True
        gc.enable()


def end():
    """The run is over: the collector on, and what :func:`settle` froze given back to it (idempotent).

    The interpreter's last collection at exit skips frozen objects, and
    nanobind extensions report their instances still alive then as leaks:
    a dream run printed "nanobind: leaked 1 instances! ... soxr.soxr_ext.CSoxr"
    on exit until this unfroze them.
    """
    global _froze
    settle()
    if _froze:
        _froze = False
        gc.unfreeze()
