"""The audio callback's kernels: rendering a block, counting it, timing it.

Numba-compiled, allocation-free, GIL-free inside: the Python callback
(engine/io/duplex.py) calls them per block, and the C callback's pump
(engine/io/cring.py) shares the counter layout. Every kernel is compiled by
:meth:`genredream.engine.io.duplex.DuplexRunner._warm_up` before a stream
starts, for the exact array types the callback sees.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# PortAudio status flag bits (portaudio.h: paInputUnderflow ... paPrimingOutput).
IN_UNDER, IN_OVER, OUT_UNDER, OUT_OVER, PRIMING = 1, 2, 4, 8, 16
XRUN_BITS = IN_UNDER | IN_OVER | OUT_UNDER | OUT_OVER

# Layout of the runner's int64 counters (updated in place by account).
(
    CALLBACKS,
    FRAMES_IN,
    FRAMES_OUT,
    C_IN_UNDER,
    C_IN_OVER,
    C_OUT_UNDER,
    C_OUT_OVER,
    C_PRIMING,
    XRUNS,
    LATE_BLOCKS,
    N_DURATIONS,
    OVERSIZED,
) = range(12)
N_COUNTERS = 12

DURATIONS = 1 << 18  # callbacks remembered: 23 min at 256 frames / 48 kHz, 5.8 min at 64


@njit(cache=True)
def silence_from(outdata, start):
    """outdata[start:] = 0, every channel."""
    frames, co = outdata.shape
    for i in range(start, frames):
        for c in range(co):
            outdata[i, c] = 0.0


@njit(cache=True)
def render_duplex(indata, outdata, mono, n_ready, dry):
    """outdata[:n_ready] = mono fanned out; the rest dry (input through) or silence."""
    frames, co = outdata.shape
    ci = indata.shape[1]
    for i in range(n_ready):
        v = mono[i]
        for c in range(co):
            outdata[i, c] = v
    if dry:
        if ci == co:
            for i in range(n_ready, frames):
                for c in range(co):
                    outdata[i, c] = indata[i, c]
        else:
            inv = np.float32(1.0 / ci)
            for i in range(n_ready, frames):
                acc = np.float32(0.0)
                for c in range(ci):
                    acc += indata[i, c]
                acc *= inv
                for c in range(co):
                    outdata[i, c] = acc
    else:
        silence_from(outdata, n_ready)


@njit(cache=True)
def put_frames(outdata, frames_buf, n_ready):
    """outdata[:n_ready] from frames: channel for channel, their mean on a mono output, cycled on more outputs."""
    co = outdata.shape[1]
    cf = frames_buf.shape[1]
    for i in range(n_ready):
        if co == 1 and cf > 1:
            acc = np.float32(0.0)
            for c in range(cf):
                acc += frames_buf[i, c]
            outdata[i, 0] = acc / np.float32(cf)
        else:
            for c in range(co):
                outdata[i, c] = frames_buf[i, c % cf]


@njit(cache=True)
def render_duplex_frames(indata, outdata, frames_buf, n_ready, dry):
    """As render_duplex, the ready part from the engine's frame ring (the input's channels, dreamed)."""
    frames = outdata.shape[0]
    put_frames(outdata, frames_buf, n_ready)
    if dry:
        put_frames(outdata[n_ready:], indata[n_ready:], frames - n_ready)
    else:
        silence_from(outdata, n_ready)


@njit(cache=True)
def render_out_frames(outdata, frames_buf, n_ready, dry_buf, n_dry):
    """Output-only stream with channels: dreamed frames first, then dry frames (the input's, from its frame ring) or silence."""
    put_frames(outdata, frames_buf, n_ready)
    m = max(n_ready, n_dry)
    if n_dry > n_ready:
        put_frames(outdata[n_ready:m], dry_buf[n_ready:m], m - n_ready)
    silence_from(outdata, m)


@njit(cache=True)
def render_mono(outdata, mono, n_ready, dry, n_dry):
    """Output-only stream: dreamed samples first, then dry (from the input ring) or silence."""
    frames, co = outdata.shape
    for i in range(frames):
        if i < n_ready:
            v = mono[i]
        elif i < n_dry:
            v = dry[i]
        else:
            v = np.float32(0.0)
        for c in range(co):
            outdata[i, c] = v


@njit(cache=True)
def account(counters, flags, frames_in, frames_out, late):
    counters[CALLBACKS] += 1
    counters[FRAMES_IN] += frames_in
    counters[FRAMES_OUT] += frames_out
    if flags & IN_UNDER:
        counters[C_IN_UNDER] += 1
    if flags & IN_OVER:
        counters[C_IN_OVER] += 1
    if flags & OUT_UNDER:
        counters[C_OUT_UNDER] += 1
    if flags & OUT_OVER:
        counters[C_OUT_OVER] += 1
    if flags & PRIMING:
        counters[C_PRIMING] += 1
    if flags & XRUN_BITS:
        counters[XRUNS] += 1
    if late:
        counters[LATE_BLOCKS] += 1


@njit(cache=True)
def record(durations, counters, t0, t1):
    n = counters[N_DURATIONS]
    durations[n % durations.shape[0]] = t1 - t0
    counters[N_DURATIONS] = n + 1


def status_flags(status):
    """The PortAudio flag bits of a sounddevice status (an int, no allocation of arrays)."""
    f = getattr(status, "status_flags", None)
    if f is not None:
        return f
    return int(bool(status.input_underflow)) | 2 * bool(status.input_overflow) | 4 * bool(status.output_underflow) | 8 * bool(status.output_overflow) | 16 * bool(status.priming_output)
