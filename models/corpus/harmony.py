"""Harmony of the generated songs: Roman-numeral chords and their voicings.

:func:`parse_chord` reads the chord symbols of :mod:`.genres`' progressions in a
key; :func:`_voicing` and :func:`_place` choose the notes a chord part plays
(inversion and octave by voice leading). Used by :mod:`.compose` and :mod:`.parts`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMERALS = {"i": 0, "ii": 2, "iii": 4, "iv": 5, "v": 7, "vi": 9, "vii": 11}
_CHORD_RE = re.compile(r"^([b#]?)(VII|VI|V|IV|III|II|I|vii|vi|v|iv|iii|ii|i)(.*)$")


@dataclass(frozen=True)
class Chord:
    """A chord as a root pitch class and intervals above it.

    Attributes
    ----------
    root : int
        Pitch class 0..11 (0 = C).
    intervals : tuple of int
        Semitones above the root, ascending, starting with 0.
    symbol : str
        The Roman-numeral symbol it was parsed from.
    """

    root: int
    intervals: tuple[int, ...]
    symbol: str

    @property
    def third(self) -> int:
        """The chord's third (or the fourth of a sus chord), 4 for a power chord."""
        for iv in self.intervals[1:]:
            if iv in (3, 4, 5):
                return iv
        return 4

    @property
    def seventh(self) -> int | None:
        """The seventh (9, 10 or 11 semitones), or None for a triad."""
        for iv in self.intervals:
            if iv in (9, 10, 11) and len(self.intervals) >= 4:
                return iv
        return None


def parse_chord(symbol: str, tonic: int) -> Chord:
    """Parse a Roman-numeral chord symbol in the key whose tonic is ``tonic``.

    Parameters
    ----------
    symbol : str
        E.g. ``"I"``, ``"vi"``, ``"bVII"``, ``"V7"``, ``"ii7b5"``, ``"IM7"``,
        ``"viio"``, ``"i5"``, ``"Isus4"``, ``"Iadd9"`` (see :mod:`.genres`).
    tonic : int
        Pitch class of the key's tonic.

    Returns
    -------
    Chord
    """
    m = _CHORD_RE.match(symbol)
    if not m:
        raise ValueError(f"cannot parse chord symbol {symbol!r}")
    accidental, numeral, suffix = m.groups()
    minor = numeral.islower()
    root = (tonic + _NUMERALS[numeral.lower()] + {"b": -1, "#": 1, "": 0}[accidental]) % 12
    third = 3 if minor else 4
    table = {
        "": (0, third, 7),
        "7": (0, third, 7, 10),
        "M7": (0, third, 7, 11),
        "7b5": (0, 3, 6, 10),
        "o": (0, 3, 6),
        "o7": (0, 3, 6, 9),
        "5": (0, 7),
        "sus4": (0, 5, 7),
        "add9": (0, third, 7, 14),
    }
    if suffix not in table:
        raise ValueError(f"unknown chord suffix {suffix!r} in {symbol!r}")
    return Chord(root, table[suffix], symbol)


def _voicing(chord: Chord, kind: str) -> list[int]:
    """Intervals of a voicing above the chord root (before register placement)."""
    iv = chord.intervals
    third, seventh = chord.third, chord.seventh
    fifth = 6 if 6 in iv else 7
    if len(iv) == 2:  # power chord symbol: everything becomes root-fifth-octave
        return [0, 7, 12]
    if kind == "power":
        return [0, 7, 12]
    if kind == "octave":
        return [0, 12]
    if kind == "open":
        return [0, fifth, third + 12]
    if kind == "add9":
        return [0, third, fifth, 14]
    if kind == "seventh":
        return [0, third, fifth, seventh if seventh is not None else 12]
    if kind == "shell":
        return [third, seventh if seventh is not None else 9, 14]
    return [0, third, fifth]


def _place(chord: Chord, kind: str, register: tuple[int, int], previous: float | None) -> list[int]:
    """Choose inversion and octave of a voicing inside ``register``.

    Power chords, octaves and open voicings stay in root position (inverting
    them changes their sound); the others take the inversion nearest the
    previous chord's centre, which is the voice leading a player would use.
    """
    lo, hi = register
    base = _voicing(chord, kind)
    target = previous if previous is not None else (lo + hi) / 2
    inversions = [base]
    if kind not in ("power", "octave", "open"):
        for k in range(1, len(base)):
            inversions.append(sorted(base[k:] + [x + 12 for x in base[:k]]))
    best, best_cost = None, math.inf
    for inv in inversions:
        for octave in range(0, 11):
            notes = [12 * octave + chord.root + x for x in inv]
            if notes[0] < lo - 5 or notes[-1] > hi + 5:
                continue
            cost = abs(sum(notes) / len(notes) - target)
            cost += 3 * (max(0, lo - notes[0]) + max(0, notes[-1] - hi))
            if cost < best_cost:
                best, best_cost = notes, cost
    assert best is not None
    return best
