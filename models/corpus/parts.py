"""The pitched parts of the generated songs: bass, chords, melody, voice, and their dynamics.

:class:`_Parts` is a part of :class:`genredream.models.corpus.compose._Composer`
(a mixin: it reads the song state the composer draws, ``style``, ``rng``,
``tonic``, ``sections``, ``timeline``, ``reverb``, and uses ``section_of``,
``chord_at`` and the time methods of :class:`.rhythm._Rhythm`).
"""

from __future__ import annotations

import math

import numpy as np

from .draw import _pick, _weighted_choice
from .genres import SCALES, Part
from .harmony import _place
from .midi import Track
from .rhythm import _runs

_LEVEL = {"X": 1.0, "N": 1.0, "x": 0.7, "n": 0.7, "o": 0.4, "g": 0.1, "?": 0.5}


class _Parts:
    """Pitched parts of one song (mixed into the composer, which holds the state)."""

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
