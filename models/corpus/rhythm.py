"""Rhythm of the generated songs: the time grid, swing, humanising, and the drum track.

:class:`_Rhythm` is a part of :class:`genredream.models.corpus.compose._Composer`
(a mixin: it reads the song state the composer draws, ``style``, ``rng``,
``bpm``, ``grid``, ``bar_steps``, ``swing``, ``start_bar``, ``n_bars``,
``dynamics``, ``kit``, ``grooves``, ``reverb``, and its ``section_of``). All
timing is computed in beats (quarter notes) on the style's grid, swung,
humanised, then converted to ticks.
"""

from __future__ import annotations

import math

import numpy as np

from .genres import DRUMS, Groove
from .midi import DRUM_CHANNEL, Track

#: Ticks per quarter note of generated files.
PPQ = 480
_DRUM_VELOCITY = {"X": 118, "x": 96, "o": 70, "g": 40, "?": 62, "r": 80, "t": 76}


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


class _Rhythm:
    """Time and drums of one song (mixed into the composer, which holds the state)."""

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
