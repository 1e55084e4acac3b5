"""A fresh `genredream run` process's start (issue 14, engine/startup.py): torch's deferred parts and the paused collector.

Each check runs in a fresh interpreter, as the command does: the test
process has imported torch in full long ago, where :func:`begin` rightly does
nothing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def _fresh(args, full_import=False):
    """Run ``python ARGS`` in a fresh interpreter (GENREDREAM_FULL_TORCH_IMPORT=1 if ``full_import``); the finished process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("GENREDREAM_FULL_TORCH_IMPORT", None)
    if full_import:
        env["GENREDREAM_FULL_TORCH_IMPORT"] = "1"
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _python(code, *argv, full_import=False):
    """The JSON a script prints last."""
    return json.loads(_fresh(["-c", code, *argv], full_import).stdout.strip().splitlines()[-1])


# A dream (autograd through a TorchScript model) in a process started as `genredream run` starts.
_DREAM = r"""
import gc, json, sys
from genredream.engine import startup
startup.begin()
gc_paused = not gc.isenabled()
import numpy as np
import torch
deferred_after_import = startup.active() and "torch._decomp" not in sys.modules
from genredream.engine.dream.objective import load_dream_model, make_objective
from genredream.engine.dream.wave import dream_offline

torch.set_num_threads(1)
lm = load_dream_model("geng")
y = (0.1 * np.random.default_rng(0).standard_normal(int(3 * lm.sample_rate))).astype(np.float32)
d = dream_offline(lm, y, make_objective(lm, target=lm.labels[0]), steps=3, step_size=0.01)
startup.settle()
print(json.dumps({
    "gc_paused": gc_paused,
    "gc_enabled_after": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "deferred_after_import": deferred_after_import,
    "deferred_at_end": startup.active(),
    "changed": float(np.abs(d.dreamed - y[: len(d.dreamed)]).max()),
    "dreamed": d.dreamed.astype(float).tolist(),
}))
"""


def test_a_dream_in_a_lightened_start_equals_one_after_the_full_import():
    light, full = _python(_DREAM), _python(_DREAM, full_import=True)
    # The start was lightened: torch imported without its meta kernels, the collector paused
    # until settle(), which froze what the start made and turned it back on.
    assert light["deferred_after_import"] and light["deferred_at_end"], light
    assert light["gc_paused"] and light["gc_enabled_after"] and light["frozen"] > 100_000, {k: light[k] for k in ("gc_paused", "gc_enabled_after", "frozen")}
    # GENREDREAM_FULL_TORCH_IMPORT=1: the start as before.
    assert not full["deferred_after_import"] and not full["gc_paused"] and full["frozen"] == 0
    # Gradient ascent through the TorchScript model needs none of what was deferred: the same samples.
    assert light["changed"] > 1e-4
    np.testing.assert_array_equal(np.array(light["dreamed"]), np.array(full["dreamed"]))


_DEFERRED_LOAD = r"""
import json, sys
from genredream.engine import startup
startup.begin()
import torch
before = startup.active()
how = sys.argv[1]
if how == "submodule":  # a submodule of the deferred package torch.export
    import torch.export.exported_program as ep
    same = torch.export.ExportedProgram is ep.ExportedProgram and sys.modules["torch.export.exported_program"] is ep
elif how == "name":  # a name read from the placeholder torch bound as torch.export
    from torch.export import export
    same = torch.export.export is export and export.__module__ == "torch.export"
else:  # torch.compile's engine: it traces with fake tensors, which need the meta kernels
    import torch._dynamo
    f = torch.compile(lambda x: torch.sin(x) + 1, backend="eager")
    same = bool(torch.equal(f(torch.ones(3)), torch.sin(torch.ones(3)) + 1))
print(json.dumps({
    "before": before,
    "after": startup.active(),
    "meta_kernels": "torch._decomp" in sys.modules and type(sys.modules["torch._meta_registrations"]).__name__ == "module",
    "same": same,
}))
"""


def test_deferred_modules_are_imported_whole_when_used():
    for how in ("submodule", "name", "dynamo"):
        out = _python(_DEFERRED_LOAD, how)
        assert out == {"before": True, "after": False, "meta_kernels": True, "same": True}, (how, out)


def test_begin_does_nothing_once_torch_is_imported():
    out = _python(r"""
import gc, json, sys
import torch
from genredream.engine import startup
startup.begin()
print(json.dumps({"active": startup.active(), "gc": gc.isenabled(), "finders": sum(type(f).__module__ == "genredream.engine.startup" for f in sys.meta_path)}))
""")
    assert out == {"active": False, "gc": True, "finders": 0}


def test_run_scores_equal_with_and_without_the_lightened_start(tmp_path):
    wav = tmp_path / "noise.wav"
    sf.write(wav, (0.1 * np.random.default_rng(1).standard_normal(6 * 16000)).astype(np.float32), 16000)
    scores = {}
    for full in (False, True):
        out = tmp_path / f"full{full}.jsonl"
        _fresh(["-m", "genredream.engine.cli", "run", "--input", str(wav), "--model", "musicnn-msd",
                "--jsonl", str(out), "--no-view", "--threads", "1"], full_import=full)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        scores[full] = [list(r["scores"].values()) for r in rows if r.get("type") == "scores"]
    assert len(scores[False]) == 12, len(scores[False])  # a result every 0.5 s of the 6 s file
    np.testing.assert_allclose(np.array(scores[False]), np.array(scores[True]), rtol=0, atol=1e-6)


def test_a_dream_run_exits_without_leak_reports(tmp_path):
    """What settle() froze is unfrozen when the run ends: frozen objects escape the interpreter's last
    collection, and nanobind (soxr's binding) then printed "nanobind: leaked ... CSoxr" at every dream run's exit."""
    wav = tmp_path / "noise.wav"
    sf.write(wav, (0.1 * np.random.default_rng(2).standard_normal(6 * 22050)).astype(np.float32), 22050)
    p = _fresh(["-m", "genredream.engine.cli", "run", "--input", str(wav), "--model", "musicnn-msd", "--no-view",
                "--threads", "1", "--target", "rock", "--dream-out", str(tmp_path / "dreamed.wav")])
    assert "dream (musicnn-msd" in p.stdout + p.stderr  # the dream ran
    assert "leaked" not in p.stderr, p.stderr[-2000:]
