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

The paddings ``a, b`` exported per stage are those the incremental runner asks
for (:func:`stream_paddings`). Batch and time are dynamic (``Dim.AUTO``).

:class:`ExportedModel` puts the programs back behind the methods' names, so the
engine calls a loaded ``.pt2`` model as it calls a TorchScript one. Writing one
from an eager module: :func:`export_module`; from a TorchScript file:
:mod:`genredream.models.export`. Nothing here calls ``torch.jit``.

``torch.export`` is one of the two parts of torch the command line's start
defers (:mod:`genredream.engine.startup`): reading ``torch.export`` here
imports it then, so only a process that loads a ``.pt2`` file pays for it.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from genredream.models.archive import META_NAME, ModelFileError, first_line, is_pt2

__all__ = [
    "PROGRAMS_NAME",
    "SUFFIX",
    "ExportedModel",
    "export_module",
    "is_pt2",
    "load_programs",
    "stream_paddings",
    "write_pt2",
]

SUFFIX = ".pt2"

#: Separates a program's name from its variant's number (see :func:`_export_variants`).
VARIANT = "__"

#: The extra file listing the programs (and the streaming methods' frame counts).
PROGRAMS_NAME = "genredream-programs.json"


def stream_paddings(context) -> list[tuple[int, int]]:
    """The ``(pad_before, pad_after)`` pairs the incremental step calls a stage of context ``(a, b)`` with.

    Whole window ``(a, b)``, both edges joined ``(0, 0)``, left edge
    ``(a, 0)``, right edge ``(0, b)`` (:class:`genredream.models.incremental.step.StreamStep`).
    """
    a, b = int(context[0]), int(context[1])
    return sorted({(a, b), (0, 0), (a, 0), (0, b)})


#: Where :class:`_Method` holds the exported module: the prefix of every weight's name in a program.
_ROOT = "m."


class _Method(nn.Module):
    """One method of ``root`` as a module's ``forward``, integers fixed: what ``torch.export`` traces."""

    def __init__(self, root, name: str, ints=()):
        super().__init__()
        self.m = root
        self.name = name
        self.ints = tuple(ints)

    def forward(self, *args):
        out = getattr(self.m, self.name)(*self.ints[:1], *args[:1], *self.ints[1:], *args[1:])
        return tuple(out) if isinstance(out, list) else out


def _dyn(x):
    """Dynamic shape spec of one input: batch (first) and time (last) dynamic where the example is
    above 1 (torch.export fixes sizes 0 and 1 anyway); channels and mel bands fixed. A list is a
    list of tensors: the streaming constants (from the weights: all fixed) or the mid stages."""
    if isinstance(x, (list, tuple)):
        return [_dyn(t) for t in x]
    return {d: torch.export.Dim.AUTO for d in {0, x.dim() - 1} if x.size(d) > 1} or None


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


class _Recorder:
    """Stands in for a module and records every contract call: which program, which inputs.

    The programs are traced at the inputs the engine gives them, recorded by
    running the module as the engine and the contract's checks do
    (:func:`export_module`).
    """

    def __init__(self, module):
        self.m = module
        self.calls: dict = {}  # program name -> (method, ints, [args, ...])

    def _call(self, name, method, ints, args):
        self.calls.setdefault(name, (method, tuple(ints), []))[2].append(tuple(args))
        return getattr(self.m, method)(*ints[:1], *args[:1], *ints[1:], *args[1:])

    def __call__(self, x):
        return self._call("forward", "forward", (), [x])

    def features(self, x):
        return self._call("features", "features", (), [x])

    def frontend(self, wave):
        return self._call("frontend", "frontend", (), [wave])

    def stream_context(self):
        return self.m.stream_context()

    def stream_mid_context(self):
        return self.m.stream_mid_context()

    def stream_prepare(self, x):
        return self._call("stream_prepare", "stream_prepare", (), [x])

    def stream_constants(self, i):
        consts = list(self.m.stream_constants(i))
        return self._call(f"stream_constants_{i}", "stream_constants", (i,), []) if consts else consts

    def stream_mid_constants(self, j):
        consts = list(self.m.stream_mid_constants(j))
        return self._call(f"stream_mid_constants_{j}", "stream_mid_constants", (j,), []) if consts else consts

    def stream_branch(self, i, xb, pad_before, pad_after, constants):
        return self._call(f"stream_branch_{i}_{pad_before}_{pad_after}", "stream_branch", (i, pad_before, pad_after), [xb, list(constants)])

    def stream_mid(self, j, x, pad_before, pad_after, constants):
        return self._call(f"stream_mid_{j}_{pad_before}_{pad_after}", "stream_mid", (j, pad_before, pad_after), [x, list(constants)])

    def stream_tail(self, front, mids):
        return self._call("stream_tail", "stream_tail", (), [front, list(mids)])


def _accepts(program, args) -> bool:
    try:
        program.module()(*args)
    except (AssertionError, RuntimeError) as e:
        if _guard_failed(e):
            return False
        raise
    return True


def _export_variants(programs, name, root, method, ints, examples):
    """Export ``root.method`` as ``programs[name]``, plus a variant for each recorded input it refuses.

    A network may take another code path by size (musicnn computes short
    stretches by im2col below 512 frames times batch, and its temporal
    branches differently below the kernel's length): a program guards on the
    path it was traced on, so a program is traced again (``<name>__1``,
    ``<name>__2``...) at each recorded input no earlier variant accepts.
    """
    mod = _Method(root, method, ints)
    variants, seen = [], set()
    for args in examples:
        key = _shape_key(args)
        if key in seen:
            continue
        seen.add(key)
        if any(_accepts(p, args) for p in variants):
            continue
        shapes = tuple(_fixed(a) if method.endswith("constants") else _dyn(a) for a in args)
        if method in ("stream_branch", "stream_mid"):
            shapes = (_dyn(args[0]), _fixed(args[1]))
        try:
            with warnings.catch_warnings():
                # nn.GRU re-assigns its flat weight list on every call; export notes it, harmlessly
                # (the weights are parameters, exported as such).
                warnings.filterwarnings("ignore", message=r".*_flat_weights.*were assigned during export", category=UserWarning)
                # forward(*args): the shapes of the one var-positional argument, a tuple
                ep = torch.export.export(mod, args, dynamic_shapes=(shapes,) if args else None, strict=False)
        except Exception as e:
            raise ModelFileError(f"torch.export failed on {method}{tuple(ints) or ''}: {first_line(e)}") from None
        programs[name if not variants else f"{name}{VARIANT}{len(variants)}"] = ep
        variants.append(ep)


#: Hops (frames) the streaming programs are traced at, each after a window computed whole: the
#: engine's (31, 32 at musicnn's 16 kHz, hop 256, a 0.5 s hop), the contract's check (a tenth of a
#: window) and a spread of others, so that every stretch length an edge is computed at has a program.
_HOPS = (1, 2, 3, 5, 8, 16, 31, 32, 64, 128, 200)


def _fixed(tensors):
    """Weights-derived inputs (the streaming constants): every dimension fixed."""
    return [None] * len(tensors)


def export_module(module, wave, methods=("forward", "features")) -> tuple[dict, dict]:
    """Export an eager ``module``'s (in eval mode) contract methods as programs.

    ``wave`` is a waveform batch ``[2, samples]``. ``methods``: ``forward``
    and ``features`` for a classifier, with ``frontend`` for a mel model
    (``forward`` then takes its output), ``forward`` and ``describe`` for a
    generator. The frame-branch methods are exported too when the module has
    them all.

    The module is first run through a recorder the way the contract's checks
    and the engine call it: whole batches of 2, single windows, and, for a
    streaming model, :class:`~genredream.models.incremental.FrameBranchRunner`
    over successive windows (:data:`_HOPS`, and the contract's tenth of a window). Each program is traced at
    those inputs (batch and time dynamic), with a variant where one tracing
    does not serve them all.

    Returns ``(programs, info)``: the ExportedPrograms by program name, and the
    ``genredream-programs.json`` content.
    """
    from genredream.models.incremental import STREAM_METHODS, FrameBranchRunner

    rec = _Recorder(module)
    info = {"programs": [], "values": {}}
    with torch.no_grad():
        xs = [wave, wave[:1]]
        if "frontend" in methods:
            xs = [rec.frontend(w) for w in xs]
        for name in methods:
            if name == "describe":
                info["values"]["describe"] = [int(v) for v in module.describe()]
            elif name == "forward":
                for x in xs:
                    rec(x)
            elif name == "features":
                for x in xs:
                    rec.features(x)
        if "frontend" in methods and all(callable(getattr(module, n, None)) for n in STREAM_METHODS):
            info["values"]["stream_context"] = [[int(a), int(b)] for a, b in module.stream_context()]
            info["values"]["stream_mid_context"] = [[int(a), int(b)] for a, b in module.stream_mid_context()]
            runner = FrameBranchRunner(rec)
            runner.whole(xs[0])
            runner.whole(xs[1])
            t = xs[0].shape[2]
            stream = torch.cat([xs[0][0], xs[0][1]], dim=1).numpy()
            # Each hop after a window computed whole (the contract's check, a restart), then a
            # chain of the engine's hops: the lengths the edges are computed at depend on both.
            for hops in [[n] for n in sorted({*_HOPS, max(1, t // 10)}) if n < t] + [[31, 32, 31, 32]]:
                runner.reset()
                end = t
                runner(stream[:, :t], end)
                for n in hops:
                    end += n
                    if end <= stream.shape[1]:
                        runner(stream[:, end - t : end], end)
            for i in range(len(info["values"]["stream_context"])):
                if not list(module.stream_constants(i)):
                    info["values"].setdefault("no_constants", []).append(f"stream_constants_{i}")
            for j in range(len(info["values"]["stream_mid_context"])):
                if not list(module.stream_mid_constants(j)):
                    info["values"].setdefault("no_constants", []).append(f"stream_mid_constants_{j}")
        programs: dict = {}
        for name, (method, ints, examples) in rec.calls.items():
            _export_variants(programs, name, module, method, ints, examples)
    info["programs"] = sorted(programs)
    return programs, info


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
            "write it with `genredream models export` or models.pt2.export_module"
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
        raise ModelFileError(
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
