"""Tracing a module's contract methods into ``torch.export`` programs, for a ``.pt2`` model file.

The format, and loading it: :mod:`genredream.models.pt2` (its docstring lists
the programs). Here: running the module the way the engine and the
contract's checks call it, recording each call (:class:`_Recorder`), and
tracing each program at those inputs, with a variant wherever one tracing
does not serve them all (:func:`_export_variants`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from genredream.models.archive import ModelFileError, first_line
from genredream.models.pt2 import VARIANT, _guard_failed, _shape_key

__all__ = ["export_module"]


class _Method(nn.Module):
    """One method of ``root`` as a module's ``forward``, integers fixed: what ``torch.export`` traces."""

    def __init__(self, root, name: str, ints=()):
        super().__init__()
        self.m = root  # so every weight's name in a program starts with "m." (models.pt2._ROOT)
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


def _prune(ep):
    """``ep`` without the weights its graph never reads.

    ``torch.export`` lifts every parameter and buffer of the traced module
    into every program, used or not: musicnn's 38 programs had 2 926 weight
    inputs, of which they read 439. Each is a graph input that loading
    deserialises (with a fake tensor for its shape): pruned, musicnn's
    twin loaded in 5.1 s instead of 7.7 s (measured, same run).
    """
    from torch.export import ExportedProgram
    from torch.export.graph_signature import ExportGraphSignature, InputKind

    gm, sig = ep.graph_module, ep.graph_signature
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    keep = []
    for node, spec in zip(placeholders, sig.input_specs):
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER) and not node.users:
            gm.graph.erase_node(node)
        else:
            keep.append(spec)
    if len(keep) == len(sig.input_specs):
        return ep
    gm.recompile()
    used = {s.target for s in keep if s.target}
    return ExportedProgram(
        root=gm, graph=gm.graph, graph_signature=ExportGraphSignature(input_specs=keep, output_specs=sig.output_specs),
        state_dict={k: v for k, v in ep.state_dict.items() if k in used}, range_constraints=ep.range_constraints,
        module_call_graph=ep.module_call_graph, example_inputs=None, constants=ep.constants, verifiers=[ep.verifier],
    )


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
        variants.append(ep)
    for k, ep in enumerate(variants):
        # Pruned once every recorded input has been tried (pruning changes the graph in place);
        # forward keeps every weight: the loaded model's state_dict() reads them there.
        programs[f"{name}{VARIANT}{k}" if k else name] = ep if (name, k) == ("forward", 0) else _prune(ep)


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
