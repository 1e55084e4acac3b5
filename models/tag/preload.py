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
import os
import sys

import numpy as np
import torch  # noqa: F401  (imported once, in the server: 2 s a process)

from genredream.engine.mel import MelConfig, StreamingMel
from genredream.engine.resample import StreamingResampler
from genredream.models.tag import tagger  # noqa: F401  (the workers' code)

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


def in_fork_server() -> bool:
    """True when this module is being imported by ``multiprocessing``'s fork server (its preload)."""
    from multiprocessing import forkserver

    f = sys._getframe()
    while f is not None:
        if f.f_code is forkserver.main.__code__:
            return True
        f = f.f_back
    return False


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
if in_fork_server():
    atexit.register(_exit_now)
