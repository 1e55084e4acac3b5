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
from dataclasses import dataclass

import numpy as np

from .draw import _pick, _weighted_choice, song_rng
from .genres import Style, get_genre
from .harmony import Chord, parse_chord
from .midi import DRUM_CHANNEL, MidiFile
from .parts import _Parts
from .rhythm import PPQ, _Rhythm

# Chord and parse_chord live in .harmony, song_rng in .draw, PPQ in .rhythm:
# re-exported here, where tests and callers import them.
__all__ = ["PPQ", "Chord", "Song", "parse_chord", "song_rng", "compose_song", "KEY_NAMES"]

#: Seconds of music written past the requested length, so the renderer
#: never runs short before the trim.
TAIL_SECONDS = 0.5
KEY_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


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
# The composer: song state, form and harmony over time here; time and drums
# in .rhythm, pitched parts in .parts.

class _Composer(_Rhythm, _Parts):
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
