"""Synthetic genre corpus: procedural MIDI songs rendered with FluidSynth.

A stand-in for GTZAN (and for Geng et al.'s five genres) that anyone can
rebuild bit-for-bit: :func:`build_corpus` writes ``OUT/<genre>/<genre>.00000.wav``
and ``OUT/corpus.json``. Modules, in data-flow order:

* :mod:`.genres`  style descriptions (tempo, meter, swing, grooves, harmony, parts)
* :mod:`.compose` a seeded song generator: style -> MIDI + parameters
* :mod:`.midi`    a small Standard MIDI File writer
* :mod:`.render`  FluidSynth rendering, normalisation, WAV writing, process pool
* :mod:`.build`   the corpus on disk; :mod:`.cli` the ``genredream corpus`` command
"""

from .build import CorpusReport, build_corpus
from .genres import GENRES, UnknownGenreError, genre_names

__all__ = ["CorpusReport", "build_corpus", "GENRES", "UnknownGenreError", "genre_names"]
