"""Shared test helpers.

Tests that need a real component (JACK, Pure Data, liblo, FluidSynth, an
audio device) call :func:`require_component`. On a developer's machine a
missing component skips the test with the install command; in CI
(``GENREDREAM_REQUIRE_COMPONENTS=1``, set by ``.ci/run``) it fails, so a
missing install step can never hide behind a skip.
"""

import os
import shutil

import pytest

REQUIRE = os.environ.get("GENREDREAM_REQUIRE_COMPONENTS", "") not in ("", "0")


def require_component(name, available, how_to_install):
    """Skip (locally) or fail (CI) unless ``available``."""
    if available:
        return
    msg = f"{name} is not available; install it with: {how_to_install}"
    if REQUIRE:
        pytest.fail(msg + " (GENREDREAM_REQUIRE_COMPONENTS=1: missing components fail)")
    pytest.skip(msg)


def require_program(program, debian_package):
    """Require an executable on PATH; returns its path."""
    path = shutil.which(program)
    require_component(program, path is not None, f"apt-get install {debian_package}")
    return path
