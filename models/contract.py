"""Model files: save, load and validate classifiers with metadata.

A genredream model file is a TorchScript archive (``torch.jit.save``), or a
PT2 archive of ``torch.export`` programs (``.pt2``, :mod:`genredream.models.pt2`,
written by :mod:`genredream.models.export`), with an extra file
``genredream.json`` describing it. Any file that follows this contract runs
in the engine, whoever trained it; docs/models.md compares the formats.

Metadata: ``genredream.json``, a JSON object whose keys
:mod:`genredream.models.metadata` lists and checks (:func:`check_meta`).

Methods the module must have (a ``.pt2`` file: one program per method)
----------------------------------------------------------------------
* ``forward(x) -> Tensor[batch, n_labels]`` (float32 logits),
* ``features(x) -> List[Tensor]``, one tensor per ``layers`` entry, batch first,
* for ``input == "mel"``: ``frontend(wave[batch, samples]) -> mel`` in torch,
  agreeing with :mod:`genredream.engine.mel`.

Optional: a mel model whose front end is convolutions along time may add the
frame-branch methods (:data:`genredream.models.incremental.STREAM_METHODS`, described
there). The engine
then computes each window's front end only where it changed since the last
one. :func:`validate` checks that they agree with ``forward``.

Where models are found: :mod:`genredream.models.registry`. The archive itself
(opening it, finding ``genredream.json``): :mod:`genredream.models.archive`.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genredream.engine.mel import MelConfig
from genredream.models.archive import META_NAME, ModelFileError, first_line, load_module, open_archive, quiet_torchscript, write_checked
from genredream.models.metadata import check_meta, input_shape_of, n_samples, read_meta
from genredream.models.incremental import FrameBranchRunner, supports_streaming
from genredream.models.rng import generator

__all__ = [
    "META_NAME",
    "ModelFileError",
    "LoadedModel",
    "check_meta",
    "load",
    "read_meta",
    "save",
    "validate",
]

# Validation inputs: a batch of 2 (so batch-size bugs show), noise at about
# -20 dBFS RMS (within [-1, 1] like real audio) and digital silence.
_VALIDATE_BATCH = 2
_NOISE_STD = 0.1
_NOISE_SEED = 1234


# ---------------------------------------------------------------------------
# loading


@dataclass
class LoadedModel:
    """A model file loaded into memory.

    Attributes
    ----------
    path : pathlib.Path
        Where it was loaded from.
    meta : dict
        The checked ``genredream.json``.
    module : torch.jit.ScriptModule or genredream.models.pt2.ExportedModel
        The model, in eval mode, on the CPU.
    """

    path: Path
    meta: dict
    module: Any = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def window_seconds(self) -> float:
        return float(self.meta["window_seconds"])

    @property
    def n_samples(self) -> int:
        """Samples in one window at :attr:`sample_rate`."""
        return n_samples(self.meta)

    @property
    def input(self) -> str:
        return self.meta["input"]

    @property
    def layers(self) -> list[str]:
        return list(self.meta["layers"])

    @property
    def mel_config(self) -> MelConfig | None:
        """The front end's :class:`genredream.engine.mel.MelConfig`, or None for waveform models."""
        return MelConfig.from_dict(self.meta["mel"]) if self.meta["input"] == "mel" else None

    def input_shape(self, batch: int = 1) -> list[int]:
        """Shape ``forward`` takes: ``[batch, samples]`` or ``[batch, n_mels, frames]``."""
        return input_shape_of(self.meta, batch)


def has_method(module, name: str) -> bool:
    """True if ``module`` (a TorchScript, exported or eager module) has a callable method ``name``."""
    provides = getattr(type(module), "provides", None)
    if provides is not None:
        return bool(provides(module, name))
    c = getattr(module, "_c", None)
    if c is not None and hasattr(c, "_has_method"):
        return bool(c._has_method(name))
    return callable(getattr(module, name, None))


def load(path) -> LoadedModel:
    """Load a model file and check its format, metadata and methods (no model run).

    Use :func:`validate` to also run the model on test inputs; the engine
    does, before a model replaces a running one.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.pt`` file written by :func:`save`, a ``.pt2`` file written by
        :func:`genredream.models.export.save_pt2` (or any file following the contract).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelFileError
        With a message naming the problem (see :func:`read_meta`) or a missing method.
    """
    path = Path(path).expanduser()
    meta = read_meta(path)
    with open_archive(path) as zf:
        # The CRC check reads every entry once (a few MB): it catches bytes
        # damaged in transit that torch's loader would accept as weights.
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
            raise ModelFileError(f"{path}: truncated or corrupt: {e}; export or download it again") from None
        if bad is not None:
            raise ModelFileError(f"{path}: truncated or corrupt: entry {bad} fails its checksum; export or download it again")
    module = load_module(path)
    required = ["forward", "features"] + (["frontend"] if meta["input"] == "mel" else [])
    for name in required:
        if not has_method(module, name):
            extra = " (mel models must include their front end)" if name == "frontend" else ""
            raise ModelFileError(
                f"{path}: missing method {name}(){extra}; TorchScript keeps only forward and methods marked @torch.jit.export, "
                "a .pt2 file only the programs it was exported with"
            )
    return LoadedModel(path=path, meta=meta, module=module)


def _check_output(path, out, what: str, n: int) -> None:
    if not isinstance(out, torch.Tensor):
        raise ModelFileError(f"{path}: forward() returned {type(out).__name__} on {what}, expected a Tensor [2, {n}]")
    shape = list(out.shape)
    if shape != [_VALIDATE_BATCH, n]:
        raise ModelFileError(f"{path}: wrong output shape {shape}, expected [2, {n}] for {n} labels")
    if out.dtype != torch.float32:
        raise ModelFileError(f"{path}: wrong output dtype {out.dtype} on {what}, expected torch.float32")
    if not bool(torch.isfinite(out).all()):
        raise ModelFileError(f"{path}: output has NaN or Inf on {what}")


def _check_streaming(path, m, x, expected) -> None:
    """A model offering the frame-branch methods must agree with its own forward(),
    computed whole (nothing reused) and as the engine computes successive
    windows (``FrameBranchRunner``: the compiled step, reusing the last window)."""
    try:
        runner = FrameBranchRunner(m)
        got = runner.whole(x)
    except Exception as e:
        raise ModelFileError(f"{path}: the streaming methods failed on a {list(x.shape)} input: {first_line(e)}") from None
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        shape = list(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise ModelFileError(f"{path}: stream_tail() returned {shape}, expected {list(expected.shape)} like forward()")
    dev = float((got - expected).abs().max())
    if not dev <= 1e-4 * (1.0 + float(expected.abs().max())):
        raise ModelFileError(
            f"{path}: the streaming methods disagree with forward() by {dev:.3g} in the logits; "
            "the engine would score windows differently from the network"
        )
    # Two successive windows of one stream (the batch's two inputs end to end),
    # the second moved on by a tenth of a window: the engine's path.
    t = x.shape[2]
    stream = torch.cat([x[0], x[1]], dim=1).numpy()
    try:
        for end in (t, t + max(1, t // 10)):
            window = stream[:, end - t : end]
            got = runner(window, end)
            want = m(torch.from_numpy(window)[None])
            dev = float((got - want).abs().max())
            # Tighter than the whole-window check: reused outputs are the same
            # arithmetic on the same frames (musicnn: within 1e-7).
            if not dev <= 1e-5 * (1.0 + float(want.abs().max())):
                raise ModelFileError(
                    f"{path}: the streaming methods, reusing the last window, disagree with forward() by {dev:.3g} "
                    "in the logits; the engine would score windows differently from the network"
                )
    except ModelFileError:
        raise
    except Exception as e:
        raise ModelFileError(f"{path}: the streaming methods failed on successive windows: {first_line(e)}") from None


def validate(path) -> LoadedModel:
    """Load a model file and check that it behaves as the contract says.

    Checks, in order: the file exists and is readable; it is a TorchScript
    archive (not a ``torch.save`` pickle, random bytes, or truncated); it has
    valid ``genredream.json`` metadata; it has ``forward``, ``features`` and
    (mel models) ``frontend``; then, on a batch of 2 windows of the declared
    shape (noise at -20 dBFS and silence): for mel models ``frontend(wave)``
    has shape ``[2, n_mels, frames]``, float32, finite; ``forward`` returns
    float32 ``[2, n_labels]``, finite on both; ``features`` returns a
    non-empty list of ``len(layers)`` finite tensors with batch dim 2.

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelFileError
        ``"<path>: <what is wrong>"`` for the first failed check.
    """
    lm = load(path)
    path, m, meta = lm.path, lm.module, lm.meta
    n = len(meta["labels"])
    shape = lm.input_shape(_VALIDATE_BATCH)
    gen = generator(_NOISE_SEED)
    noise = torch.clamp(_NOISE_STD * torch.randn(_VALIDATE_BATCH, lm.n_samples, generator=gen), -1.0, 1.0)
    silence = torch.zeros(_VALIDATE_BATCH, lm.n_samples)
    with torch.no_grad():
        inputs = []
        for what, wave in (("noise", noise), ("silence", silence)):
            if meta["input"] == "mel":
                try:
                    x = m.frontend(wave)
                except Exception as e:
                    raise ModelFileError(f"{path}: frontend() failed on a [2, {lm.n_samples}] waveform: {first_line(e)}") from None
                if not isinstance(x, torch.Tensor) or list(x.shape) != shape:
                    got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                    raise ModelFileError(f"{path}: frontend() returned {got}, expected mel shape {shape} from the mel config")
                if x.dtype != torch.float32:
                    raise ModelFileError(f"{path}: frontend() returned dtype {x.dtype}, expected torch.float32")
                if not bool(torch.isfinite(x).all()):
                    raise ModelFileError(f"{path}: frontend() has NaN or Inf on {what}")
            else:
                x = wave
            inputs.append((what, x))
        for what, x in inputs:
            try:
                out = m(x)
            except Exception as e:
                raise ModelFileError(f"{path}: forward() failed on a {shape} {what} input: {first_line(e)}") from None
            _check_output(path, out, what, n)
        if meta["input"] == "mel" and supports_streaming(m):
            _check_streaming(path, m, inputs[0][1], m(inputs[0][1]))
        try:
            feats = m.features(inputs[0][1])
        except Exception as e:
            raise ModelFileError(f"{path}: features() failed on a {shape} input: {first_line(e)}") from None
    if not isinstance(feats, list) or not feats:
        raise ModelFileError(f"{path}: features() must return a non-empty list of tensors, got {type(feats).__name__}")
    if len(feats) != len(meta["layers"]):
        raise ModelFileError(
            f"{path}: features() returned {len(feats)} tensors but metadata layers names {len(meta['layers'])}: {meta['layers']}"
        )
    for name, f in zip(meta["layers"], feats):
        if not isinstance(f, torch.Tensor) or f.dim() < 1 or f.shape[0] != _VALIDATE_BATCH:
            got = list(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ModelFileError(f"{path}: feature {name!r} has shape {got}, expected batch dimension 2 first")
        if not bool(torch.isfinite(f).all()):
            raise ModelFileError(f"{path}: feature {name!r} has NaN or Inf on noise")
    return lm


# ---------------------------------------------------------------------------
# saving


def save(module, meta: dict, path) -> LoadedModel:
    """Script ``module``, write it with its metadata, and prove the file works.

    Steps: check ``meta``; ``torch.jit.script`` the module in eval mode (a
    ScriptModule is used as is); write to a temporary file next to ``path``
    with ``genredream.json`` as an extra file; :func:`validate` it; check the
    round trip (outputs of the module before saving equal those of the loaded
    file on the same random input, and the scripted module agrees with the
    eager one); only then move it to ``path``. A failed export leaves no file.

    Parameters
    ----------
    module : torch.nn.Module or torch.jit.ScriptModule
        The model. Its train/eval mode is restored afterwards.
    meta : dict
        Metadata (see module docstring); ``models.archs`` factories build it.
    path : str or os.PathLike
        Destination, conventionally ``<name>.pt``.

    Returns
    -------
    LoadedModel
        The saved file, loaded and validated.
    """
    path = Path(path).expanduser()
    check_meta(meta, str(path))
    try:
        meta_json = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: invalid metadata: not JSON-serialisable ({e})") from None
    was_training = module.training
    module.eval()
    try:
        if isinstance(module, torch.jit.ScriptModule):
            scripted = module
        else:
            try:
                with quiet_torchscript():
                    scripted = torch.jit.script(module)
            except Exception as e:
                raise ModelFileError(f"{path}: torch.jit.script failed: {first_line(e)}") from e
        scripted.eval()
        gen = generator(_NOISE_SEED + 1)
        n = n_samples(meta)
        wave = torch.clamp(_NOISE_STD * torch.randn(_VALIDATE_BATCH, n, generator=gen), -1.0, 1.0)
        with torch.no_grad():
            x = scripted.frontend(wave) if meta["input"] == "mel" else wave
            before = scripted(x)
            eager = module(x) if module is not scripted else before
        if not torch.allclose(eager, before, rtol=1e-5, atol=1e-6):
            raise ModelFileError(
                f"{path}: scripted output differs from eager output by {float((eager - before).abs().max()):.3g}; "
                "the model uses Python behaviour TorchScript does not capture"
            )

        def check(written):
            loaded = validate(written)
            with torch.no_grad():
                x2 = loaded.module.frontend(wave) if meta["input"] == "mel" else wave
                after = loaded.module(x2)
            if not torch.equal(before, after):
                raise ModelFileError(
                    f"{path}: round trip failed: outputs after loading differ by "
                    f"{float((before - after).abs().max()):.3g} from those before saving"
                )
            return loaded

        loaded = write_checked(scripted, meta_json, path, check)
    finally:
        module.train(was_training)
    return LoadedModel(path=path, meta=loaded.meta, module=loaded.module)


_MOVED_TO_REGISTRY = ("PRETRAINED_DIR", "MODEL_SUFFIXES", "user_model_dirs", "model_dirs", "list_models", "resolve_model")


def __getattr__(name):
    # Model discovery lives in models/registry.py; callers written before the
    # move (and branches merged after it) still find it here.
    if name in _MOVED_TO_REGISTRY:
        from genredream.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
