"""What the embedded executor's fork server does once, so that no worker does it again.

The fork server imports this module (``multiprocessing``'s forkserver
preload) before it forks any worker; everything done here is in the
workers' memory from their first instruction. Besides torch and the tagging
code, that is the streaming front end's first call: loading Numba's cached
mel kernel costs about a CPU second per process (measured here: 1.08 s for
the first ``StreamingMel.push`` of a fresh process, then under a
millisecond per block), and it would otherwise be paid by every worker on
its first file.

Nothing here may start a thread (a process that has run OpenMP or Numba
threads must not fork): the mel kernel warmed is the serial one, the one
:class:`genredream.engine.mel.StreamingMel` uses; torch runs no operation.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys


def in_fork_server() -> bool:
    """True when this module is being imported by ``multiprocessing``'s fork server (its preload)."""
    from multiprocessing import forkserver

    f = sys._getframe()
    while f is not None:
        if f.f_code is forkserver.main.__code__:
            return True
        f = f.f_back
    return False


_SERVER = in_fork_server()
if _SERVER:
    # No garbage collection while the server imports: torch leaves some
    # 260 000 objects tracked, and every full collection the imports below
    # trigger walks them all. Measured here (the imports of this module,
    # 5 runs each, alternated): 3.9-4.5 CPU s with collections, 3.4-3.7
    # without, 2.6-3.9 with the objects frozen at the end as below, for
    # 2 MB more memory (the cycles left uncollected). This preload is the
    # serial part of the command's start-up (the workers wait for it).
    gc.disable()

import numpy as np  # noqa: E402
import torch  # noqa: E402, F401  (imported once, in the server: 2 s a process)

from genredream.engine.mel import MelConfig, StreamingMel  # noqa: E402
from genredream.engine.resample import StreamingResampler  # noqa: E402
from genredream.models.tag import tagger  # noqa: E402, F401  (the workers' code)

__all__ = ["warm_front_end", "WARMED", "in_fork_server"]


def warm_front_end() -> int:
    """Run a short block through a resampler and a streaming mel; return the frames it made.

    Numba compiles (or loads from its cache) a kernel per argument types,
    not per configuration, so any small mel warms the kernel every model's
    front end uses.
    """
    y = StreamingResampler(44100, 16000).process(np.zeros(4410, dtype=np.float32))
    mel = StreamingMel.from_config(MelConfig(sr=16000, n_fft=512, hop_length=256, n_mels=16), keep_frames=1)
    frames = mel.push(y).shape[1]
    return frames + mel.flush().shape[1]


#: Frames the warm-up made (a fork server imports this module once).
WARMED = warm_front_end()


def _exit_now():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# The server ends when the command does (its end of a pipe closes), with an
# ordinary interpreter exit: with torch loaded, tearing the modules down took
# 0.7-1.4 s of a core (measured here), while the command's output pipes stay
# open (the server holds them), so whoever reads them (a pipe, a benchmark)
# waited that long after the last row. The server has nothing to clean up:
# its workers are gone, its socket lives in the command's temporary folder.
# So it exits at once, its other exit handlers skipped (this one registered
# last runs first); the workers it forks end with os._exit and never run it.
if _SERVER:
    atexit.register(_exit_now)
    # What the server holds now is kept for its life: frozen, the workers'
    # collections never walk it (nor write to its pages, which they share
    # with the server until written: Python's gc.freeze documentation
    # gives this recipe for processes that fork without exec).
    gc.freeze()
    gc.enable()
