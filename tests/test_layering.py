"""The layering rules in .importlinter hold (import-linter, run as `make test` runs it).

import-linter reads packages from disk, and the folders engine/, models/ and
bridge/ become genredream.engine/models/bridge only through pyproject.toml's
package-dir mapping. So the check lays the sources out as they install (a
copy of the .py files under genredream/), then runs lint-imports on that.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _installed_layout(dest):
    pkg = dest / "genredream"
    shutil.copytree(ROOT / "genredream", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("engine", "models", "bridge"):
        shutil.copytree(ROOT / folder, pkg / folder, ignore=lambda d, names: [n for n in names if not (n.endswith(".py") or (Path(d) / n).is_dir()) or n == "__pycache__"])
    return dest


def _lint(tmp_path, config=None):
    src = _installed_layout(tmp_path / "src")
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe), str(config or ROOT / ".importlinter"), "--no-cache"]
    # Run from the copy: lint-imports puts its working directory first on the path.
    return subprocess.run(cmd, cwd=src, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)


def test_dependencies_point_one_way(tmp_path):
    r = _lint(tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken" in r.stdout, r.stdout[-2000:]


def test_the_check_sees_a_forbidden_import(tmp_path):
    """The contracts can fail: a models module importing the bridge is reported."""
    bad = ROOT / "models" / "_layering_probe.py"
    bad.write_text("from genredream.bridge import protocol  # a models module must not do this\n")
    try:
        r = _lint(tmp_path)
    finally:
        bad.unlink()
    assert r.returncode != 0 and "genredream.models._layering_probe -> genredream.bridge" in r.stdout, r.stdout[-3000:]
