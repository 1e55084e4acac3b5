"""The model file as an archive: a TorchScript or ``torch.export`` (PT2) zip with a ``genredream.json`` entry.

Shared by the classifier contract (:mod:`genredream.models.contract`), the
generator files (:mod:`genredream.models.generator.file`) and the registry
(:mod:`genredream.models.registry`): opening a file with errors that say what
is wrong with it, and finding the metadata entry, without loading the model.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

__all__ = [
    "META_NAME",
    "ModelFileError",
    "open_archive",
    "meta_entry",
    "read_meta_json",
    "jit_load",
    "load_module",
    "file_format",
    "is_pt2",
    "write_checked",
    "quiet_torchscript",
    "first_line",
]

#: Name of the metadata entry inside the archive (``_extra_files`` key).
META_NAME = "genredream.json"


class ModelFileError(Exception):
    """A model file that cannot be used; the message starts with the path and says what to do."""


@contextlib.contextmanager
def quiet_torchscript():
    """Silence torch's "torch.jit.* is deprecated" warnings around our own calls.

    Recent torch releases mark TorchScript deprecated in favour of
    torch.export; TorchScript files stay a model-file format here beside
    ``.pt2`` programs (docs/models.md), and a warning on every TorchScript
    load would only confuse a performer.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning)
        yield


def is_pt2(names) -> bool:
    """True if a zip's entry names are a PT2 archive's (``torch.export.save``: ``archive_format``, ``models/*.json``)."""
    return any(n == "archive_format" or n.endswith("/archive_format") for n in names) and any(
        n.startswith("models/") or "/models/" in n for n in names
    )


def file_format(zf: zipfile.ZipFile) -> str:
    """``"pt2"`` (torch.export programs) or ``"torchscript"``, of an archive :func:`open_archive` accepted."""
    return "pt2" if is_pt2(zf.namelist()) else "torchscript"


def open_archive(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a TorchScript or PT2 zip, or raise the matching ModelFileError."""
    if not path.exists():
        raise ModelFileError(f"{path}: file not found")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, expected a TorchScript model file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ModelFileError(f"{path}: not readable: {e.strerror or e}") from None
    if not head:
        raise ModelFileError(f"{path}: truncated or corrupt: the file is empty; export or download it again")
    if head[:2] != b"PK" and path.suffix == ".pt2":
        raise ModelFileError(f"{path}: not a torch.export (.pt2) file: no zip archive signature; write it with `genredream models export`")
    if head[:2] != b"PK":
        if head[:1] == b"\x80":
            raise ModelFileError(
                f"{path}: not a TorchScript file: it looks like a legacy torch.save pickle; "
                "export the model with models.contract.save (torch.jit.script + genredream.json)"
            )
        raise ModelFileError(
            f"{path}: not a TorchScript file: no zip archive signature; "
            "expected a file written by torch.jit.save (use models.contract.save)"
        )
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ModelFileError(
            f"{path}: truncated or corrupt: the zip archive cannot be read ({e}); export or download it again"
        ) from None
    names = zf.namelist()
    is_script = any("/code/" in n for n in names) and any(n.endswith("/constants.pkl") for n in names)
    if not is_script and not is_pt2(names):
        zf.close()
        if any(n.endswith("data.pkl") for n in names):
            raise ModelFileError(
                f"{path}: not a TorchScript file: it is a torch.save archive (a state_dict or pickled "
                "module), which the engine cannot run; export with models.contract.save"
            )
        raise ModelFileError(f"{path}: not a TorchScript file: a zip archive without TorchScript code")
    return zf


def meta_entry(zf: zipfile.ZipFile) -> str | None:
    for n in zf.namelist():
        if n.endswith("/extra/" + META_NAME) or n == "extra/" + META_NAME:
            return n
    return None


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (torch's run to pages), or its type."""
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def read_meta_json(path: Path, missing: str, what: str = "metadata"):
    """The parsed ``genredream.json`` of the archive at ``path``, unchecked.

    ``missing`` finishes the error for a TorchScript file without the entry
    (what the file is not, and how to write one); ``what`` names the metadata
    in the error for bytes that are not JSON.
    """
    with open_archive(path) as zf:
        entry = meta_entry(zf)
        if entry is None:
            raise ModelFileError(f"{path}: missing {META_NAME} metadata: {missing}")
        try:
            raw = zf.read(entry)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
            raise ModelFileError(f"{path}: truncated or corrupt: cannot read {META_NAME} ({e})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: invalid {what}: {META_NAME}: not valid UTF-8 JSON ({e})") from None


def jit_load(path: Path):
    """``torch.jit.load`` on the CPU, in eval mode; a file torch cannot read is a ModelFileError."""
    import torch

    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch raises RuntimeError and others; the message is what matters
        raise ModelFileError(f"{path}: truncated or corrupt: torch.jit.load failed: {first_line(e)}") from None
    module.eval()
    return module


def load_module(path: Path, zf: zipfile.ZipFile | None = None):
    """The model in the file at ``path``: a ScriptModule, or for a ``.pt2`` archive the
    programs behind the same method names (:class:`genredream.models.pt2.ExportedModel`,
    loaded without TorchScript)."""
    if zf is None:
        with open_archive(path) as z:
            fmt = file_format(z)
    else:
        fmt = file_format(zf)
    if fmt == "pt2":
        from genredream.models.pt2 import load_programs

        with open_archive(path) as z:
            return load_programs(path, z)
    return jit_load(path)


def write_checked(scripted, meta_json: str, path: Path, check):
    """Write ``scripted`` with ``meta_json`` to ``path`` only once ``check(written_file)`` passes.

    The file is written under its final name inside a private temporary
    directory next to ``path`` (the archive's root folder is named after the
    file), checked, then moved into place: a failed export leaves no file.
    Returns what ``check`` returns; its errors name ``path``, not the temporary file.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".genredream-save-", dir=path.parent))
    try:
        tmp = tmpdir / path.name
        with quiet_torchscript():
            torch.jit.save(scripted, str(tmp), _extra_files={META_NAME: meta_json})
        try:
            result = check(tmp)
        except ModelFileError as e:
            raise ModelFileError(str(e).replace(str(tmp), str(path))) from None
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return result
