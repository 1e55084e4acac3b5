"""Validate a model file once: a cache of passed validations, keyed by the file's content.

:func:`genredream.models.contract.validate` runs the model (26 forward passes for
musicnn, with its streaming check): seconds of every start-up if done each time
(BENCHMARKS.md, "start-up": 8.03 s median to the first musicnn result when
validating every start, 2.77 s with this cache). A file whose exact bytes have passed once, under the
same contract checks and torch version, passes again: :func:`validate_once`
remembers the SHA-256 of each file that passed and afterwards only loads it
(:func:`genredream.models.contract.load`: metadata, archive and methods, no run).

Where the cache lives, next to the user's models: ``~/.genredream/validated.json``,
or, when ``$GENREDREAM_MODELS`` is set, ``.genredream-validated.json`` in
its first directory; ``$GENREDREAM_VALIDATION_CACHE`` names another file.
Shipped models are validated on first use and cached there too (the
installed package may be read-only). Failures are never cached: a broken
file is re-checked, and reported, every time. ``genredream validate
--force`` re-checks and refreshes the entry. An unwritable location only
costs the speed-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["CHECKS_VERSION", "cache_path", "file_digest", "is_validated", "validate_once"]

#: Bump when models.contract.validate checks more: every cached pass is then re-checked.
CHECKS_VERSION = 1


def cache_path() -> Path:
    """The cache file (see the module's docstring)."""
    env = os.environ.get("GENREDREAM_VALIDATION_CACHE")
    if env:
        return Path(env).expanduser()
    if os.environ.get("GENREDREAM_MODELS"):
        from genredream.models.registry import user_model_dirs

        return user_model_dirs()[0] / ".genredream-validated.json"
    return Path.home() / ".genredream" / "validated.json"


def file_digest(path) -> str:
    """SHA-256 of the file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _key(digest: str) -> str:
    import torch

    return f"{digest}:checks{CHECKS_VERSION}:torch{torch.__version__}"


def _read(p: Path) -> dict:
    try:
        with open(p) as f:
            d = json.load(f)
        return d if isinstance(d, dict) and isinstance(d.get("passed"), dict) else {"passed": {}}
    except (OSError, ValueError):
        return {"passed": {}}


def _write(p: Path, d: dict) -> bool:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".validated-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(d, f, indent=1, sort_keys=True)
        os.replace(tmp, p)  # atomic: a reader sees the old or the new file, never half
        return True
    except OSError:
        return False


def is_validated(path) -> bool:
    """True when this file's exact bytes passed validation before (same checks, same torch)."""
    return _key(file_digest(path)) in _read(cache_path())["passed"]


def validate_once(path, force=False):
    """:func:`genredream.models.contract.validate` the first time a file's content is seen, then only load it.

    Returns
    -------
    (LoadedModel, bool)
        The model, and whether the validation ran now (False: the cache vouched for it).

    Raises
    ------
    ModelFileError
        As :func:`genredream.models.contract.validate` (and the failure is not cached).
    """
    from genredream.models.contract import ModelFileError, load, validate

    path = Path(path).expanduser()
    try:
        key = _key(file_digest(path))
    except OSError:
        return validate(path), True  # unreadable: validate says why, in its words
    cp = cache_path()
    if not force and key in _read(cp)["passed"]:
        try:
            return load(path), False
        except ModelFileError:
            pass  # cannot happen for the same bytes, but never trust a cache over the file
    lm = validate(path)
    d = _read(cp)  # re-read: another process may have added entries meanwhile
    d["passed"][key] = {"name": lm.name, "path": str(path), "validated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write(cp, d)
    return lm, True
