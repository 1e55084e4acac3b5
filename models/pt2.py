"""Model files as ``torch.export`` programs (``.pt2``): written, recognised and loaded without TorchScript.

A ``.pt2`` model file is a PT2 archive (``torch.export.pt2_archive``, the
format ``torch.export.save`` writes) holding one exported program per method
of the contract, under the method's name, and two extra files:

* ``genredream.json``: the same metadata as a TorchScript model file
  (:mod:`genredream.models.metadata`);
* ``genredream-programs.json``: ``{"programs": [...], "values": {...}}``, the
  program names, and what the methods without a tensor input or output
  return (``stream_context`` and ``stream_mid_context``: frame counts; a
  generator's ``describe``), by method name.

``torch.export`` traces one callable per program, with integers fixed, so a
method taking integers is exported once per value it is called with:

==============================  ===========================================
program                         method
==============================  ===========================================
``forward``                     ``forward(x)``
``features``                    ``features(x)``
``frontend``                    ``frontend(wave)`` (mel models)
``stream_prepare``              ``stream_prepare(x)``
``stream_constants_<i>``        ``stream_constants(i)`` (no input)
``stream_branch_<i>_<a>_<b>``   ``stream_branch(i, xb, a, b, constants)``
``stream_mid_constants_<j>``    ``stream_mid_constants(j)`` (no input)
``stream_mid_<j>_<a>_<b>``      ``stream_mid(j, x, a, b, constants)``
``stream_tail``                 ``stream_tail(front, mids)``
==============================  ===========================================

The paddings ``a, b`` exported per stage are those the incremental step was
seen to ask for when the programs were traced. Batch and time are dynamic
(``Dim.AUTO``). A program traced again where a network takes another code
path at another size is a variant, ``<name>__1``, ``<name>__2``...: the
loaded model runs the first whose guards accept the input's shapes.
A method returning nothing for some ``i`` (a stage without constants) has
no program; ``values["no_constants"]`` lists it.

:class:`ExportedModel` puts the programs back behind the methods' names, so the
engine calls a loaded ``.pt2`` model as it calls a TorchScript one. Writing one
from an eager module: :func:`genredream.models.export.save_pt2` (tracing in
:mod:`genredream.models.pt2_trace`); from a TorchScript file:
:mod:`genredream.models.export`. Nothing here calls ``torch.jit``.

``torch.export`` is one of the two parts of torch the command line's start
defers (:mod:`genredream.engine.startup`): reading ``torch.export`` here
imports it then, so only a process that loads a ``.pt2`` file pays for it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch
from torch import nn

from genredream.models.archive import META_NAME, ModelFileError, first_line, is_pt2  # noqa: F401 (is_pt2: part of this module's interface)

__all__ = ["PROGRAMS_NAME", "SUFFIX", "VARIANT", "ExportedModel", "UntracedShapeError", "is_pt2", "load_programs", "write_pt2"]

SUFFIX = ".pt2"

#: Separates a program's name from its variant's number (:mod:`genredream.models.pt2_trace`).
VARIANT = "__"

#: The extra file listing the programs (and the streaming methods' frame counts).
PROGRAMS_NAME = "genredream-programs.json"


#: Where the traced wrapper (:mod:`genredream.models.pt2_trace`) holds the exported module: the prefix of every weight's name in a program.
_ROOT = "m."


def _shape_key(args) -> tuple:
    """The shapes of every tensor in ``args`` (lists flattened): what a program's guards see."""
    out = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.append(tuple(tuple(t.shape) for t in a))
        else:
            out.append(tuple(a.shape))
    return tuple(out)


def _guard_failed(e: BaseException) -> bool:
    """An exported program refusing an input of a shape it was not traced for."""
    msg = str(e)
    return isinstance(e, (AssertionError, RuntimeError)) and ("Guard failed" in msg or msg.startswith("Expected input at"))


def write_pt2(programs: dict, info: dict, meta_json: str, path: Path) -> None:
    """Write the programs and both extra files to ``path``: a PT2 archive, weights stored once.

    ``torch.export.pt2_archive.package_pt2`` writes every program's weights
    again (musicnn's 38 programs: 160 MB for 3 MB of weights). Here the
    programs are packaged the same way, entry for entry, except that a
    program whose weights are the tensors an earlier program stored points
    its weights config at those entries, and no example inputs are kept;
    ``load_pt2`` reads it unchanged.
    This uses ``_package``'s helpers, which are private: torch is pinned.
    """
    from torch._export.serde import schema
    from torch._export.serde.serialize import serialize
    from torch.export.pt2_archive import _package as pk
    from torch.export.pt2_archive.constants import (
        CONSTANTS_CONFIG_FILENAME_FORMAT,
        MODELS_FILENAME_FORMAT,
        SAMPLE_INPUTS_FILENAME_FORMAT,
        WEIGHTS_CONFIG_FILENAME_FORMAT,
    )

    def same(a, b):
        return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype

    stored: dict = {}  # fqn -> (tensor, PayloadMeta) of weights already in the archive
    with pk.PT2ArchiveWriter(str(path)) as w:
        for name, ep in programs.items():
            sd = ep.state_dict
            if sd and all(k in stored and same(stored[k][0], v) for k, v in sd.items()):
                weights = schema.PayloadConfig(config={k: stored[k][1] for k in sd})
            else:
                weights = pk._package_state_dict(name, ep, w)
                for k, meta in weights.config.items():
                    stored.setdefault(k, (sd[k], meta))
            pk._package_payload_config(w, weights, WEIGHTS_CONFIG_FILENAME_FORMAT.format(name))
            constants = pk._package_constants(name, ep, w)
            pk._package_payload_config(w, constants, CONSTANTS_CONFIG_FILENAME_FORMAT.format(name))
            # No example inputs: a program's inputs are the recorded calls' (a window, or a
            # streaming constant of 3 MB), 30 MB of musicnn's file that nothing reads.
            ep.example_inputs = None
            artifact = serialize(ep, None, serialize_state_dict=False, serialize_constants=False)
            w.write_bytes(MODELS_FILENAME_FORMAT.format(name), artifact.exported_program)
            w.write_bytes(SAMPLE_INPUTS_FILENAME_FORMAT.format(name), artifact.example_inputs)
        pk._package_extra_files(w, {META_NAME: meta_json, PROGRAMS_NAME: json.dumps(info, sort_keys=True)})


def load_programs(path: Path, zf: zipfile.ZipFile) -> "ExportedModel":
    """Load the PT2 archive at ``path`` (already opened as ``zf``) as an :class:`ExportedModel`."""
    entry = next((n for n in zf.namelist() if n.endswith("extra/" + PROGRAMS_NAME)), None)
    if entry is None:
        raise ModelFileError(
            f"{path}: a torch.export archive, but not a genredream model: missing {PROGRAMS_NAME}; "
            "write it with `genredream models export` or models.export.save_pt2"
        )
    try:
        info = json.loads(zf.read(entry).decode("utf-8"))
        names = list(info["programs"])
    except Exception as e:
        raise ModelFileError(f"{path}: truncated or corrupt: {PROGRAMS_NAME} cannot be read ({first_line(e)})") from None
    from torch.export.pt2_archive._package import load_pt2

    try:
        contents = load_pt2(str(path))
    except Exception as e:
        raise ModelFileError(f"{path}: truncated or corrupt: the exported programs cannot be loaded: {first_line(e)}") from None
    missing = [n for n in names if n not in contents.exported_programs]
    if missing:
        raise ModelFileError(f"{path}: truncated or corrupt: programs {missing} listed in {PROGRAMS_NAME} are absent")
    return ExportedModel(contents.exported_programs, info.get("values") or {})



class UntracedShapeError(ModelFileError, RuntimeError):
    """An input shape none of the file's programs was traced for.

    Also a RuntimeError, as a TorchScript model's refusal of a shape is, so a caller that probes
    whether a model takes a shape (the dream's shorter window) treats both formats alike.
    """

class ExportedModel(nn.Module):
    """Exported programs behind the model contract's method names (see the module docstring).

    The programs were exported from one module, so their weights have the same
    names; they share one copy (the ``forward`` program's) in memory.
    ``train()`` changes no program: an exported graph is fixed in the mode
    it was exported in (eval).
    """

    def __init__(self, programs: dict, values: dict | None = None):
        super().__init__()
        # Keys prefixed: ModuleDict's own attributes (forward, keys, values...) cannot be keys.
        self.programs = nn.ModuleDict({"p_" + name: ep.module() for name, ep in programs.items()})
        self.values = dict(values or {})
        shared = dict(self.programs["p_forward"].state_dict()) if "p_forward" in self.programs else {}
        for name, m in self.programs.items():
            if name != "p_forward":
                own = m.state_dict()
                tie = {k: v for k, v in shared.items() if k in own and own[k].shape == v.shape and torch.equal(own[k], v)}
                if tie:
                    m.load_state_dict(tie, strict=False, assign=True)
        self._variants: dict = {}
        for key in sorted(self.programs, key=lambda k: (len(k), k)):
            base = key[2:].split(VARIANT)[0]
            self._variants.setdefault(base, []).append(self.programs[key])
        self._pick: dict = {}
        self.training = False

    def state_dict(self, *args, **kwargs):
        """The weights under the names of the module they were exported from (as a TorchScript
        file's ``state_dict``): what ``train --from`` and the heads copy into a new network."""
        own = self._program_for_weights().state_dict(*args, **kwargs)
        return {k[len(_ROOT) :] if k.startswith(_ROOT) else k: v for k, v in own.items()}

    def _program_for_weights(self):
        key = "p_forward" if "p_forward" in self.programs else next(iter(self.programs))
        return self.programs[key]

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def provides(self, name: str) -> bool:
        """True if the method ``name`` is served by this file's programs (or stored values)."""
        if name in ("stream_constants", "stream_branch", "stream_mid_constants", "stream_mid"):
            return any(p.startswith("p_" + name + "_") for p in self.programs) or any(
                n.startswith(name + "_") for n in self.values.get("no_constants", ())
            )
        return "p_" + name in self.programs or name in self.values

    def __getattr__(self, name):
        values = self.__dict__.get("values") or {}
        if name in values:
            v = values[name]
            return lambda: json.loads(json.dumps(v))  # a fresh copy per call, like a method's result
        return super().__getattr__(name)

    def _run(self, name, *args):
        """Program ``name`` on ``args``: the variant that accepts their shapes (remembered per shape).

        A program's call checks its inputs against its guards first (about 1 ms
        of musicnn's streaming programs' 0.3 ms of work, measured). The guards
        read only the inputs' shapes, so once a variant has accepted a shape
        the next inputs of that shape go straight to its ``forward``.
        """
        key = (name, _shape_key(args))
        fast = self._pick.get(key)
        if fast is not None:
            return fast(*args)
        variants = self._variants.get(name)
        if not variants:
            raise ModelFileError(f"this .pt2 model has no program {name!r}")
        for program in variants:
            try:
                out = program(*args)
            except (AssertionError, RuntimeError) as e:
                if _guard_failed(e):
                    continue
                raise
            self._pick[key] = program.forward
            return out
        raise UntracedShapeError(
            f"no exported program {name} accepts inputs of shape {list(key[1])}: the .pt2 file was traced at other "
            "shapes; use the TorchScript file for this input, or export again"
        )

    def forward(self, x):
        return self._run("forward", x)

    def features(self, x):
        return list(self._run("features", x))

    def frontend(self, wave):
        return self._run("frontend", wave)

    def stream_prepare(self, x):
        return self._run("stream_prepare", x)

    def _constants(self, name):
        if name in self.values.get("no_constants", ()):
            return []
        return list(self._run(name))

    def stream_constants(self, i: int):
        return self._constants(f"stream_constants_{int(i)}")

    def stream_mid_constants(self, j: int):
        return self._constants(f"stream_mid_constants_{int(j)}")

    def stream_branch(self, i: int, xb, pad_before: int, pad_after: int, constants):
        return self._run(f"stream_branch_{int(i)}_{int(pad_before)}_{int(pad_after)}", xb, list(constants))

    def stream_mid(self, j: int, x, pad_before: int, pad_after: int, constants):
        return self._run(f"stream_mid_{int(j)}_{int(pad_before)}_{int(pad_after)}", x, list(constants))

    def stream_tail(self, front, mids):
        return self._run("stream_tail", front, list(mids))
