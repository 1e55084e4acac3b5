"""Audio devices: the duplex callback, device lookup, and `genredream devices`.

The audio callback (:meth:`DuplexRunner._duplex_callback`) is the one piece
of genredream that runs on the audio driver's clock (docs/architecture.md,
"Threading rules"). What it does, per block of ``frames``:

1. ``engine.write(indata)``: the input block is copied (averaged to mono)
   into the engine's input ring and timestamped;
2. ``outdata`` is filled from the output ring :attr:`DuplexRunner.engine_out`
   (float32 mono, written by a dreamer) at absolute index
   ``frames_out - output_delay``; with more than one input channel, from
   the engine's frame ring ``engine.output_ch`` instead (the input's
   channels, each with the dream's change: engine/channels.py), channel for
   channel (the mean for a mono output, cycled for more outputs than inputs). Output sample ``k`` is thus
   ``engine_out[k - output_delay]``: the output clock is the input clock.
   Where that ring has nothing yet (no dreamer, or before its first hop),
   the block is *dry* (the input copied through; averaged to mono and fanned
   out when the input and output channel counts differ) or *silence*,
   as ``when_late`` says, and the block is counted as late;
3. the status flags (input overflow, output underflow, ...) are counted;
4. its own duration (``time.perf_counter`` at start and end) goes into a
   preallocated ring of durations.

What may *not* happen in the callback: allocating arrays (every buffer is
preallocated; the work is done by Numba kernels or in place), taking a lock,
printing, logging, or calling torch. The front end and the models run on the
engine's worker threads (:meth:`genredream.engine.runtime.Engine.start`). There is no
resampling here: the engine runs at the device's rate and resamples per
model, off the callback.

Devices are named as in ``genredream devices``: an index, a name, a part of
a name, or a host API ("JACK", "CoreAudio", "WASAPI") whose default device
is then used.
"""

from __future__ import annotations

import gc
import json
import sys
import time

import numpy as np
from numba import njit

from genredream.engine.ringbuffer import RingBuffer

__all__ = [
    "DeviceError",
    "DuplexRunner",
    "list_devices",
    "resolve_device",
    "rescan",
    "add_devices_arguments",
    "devices_main",
    "run_device",
]

_PORTAUDIO_HELP = (
    "the PortAudio library is missing: install libportaudio2 "
    "(Debian/Ubuntu: apt-get install libportaudio2; Fedora: dnf install portaudio; "
    "macOS and Windows: it ships inside the sounddevice wheel, reinstall it with pip install --force-reinstall sounddevice)"
)

# PortAudio status flag bits (portaudio.h: paInputUnderflow ... paPrimingOutput).
_IN_UNDER, _IN_OVER, _OUT_UNDER, _OUT_OVER, _PRIMING = 1, 2, 4, 8, 16
_XRUN_BITS = _IN_UNDER | _IN_OVER | _OUT_UNDER | _OUT_OVER

# Layout of the runner's int64 counters (updated in place by _account).
(
    _CALLBACKS,
    _FRAMES_IN,
    _FRAMES_OUT,
    _C_IN_UNDER,
    _C_IN_OVER,
    _C_OUT_UNDER,
    _C_OUT_OVER,
    _C_PRIMING,
    _XRUNS,
    _LATE_BLOCKS,
    _N_DURATIONS,
    _OVERSIZED,
) = range(12)
_N_COUNTERS = 12

_DURATIONS = 1 << 18  # callbacks remembered: 23 min at 256 frames / 48 kHz, 5.8 min at 64


class DeviceError(Exception):
    """A device could not be found or opened; the message says what exists."""


def _sd():
    """Import sounddevice, turning a missing PortAudio into a DeviceError."""
    try:
        import sounddevice as sd
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise DeviceError(f"{_PORTAUDIO_HELP} ({e})") from e
    return sd


def rescan():
    """Make PortAudio enumerate the devices again.

    PortAudio lists devices once, when it starts; a JACK server started
    afterwards (or a device plugged in) is only seen after a rescan. Only
    call this while no stream is open.
    """
    sd = _sd()
    sd._terminate()
    sd._initialize()


# -- listing -----------------------------------------------------------------


def list_devices():
    """All audio devices PortAudio sees.

    Returns
    -------
    list of dict
        One per device: ``index``, ``name``, ``hostapi`` (its name),
        ``max_input_channels``, ``max_output_channels``,
        ``default_samplerate`` (Hz), ``default_input`` / ``default_output``
        (the system-wide defaults) and ``hostapi_default_input`` /
        ``hostapi_default_output`` (the defaults of its host API).
    """
    sd = _sd()
    apis = sd.query_hostapis()
    try:
        d_in, d_out = sd.default.device
    except Exception:
        d_in = d_out = -1
    if d_in is None or d_in < 0:
        d_in = sd.query_hostapis(sd.default.hostapi)["default_input_device"] if apis else -1
    if d_out is None or d_out < 0:
        d_out = sd.query_hostapis(sd.default.hostapi)["default_output_device"] if apis else -1
    out = []
    for dev in sd.query_devices():
        api = apis[dev["hostapi"]]
        i = dev["index"]
        out.append(
            {
                "index": i,
                "name": dev["name"],
                "hostapi": api["name"],
                "max_input_channels": int(dev["max_input_channels"]),
                "max_output_channels": int(dev["max_output_channels"]),
                "default_samplerate": float(dev["default_samplerate"]),
                "default_input": i == d_in,
                "default_output": i == d_out,
                "hostapi_default_input": i == api["default_input_device"],
                "hostapi_default_output": i == api["default_output_device"],
            }
        )
    return out


def _table_lines(devices):
    """The device list as plain text lines (for error messages)."""
    if not devices:
        return ["  (none: PortAudio sees no audio device)"]
    lines = []
    for d in devices:
        mark = (">" if d["default_input"] else " ") + ("<" if d["default_output"] else " ")
        lines.append(
            f"  {mark} {d['index']:>3}  {d['name']}  [{d['hostapi']}]  "
            f"in {d['max_input_channels']}, out {d['max_output_channels']}, {d['default_samplerate']:g} Hz"
        )
    return lines


def _no_device_help(devices):
    return (
        "\ndevices (> default input, < default output):\n"
        + "\n".join(_table_lines(devices))
        + "\nPick one with --device NAME_OR_INDEX (`genredream devices` lists them), "
        "or analyse a file instead with --input FILE. On Linux, a JACK server "
        "(`jackd -d alsa` or `jackd -d dummy`) makes a device appear; see docs/devices.md."
    )


def resolve_device(spec, kind="input", devices=None):
    """The index of the device ``spec`` names.

    Parameters
    ----------
    spec : None, int or str
        ``None``: the default device of that kind. An integer (or a string of
        digits): that index. Otherwise, case-insensitively: an exact device
        name, or words that must all appear in one device's name and host
        API ("BlackHole", "CABLE Output WASAPI"), or a host API's name or
        part ("JACK") whose default device is then taken.
    kind : {"input", "output"}
        Which channels the device must have.

    Raises
    ------
    DeviceError
        No such device, an ambiguous name, or a device without channels of
        that kind; the message lists the devices.
    """
    devices = list_devices() if devices is None else devices
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    if spec is None:
        dflt = [d for d in devices if d[f"default_{kind}"]]
        if not dflt:
            raise DeviceError(f"there is no default {kind} device." + _no_device_help(devices))
        return dflt[0]["index"]
    s = str(spec).strip()
    if s.lstrip("-").isdigit():
        i = int(s)
        match = [d for d in devices if d["index"] == i]
        if not match:
            raise DeviceError(f"there is no audio device with index {i}." + _no_device_help(devices))
    else:
        low = s.lower()
        match = [d for d in devices if d["name"].lower() == low]
        if not match:
            words = low.split()
            match = [d for d in devices if all(w in f"{d['name']} {d['hostapi']}".lower() for w in words)]
            usable = [d for d in match if d[key] > 0]
            if len(usable) > 1:
                # A host API name ("JACK"): take that API's default device.
                api_dflt = [d for d in usable if all(w in d["hostapi"].lower() for w in words) and d[f"hostapi_default_{kind}"]]
                if len(api_dflt) == 1:
                    return api_dflt[0]["index"]
                names = "\n".join(_table_lines(usable))
                raise DeviceError(f"{spec!r} matches several {kind} devices:\n{names}\nAdd words of the host API (\"{spec} WASAPI\"), name one exactly, or give its index.")
            match = usable or match
        if not match:
            raise DeviceError(f"no audio device matches {spec!r}." + _no_device_help(devices))
    d = match[0]
    if d[key] < 1:
        raise DeviceError(f"device {d['index']} ({d['name']}, {d['hostapi']}) has no {kind} channels." + _no_device_help(devices))
    return d["index"]


def _capabilities(sd, index, kind):
    d = sd.query_devices(index)
    api = sd.query_hostapis(d["hostapi"])["name"]
    ch = d["max_input_channels"] if kind == "input" else d["max_output_channels"]
    rates = []
    for r in (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 192000):
        try:
            if kind == "input":
                sd.check_input_settings(device=index, channels=1, samplerate=r, dtype="float32")
            else:
                sd.check_output_settings(device=index, channels=1, samplerate=r, dtype="float32")
            rates.append(r)
        except Exception:
            pass
    return (
        f"device {index} ({d['name']}, {api}) has {ch} {kind} channel(s), "
        f"default sample rate {d['default_samplerate']:g} Hz, accepts {', '.join(map(str, rates)) or 'none of the usual rates'} Hz"
    )


def _check_settings(sd, index, kind, channels, samplerate):
    d = sd.query_devices(index)
    ch_max = d["max_input_channels"] if kind == "input" else d["max_output_channels"]
    if not (1 <= channels <= ch_max):
        raise DeviceError(f"{channels} {kind} channel(s) asked for, but {_capabilities(sd, index, kind)}")
    try:
        if kind == "input":
            sd.check_input_settings(device=index, channels=channels, samplerate=samplerate, dtype="float32")
        else:
            sd.check_output_settings(device=index, channels=channels, samplerate=samplerate, dtype="float32")
    except Exception as e:
        raise DeviceError(f"{kind} at {samplerate} Hz with {channels} channel(s) is not possible ({e}): {_capabilities(sd, index, kind)}") from e


# -- the callback's kernels -----------------------------------------------------


@njit(cache=True)
def _render_duplex(indata, outdata, mono, n_ready, dry):
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
        for i in range(n_ready, frames):
            for c in range(co):
                outdata[i, c] = 0.0


@njit(cache=True)
def _put_frames(outdata, frames_buf, n_ready):
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
def _render_duplex_frames(indata, outdata, frames_buf, n_ready, dry):
    """As _render_duplex, the ready part from the engine's frame ring (the input's channels, dreamed)."""
    frames, co = outdata.shape
    _put_frames(outdata, frames_buf, n_ready)
    if dry:
        _put_frames(outdata[n_ready:], indata[n_ready:], frames - n_ready)
    else:
        for i in range(n_ready, frames):
            for c in range(co):
                outdata[i, c] = 0.0


@njit(cache=True)
def _render_out_frames(outdata, frames_buf, n_ready, dry_buf, n_dry):
    """Output-only stream with channels: dreamed frames first, then dry frames (the input's, from its frame ring) or silence."""
    frames, co = outdata.shape
    _put_frames(outdata, frames_buf, n_ready)
    m = max(n_ready, n_dry)
    if n_dry > n_ready:
        _put_frames(outdata[n_ready:m], dry_buf[n_ready:m], m - n_ready)
    for i in range(m, frames):
        for c in range(co):
            outdata[i, c] = 0.0


@njit(cache=True)
def _render_mono(outdata, mono, n_ready, dry, n_dry):
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
def _account(counters, flags, frames_in, frames_out, late):
    counters[_CALLBACKS] += 1
    counters[_FRAMES_IN] += frames_in
    counters[_FRAMES_OUT] += frames_out
    if flags & _IN_UNDER:
        counters[_C_IN_UNDER] += 1
    if flags & _IN_OVER:
        counters[_C_IN_OVER] += 1
    if flags & _OUT_UNDER:
        counters[_C_OUT_UNDER] += 1
    if flags & _OUT_OVER:
        counters[_C_OUT_OVER] += 1
    if flags & _PRIMING:
        counters[_C_PRIMING] += 1
    if flags & _XRUN_BITS:
        counters[_XRUNS] += 1
    if late:
        counters[_LATE_BLOCKS] += 1


@njit(cache=True)
def _record(durations, counters, t0, t1):
    n = counters[_N_DURATIONS]
    durations[n % durations.shape[0]] = t1 - t0
    counters[_N_DURATIONS] = n + 1


def _flags(status):
    """The PortAudio flag bits of a sounddevice status (an int, no allocation of arrays)."""
    f = getattr(status, "_flags", None)
    if f is not None:
        return f
    return int(bool(status.input_underflow)) | 2 * bool(status.input_overflow) | 4 * bool(status.output_underflow) | 8 * bool(status.output_overflow) | 16 * bool(status.priming_output)


# -- the runner ---------------------------------------------------------------------


class DuplexRunner:
    """A sounddevice stream feeding an :class:`genredream.engine.runtime.Engine`, and its output.

    Parameters
    ----------
    engine : engine.runtime.Engine
        Its ``sample_rate`` must be the device rate (the engine resamples per
        model, off the callback).
    device : None, int or str
        Input device (see :func:`resolve_device`); None for the default.
    output_device : None, int or str
        Output device. None: the input device if it has outputs (one duplex
        stream), else no output. A different device opens a separate
        OutputStream whose dry signal is the input ring, ``2 * blocksize``
        samples behind (two devices run on two clocks).
    channels : int or None
        Input channels (averaged to mono by the ring). None: up to 2.
        Output channels are up to 2 of the output device's.
    samplerate : int or None
        Hz; None for the device's default. Must equal ``engine.sample_rate``.
    blocksize : int
        Frames per callback (fixed, so every buffer can be preallocated).
    when_late : {"dry", "silence"}
        What the output plays where :attr:`engine_out` has no samples yet.
    output_delay : int
        Output sample ``k`` plays ``engine_out[k - output_delay]``: the
        head start a dreamer gets.
    engine_out : RingBuffer, optional
        The output ring (float32 mono). Default: ``engine.output`` (the
        engine's dreamed stream, indexed by input sample) if the engine has
        one, else an empty ring of 10 s. A dreamer writes behind the input
        clock, so dreamed audio is heard only with an ``output_delay`` of at
        least its own latency; until then every block is the fallback.

    Attributes
    ----------
    counters : np.ndarray, int64
        Updated in place by the callback; read them with :attr:`xruns`,
        :meth:`stats`.
    durations : np.ndarray, float64
        Ring of callback durations in seconds (the newest
        ``min(n, len)`` are valid; see :meth:`callback_durations`). With
        separate input and output streams, both callbacks' durations and
        counts go here.
    """

    def __init__(self, engine, device=None, output_device=None, channels=None, samplerate=None, blocksize=256, when_late="dry", output_delay=0, engine_out=None):
        if when_late not in ("dry", "silence"):
            raise ValueError(f"when_late must be 'dry' or 'silence', got {when_late!r}")
        if int(blocksize) != blocksize or blocksize < 1:
            raise ValueError(f"blocksize must be a positive integer of frames, got {blocksize!r}")
        sd = self._sd = _sd()
        devices = list_devices()
        self.device = resolve_device(device, "input", devices)
        info = sd.query_devices(self.device)
        self.samplerate = int(samplerate or round(info["default_samplerate"]))
        if self.samplerate != engine.sample_rate:
            raise ValueError(f"the engine runs at {engine.sample_rate} Hz but the device stream at {self.samplerate} Hz; build the engine at the device rate")
        self.channels = int(channels) if channels is not None else min(2, info["max_input_channels"])
        _check_settings(sd, self.device, "input", self.channels, self.samplerate)
        if output_device is None:
            self.output_device = self.device if info["max_output_channels"] > 0 else None
        else:
            self.output_device = resolve_device(output_device, "output", devices)
        self.duplex = self.output_device == self.device
        if self.output_device is not None:
            out_info = sd.query_devices(self.output_device)
            self.out_channels = min(2, out_info["max_output_channels"])
            _check_settings(sd, self.output_device, "output", self.out_channels, self.samplerate)
        else:
            self.out_channels = 0
        self.engine = engine
        self.blocksize = int(blocksize)
        self.when_late = when_late
        self._dry = when_late == "dry"
        self.output_delay = int(output_delay)
        if engine_out is None:
            # The engine's dreamed stream (output[j] = input sample j dreamed), when it has one.
            engine_out = getattr(engine, "output", None)
        self.engine_out = engine_out if engine_out is not None else RingBuffer(10 * self.samplerate)
        self.dry_lag = 2 * self.blocksize
        # Stereo in, stereo out (engine/channels.py): the engine keeps the
        # input's channels and a dreamer gives them back in engine.output_ch.
        if self.channels > 1 and getattr(engine, "set_channels", None) is not None and engine_out is getattr(engine, "output", None):
            engine.set_channels(self.channels)
        self._out_ch = getattr(engine, "output_ch", None) if engine_out is getattr(engine, "output", None) else None
        self._in_ch = getattr(engine, "ring_ch", None) if self._out_ch is not None else None
        n_ch = self._out_ch.channels if self._out_ch is not None else 1
        self._frames_buf = np.zeros((self.blocksize, n_ch), dtype=np.float32)
        self._dry_frames = np.zeros((self.blocksize, n_ch), dtype=np.float32)
        # Everything the callback touches, allocated once.
        self.counters = np.zeros(_N_COUNTERS, dtype=np.int64)
        self.durations = np.zeros(_DURATIONS, dtype=np.float64)
        self._mono = np.zeros(self.blocksize, dtype=np.float32)
        self._dry_buf = np.zeros(self.blocksize, dtype=np.float32)
        self._streams = []
        self._old_switch = None
        self._gc_frozen = False
        self._warm_up()

    # -- the callbacks (audio thread) ------------------------------------------

    def _duplex_callback(self, indata, outdata, frames, time_info, status):
        t0 = time.perf_counter()
        self.engine.write(indata)
        if frames > self.blocksize:  # never with a fixed blocksize; guard, not a path
            outdata.fill(0)
            self.counters[_OVERSIZED] += 1
            _account(self.counters, _flags(status), frames, frames, True)
            return
        n = 0
        pos = self.counters[_FRAMES_OUT] - self.output_delay
        if self._out_ch is not None and pos >= 0:
            n = self._out_ch.read_into(pos, self._frames_buf[:frames])
            if n:  # the input's channels, dreamed
                _render_duplex_frames(indata, outdata, self._frames_buf, n, self._dry)
                _account(self.counters, _flags(status), frames, frames, n < frames)
                _record(self.durations, self.counters, t0, time.perf_counter())
                return
        if pos >= 0:
            pos, n = self.engine_out.read_into(pos, self._mono[:frames])
        _render_duplex(indata, outdata, self._mono, n, self._dry)
        _account(self.counters, _flags(status), frames, frames, n < frames)
        _record(self.durations, self.counters, t0, time.perf_counter())

    def _input_callback(self, indata, frames, time_info, status):
        t0 = time.perf_counter()
        self.engine.write(indata)
        _account(self.counters, _flags(status), frames, 0, False)
        _record(self.durations, self.counters, t0, time.perf_counter())

    def _output_callback(self, outdata, frames, time_info, status):
        t0 = time.perf_counter()
        if frames > self.blocksize:
            outdata.fill(0)
            self.counters[_OVERSIZED] += 1
            _account(self.counters, _flags(status), 0, frames, True)
            return
        n = 0
        pos = self.counters[_FRAMES_OUT] - self.output_delay
        if self._out_ch is not None and pos >= 0:
            n = self._out_ch.read_into(pos, self._frames_buf[:frames])
            if n:  # the input's channels, dreamed; dry from the input's frame ring
                n_dry = 0
                dpos = self.counters[_FRAMES_OUT] - self.dry_lag
                if self._dry and n < frames and dpos >= 0:
                    n_dry = self._in_ch.read_into(dpos, self._dry_frames[:frames])
                _render_out_frames(outdata, self._frames_buf, n, self._dry_frames, n_dry)
                _account(self.counters, _flags(status), 0, frames, n < frames)
                _record(self.durations, self.counters, t0, time.perf_counter())
                return
        if pos >= 0:
            pos, n = self.engine_out.read_into(pos, self._mono[:frames])
        n_dry = 0
        if self._dry and n < frames:
            dpos = self.counters[_FRAMES_OUT] - self.dry_lag
            if dpos >= 0:
                dpos, n_dry = self.engine.ring.read_into(dpos, self._dry_buf[:frames])
        _render_mono(outdata, self._mono, n, self._dry_buf, n_dry)
        _account(self.counters, _flags(status), 0, frames, n < frames)
        _record(self.durations, self.counters, t0, time.perf_counter())

    # -- control (main thread) ---------------------------------------------------

    def _warm_up(self):
        """Compile every kernel the callback calls, for the exact array types it sees.

        A Numba kernel compiles on its first call with a new argument type;
        that must never happen on the audio thread. sounddevice hands the
        callback C-contiguous float32 [frames, channels] arrays (writable;
        the read-only variant is compiled too, in case). The engine's own
        ring is not touched: its clock must count device samples only.
        """
        scratch = RingBuffer(4 * self.blocksize)
        for ch in {self.channels, max(1, self.out_channels)}:
            a = np.zeros((self.blocksize, ch), np.float32)
            ro = a.copy()
            ro.flags.writeable = False
            scratch.write(a)
            scratch.write(ro)
        out = np.zeros((self.blocksize, max(1, self.out_channels)), np.float32)
        for ind in (np.zeros((self.blocksize, self.channels), np.float32),):
            ro = ind.copy()
            ro.flags.writeable = False
            for x in (ind, ro):
                _render_duplex(x, out, self._mono, 0, True)
                _render_duplex(x, out, self._mono, 0, False)
        _render_mono(out, self._mono, 0, self._dry_buf, 0)
        scratch.read_into(0, self._mono)
        for ind in (np.zeros((self.blocksize, self.channels), np.float32),):
            ro = ind.copy()
            ro.flags.writeable = False
            for x in (ind, ro):
                for n in (0, self.blocksize // 2, self.blocksize):
                    _render_duplex_frames(x, out, self._frames_buf, n, True)
                    _render_duplex_frames(x, out, self._frames_buf, n, False)
        for n in (0, self.blocksize // 2, self.blocksize):
            _render_out_frames(out, self._frames_buf, n, self._dry_frames, self.blocksize)
        if self._out_ch is not None:
            from genredream.engine.channels import FrameRing

            fr = FrameRing(4 * self.blocksize, self._out_ch.channels)
            a = np.zeros((self.blocksize, self.channels), np.float32)
            ro = a.copy()
            ro.flags.writeable = False
            fr.write(a)
            fr.write(ro)  # engine.write's frame ring, for both array types the callback may see
            fr.read_into(0, self._frames_buf)
        c = np.zeros_like(self.counters)
        _account(c, 0, 1, 1, False)
        _record(np.zeros(4), c, 0.0, 1.0)
        # The engine's write path, minus its clock: the ring kernels above, and
        # the arrival log is plain array assignment.

    def open(self):
        """Open the stream(s) (not started). Raises DeviceError with the device's capabilities."""
        sd = self._sd
        kw = dict(samplerate=self.samplerate, blocksize=self.blocksize, dtype="float32")
        try:
            if self.duplex:
                self._streams = [sd.Stream(device=(self.device, self.device), channels=(self.channels, self.out_channels), callback=self._duplex_callback, **kw)]
            else:
                self._streams = [sd.InputStream(device=self.device, channels=self.channels, callback=self._input_callback, **kw)]
                if self.output_device is not None:
                    self._streams.append(sd.OutputStream(device=self.output_device, channels=self.out_channels, callback=self._output_callback, **kw))
        except sd.PortAudioError as e:
            self.close()
            raise DeviceError(f"could not open the audio stream ({e}): {_capabilities(sd, self.device, 'input')}") from e
        return self

    def start(self, switch_interval=0.0005):
        """Start the stream(s) (opening them if needed).

        ``switch_interval`` (seconds) lowers Python's GIL switch interval
        while the stream runs (restored by :meth:`stop`): the callback needs
        the GIL, and the default 5 ms a busy worker thread may keep it is
        longer than a 64-frame block.

        It also freezes the garbage collector's view of the heap: a full
        collection walks every object (torch and the models make about
        200 000) with the GIL held, measured at 107 ms here, about 20 blocks of
        256 frames, and came at random moments as xruns while our callback
        itself took 0.15 ms. After ``gc.freeze()`` the objects alive at start
        are never scanned again; what the engine allocates per hop is young
        and cheap to collect. :meth:`stop` unfreezes.
        """
        if not self._streams:
            self.open()
        if switch_interval:
            self._old_switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._old_switch, switch_interval))
        gc.collect()
        gc.freeze()
        self._gc_frozen = True
        for s in self._streams:
            s.start()
        return self

    @property
    def active(self):
        return bool(self._streams) and all(s.active for s in self._streams)

    def stop(self):
        """Stop and close the stream(s); counters and durations stay readable."""
        self.close()
        if self._gc_frozen:
            gc.unfreeze()
            self._gc_frozen = False
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None

    def close(self):
        for s in self._streams:
            try:
                s.stop()
            finally:
                s.close()
        self._streams = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- reporting ---------------------------------------------------------------------

    @property
    def xruns(self):
        """Callbacks whose status reported an input overflow/underflow or output underflow/overflow."""
        return int(self.counters[_XRUNS])

    @property
    def frames_in(self):
        return int(self.counters[_FRAMES_IN])

    @property
    def frames_out(self):
        return int(self.counters[_FRAMES_OUT])

    def callback_durations(self):
        """The recorded callback durations (seconds), oldest first (a copy)."""
        n = int(self.counters[_N_DURATIONS])
        if n <= self.durations.size:
            return self.durations[:n].copy()
        i = n % self.durations.size
        return np.concatenate([self.durations[i:], self.durations[:i]])

    def stats(self):
        """Counters and callback duration percentiles (also as fractions of the block period)."""
        c = self.counters
        period = self.blocksize / self.samplerate
        d = self.callback_durations()
        pct = {}
        for q in (50, 99, 100):
            v = float(np.percentile(d, q)) if d.size else float("nan")
            key = "max" if q == 100 else f"p{q}"
            pct[f"callback_{key}_s"] = v
            pct[f"callback_{key}_fraction"] = v / period
        return {
            "device": self.device,
            "output_device": self.output_device,
            "samplerate": self.samplerate,
            "blocksize": self.blocksize,
            "block_period_s": period,
            "channels_in": self.channels,
            "channels_out": self.out_channels,
            "callbacks": int(c[_CALLBACKS]),
            "frames_in": int(c[_FRAMES_IN]),
            "frames_out": int(c[_FRAMES_OUT]),
            "xruns": int(c[_XRUNS]),
            "input_underflow": int(c[_C_IN_UNDER]),
            "input_overflow": int(c[_C_IN_OVER]),
            "output_underflow": int(c[_C_OUT_UNDER]),
            "output_overflow": int(c[_C_OUT_OVER]),
            "priming_output": int(c[_C_PRIMING]),
            "late_blocks": int(c[_LATE_BLOCKS]),
            "oversized_blocks": int(c[_OVERSIZED]),
            "durations_recorded": int(d.size),
            **pct,
        }

    def summary_lines(self):
        st = self.stats()
        flags = ", ".join(f"{k.replace('_', ' ')} {st[k]}" for k in ("input_overflow", "input_underflow", "output_underflow", "output_overflow") if st[k])
        return [
            f"audio: {st['frames_in']} samples in, {st['frames_out']} out, {st['callbacks']} callbacks of {st['blocksize']} frames at {st['samplerate']} Hz; "
            f"xruns {st['xruns']}" + (f" ({flags})" if flags else "") + f"; blocks without dreamed audio ({self.when_late}) {st['late_blocks']}",
            f"callback: p50 {st['callback_p50_s'] * 1e6:.0f} us ({st['callback_p50_fraction']:.1%} of the {st['block_period_s'] * 1e3:.2f} ms block), "
            f"p99 {st['callback_p99_s'] * 1e6:.0f} us ({st['callback_p99_fraction']:.1%}), max {st['callback_max_s'] * 1e6:.0f} us",
        ]


# -- `genredream run --device` ------------------------------------------------------------


def run_device(args, err):
    """`genredream run` on an audio device; returns the exit code.

    ``args`` is the namespace of :func:`genredream.engine.run.add_arguments`; ``err``
    a rich Console for errors.
    """
    from rich.console import Console

    from genredream.engine.io.sinks import JsonlSink, summary
    from genredream.engine.run import build_engine
    from genredream.engine.runtime import ModelLoadError
    from genredream.models.contract import ModelFileError

    def fail(msg):
        err.print(f"[red]genredream run:[/] {msg}", markup=True, highlight=False)
        return 2

    try:
        sd = _sd()
        devices = list_devices()
        index = resolve_device(args.device, "input", devices)
        rate = int(args.samplerate or round(sd.query_devices(index)["default_samplerate"]))
    except DeviceError as e:
        return fail(str(e))
    try:
        engine = build_engine(rate, args.model, args.window, args.hop, args.threads or 1)
    except (ModelLoadError, ModelFileError, ValueError) as e:
        return fail(str(e))
    runner = None
    try:
        kw = {}
        cls = DuplexRunner
        if getattr(args, "audio_callback", "c") == "c":
            # The C callback (rtmixer): no Python on the audio thread.
            from genredream.engine.io.cring import DEFAULT_LEAD_S, CRingRunner

            cls = CRingRunner
            kw["lead_s"] = DEFAULT_LEAD_S if getattr(args, "ring_lead", None) is None else args.ring_lead
        runner = cls(
            engine,
            device=index,
            output_device=args.output_device,
            channels=args.channels,
            samplerate=rate,
            blocksize=args.block or 256,
            when_late=args.when_late,
            # The dreamer writes its output that many samples behind the input
            # clock; delaying playback by as much makes every block dreamed.
            output_delay=engine.transform.latency_samples if getattr(engine, "transform", None) is not None else 0,
            **kw,
        )
        runner.open()
    except (DeviceError, ValueError) as e:
        return fail(str(e))
    except KeyboardInterrupt:  # stopped while opening: let go of the device, then stop as at start-up
        if runner is not None:
            runner.close()
        raise
    jsonl = JsonlSink(args.jsonl) if args.jsonl else None
    if jsonl:
        engine.sinks.append(jsonl)
    extra = {"xruns": 0}
    limit = None if args.duration is None else int(round(args.duration * rate))
    view_on = not args.no_view and args.jsonl != "-"
    stopped_by = interrupted = None
    engine.start()
    try:
        runner.start()

        def wait():
            while True:
                extra["xruns"] = runner.xruns
                # Published on the engine too, for its status (OSC /status, JSON).
                engine.counters["xruns"] = runner.xruns
                if limit is not None and engine.ring.total_written >= limit:
                    return "duration"
                if not runner.active:
                    return "stream"
                time.sleep(0.05)

        if view_on:
            from genredream.engine.io.view import LiveView

            with LiveView(engine, extra=extra):
                stopped_by = wait()
        else:
            stopped_by = wait()
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (engine/interrupt.py)
        from genredream.engine import interrupt

        interrupt.calm()
        interrupted = e
        err.print("stopped")
    finally:
        runner.stop()
        engine.stop(drain=True)
        extra["xruns"] = engine.counters["xruns"] = runner.xruns
        if jsonl:
            jsonl.close()
    if stopped_by == "stream":
        err.print("[red]genredream run:[/] the audio stream stopped on its own (device removed, or the JACK server quit)")
    out = Console(stderr=args.jsonl == "-")
    for line in summary(engine) + runner.summary_lines():
        out.print(line, highlight=False)
    if interrupted is not None:
        from genredream.engine import interrupt

        return interrupt.exit_code(interrupted)
    if stopped_by == "stream":
        return 1
    return 0 if not engine.counters["model_errors"] else 1


# -- `genredream devices` --------------------------------------------------------------------


def add_devices_arguments(p):
    """Arguments of `genredream devices`."""
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "List the audio devices PortAudio sees (JACK, ALSA, CoreAudio, WASAPI, ...), "
        "with their channels and default sample rate.\n"
        "> marks the default input, < the default output."
    )
    p.epilog = (
        "examples:\n"
        "  genredream devices\n"
        "  genredream devices --json\n"
        "  genredream run --device JACK --channels 2     # a host API name picks its default device\n"
        "  genredream run --device 3 --output-device 5\n"
        "\nRouting a DAW in and out: docs/devices.md"
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON (for scripts)")


def devices_main(args):
    """`genredream devices`: the table (or JSON); returns the exit code."""
    from rich.console import Console
    from rich.table import Table

    err = Console(stderr=True)
    try:
        devices = list_devices()
    except DeviceError as e:
        err.print(f"[red]genredream devices:[/] {e}", highlight=False)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(devices, indent=2))
        return 0
    con = Console()
    if not devices:
        con.print(
            "PortAudio sees no audio device. On Linux start a JACK server (`jackd -d alsa`, or "
            "`jackd -d dummy` without a sound card); see docs/devices.md. "
            "Files work without a device: genredream run --input FILE"
        )
        return 1
    t = Table(title="audio devices (> default input, < default output)")
    for col, just in (("", "left"), ("index", "right"), ("name", "left"), ("host API", "left"), ("in", "right"), ("out", "right"), ("default Hz", "right")):
        t.add_column(col, justify=just)
    for d in devices:
        mark = (">" if d["default_input"] else " ") + ("<" if d["default_output"] else " ")
        t.add_row(mark, str(d["index"]), d["name"], d["hostapi"], str(d["max_input_channels"]), str(d["max_output_channels"]), f"{d['default_samplerate']:g}")
    con.print(t)
    return 0
