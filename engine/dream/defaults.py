"""Dream defaults keyed by what a model is (its architecture), never by its file name.

What a dream costs and which window it needs depend on the network, not on
what the file is called: a head trained with ``genredream train --arch
musicnn-head`` runs musicnn's whole body, so it dreams in musicnn's window
with musicnn's steps, whatever its name.

:func:`architecture` reads the architecture from the model file's
metadata (``arch``); the two musicnn taggers that ship with the repository
were converted from the authors' checkpoints before that key existed, and
are recognised by their provenance (``scripts/convert_musicnn.py``).
"""

from __future__ import annotations

__all__ = ["architecture", "stream_defaults", "takes_any_length", "STREAM_DEFAULTS", "RTF_TARGET", "MAX_DEFAULT_STEPS", "VARIABLE_CONTEXT_S"]

#: One hop's steps may take this share of the hop (the dream rows' target in BENCHMARKS.md: RTF <= 0.5).
RTF_TARGET = 0.5
#: Cap of the timed default: more steps per hop change the sound more than
#: they add dream; raise the step size instead.
MAX_DEFAULT_STEPS = 8
#: Measured defaults of the streaming dream (``benchmarks/bench_dream.py``, 2
#: cores, 1 torch thread, hop 0.5 s, dream latency one hop), by architecture:
#: steps per hop, and the dream window in seconds (None: the model's own
#: window). Any other architecture is timed at load. See docs/dream.md.
STREAM_DEFAULTS = {
    "geng": {"steps": 8, "window": None},
    "musicnn": {"steps": 1, "window": 2.0},
}
#: Architectures built on another's body, dreamed as that body: a musicnn
#: head is musicnn's front end and convolutions plus a small dense layer.
BODY = {"musicnn-head": "musicnn"}
#: Architectures that take an input of any length (musicnn pools over time).
ANY_LENGTH = frozenset({"musicnn"})
#: Frozen context fed before the live part to a model that accepts any input
#: length (musicnn), when no table entry or ``window`` says otherwise.
VARIABLE_CONTEXT_S = 1.5


def architecture(lm):
    """The architecture a model dreams as (``"musicnn"``, ``"geng"``, ...), from its metadata; None when unknown.

    ``lm`` is a :class:`genredream.models.contract.LoadedModel` or its metadata dict.
    """
    meta = getattr(lm, "meta", lm) or {}
    arch = meta.get("arch")
    if not arch:
        prov = meta.get("provenance") or {}
        if "convert_musicnn" in str(prov.get("converted_by", "")):  # the shipped taggers (no arch key)
            arch = "musicnn"
    return BODY.get(arch, arch) if arch else None


def stream_defaults(lm):
    """The streaming dream's measured defaults for ``lm``'s architecture: ``{"steps": int, "window": s or None}``, or {} (timed at load)."""
    return dict(STREAM_DEFAULTS.get(architecture(lm), {}))


def takes_any_length(lm):
    """True when ``lm``'s architecture accepts any input length (the dream may crop or shorten its window)."""
    return architecture(lm) in ANY_LENGTH
