"""Building genredream (what `make demo` and `make test` do first) prints no setuptools warnings:
a fresh clone printed ~90 lines of "Package would be ignored" for the weights' folders."""

import shutil
import subprocess
import sys

import pytest

from tests.test_packaging import _ENV, ROOT


@pytest.mark.slow
def test_the_build_warns_about_nothing(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                                            ".benchmarks", "data", "out"))
    # -v: pip shows the build backend's output, where setuptools' warnings go.
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "w"), str(src)],
                       capture_output=True, text=True, timeout=600, env=_ENV)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    assert "would be ignored" not in log and "Warning" not in log.replace("WARNING: Location", ""), log[-4000:]
    assert list((tmp_path / "w").glob("genredream-*.whl"))
