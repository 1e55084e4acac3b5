"""Progress lines on stderr for long work without the live view.

`run --input` without a terminal (a log, a pipe, ``--no-view``) would say
nothing until the end: a 142 s file analysed in 70 s printed nothing for 70 s.
These lines say where the stream is, how far through the file, how many
results, and how fast, every few seconds (by the wall clock).
"""

from __future__ import annotations

import time

__all__ = ["file_progress", "ProgressClock"]


class ProgressClock:
    """True every ``every`` seconds of wall-clock time (checked cheaply, per block)."""

    def __init__(self, every):
        self.every = float(every)
        self.t0 = self.last = time.monotonic()

    def due(self):
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            return True
        return False

    @property
    def elapsed(self):
        return time.monotonic() - self.t0


def file_progress(blocks, engine, src, every, duration, say):
    """Pass ``blocks`` through, giving a progress line to ``say`` every ``every`` seconds."""
    clock = ProgressClock(every)
    total = None if src.loop else src.seconds
    if duration is not None:
        total = duration if total is None else min(total, duration)
    sr = src.sample_rate
    n = 0
    for b in blocks:
        yield b
        n += b.shape[0]
        if clock.due():
            pos = n / sr
            share = f" of {total:.1f} s ({pos / total:.0%})" if total else ""
            speed = pos / max(clock.elapsed, 1e-9)
            say(f"progress: {pos:.1f} s{share}, {engine.counters['results']} results, {speed:.1f}x real time")
