"""models/validated.py: a model file is validated once per content, and a broken one every time."""

import shutil
import subprocess
import sys

import pytest

from genredream.models import validated
from genredream.models.contract import ModelFileError
from tests.conftest import make_model_file


@pytest.fixture
def cache(tmp_path, monkeypatch):
    p = tmp_path / "cache" / "validated.json"
    monkeypatch.setenv("GENREDREAM_VALIDATION_CACHE", str(p))
    return p


def test_validated_once_per_content_then_only_loaded(tmp_path, cache, monkeypatch):
    path = make_model_file("geng", tmp_path)
    (tmp_path / "seed1").mkdir()
    reweighted = make_model_file("geng", tmp_path / "seed1", seed=1)
    calls = []
    import genredream.models.contract as contract

    real = contract.validate

    def counting(p):  # the real validation, counted: the cache must skip it
        calls.append(p)
        return real(p)

    monkeypatch.setattr(contract, "validate", counting)
    lm, ran = validated.validate_once(path)
    assert ran and len(calls) == 1 and lm.name == "test-geng" and cache.is_file()
    lm2, ran2 = validated.validate_once(path)
    assert not ran2 and len(calls) == 1 and lm2.labels == lm.labels
    # Keyed by content, not by path: a copy elsewhere is vouched for too.
    other = tmp_path / "elsewhere" / "copy.pt"
    other.parent.mkdir()
    shutil.copy(path, other)
    assert validated.validate_once(other)[1] is False
    # --force checks again; new bytes at the same path are checked again.
    assert validated.validate_once(path, force=True)[1] is True and len(calls) == 2
    shutil.copy(reweighted, path)  # same path, different weights
    assert validated.validate_once(path)[1] is True and len(calls) == 3


def test_a_broken_file_is_rejected_every_time_and_never_cached(tmp_path, cache):
    path = make_model_file("geng", tmp_path)
    validated.validate_once(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64  # damage the weights
    path.write_bytes(bytes(data))
    for _ in range(2):
        with pytest.raises(ModelFileError, match="corrupt"):
            validated.validate_once(path)
    assert not validated.is_validated(path)


def test_cache_lives_next_to_the_user_models(tmp_path, monkeypatch):
    monkeypatch.delenv("GENREDREAM_VALIDATION_CACHE", raising=False)
    monkeypatch.setenv("GENREDREAM_MODELS", str(tmp_path / "mine"))
    assert validated.cache_path() == tmp_path / "mine" / ".genredream-validated.json"
    monkeypatch.delenv("GENREDREAM_MODELS")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert validated.cache_path() == tmp_path / "home" / ".genredream" / "validated.json"


def test_validate_cli_says_cached_and_force_checks_again(tmp_path, cache):
    path = make_model_file("geng", tmp_path)
    env_run = [sys.executable, "-m", "genredream.engine.cli", "validate", str(path)]
    first = subprocess.run(env_run, capture_output=True, text=True, timeout=120)
    second = subprocess.run(env_run, capture_output=True, text=True, timeout=120)
    forced = subprocess.run(env_run + ["--force"], capture_output=True, text=True, timeout=120)
    for r in (first, second, forced):
        assert r.returncode == 0, r.stderr
    assert "passed before" not in first.stdout
    assert "passed before" in second.stdout
    assert "passed before" not in forced.stdout
