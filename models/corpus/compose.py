"""Turn a genre style into a song (a MIDI file plus the parameters drawn).

Every random choice of a song comes from one :class:`numpy.random.Generator`
seeded from ``(seed, crc32(genre), index)``, so songs of a genre differ from
each other, the same seed always gives the same song, and adding a genre or a
song never changes the others. (``crc32`` rather than ``hash``: Python salts
string hashes per process.)

A song is a sequence of sections (labels ``A`` and ``B``, ``B`` louder and
with more parts) built from the style's progressions; the clip starts at a
random bar of that form, as a GTZAN excerpt starts somewhere in a song. All
timing is computed in beats (quarter notes) on the style's grid, swung,
humanised, then converted to ticks.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np

from .genres import DRUMS, SCALES, Groove, Part, Style, get_genre
from .midi import DRUM_CHANNEL, MidiFile, Track

__all__ = ["PPQ", "Chord", "Song", "parse_chord", "song_rng", "compose_song", "KEY_NAMES"]

#: Ticks per quarter note of generated files.
PPQ = 480
#: Seconds of music written past the requested length, so the renderer
#: never runs short before the trim.
TAIL_SECONDS = 0.5
KEY_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

_NUMERALS = {"i": 0, "ii": 2, "iii": 4, "iv": 5, "v": 7, "vi": 9, "vii": 11}
_CHORD_RE = re.compile(r"^([b#]?)(VII|VI|V|IV|III|II|I|vii|vi|v|iv|iii|ii|i)(.*)$")
_LEVEL = {"X": 1.0, "N": 1.0, "x": 0.7, "n": 0.7, "o": 0.4, "g": 0.1, "?": 0.5}
_DRUM_VELOCITY = {"X": 118, "x": 96, "o": 70, "g": 40, "?": 62, "r": 80, "t": 76}


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


def song_rng(seed: int, genre: str, index: int) -> np.random.Generator:
    """The generator all of one song's choices come from.

    Parameters
    ----------
    seed : int
        Corpus seed (>= 0).
    genre : str
        Genre name.
    index : int
        Song index within the genre (>= 0).
    """
    return np.random.default_rng([int(seed), zlib.crc32(genre.encode("utf-8")), int(index)])


@dataclass
class Song:
    """A composed song.

    Attributes
    ----------
    midi : MidiFile
        Ready to save and render; lasts at least ``seconds + TAIL_SECONDS``.
    params : dict
        JSON-serialisable description of every choice (for corpus.json).
    """

    midi: MidiFile
    params: dict


# ---------------------------------------------------------------------------
# Small helpers.

def _weighted_choice(rng: np.random.Generator, items, weights):
    w = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


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


def _runs(pattern: str, start: int, n: int, is_onset) -> list[tuple[int, int, str]]:
    """Onsets in absolute steps [start, start+n): (step, length in steps, symbol).

    A note's length counts the ``-`` ties after it; it may run past the bar.
    """
    out = []
    L = len(pattern)
    for s in range(start, start + n):
        c = pattern[s % L]
        if not is_onset(c):
            continue
        length = 1
        while length < 4 * L and pattern[(s + length) % L] == "-":
            length += 1
        out.append((s, length, c))
    return out


# ---------------------------------------------------------------------------
# The composer.

class _Composer:
    """Holds one song's state while its tracks are written."""

    def __init__(self, style: Style, rng: np.random.Generator, seconds: float, genre: str) -> None:
        self.style, self.rng, self.genre = style, rng, genre
        r = rng
        lo, hi = style.tempo
        self.bpm = float(round(r.uniform(lo, hi) * 2) / 2)
        self.tonic = int(_pick(r, style.keys))
        self.swing = float(round(r.uniform(*style.swing), 3))
        self.kit = int(_pick(r, style.kits)) if style.kits else None
        self.grid = style.grid
        self.bar_steps = style.steps_per_bar
        self.beats_per_bar = self.bar_steps / self.grid
        seconds_per_bar = self.beats_per_bar * 60.0 / self.bpm
        self.n_bars = int(math.ceil((seconds + TAIL_SECONDS) / seconds_per_bar))
        self.reverb = int(r.integers(style.reverb[0], style.reverb[1] + 1))

        # Harmony and form: one progression per section label.
        self.progs = {lab: _pick(r, style.progressions) for lab in "AB"}
        self.section_bars = {}
        for lab, (_mode, prog) in self.progs.items():
            bars = len(prog.split())
            reps = 1 if bars >= 8 else int(_pick(r, (1, 2))) * max(1, math.ceil(4 / bars))
            self.section_bars[lab] = bars * reps
        self.form = str(_pick(r, ("AABA", "ABAB", "AABB", "ABBA", "AAB")))
        cycle = sum(self.section_bars[lab] for lab in self.form)
        self.start_bar = int(r.integers(cycle))
        self.sections = self._lay_out_sections()
        self.dynamics = {}  # section number -> velocity multiplier
        for k, (lab, _s, _e) in enumerate(self.sections):
            self.dynamics[k] = float(r.uniform(0.82, 0.94) if lab == "A" else r.uniform(1.0, 1.1))
        self.timeline = self._chord_timeline()

        if style.grooves:
            self.grooves = {lab: _pick(r, style.grooves) for lab in "AB"}
        else:
            self.grooves = {}

    # -- structure ---------------------------------------------------------
    def _lay_out_sections(self) -> list[tuple[str, int, int]]:
        """Sections as (label, first form bar, end form bar) covering the clip."""
        out, bar, k = [], 0, 0
        end = self.start_bar + self.n_bars
        while bar < end:
            lab = self.form[k % len(self.form)]
            n = self.section_bars[lab]
            if bar + n > self.start_bar:
                out.append((lab, bar, bar + n))
            bar += n
            k += 1
        return out

    def section_of(self, form_bar: int) -> tuple[int, str, int, int]:
        """(section number, label, first bar, end bar) of a form bar."""
        for k, (lab, s, e) in enumerate(self.sections):
            if s <= form_bar < e:
                return k, lab, s, e
        raise AssertionError(form_bar)

    def _chord_timeline(self) -> list[tuple[int, Chord, str]]:
        """(absolute step, chord, mode) for each chord change, in order."""
        out = []
        for lab, s, e in self.sections:
            mode, prog = self.progs[lab]
            tokens = prog.split()
            for bar in range(s, e):
                token = tokens[(bar - s) % len(tokens)]
                parts = token.split(",")
                for j, sym in enumerate(parts):
                    step = bar * self.bar_steps + j * self.bar_steps // len(parts)
                    out.append((step, parse_chord(sym, self.tonic), mode))
        return out

    def chord_at(self, step: int) -> tuple[Chord, str, Chord, int]:
        """Chord and mode sounding at ``step``, the next chord and its step."""
        idx = 0
        for i, (s, _c, _m) in enumerate(self.timeline):
            if s <= step:
                idx = i
            else:
                break
        _s, chord, mode = self.timeline[idx]
        if idx + 1 < len(self.timeline):
            nstep, nchord, _ = self.timeline[idx + 1]
        else:
            nstep, nchord = 1 << 30, self.timeline[0][1]
        return chord, mode, nchord, nstep

    # -- time --------------------------------------------------------------
    def beat_of(self, step: float) -> float:
        """Beat position (from the clip start) of an absolute step, swung."""
        rel = step - self.start_bar * self.bar_steps
        beat = rel / self.grid
        if self.swing and self.grid == 4:
            unit = 0.5 if self.style.swing_unit == 8 else 0.25
            cell = math.floor(beat / unit)
            f = beat / unit - cell
            # The off-beat moves from the middle of the cell towards its last
            # third: swing 1 is a full triplet feel.
            mid = 0.5 + self.swing / 6.0
            f = f / 0.5 * mid if f < 0.5 else mid + (f - 0.5) / 0.5 * (1 - mid)
            beat = (cell + f) * unit
        return beat

    def tick(self, beat: float) -> int:
        return max(0, int(round(beat * PPQ)))

    def jitter(self, ms: float) -> float:
        """A humanising offset in beats."""
        if ms <= 0:
            return 0.0
        return float(self.rng.normal(0.0, ms)) / 1000.0 * self.bpm / 60.0

    def clip_steps(self) -> range:
        first = self.start_bar * self.bar_steps
        return range(first, first + self.n_bars * self.bar_steps)

    def velocity(self, lo: int, hi: int, level: float, step: int) -> int:
        k, *_ = self.section_of(step // self.bar_steps)
        v = (lo + (hi - lo) * level) * self.dynamics[k]
        v += self.rng.normal(0.0, self.style.velocity_jitter)
        return int(np.clip(round(v), 1, 127))

    # -- drums -------------------------------------------------------------
    def write_drums(self, track: Track) -> None:
        st = self.style
        ch = DRUM_CHANNEL
        track.program(0, ch, self.kit)
        track.control(0, ch, 7, 110)
        track.control(0, ch, 91, int(self.reverb * 0.6))
        jit = st.humanize_ms / 2
        for form_bar in range(self.start_bar, self.start_bar + self.n_bars):
            k, lab, s, e = self.section_of(form_bar)
            groove: Groove = self.grooves[lab]
            bar0 = form_bar * self.bar_steps
            fill_from = None
            if form_bar == e - 1 and self.rng.random() < st.fill_prob:
                fill_from = bar0 + self.bar_steps // 2
            for drum, pattern in groove.hits.items():
                note = DRUMS[drum]
                for step in range(bar0, bar0 + self.bar_steps):
                    c = pattern[step % len(pattern)]
                    if c == "." or (fill_from is not None and step >= fill_from
                                    and drum not in ("kick", "kick2", "pedal")):
                        continue
                    if c == "?" and self.rng.random() > 0.4:
                        continue
                    hits = {"r": 2, "t": 3}.get(c, 1)
                    for h in range(hits):
                        self._drum_hit(track, note, step + h / hits, _DRUM_VELOCITY[c], jit)
            if fill_from is not None:
                self._fill(track, fill_from, bar0 + self.bar_steps, jit)
            if st.crash and form_bar == s:
                self._drum_hit(track, DRUMS["crash"], bar0, 112, jit)
                if "kick" not in groove.hits or groove.hits["kick"][0] == ".":
                    self._drum_hit(track, DRUMS["kick"], bar0, 105, jit)

    def _drum_hit(self, track: Track, note: int, step: float, vel: int, jit_ms: float) -> None:
        k, *_ = self.section_of(int(step) // self.bar_steps)
        v = int(np.clip(round(vel * self.dynamics[k] + self.rng.normal(0, self.style.velocity_jitter)),
                        1, 127))
        beat = self.beat_of(step) + self.jitter(jit_ms)
        track.note(self.tick(beat), PPQ // 8, DRUM_CHANNEL, note, v)

    def _fill(self, track: Track, start: int, end: int, jit: float) -> None:
        voices = self.style.fill_voices
        n = end - start
        for i, step in enumerate(range(start, end)):
            on_beat = step % self.grid == 0
            if not on_beat and self.rng.random() > 0.7:
                continue
            voice = voices[min(len(voices) - 1, i * len(voices) // n)]
            vel = int(80 + 35 * i / max(1, n - 1))
            self._drum_hit(track, DRUMS[voice], step, vel, jit)

    # -- pitched parts -----------------------------------------------------
    def setup_channel(self, track: Track, ch: int, part: Part, program: int) -> None:
        track.program(0, ch, program)
        track.control(0, ch, 7, part.volume)
        pan = 64 if part.kind == "bass" else int(self.rng.integers(30, 99))
        track.control(0, ch, 10, pan)
        track.control(0, ch, 91, self.reverb // 2 if part.kind == "bass" else self.reverb)
        track.control(0, ch, 93, part.chorus)
        track.control(0, ch, 11, 127)
        track.pitch_bend(0, ch, 0)

    def plays(self, part: Part, step: int) -> bool:
        _k, lab, *_ = self.section_of(step // self.bar_steps)
        return lab in part.sections

    def section_patterns(self, part: Part) -> dict[int, str]:
        """One pattern per section (parts keep a figure through a section)."""
        return {k: _pick(self.rng, part.patterns) for k in range(len(self.sections))}

    def note_span(self, step: int, length: int, legato: float) -> tuple[float, float]:
        """(start beat, duration in beats) of a note, swung and humanised."""
        b0 = self.beat_of(step)
        b1 = self.beat_of(step + length)
        start = b0 + self.jitter(self.style.humanize_ms)
        return max(0.0, start), max(0.05, (b1 - b0) * legato)

    def write_bass(self, track: Track, ch: int, part: Part) -> None:
        pats = self.section_patterns(part)
        lo, hi = part.register
        prev = None
        for s0 in range(self.clip_steps().start, self.clip_steps().stop, self.bar_steps):
            k, *_ = self.section_of(s0 // self.bar_steps)
            if not self.plays(part, s0):
                continue
            pattern = pats[k]
            for step, length, c in _runs(pattern, s0, self.bar_steps, lambda c: c not in "-."):
                chord, _mode, nchord, nstep = self.chord_at(step)
                root = lo + (chord.root - lo) % 12
                pitch = self._bass_pitch(c, chord, root, nchord, nstep, step, length, prev, part)
                while pitch > hi:
                    pitch -= 12
                while pitch < lo:
                    pitch += 12
                prev = pitch
                level = 0.9 if step % self.bar_steps == 0 else 0.7
                vel = self.velocity(*part.velocity, level, step)
                start, dur = self.note_span(step, length, part.legato)
                track.note(self.tick(start), self.tick(dur), ch, pitch, vel)

    def _bass_pitch(self, c, chord, root, nchord, nstep, step, length, prev, part) -> int:
        lo = part.register[0]
        fixed = {"R": 0, "2": 2, "3": chord.third, "4": 5, "5": 7, "6": 9, "b": 10,
                 "7": chord.seventh or 10, "8": 12}
        if c in fixed:
            return root + fixed[c]
        nroot = lo + (nchord.root - lo) % 12
        if prev is not None and abs(nroot + 12 - prev) < abs(nroot - prev):
            nroot += 12
        if c == "L":
            return nroot + (1 if self.rng.random() < 0.5 else -1)
        # "W": walking. Land on the root when the chord changes, approach the
        # next root chromatically just before it changes, otherwise walk
        # through chord tones near the previous note.
        chord_start = any(s == step for s, _c, _m in self.timeline)
        if chord_start or prev is None:
            return root
        if step + length >= nstep:
            return nroot + (1 if self.rng.random() < 0.5 else -1)
        tones = [root + iv for iv in (0, chord.third, 7, chord.seventh or 12, 12, 14)]
        tones += [t + 12 for t in tones]
        near = [t for t in tones if t != prev and abs(t - prev) <= 7]
        return int(_pick(self.rng, near)) if near else root

    def write_chords(self, track: Track, ch: int, part: Part) -> None:
        pats = self.section_patterns(part)
        centre = None
        for s0 in range(self.clip_steps().start, self.clip_steps().stop, self.bar_steps):
            k, *_ = self.section_of(s0 // self.bar_steps)
            if not self.plays(part, s0):
                continue
            for step, length, c in _runs(pats[k], s0, self.bar_steps, lambda c: c not in "-."):
                chord, *_ = self.chord_at(step)
                notes = _place(chord, part.voicing, part.register, centre)
                centre = sum(notes) / len(notes)
                if c.isdigit():
                    d = int(c) - 1
                    notes = [notes[d % len(notes)] + 12 * (d // len(notes))]
                    level = 0.7
                else:
                    level = _LEVEL[c]
                start, dur = self.note_span(step, length, part.legato)
                # A strummed chord: strings sound a few ms apart, low to high.
                strum = 0.012 * self.bpm / 60.0 if part.voicing in ("open", "power") else 0.0
                for j, p in enumerate(notes):
                    vel = self.velocity(*part.velocity, level, step)
                    track.note(self.tick(start + j * strum), self.tick(dur), ch, p, vel)

    def _scale_pitches(self, mode: str, part: Part) -> list[int]:
        scale = SCALES[part.scale or mode]
        lo, hi = part.register
        return [p for p in range(lo, hi + 1) if (p - self.tonic) % 12 in scale]

    def write_melody(self, track: Track, ch: int, part: Part) -> None:
        """A lead line: a random walk on the scale, chord tones on strong
        beats, two-bar phrases that often repeat the previous phrase's shape
        (repetition is what makes a line sound composed rather than random)."""
        pats = {k: (_pick(self.rng, part.patterns), _pick(self.rng, part.patterns))
                for k in range(len(self.sections))}
        last_shape: list[int] | None = None
        for k, (lab, s, e) in enumerate(self.sections):
            if lab not in part.sections:
                continue
            for phrase_bar in range(s, e, 2):
                bars = [b for b in (phrase_bar, phrase_bar + 1)
                        if b < e and self.start_bar <= b < self.start_bar + self.n_bars]
                if not bars:
                    continue
                onsets = []
                for b in bars:
                    pattern = pats[k][(b - s) % 2]
                    for step, length, c in _runs(pattern, b * self.bar_steps, self.bar_steps,
                                                 lambda c: c in "Nn?"):
                        if c == "?" and self.rng.random() < 0.5:
                            continue
                        onsets.append((step, length, c))
                if not onsets:
                    continue
                if last_shape is None or self.rng.random() < 0.45:
                    shape = [int(x) for x in self.rng.choice(
                        [-3, -2, -1, 0, 1, 2, 3], size=len(onsets),
                        p=[0.05, 0.15, 0.28, 0.08, 0.28, 0.11, 0.05])]
                else:
                    shape = (last_shape * (len(onsets) // len(last_shape) + 1))[:len(onsets)]
                last_shape = shape
                self._realise_line(track, ch, part, onsets, shape)

    def _realise_line(self, track, ch, part, onsets, shape) -> None:
        chord, mode, *_ = self.chord_at(onsets[0][0])
        pitches = self._scale_pitches(mode, part)
        centre = (part.register[0] + part.register[1]) / 2
        idx = int(np.argmin([abs(p - centre) for p in pitches]))
        for j, ((step, length, c), delta) in enumerate(zip(onsets, shape)):
            chord, mode, *_ = self.chord_at(step)
            idx = idx + delta
            if idx < 0 or idx >= len(pitches):
                idx = min(len(pitches) - 1, max(0, idx - 2 * delta))
            pitch = pitches[idx]
            strong = step % self.grid == 0 and (step % self.bar_steps) % (2 * self.grid) == 0
            if strong or j == len(onsets) - 1:
                tones = {(chord.root + iv) % 12 for iv in chord.intervals}
                cands = [i for i, p in enumerate(pitches) if p % 12 in tones]
                if cands:
                    idx = min(cands, key=lambda i: abs(i - idx))
                    pitch = pitches[idx]
            # Monophonic: a note ends where the next one starts.
            if j + 1 < len(onsets):
                length = min(length, onsets[j + 1][0] - step)
            level = _LEVEL[c]
            vel = self.velocity(*part.velocity, level, step)
            start, dur = self.note_span(step, length, part.legato)
            t0, d = self.tick(start), self.tick(dur)
            if part.bend and length >= 2 and self.rng.random() < part.bend:
                # Bend up into the note from a whole tone below (GM default
                # bend range is +-2 semitones).
                track.pitch_bend(t0, ch, -8192)
                for q in range(1, 7):
                    track.pitch_bend(t0 + int(d * 0.3 * q / 6), ch, int(-8192 * (1 - q / 6)))
                track.pitch_bend(t0 + d, ch, 0)
            track.note(t0, d, ch, pitch, vel)

    def write_voice(self, track: Track, ch: int, part: Part) -> None:
        """A rap-like voice: fast syllables on two or three pitches, a new
        flow pattern every bar, a breath at the end of some bars."""
        centre = (part.register[0] + part.register[1]) / 2
        for s0 in range(self.clip_steps().start, self.clip_steps().stop, self.bar_steps):
            if not self.plays(part, s0):
                continue
            chord, mode, *_ = self.chord_at(s0)
            pitches = self._scale_pitches(mode, part)
            i0 = int(np.argmin([abs(p - centre) for p in pitches]))
            choices = [pitches[max(0, i0 - 1)], pitches[i0], pitches[min(len(pitches) - 1, i0 + 1)]]
            pattern = _pick(self.rng, part.patterns)
            breath = (s0 // self.bar_steps) % 4 == 3 and self.rng.random() < 0.6
            for step, length, c in _runs(pattern, s0, self.bar_steps, lambda c: c in "Nn?"):
                if breath and step - s0 >= self.bar_steps // 2:
                    break
                pitch = int(_weighted_choice(self.rng, choices, [0.25, 0.55, 0.2]))
                accent = 1.0 if (step % self.grid == 0) else 0.6
                vel = self.velocity(*part.velocity, accent, step)
                start, dur = self.note_span(step, length, part.legato)
                track.note(self.tick(start), self.tick(dur), ch, pitch, vel)

    # -- dynamics curves ---------------------------------------------------
    def write_expression(self, track: Track, ch: int, part: Part) -> None:
        st = self.style
        total_beats = self.n_bars * self.beats_per_bar
        if st.pump and part.kind in ("chord", "bass") and part.role != "arp":
            # Side-chain ducking: dip on every beat, recover within it.
            for b in range(int(math.ceil(total_beats))):
                for frac, val in ((0.0, 45), (0.12, 80), (0.3, 110), (0.55, 127)):
                    track.control(self.tick(b + frac), ch, 11, val)
        elif st.swells:
            for k, (_lab, s, e) in enumerate(self.sections):
                n = (e - s) * self.beats_per_bar
                phase0 = (s - self.start_bar) * self.beats_per_bar
                for q in range(int(n) + 1):
                    beat = phase0 + q
                    if 0 <= beat <= total_beats:
                        x = q / n
                        val = 78 + 49 * math.sin(math.pi * x)
                        track.control(self.tick(beat), ch, 11, int(round(val)))

    # -- all ---------------------------------------------------------------
    def build(self) -> tuple[MidiFile, dict]:
        st = self.style
        midi = MidiFile(PPQ)
        num, den = st.meter
        midi.conductor.tempo(0, self.bpm)
        midi.conductor.time_signature(0, num, den)
        parts_used = {}
        if self.kit is not None:
            self.write_drums(midi.add_track("drums"))
        channels = [c for c in range(16) if c != DRUM_CHANNEL]
        chosen = [p for p in st.parts if p.presence >= 1.0 or self.rng.random() < p.presence]
        for part, ch in zip(chosen, channels):
            program = int(_pick(self.rng, part.programs))
            track = midi.add_track(part.role)
            self.setup_channel(track, ch, part, program)
            self.write_expression(track, ch, part)
            {"bass": self.write_bass, "chord": self.write_chords, "melody": self.write_melody,
             "voice": self.write_voice}[part.kind](track, ch, part)
            parts_used[part.role] = {"program": program, "channel": ch}
        midi.end_tick = self.tick(self.n_bars * self.beats_per_bar)
        params = {
            "style": st.name,
            "tempo": self.bpm,
            "meter": f"{num}/{den}",
            "key": KEY_NAMES[self.tonic],
            "modes": {lab: m for lab, (m, _p) in self.progs.items()},
            "progressions": {lab: p for lab, (_m, p) in self.progs.items()},
            "form": self.form,
            "start_bar": self.start_bar,
            "bars": self.n_bars,
            "swing": self.swing,
            "drum_kit": self.kit,
            "grooves": {lab: g.name for lab, g in self.grooves.items()},
            "reverb_send": self.reverb,
            "parts": parts_used,
        }
        return midi, params


def compose_song(genre: str, seed: int, index: int, seconds: float) -> Song:
    """Compose one song of ``genre``.

    Parameters
    ----------
    genre : str
        A name from :data:`genredream.models.corpus.genres.GENRES`.
    seed : int
        Corpus seed; with ``genre`` and ``index`` it determines the song.
    index : int
        Song number within the genre.
    seconds : float
        Length of the clip the song must cover; the MIDI runs
        ``TAIL_SECONDS`` longer.

    Returns
    -------
    Song
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    g = get_genre(genre)
    rng = song_rng(seed, g.name, index)
    style = _weighted_choice(rng, g.styles, [s.weight for s in g.styles])
    midi, params = _Composer(style, rng, seconds, g.name).build()
    return Song(midi, {"genre": g.name, "index": int(index), **params})
