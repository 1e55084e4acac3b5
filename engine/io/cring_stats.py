"""The C callback's health: PortAudio's xrun flags, the real-time check, the summary.

For :class:`genredream.engine.io.cring.CRingRunner`: rtmixer's status counts
added to the runner's counters, the one-off check of what scheduling the
callback's thread got (engine/io/rt.py does the OS calls), and the lines the
session prints at the end. None of it is on the audio path.
"""

from __future__ import annotations

import time

from genredream.engine.io import rt as rtsched
from genredream.engine.io.callback_kernels import C_IN_OVER, C_IN_UNDER, C_OUT_OVER, C_OUT_UNDER, CALLBACKS, FRAMES_IN, XRUNS

__all__ = ["add_portaudio_stats", "check_realtime", "realtime_line", "summary_lines"]


def add_portaudio_stats(c, s):
    """Add rtmixer's PortAudio status counts ``s`` (one action's or stream's stats) to the counters ``c``."""
    c[CALLBACKS] += s.blocks
    c[C_IN_UNDER] += s.input_underflows
    c[C_IN_OVER] += s.input_overflows
    c[C_OUT_UNDER] += s.output_underflows
    c[C_OUT_OVER] += s.output_overflows
    # PortAudio's JACK host flags one xrun on both sides (input overflow
    # and output underflow of the same block); rtmixer counts each flag,
    # so the larger side is the number of blocks with an xrun.
    c[XRUNS] += max(s.input_underflows + s.input_overflows, s.output_underflows + s.output_overflows)


def check_realtime(runner):
    """Find the callback's thread, make it real-time if nobody did, and record what it got.

    Runs once, off the audio path, just after the stream started.
    """
    try:
        deadline = time.monotonic() + 2  # the pump names its thread first (it is not the audio thread)
        while runner._pump_tid is None and runner._pump_thread is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        blocks = lambda: (runner.counters[FRAMES_IN] + runner.in_ring.read_available) // runner.blocksize  # noqa: E731
        t, how = rtsched.find_audio_thread(exclude={runner._pump_tid}, callbacks=blocks)
        if t is not None and not rtsched.is_realtime(t):
            why = rtsched.make_realtime(t["tid"], rtsched.RAISE_PRIORITY)
            if why is None:
                how = f"raised by genredream (it was {t['policy']})"
                t = dict(t, policy="SCHED_FIFO", rt_priority=rtsched.RAISE_PRIORITY)
            else:
                how = f"not real-time: {why}"
        r = runner.realtime
        if t is not None:
            r.update(audio_thread=t["tid"], audio_policy=t["policy"], audio_priority=t["rt_priority"] if rtsched.is_realtime(t) else None)
        r["audio_how"] = how
        runner.engine.audio_realtime = r  # the engine's status (/genredream/status) reports it
        if r["audio_priority"] is None and not how.startswith("not checked"):
            runner._warn(f"the audio thread is not real-time ({how}): on a busy machine it will miss deadlines (xruns)")
        if rtsched.pump_priority(r["audio_priority"]) is None and runner._pump_rt_priority is not None:
            # The pump must stay below the audio thread (equal SCHED_FIFO threads never preempt each other).
            if rtsched.make_ordinary(runner._pump_tid) is None:
                runner._pump_rt_priority = None
        r["pump_priority"] = runner._pump_rt_priority
        if r["kernel_preemption"] == "none":
            runner._warn("this kernel does not preempt system calls (preemption model 'none'): a real-time thread may wait "
                         "up to milliseconds for another thread's system call; boot with preempt=full, or use a low-latency kernel")
    except Exception as e:  # a diagnosis, never a reason to stop the music
        runner.realtime["audio_how"] = f"check failed: {type(e).__name__}: {e}"


def summary_lines(runner):
    """A :class:`~genredream.engine.io.cring.CRingRunner`'s summary: counts, rings, real-time scheduling, warnings."""
    st = runner.stats()
    flags = ", ".join(
        f"{k.replace('_', ' ')} {st[k]}"
        for k in ("input_overflow", "input_underflow", "output_underflow", "output_overflow", "output_ring_empty", "input_ring_full")
        if st[k]
    )
    return [
        f"audio (C callback): {st['frames_in']} samples in, {st['frames_out']} out, {st['callbacks']} callbacks of {st['blocksize']} frames at {st['samplerate']} Hz; "
        f"xruns {st['xruns']}" + (f" ({flags})" if flags else "") + f"; blocks without dreamed audio ({runner.when_late}) {st['late_blocks']}"
        + (f", of which the dream was late {st['dream_late_blocks']}" if st["dream_late_blocks"] else ""),
        f"rings: output lead {st['lead_s'] * 1e3:.0f} ms (output {st['output_delay'] / st['samplerate']:.3f} s behind the input), "
        f"lowest output fill {st['min_output_fill'] / st['samplerate'] * 1e3:.0f} ms"
        + (f"; pump failed: {st['pump_error']}" if st["pump_error"] else ""),
        realtime_line(runner.realtime),
    ] + [f"warning: {w}" for w in runner.realtime["warnings"]]


def realtime_line(r):
    """One line: what real-time scheduling the audio thread and the pump got, memory locking, kernel preemption."""
    if r["audio_how"] == "not checked yet":
        return "real-time: not checked (the stream stopped first)"
    audio = f"{r['audio_policy']} {r['audio_priority']}" if r["audio_priority"] is not None else "NOT real-time"
    pump = f"SCHED_FIFO {r['pump_priority']}" if r["pump_priority"] is not None else "ordinary"
    return (f"real-time: audio thread {audio} ({r['audio_how']}), pump {pump}, memory "
            + ("locked" if r["memory_locked"] else "not locked")
            + (f", kernel preemption {r['kernel_preemption']}" if r["kernel_preemption"] else ""))
