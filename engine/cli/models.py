"""`genredream models`: the shipped and user models, what they take and how well they were measured.

Discovery is :mod:`genredream.models.registry`; this module only shows it.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments", "main", "measured_on"]


def add_arguments(p: argparse.ArgumentParser):
    p.description = (
        "List the shipped models (models/pretrained) and your own "
        "($GENREDREAM_MODELS, or ~/.genredream/models): name (and which is the default), format (TorchScript or "
        ".pt2 torch.export programs), labels, input, sample rate, "
        "dreamable layers, size, and each accuracy figure with the data it was measured on."
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="models_action", metavar="{export}")
    e = sub.add_parser(
        "export",
        help="convert a model to a torch.export program file (.pt2), checked against the original",
        description=(
            "Convert an installed model (name or path) to a torch.export program file. The result is validated like "
            "any model file and compared with the original on a fixed input: the largest absolute difference is "
            "printed, and above 1e-5 nothing is written. `make pt2` converts every shipped model this way."
        ),
    )
    e.add_argument("model", help="model name or file (TorchScript .pt; a classifier or a generator)")
    e.add_argument("out", help="the .pt2 file to write")


def measured_on(prov):
    """The data an accuracy figure was measured on, in words a user can weigh.

    The seed networks were trained and tested on the synthetic corpus (MIDI rendered with
    FluidSynth): their 96-100 % says nothing about real recordings, where they can be badly wrong.
    """
    data = str((prov or {}).get("data") or "")
    if "synthetic" in data:
        return "synthetic FluidSynth songs (genredream corpus), not real recordings"
    return data or "not stated"


def _accuracy_text(prov):
    acc = (prov or {}).get("accuracy")
    if isinstance(acc, dict):
        return ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in acc.items() if isinstance(v, (int, float)))
    return str(acc) if acc else ""


def export_main(args) -> int:
    """``genredream models export MODEL OUT.pt2``."""
    from genredream.models.archive import ModelFileError
    from genredream.models.export import TOLERANCE, convert

    try:
        loaded, diff = convert(args.model, args.out)
    except ModelFileError as e:
        print(f"genredream models export: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {loaded.meta['name']} as torch.export programs; max abs difference from the original: {diff:.3g} (limit {TOLERANCE:g})")
    return 0


def main(args) -> int:
    if getattr(args, "models_action", None) == "export":
        return export_main(args)
    from rich.console import Console
    from rich.table import Table

    from genredream.models.classify import default_model
    from genredream.models.contract import ModelFileError, read_meta
    from genredream.models.registry import list_models, model_dirs

    models = list_models()
    try:
        default = str(default_model())
    except ModelFileError:
        default = None
    for m in models:
        m["default"] = default is not None and str(m["path"]) == default
        m["layers"] = None
        m["accuracy_measured_on"] = None
        if not m["error"]:
            try:
                m["layers"] = list(read_meta(m["path"])["layers"])  # what `dream --layer` / `run --dream LAYER` take
            except (ModelFileError, KeyError):
                pass
            m["accuracy_measured_on"] = measured_on(m["provenance"])
    if args.json:
        json.dump(models, sys.stdout, indent=1, default=str)
        print()
        return 0
    con = Console()
    if not models:
        con.print("no models found in " + ", ".join(str(d) for d in model_dirs()))
        return 0
    tab = Table(title="genredream models")
    # The name is what users type: never cut or wrapped, whatever the terminal's width (the other columns give way).
    widest = max(len(m["name"]) + (len(" (default)") if m["default"] else 0) for m in models)
    tab.add_column("name", no_wrap=True, min_width=widest)
    for col in ("format", "input", "rate", "labels", "dreamable layers", "size", "accuracy, and the data it was measured on", "source"):
        tab.add_column(col)
    for m in models:
        if m["error"]:
            tab.add_row(m["name"], "", "[red]unreadable[/]", "", m["error"], "", f"{m['size_bytes'] / 1e6:.1f} MB", "", "")
            continue
        prov = m["provenance"] or {}
        acc_s = _accuracy_text(prov)
        acc_s = f"{acc_s} — on {m['accuracy_measured_on']}" if acc_s else ""
        src = prov.get("source") or prov.get("paper") or ""
        labels = ", ".join(m["labels"][:6]) + (f" +{len(m['labels']) - 6}" if len(m["labels"]) > 6 else "")
        name = m["name"] + (" [bold](default)[/]" if m["default"] else "")
        layers = ", ".join(m["layers"] or []) + ("; or all" if m["layers"] else "")
        fmt = {"pt2": ".pt2 (export)", "torchscript": "TorchScript"}.get(m["format"], m["format"])
        tab.add_row(name, fmt, m["input"], f"{m['sample_rate']} Hz", labels, layers, f"{m['size_bytes'] / 1e6:.1f} MB", acc_s, src)
    con.print(tab)
    for m in models:  # models trained with --from: where they come from (docs/heads.md)
        lin = (m["provenance"] or {}).get("lineage") if not m["error"] else None
        if isinstance(lin, list) and lin:
            con.print(f"lineage: {m['name']} ({len(m['labels'])} genres) <- " + " <- ".join(
                f"{e.get('name')} ({len(e.get('labels') or [])} genres)" for e in reversed(lin) if isinstance(e, dict)))
    con.print("searched: " + ", ".join(str(d) for d in model_dirs()))
    return 0
