"""Start-up (issue 14, engine/warm.py): a model load leaves the front end's Numba kernels loaded.

Each check runs in a fresh interpreter, as `genredream run` does: in the
test process Numba, SciPy and the kernels may already be loaded by other
tests, which would hide what a start-up does.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, sys
import numpy as np
import torch
from genredream.engine import mel, ringbuffer
from genredream.engine.runtime import Engine

before = torch.get_num_threads()
engine = Engine(16000, window=5.0, hop=0.5, torch_threads=1)
engine.load_model("musicnn-msd")
out = {
    # compiled (here: loaded from Numba's cache) before any audio arrives
    "ring_kernels": len(ringbuffer._store_frames.signatures),
    "mel_kernels": len(mel._frames_serial.signatures),
    "threads_kept": torch.get_num_threads() == before,
    "scipy_fft_imported": "scipy.fft" in sys.modules,
}
# The audio path runs on the kernels loaded above, and SciPy's FFT still imports and works afterwards.
rng = np.random.default_rng(0)
results = []
engine.sinks.append(results.append)
engine.run_blocks([(0.1 * rng.standard_normal(1024)).astype(np.float32) for _ in range(16)])
import scipy.fft
x = rng.standard_normal(64)
out["scipy_fft_works"] = bool(np.allclose(scipy.fft.irfft(scipy.fft.rfft(x), 64), x))
out["results"] = len(results)
out["finite"] = all(len(r.scores) and np.isfinite(r.scores).all() for r in results)
print(json.dumps(out))
"""


def test_model_load_warms_the_front_end_kernels():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["ring_kernels"] >= 1 and out["mel_kernels"] >= 1, out
    assert out["threads_kept"], out
    # rocket-fft's scipy.fft overloads are skipped at start-up (no kernel of ours calls scipy.fft) ...
    assert not out["scipy_fft_imported"], out
    # ... and SciPy's FFT is untouched for anyone who imports it later.
    assert out["scipy_fft_works"], out
    # 16 blocks of 1024 samples at 16 kHz: a result every 0.5 s of stream time (8000 samples).
    assert out["results"] == 16 * 1024 // 8000 and out["finite"], out
