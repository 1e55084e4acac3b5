"""The install: one import name, ``genredream``, next to anyone's ``models``.

The folders engine/, models/ and bridge/ install as genredream.engine,
genredream.models and genredream.bridge (pyproject.toml's package-dir). These
tests build the real wheel and install it, not editable, into a clean venv
beside another distribution that owns a top-level ``models`` package: the
collision the old layout had.
"""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"engine": "genredream.engine", "models": "genredream.models", "bridge": "genredream.bridge"}


def _listed_packages():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def test_every_package_folder_is_installed():
    """A new subpackage that pyproject.toml does not list would be missing from the wheel."""
    listed, dirs = _listed_packages()
    for folder, name in FOLDERS.items():
        assert dirs[name] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            pkg = ".".join((name, *rel.parts))
            assert pkg in listed, f"{init.parent} is a package but pyproject.toml does not list {pkg}"


# Nothing of the checkout may leak into the clean venv through the path.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_ENV, **kw)
    assert r.returncode == 0, f"{cmd}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
    return r.stdout


@pytest.mark.slow
def test_wheel_installs_beside_a_top_level_models(tmp_path):
    wheels = tmp_path / "wheels"
    # Build from a copy: a build leaves build/ and *.egg-info in its source
    # folder, and an egg-info on the path would pass for an installed copy.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".benchmarks", "data", "out"))
    # No build isolation: the test venv's setuptools builds it, with no download.
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("genredream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.split("/")[0] in FOLDERS for n in names), "the wheel installs a top-level engine/models/bridge"
    assert "genredream/models/pretrained/musicnn-msd.pt" in names
    assert "genredream/engine/cli/__init__.py" in names and "genredream/__main__.py" in names

    # Another distribution that owns a top-level `models` (as countless projects do).
    other = tmp_path / "other"
    (other / "models").mkdir(parents=True)
    (other / "models" / "__init__.py").write_text("WHO = 'other'\n")
    (other / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "other-models"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["models"]\n'
    )
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(other)])

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    # Install with this interpreter's pip into the clean venv (no downloads:
    # --no-deps; the import check below needs no third-party package).
    for whl in wheels.glob("*.whl"):
        _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(whl)])
    # Run from an empty folder so nothing of the checkout is on the path.
    # The clean venv has no numpy or torch: import what needs none, and find the rest.
    code = (
        "import importlib.util as u, models, genredream.models, genredream.engine.cli as c;"
        "print(models.WHO, genredream.models.__file__, c.__file__, u.find_spec('genredream.bridge').origin)"
    )
    out = _run([str(py), "-c", code], cwd=tmp_path)
    who, *files = out.split()
    assert who == "other"
    for f in files:
        assert f.startswith(str(venv)), f"{f} is not the installed copy"
    # `python -m genredream --help` answers from the wheel (it imports no torch).
    assert "usage: genredream" in _run([str(py), "-m", "genredream", "--help"], cwd=tmp_path)
