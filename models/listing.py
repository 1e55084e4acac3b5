"""`genredream models` and `genredream validate FILE`."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_models_arguments", "models_main", "add_validate_arguments", "validate_main"]


def add_models_arguments(p: argparse.ArgumentParser):
    p.description = (
        "List the shipped models (models/pretrained) and your own "
        "($GENREDREAM_MODELS, or ~/.genredream/models): name, labels, input, sample rate, size, provenance."
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def models_main(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from models.contract import list_models, model_dirs

    models = list_models()
    if args.json:
        json.dump(models, sys.stdout, indent=1, default=str)
        print()
        return 0
    con = Console()
    if not models:
        con.print("no models found in " + ", ".join(str(d) for d in model_dirs()))
        return 0
    tab = Table(title="genredream models")
    for col in ("name", "input", "rate", "labels", "size", "provenance"):
        tab.add_column(col)
    for m in models:
        if m["error"]:
            tab.add_row(m["name"], "[red]unreadable[/]", "", m["error"], f"{m['size_bytes'] / 1e6:.1f} MB", "")
            continue
        prov = m["provenance"] or {}
        acc = prov.get("accuracy")
        acc_s = ", ".join(f"{k} {v:.0%}" for k, v in acc.items() if isinstance(v, (int, float))) if isinstance(acc, dict) else (str(acc) if acc else "")
        src = prov.get("source") or prov.get("paper") or ""
        labels = ", ".join(m["labels"][:6]) + (f" +{len(m['labels']) - 6}" if len(m["labels"]) > 6 else "")
        tab.add_row(m["name"], m["input"], f"{m['sample_rate']} Hz", labels, f"{m['size_bytes'] / 1e6:.1f} MB", "; ".join(x for x in (src, acc_s) if x))
    con.print(tab)
    for m in models:  # models trained with --from: where they come from (docs/heads.md)
        lin = (m["provenance"] or {}).get("lineage") if not m["error"] else None
        if isinstance(lin, list) and lin:
            con.print(f"lineage: {m['name']} ({len(m['labels'])} genres) <- " + " <- ".join(
                f"{e.get('name')} ({len(e.get('labels') or [])} genres)" for e in reversed(lin) if isinstance(e, dict)))
    con.print("searched: " + ", ".join(str(d) for d in model_dirs()))
    return 0


def add_validate_arguments(p: argparse.ArgumentParser):
    p.description = (
        "Check a model file against the genredream TorchScript contract: metadata schema, methods "
        "(forward, features, frontend for mel models), shapes and dtype on a batch of 2, finite outputs "
        "on noise and silence."
    )
    p.add_argument("file", nargs="+", help="model file(s) (.pt)")


def validate_main(args) -> int:
    from rich.console import Console

    from models.contract import ModelFileError, validate

    con = Console()
    bad = 0
    for f in args.file:
        try:
            m = validate(f)
        except ModelFileError as e:
            con.print(f"[red]FAIL[/] {e}")
            bad += 1
        else:
            con.print(f"[green]ok[/]   {f}: {m.name}, {len(m.labels)} labels, {m.input} input at {m.sample_rate} Hz, layers {', '.join(m.layers)}")
    return 1 if bad else 0
