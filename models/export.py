"""Writing ``.pt2`` model files: from an eager module, or converted from a TorchScript model file.

* :func:`save_pt2` is :func:`genredream.models.contract.save` for the
  ``torch.export`` format: check the metadata, export the programs
  (:mod:`genredream.models.pt2`), write them to a temporary file, validate it
  as any model file is validated, check that it gives the eager module's
  outputs, then move it into place. A failed export leaves no file.
* :func:`convert` is ``genredream models export MODEL OUT.pt2``: a
  TorchScript file holds code ``torch.export`` cannot trace with a dynamic
  batch (TorchScript specialises every size it sees), so the eager module is
  rebuilt from the architecture the file names (:func:`rebuild`) with the
  file's own weights, checked equal to the file, and exported. The result is
  compared with the TorchScript original on a fixed input: the largest
  absolute difference over every output is reported, and above
  :data:`TOLERANCE` the file is refused.

Which architectures :func:`rebuild` knows: every seed network (by the
metadata's ``arch``), musicnn, musicnn heads and the doyle-gru generator.
Another architecture is exported from its eager module with :func:`save_pt2`
(docs/models.md).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from genredream.models.archive import ModelFileError, first_line
from genredream.models.metadata import check_meta, n_samples
from genredream.models.rng import generator

__all__ = ["TOLERANCE", "convert", "rebuild", "save_pt2", "max_difference"]

#: Largest absolute difference between a ``.pt2`` file's outputs and its source's that export accepts.
TOLERANCE = 1e-5

_SEED = 1235
_BATCH = 2


def _wave(n: int) -> torch.Tensor:
    """The fixed comparison input: a batch of 2 windows of seeded noise at about -20 dBFS."""
    return torch.clamp(0.1 * torch.randn(_BATCH, n, generator=generator(_SEED)), -1.0, 1.0)


def _is_generator(meta: dict) -> bool:
    return meta.get("task") == "generator"


def _methods(module, meta: dict) -> tuple[str, ...]:
    if _is_generator(meta):
        return ("forward", "describe")
    return ("frontend", "forward", "features") if meta["input"] == "mel" else ("forward", "features")


def _outputs(module, meta: dict, wave) -> list[torch.Tensor]:
    """Every output the contract's methods give on ``wave``: front end, logits, features."""
    with torch.no_grad():
        if _is_generator(meta):
            return [module(wave)]
        x = module.frontend(wave) if meta["input"] == "mel" else wave
        outs = [x] if meta["input"] == "mel" else []
        return outs + [module(x)] + list(module.features(x))


def max_difference(a, b, meta: dict, wave) -> float:
    """Largest absolute difference between every output of modules ``a`` and ``b`` on ``wave``."""
    oa, ob = _outputs(a, meta, wave), _outputs(b, meta, wave)
    if len(oa) != len(ob) or any(x.shape != y.shape for x, y in zip(oa, ob)):
        return float("inf")
    return max(float((x - y).abs().max()) for x, y in zip(oa, ob))


def _window(meta: dict) -> int:
    return int(meta["context_samples"]) if _is_generator(meta) else n_samples(meta)


def save_pt2(module, meta: dict, path, reference=None):
    """Export ``module`` (eager, any mode: restored afterwards) with ``meta`` to ``path`` (``.pt2``), checked.

    ``reference``: the module whose outputs the file must give (default
    ``module`` itself; :func:`convert` passes the TorchScript original).

    Returns
    -------
    (loaded, float)
        The written file, loaded and validated (a LoadedModel, or a
        GeneratorFile), and the largest absolute difference from ``reference``.

    Raises
    ------
    ModelFileError
        If the metadata is invalid, an export fails, the file fails validation,
        or it differs from ``reference`` by more than :data:`TOLERANCE`.
    """
    from genredream.models import pt2, pt2_trace

    path = Path(path).expanduser()
    if path.suffix != pt2.SUFFIX:
        raise ModelFileError(f"{path}: a torch.export model file must end in {pt2.SUFFIX}")
    if _is_generator(meta):
        from genredream.models.generator.file import check_generator_meta, validate_generator as validate_file
        check_generator_meta(meta, str(path))
    else:
        from genredream.models.contract import validate as validate_file
        check_meta(meta, str(path))
    meta_json = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    was = module.training
    module.eval()
    try:
        wave = _wave(_window(meta))
        programs, info = pt2_trace.export_module(module, wave, _methods(module, meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=".genredream-export-", dir=path.parent))
        try:
            tmp = tmpdir / path.name
            pt2.write_pt2(programs, info, meta_json, tmp)
            try:
                loaded = validate_file(tmp)
                diff = max_difference(reference if reference is not None else module, loaded.module, meta, wave)
                if not diff <= TOLERANCE:
                    raise ModelFileError(
                        f"{tmp}: the exported programs differ from the original by {diff:.3g} (max abs), "
                        f"above the {TOLERANCE:g} allowed; not written"
                    )
            except ModelFileError as e:
                raise ModelFileError(str(e).replace(str(tmp), str(path))) from None
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    finally:
        module.train(was)
    loaded.path = path
    return loaded, diff


def rebuild(scripted, meta: dict, where: str = "model"):
    """The eager module a TorchScript model file was scripted from, with the file's weights.

    The class TorchScript recorded (``original_name``) and the metadata say
    which architecture to build; its ``state_dict`` must fit exactly.
    """
    from genredream.models import archs

    cls = getattr(scripted, "original_name", type(scripted).__name__)
    state = scripted.state_dict()
    labels = list(meta.get("labels") or [])
    if cls == "MusicnnHead":
        from genredream.models.archs.musicnn_head import from_state

        return from_state(labels, meta["head"], state)[0].eval()
    if cls == "DoyleGRU":
        from genredream.models.archs.doyle_gru import DoyleGRU

        sizes = meta.get("sizes") or {}
        level = meta.get("level") or {}
        net = DoyleGRU(int(meta["context_samples"]), int(meta["predict_samples"]), **{k: int(v) for k, v in sizes.items()},
                       **({"target_rms": float(level["normalised_rms"])} if "normalised_rms" in level else {}))
    elif cls == "Musicnn":
        net = archs.build("musicnn", labels)[0]
    elif meta.get("arch") in archs.ARCHS:
        net = archs.build(meta["arch"], labels)[0]
    else:
        raise ModelFileError(
            f"{where}: cannot convert: its architecture ({cls}, arch {meta.get('arch')!r}) is not one genredream knows; "
            "export your eager module with genredream.models.export.save_pt2 (docs/models.md)"
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFileError(f"{where}: cannot convert: its weights do not fit the {cls} architecture: {first_line(e)}") from None
    return net.eval()


def convert(src, out):
    """``genredream models export``: the model file ``src`` (name or path) as a ``.pt2`` file ``out``.

    Returns ``(loaded, max_abs_diff)`` as :func:`save_pt2`; the difference is
    measured against the source file's own outputs on a fixed input.
    """
    from genredream.models.archive import load_module, read_meta_json
    from genredream.models.registry import resolve_model

    src = resolve_model(src)
    meta = read_meta_json(src, "not a genredream model file")
    if _is_generator(meta):
        from genredream.models.generator.file import load_generator as load_file
    else:
        from genredream.models.contract import load as load_file
    original = load_file(src).module
    if not hasattr(original, "original_name"):  # already an exported program: re-export its own programs
        raise ModelFileError(f"{src}: is already a torch.export (.pt2) model file")
    eager = rebuild(original, meta, str(src))
    from genredream.models.validated import file_digest

    # Which file this one was generated from: tests/test_pt2.py checks the shipped twins are current.
    meta = dict(meta, exported_from={"file": src.name, "sha256": file_digest(src)})
    wave = _wave(_window(meta))
    diff = max_difference(original, eager, meta, wave)
    if not diff <= TOLERANCE:
        raise ModelFileError(f"{src}: the rebuilt {original.original_name} differs from the file by {diff:.3g}; cannot convert")
    return save_pt2(eager, meta, out, reference=original)
