"""Where models are found: the model directories, ``genredream models``, ``--model NAME``.

Shipped models live in ``models/pretrained/``. User models live in
``~/.genredream/models``, or, when the environment variable
``GENREDREAM_MODELS`` is set, in the directories it lists (separated by
``os.pathsep``, ``:`` on Unix), which then replace ``~/.genredream/models``.
User directories are searched first, so a user model shadows a shipped
model of the same name. Files ending in ``.pt`` or ``.ts`` (TorchScript) or
``.pt2`` (``torch.export`` programs, :mod:`genredream.models.pt2`) are models.

The shipped models' ``.pt2`` twins are generated from the shipped
TorchScript files (``make pt2``, :mod:`genredream.models.export`) into
``models/pretrained/pt2/``, searched after ``models/pretrained``: a name
means the TorchScript file, ``NAME.pt2`` the exported one.

Reads only metadata (:func:`genredream.models.metadata.read_meta`): listing
the models loads none of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from genredream.models.archive import ModelFileError, file_format, open_archive
from genredream.models.metadata import read_meta

__all__ = ["PRETRAINED_DIR", "PRETRAINED_PT2_DIR", "MODEL_SUFFIXES", "user_model_dirs", "model_dirs", "list_models", "resolve_model"]

#: Shipped model files.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

#: The shipped models as torch.export programs, generated from PRETRAINED_DIR's (``make pt2``; not in git).
PRETRAINED_PT2_DIR = PRETRAINED_DIR / "pt2"

MODEL_SUFFIXES = (".pt", ".ts", ".pt2")


def user_model_dirs() -> list[Path]:
    """``$GENREDREAM_MODELS`` (os.pathsep-separated) if set, else ``~/.genredream/models``."""
    env = os.environ.get("GENREDREAM_MODELS")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".genredream" / "models"]


def model_dirs() -> list[Path]:
    """Directories searched for models, in priority order: user dirs, then shipped (TorchScript, then .pt2)."""
    return user_model_dirs() + [PRETRAINED_DIR, PRETRAINED_PT2_DIR]


def _model_files(search_dirs) -> list[Path]:
    files = []
    for d in search_dirs:
        d = Path(d).expanduser()
        if d.is_dir():
            files.extend(sorted(p for p in d.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file()))
    return files


def list_models(search_dirs=None) -> list[dict]:
    """Describe the model files in ``search_dirs`` (default :func:`model_dirs`), for ``genredream models``.

    Reads only metadata (no model is loaded or run). A file whose metadata
    cannot be read is listed with ``error`` set and the other fields None.

    Returns
    -------
    list of dict
        Keys: ``name``, ``path`` (str), ``format`` (``"torchscript"`` or
        ``"pt2"``), ``labels``, ``input``, ``sample_rate``,
        ``window_seconds``, ``size_bytes``, ``provenance``, ``licence``,
        ``version``, ``error`` (None or the ModelFileError message), in search order.
    """
    dirs = model_dirs() if search_dirs is None else [Path(d) for d in search_dirs]
    out = []
    for f in _model_files(dirs):
        entry = {
            "name": f.stem,
            "path": str(f),
            "format": None,
            "labels": None,
            "input": None,
            "sample_rate": None,
            "window_seconds": None,
            "size_bytes": f.stat().st_size,
            "provenance": None,
            "licence": None,
            "version": None,
            "error": None,
        }
        try:
            meta = read_meta(f)
            with open_archive(f) as zf:
                entry["format"] = file_format(zf)
        except ModelFileError as e:
            entry["error"] = str(e)
        else:
            for k in ("name", "labels", "input", "sample_rate", "window_seconds", "provenance", "licence", "version"):
                entry[k] = meta[k]
        out.append(entry)
    return out


def resolve_model(name_or_path, search_dirs=None) -> Path:
    """The file a ``--model`` argument means: an existing path, or a model name.

    A name matches a model's metadata ``name`` or its file name without
    suffix, in the search order of :func:`model_dirs` (user models first).

    Raises
    ------
    ModelFileError
        For a path that does not exist, or an unknown name (the message lists
        the known names and the directories searched).
    """
    s = os.fspath(name_or_path)
    p = Path(s).expanduser()
    if p.is_file():
        return p
    dirs = model_dirs() if search_dirs is None else [Path(d) for d in search_dirs]
    if os.sep in s or (os.altsep and os.altsep in s):
        raise ModelFileError(f"{p}: file not found")
    if p.suffix in MODEL_SUFFIXES:
        # A file name: the first model directory holding it (``musicnn-msd.pt2``: the exported twin).
        for d in dirs:
            if (Path(d).expanduser() / s).is_file():
                return Path(d).expanduser() / s
        raise ModelFileError(f"{p}: file not found (nor in {', '.join(str(d) for d in dirs)})")
    models = list_models(dirs)
    for m in models:
        if m["error"] is None and m["name"] == s:
            return Path(m["path"])
    for m in models:
        if Path(m["path"]).stem == s:
            return Path(m["path"])
    known = sorted({m["name"] for m in models if m["error"] is None})
    where = ", ".join(str(d) for d in dirs)
    if not known:
        raise ModelFileError(f"unknown model {s!r}: no models installed (searched {where})")
    raise ModelFileError(f"unknown model {s!r}; known models: {', '.join(known)} (searched {where})")
