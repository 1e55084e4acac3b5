"""Audio devices: what PortAudio sees, and finding the one a user names.

Devices are named as in ``genredream devices``: an index, a name, a part of
a name, or a host API ("JACK", "CoreAudio", "WASAPI") whose default device
is then used. Every failure is a :class:`DeviceError` whose message lists
the devices that do exist. Nothing here runs on the audio thread: the
runners (engine/io/duplex.py, engine/io/cring.py) open the streams.
"""

from __future__ import annotations

__all__ = [
    "JACK_CLIENT_NAME",
    "DeviceError",
    "import_sounddevice",
    "list_devices",
    "resolve_device",
    "rescan",
    "table_lines",
    "capabilities",
    "check_settings",
]

_PORTAUDIO_HELP = (
    "the PortAudio library is missing: install libportaudio2 "
    "(Debian/Ubuntu: apt-get install libportaudio2; Fedora: dnf install portaudio; "
    "macOS and Windows: it ships inside the sounddevice wheel, reinstall it with pip install --force-reinstall sounddevice)"
)


#: The engine's name as a JACK client (PortAudio's own default is "PortAudio"): its ports are
#: ``genredream:in_0``, ``genredream:out_0``... (JACK adds ``-01`` when the name is taken).
JACK_CLIENT_NAME = "genredream"

_jack_name = None  # the name's bytes, kept alive: PortAudio keeps the pointer


class DeviceError(Exception):
    """A device could not be found or opened; the message says what exists."""


def import_sounddevice():
    """Import sounddevice, turning a missing PortAudio into a DeviceError; under JACK the client is named genredream."""
    try:
        import sounddevice as sd
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise DeviceError(f"{_PORTAUDIO_HELP} ({e})") from e
    _name_jack_client(sd)
    return sd


def _name_jack_client(sd):
    """``PaJack_SetClientName`` (PortAudio's JACK API, not wrapped by sounddevice), once, then a rescan:
    PortAudio opens its JACK client when it initialises, which importing sounddevice did."""
    global _jack_name
    if _jack_name is not None:
        return
    import ctypes

    _jack_name = ctypes.create_string_buffer(JACK_CLIENT_NAME.encode())
    try:
        set_name = ctypes.CDLL(sd._libname).PaJack_SetClientName
    except (OSError, AttributeError):  # a PortAudio built without JACK (the macOS and Windows wheels)
        return
    set_name.argtypes, set_name.restype = [ctypes.c_char_p], ctypes.c_int
    if set_name(_jack_name) == 0:
        sd._terminate()
        sd._initialize()


def rescan():
    """Make PortAudio enumerate the devices again.

    PortAudio lists devices once, when it starts; a JACK server started
    afterwards (or a device plugged in) is only seen after a rescan. Only
    call this while no stream is open.
    """
    sd = import_sounddevice()
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
    sd = import_sounddevice()
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


def table_lines(devices):
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
        + "\n".join(table_lines(devices))
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
                names = "\n".join(table_lines(usable))
                raise DeviceError(f"{spec!r} matches several {kind} devices:\n{names}\nAdd words of the host API (\"{spec} WASAPI\"), name one exactly, or give its index.")
            match = usable or match
        if not match:
            raise DeviceError(f"no audio device matches {spec!r}." + _no_device_help(devices))
    d = match[0]
    if d[key] < 1:
        raise DeviceError(f"device {d['index']} ({d['name']}, {d['hostapi']}) has no {kind} channels." + _no_device_help(devices))
    return d["index"]


def capabilities(sd, index, kind):
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


def check_settings(sd, index, kind, channels, samplerate):
    d = sd.query_devices(index)
    ch_max = d["max_input_channels"] if kind == "input" else d["max_output_channels"]
    if not (1 <= channels <= ch_max):
        raise DeviceError(f"{channels} {kind} channel(s) asked for, but {capabilities(sd, index, kind)}")
    try:
        if kind == "input":
            sd.check_input_settings(device=index, channels=channels, samplerate=samplerate, dtype="float32")
        else:
            sd.check_output_settings(device=index, channels=channels, samplerate=samplerate, dtype="float32")
    except Exception as e:
        raise DeviceError(f"{kind} at {samplerate} Hz with {channels} channel(s) is not possible ({e}): {capabilities(sd, index, kind)}") from e
