"""The model file as an archive: a TorchScript zip with a ``genredream.json`` entry.

Shared by the classifier contract (:mod:`genredream.models.contract`), the
generator files (:mod:`genredream.models.generator.file`) and the registry
(:mod:`genredream.models.registry`): opening a file with errors that say what
is wrong with it, and finding the metadata entry, without loading the model.
"""

from __future__ import annotations

import contextlib
import warnings
import zipfile
from pathlib import Path

__all__ = ["META_NAME", "ModelFileError", "open_archive", "meta_entry", "quiet_torchscript"]

#: Name of the metadata entry inside the archive (``_extra_files`` key).
META_NAME = "genredream.json"


class ModelFileError(Exception):
    """A model file that cannot be used; the message starts with the path and says what to do."""


@contextlib.contextmanager
def quiet_torchscript():
    """Silence torch's "torch.jit.* is deprecated" warnings around our own calls.

    Recent torch releases mark TorchScript deprecated in favour of
    torch.export; it remains this project's model-file format (docs/architecture.md), and
    a warning on every model load would only confuse a performer.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning)
        yield


def open_archive(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a TorchScript zip, or raise the matching ModelFileError."""
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
    if not is_script:
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
        if n.endswith("/extra/" + META_NAME):
            return n
    return None
