"""Training from a trained model (``genredream train DATA --from MODEL.pt``): labels, weights, lineage.

Smith's seed system was "structured to take in additional genres over time".
Here that means: the known genres keep their label and their output unit
(index ``i`` stays genre ``labels[i]``, so OSC clients, patches and reports
that index by unit keep working), and every genre folder the model does not
know yet is appended as a new unit, in sorted order. All weights are copied;
the output layer grows by rows, and the new rows start from the
architecture's own initialisation.

Also here, because both trainers write them: the ``data`` block of a report
(what the accuracy was measured on) and the lineage kept in the metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["extend_labels", "output_layer", "transplant", "lineage", "data_provenance"]


def extend_labels(old, found):
    """The parent's labels in their order, then the genres of ``found`` it does not know, sorted."""
    old = list(old)
    return old + sorted(g for g in found if g not in old)


def output_layer(module, n_labels: int) -> str:
    """Name of the output layer: the last ``nn.Linear`` with ``n_labels`` outputs."""
    from torch import nn

    name = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Linear) and m.out_features == n_labels:
            name = n
    if name is None:
        raise ValueError(f"no linear output layer with {n_labels} units found")
    return name


def transplant(parent_state: dict, module, n_old: int) -> list:
    """Copy a parent's ``state_dict`` into ``module`` (same architecture, ``n_old`` or more labels).

    Tensors of equal shape are copied; a tensor that grew along its first
    axis from ``n_old`` (the output layer's weight and bias) gets the
    parent's rows first and keeps its fresh initialisation for the new ones.

    Returns
    -------
    list of str
        The keys that grew.

    Raises
    ------
    ValueError
        A key missing on either side or a shape that does not fit: the
        parent is not this architecture.
    """
    import torch

    state = module.state_dict()
    missing = sorted(set(state) - set(parent_state))
    extra = sorted(set(parent_state) - set(state))
    if missing or extra:
        raise ValueError(f"the model's weights do not fit this architecture (missing {missing[:4]}, unexpected {extra[:4]})")
    grown = []
    with torch.no_grad():
        for k, new in state.items():
            old = parent_state[k]
            if old.shape == new.shape:
                new.copy_(old)
            elif old.dim() >= 1 and old.shape[1:] == new.shape[1:] and old.shape[0] == n_old and new.shape[0] > n_old:
                new[:n_old].copy_(old)
                grown.append(k)
            else:
                raise ValueError(f"weight {k}: shape {list(old.shape)} in the model, {list(new.shape)} here")
    module.load_state_dict(state)
    return grown


def lineage(parent_meta: dict, parent_path) -> list:
    """The parent's lineage (oldest first) plus the parent itself."""
    from genredream.models.embed_cache import file_sha256

    prov = parent_meta.get("provenance") or {}
    earlier = prov.get("lineage") if isinstance(prov.get("lineage"), list) else []
    return earlier + [
        {
            "name": parent_meta["name"],
            "file": str(Path(parent_path).resolve()),
            "sha256": file_sha256(parent_path),
            "labels": list(parent_meta["labels"]),
        }
    ]


def data_provenance(root) -> dict:
    """What a collection is, for a report's ``data`` block.

    A folder written by ``genredream corpus`` (it has ``corpus.json``) is
    synthetic: procedural MIDI rendered with the soundfont named there.
    Anything else is taken to be real recordings.
    """
    root = Path(root).resolve()
    out = {"path": str(root), "kind": "real", "soundfont": None, "split": "song-level"}
    for d in (root, root.parent):
        manifest = d / "corpus.json"
        if manifest.is_file():
            try:
                m = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            sf = m.get("soundfont") or {}
            out.update(kind="synthetic", soundfont=Path(sf.get("path", "unknown")).name, generator_seed=m.get("seed"))
            break
    return out
