"""Generator files: the metadata schema, load, validate and save, and where they are found.

A generator is not a classifier, so it does not go through
:func:`genredream.models.contract.save` (which checks ``forward -> [batch, n_labels]``
logits and ``features()``). It is the same kind of file (a TorchScript
archive with ``genredream.json``, read with the contract's archive helpers),
with its own metadata schema, ``task: "generator"``:

=====================  ==========================================================
key                    meaning
=====================  ==========================================================
``name``               str, e.g. ``"doyle-gru-classical"``
``version``            str
``task``               ``"generator"`` (a classifier loader rejects it: unknown task)
``arch``               ``"doyle-gru"``
``genre``              str, the genre it continues (``--genre`` finds files by it)
``sample_rate``        int, Hz (10000)
``context_samples``    int, input length (9000)
``predict_samples``    int, output length (1000)
``level``              object: ``{"normalised_rms": 0.1, "in_forward": true}``
``sizes``              object: the architecture's sizes (channels, kernel, ...)
``licence``            str
``provenance``         object: data, split, epochs, losses, seed, ...
=====================  ==========================================================

Methods: ``forward(x[batch, context]) -> [batch, predict]`` float32, audio at
the input's level; ``predict_normalised`` (training only needs it eager).
:func:`validate_generator` runs it on noise and silence (finite, right shape);
:func:`save_generator` also checks the round trip (identical outputs after
loading), like :func:`genredream.models.contract.save`. Shipped generators live in
``models/pretrained/generators/<genre>.pt``; ``$GENREDREAM_GENERATORS``
(``os.pathsep``-separated) or ``~/.genredream/generators`` are searched first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "GENERATOR_TASK",
    "GENERATORS_DIR",
    "GeneratorFile",
    "build_generator",
    "check_generator_meta",
    "find_generator",
    "generator_dirs",
    "list_generators",
    "load_generator",
    "read_generator_meta",
    "save_generator",
    "validate_generator",
]

GENERATOR_TASK = "generator"
GENERATORS_DIR = Path(__file__).resolve().parent.parent / "pretrained" / "generators"
ARCH = "doyle-gru"
LICENCE = "CC0-1.0 (weights trained on genredream's synthetic corpus)"


def _bad(where, key, why):
    from genredream.models.archive import ModelFileError

    return ModelFileError(f"{where}: invalid generator metadata: {key}: {why}")


def check_generator_meta(meta, where="metadata") -> dict:
    """Check a generator's ``genredream.json``; return it. Raises ModelFileError naming the field."""
    if not isinstance(meta, dict):
        raise _bad(where, "genredream.json", f"must hold a JSON object, got {type(meta).__name__}")
    for key in ("name", "version", "task", "arch", "genre", "sample_rate", "context_samples", "predict_samples", "licence", "provenance"):
        if key not in meta:
            raise _bad(where, key, "missing (required)")
    if meta["task"] != GENERATOR_TASK:
        raise _bad(where, "task", f"must be {GENERATOR_TASK!r} for a generator, got {meta['task']!r} (a classifier? use models.contract.load)")
    for key in ("name", "version", "arch", "genre", "licence"):
        if not isinstance(meta[key], str) or not meta[key].strip():
            raise _bad(where, key, f"must be a non-empty string, got {meta[key]!r}")
    for key in ("sample_rate", "context_samples", "predict_samples"):
        v = meta[key]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise _bad(where, key, f"must be a positive integer, got {v!r}")
    if not isinstance(meta["provenance"], dict):
        raise _bad(where, "provenance", "must be an object")
    return meta


@dataclass
class GeneratorFile:
    """A loaded generator: path, checked metadata and the TorchScript module (eval mode)."""

    path: Path
    meta: dict
    module: object = field(repr=False)

    @property
    def genre(self) -> str:
        return self.meta["genre"]

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def context(self) -> int:
        return int(self.meta["context_samples"])

    @property
    def predict(self) -> int:
        return int(self.meta["predict_samples"])


def read_generator_meta(path) -> dict:
    """The checked metadata of a generator file, without loading torch."""
    from genredream.models.archive import read_meta_json

    path = Path(path)
    meta = read_meta_json(path, "not a genredream generator; save it with models.generator.save_generator", what="generator metadata")
    return check_generator_meta(meta, str(path))


def load_generator(path) -> GeneratorFile:
    """Load a generator file (format, metadata, methods; no run: see :func:`validate_generator`)."""
    from genredream.models.archive import load_module

    path = Path(path).expanduser()
    meta = read_generator_meta(path)
    return GeneratorFile(path, meta, load_module(path))


def _run_checks(path, module, meta):
    import torch

    from genredream.models.archive import ModelFileError, first_line
    from genredream.models.rng import generator

    c, p = int(meta["context_samples"]), int(meta["predict_samples"])
    gen = generator(1234)
    noise = torch.clamp(0.1 * torch.randn(2, c, generator=gen), -1, 1)
    for what, x in (("noise", noise), ("silence", torch.zeros(2, c))):
        with torch.no_grad():
            try:
                y = module(x)
            except Exception as e:
                raise ModelFileError(f"{path}: forward() failed on a [2, {c}] {what} input: {first_line(e)}") from None
        if not isinstance(y, torch.Tensor) or list(y.shape) != [2, p] or y.dtype != torch.float32:
            got = (list(y.shape), str(y.dtype)) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ModelFileError(f"{path}: forward() returned {got} on {what}, expected float32 [2, {p}]")
        if not bool(torch.isfinite(y).all()):
            raise ModelFileError(f"{path}: output has NaN or Inf on {what}")
    return noise


def validate_generator(path) -> GeneratorFile:
    """Load a generator and run it on noise and silence: ``[2, predict]`` float32, finite."""
    g = load_generator(path)
    _run_checks(g.path, g.module, g.meta)
    return g


def save_generator(module, meta, path) -> GeneratorFile:
    """Script, write (with ``genredream.json``), validate and round-trip check a generator.

    Written to a temporary directory first and moved into place only when
    every check passes, like :func:`genredream.models.contract.save`.
    """
    import torch

    from genredream.models.archive import ModelFileError, quiet_torchscript, write_checked

    path = Path(path).expanduser()
    check_generator_meta(meta, str(path))
    meta_json = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    was = module.training
    module.eval()
    try:
        with quiet_torchscript():
            scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
        x = _run_checks(path, scripted, meta)
        with torch.no_grad():
            before = scripted(x)
            eager = module(x)
        if not torch.allclose(before, eager, rtol=1e-5, atol=1e-6):
            raise ModelFileError(f"{path}: scripted output differs from eager by {float((before - eager).abs().max()):.3g}")

        def check(written):
            loaded = validate_generator(written)
            with torch.no_grad():
                after = loaded.module(x)
            if not torch.equal(before, after):
                raise ModelFileError(f"{path}: round trip failed: outputs after loading differ by {float((before - after).abs().max()):.3g}")
            return loaded

        loaded = write_checked(scripted, meta_json, path, check)
    finally:
        module.train(was)
    return GeneratorFile(path, loaded.meta, loaded.module)


def generator_dirs() -> list[Path]:
    """Search order: ``$GENREDREAM_GENERATORS`` or ``~/.genredream/generators``, then the shipped ones."""
    env = os.environ.get("GENREDREAM_GENERATORS")
    user = [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else [Path.home() / ".genredream" / "generators"]
    return user + [GENERATORS_DIR]


def list_generators(dirs=None) -> dict:
    """``{genre: path}`` of the generator files found (first in search order wins); unreadable files are skipped."""
    from genredream.models.archive import ModelFileError

    out = {}
    for d in generator_dirs() if dirs is None else [Path(x) for x in dirs]:
        d = Path(d).expanduser()
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.pt")) + sorted(d.glob("*.pt2")):  # TorchScript first: a name means the .pt
            try:
                genre = read_generator_meta(f)["genre"]
            except ModelFileError:
                continue
            out.setdefault(genre, f)
    return out


def find_generator(genre=None, path=None, dirs=None) -> Path:
    """The file for ``--generator PATH`` or ``--genre G`` (raises ModelFileError listing the genres there are)."""
    from genredream.models.archive import ModelFileError

    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelFileError(f"{p}: file not found")
        return p
    if not genre:
        raise ModelFileError("name a genre (--genre) or a generator file (--generator)")
    found = list_generators(dirs)
    if genre not in found:
        where = ", ".join(str(d) for d in (generator_dirs() if dirs is None else dirs))
        known = ", ".join(sorted(found)) or "none"
        raise ModelFileError(f"no generator for genre {genre!r}; generators installed: {known} (searched {where}); train one with `genredream train-generator`")
    return found[genre]


def build_generator(genre, **sizes):
    """A fresh :class:`DoyleGRU` and its metadata (provenance filled in by training)."""
    from genredream.models.archs.doyle_gru import CONTEXT_SAMPLES, PREDICT_SAMPLES, SAMPLE_RATE, SIZES, TARGET_RMS, DoyleGRU

    s = dict(SIZES, **sizes)
    module = DoyleGRU(**s)
    meta = {
        "name": f"{ARCH}-{genre}",
        "version": "1.0.0",
        "task": GENERATOR_TASK,
        "arch": ARCH,
        "genre": genre,
        "sample_rate": SAMPLE_RATE,
        "context_samples": CONTEXT_SAMPLES,
        "predict_samples": PREDICT_SAMPLES,
        "input": "waveform",
        "level": {"normalised_rms": TARGET_RMS, "in_forward": True},
        "sizes": s,
        "parameters": int(sum(p.numel() for p in module.parameters())),
        "licence": LICENCE,
        "provenance": {"source": "Doyle & Lopez, Genre classification and generation of music samples via neural networks"},
    }
    return module, meta
