"""Shared test helpers.

Tests that need a real component (JACK, Pure Data, liblo, FluidSynth, an
audio device) call :func:`require_component`. On a developer's machine a
missing component skips the test with the install command; in CI
(``GENREDREAM_REQUIRE_COMPONENTS=1``, set by ``.ci/run``) it fails, so a
missing install step can never hide behind a skip.
"""

import os
import shutil
import signal
from pathlib import Path

import pytest

# A test run started in the background by a non-interactive shell (`make
# test &`, a CI wrapper, nohup) has SIGINT ignored, and every process it
# starts inherits that: CPython then installs no Ctrl-C handler, and
# genredream keeps the ignore as a background program should. The tests
# that Ctrl-C a command (test_interrupts, test_tag's resume, test_file_input)
# need what a terminal gives, so the default comes back here (seen: a fresh
# clone run as `(make test &)` failed those tests, the commands running on
# 60 s after the signal).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


def make_model_file(arch, directory, labels=("a", "b", "c"), seed=0):
    """An untrained, contract-valid model file ``directory/<arch>.pt`` named ``test-<arch>``.

    Tests of the engine, the dreamer and the bridge need a real TorchScript
    model, not a trained one: geng (8 kHz waveform) is the cheapest.
    """
    import torch

    from genredream.models.archs import build
    from genredream.models.contract import save

    torch.manual_seed(seed)
    m, meta = build(arch, list(labels))
    meta["name"] = f"test-{arch}"
    path = Path(directory) / f"{arch}.pt"
    save(m.eval(), meta, path)
    return path


@pytest.fixture(autouse=True, scope="session")
def _validation_cache(tmp_path_factory):
    """Passed model validations are remembered per session here, never in the user's ~/.genredream."""
    if "GENREDREAM_VALIDATION_CACHE" in os.environ:
        yield
        return
    os.environ["GENREDREAM_VALIDATION_CACHE"] = str(tmp_path_factory.mktemp("validation") / "validated.json")
    try:
        yield
    finally:
        os.environ.pop("GENREDREAM_VALIDATION_CACHE", None)


@pytest.fixture
def served():
    """served(engine, **bridge_kw) -> (bridge, client); everything is stopped afterwards."""
    from genredream.bridge.client import OscClient
    from genredream.bridge.server import OscBridge

    made = []

    def make(engine, **kw):
        b = OscBridge(engine, port=0, **kw).start()
        c = OscClient(b.port)
        made.append((engine, b, c))
        return b, c

    yield make
    for e, b, c in made:
        b.stop()
        e.stop()
        c.close()


def pytest_sessionfinish(session, exitstatus):
    """Fail the session when more real-time runs needed excusing than tests/jack_rule.py allows."""
    from tests import jack_rule

    runs, excused, allowed = jack_rule.summary()
    if excused > allowed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    """How many real-time runs were clean and how many the machine's stalls excused (tests/jack_rule.py)."""
    from tests import jack_rule

    runs, excused, allowed = jack_rule.summary()
    if runs:
        tr = terminalreporter
        tr.write_sep("-", "real-time runs (tests/jack_rule.py)")
        for nodeid, verdict in jack_rule.LEDGER:
            tr.write_line(f"{verdict:8s} {nodeid}")
        line = f"{excused} of {runs} runs excused; at most {allowed} may be ({jack_rule.MAX_EXCUSED_SHARE:.0%} of runs, at least one)"
        tr.write_line(line + (": TOO MANY, the session fails" if excused > allowed else ""))
