"""`genredream validate FILE...`: check model files against the TorchScript contract.

The checks are :func:`genredream.models.contract.validate`, run once per file
content (:func:`genredream.models.validated.validate_once`).
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.description = (
        "Check a model file against the genredream TorchScript contract: metadata schema, methods "
        "(forward, features, frontend for mel models), shapes and dtype on a batch of 2, finite outputs "
        "on noise and silence."
    )
    p.add_argument("file", nargs="+", help="model file(s) (.pt)")
    p.add_argument(
        "--force",
        action="store_true",
        help="run the checks even for a file that passed before (passes are remembered by the file's SHA-256, "
        "in ~/.genredream/validated.json; see models/validated.py)",
    )


def main(args) -> int:
    from rich.console import Console

    from genredream.models.contract import ModelFileError
    from genredream.models.validated import validate_once

    con = Console()
    bad = 0
    for f in args.file:
        try:
            m, ran = validate_once(f, force=getattr(args, "force", False))
        except ModelFileError as e:
            con.print(f"[red]FAIL[/] {e}")
            bad += 1
        else:
            how = "" if ran else " (these exact bytes passed before; --force checks again)"
            con.print(f"[green]ok[/]   {f}: {m.name}, {len(m.labels)} labels, {m.input} input at {m.sample_rate} Hz, layers {', '.join(m.layers)}{how}")
    return 1 if bad else 0
