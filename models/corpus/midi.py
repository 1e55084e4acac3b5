"""A small Standard MIDI File (SMF) writer.

Only what the synthetic corpus needs: format 1 files with a conductor track
(tempo, time signature) and one track per instrument, program changes,
control changes, pitch bends and notes. General MIDI puts percussion on
channel 10, which is channel index 9 here (channels are 0-based on the wire).

Events are stored with absolute tick times and sorted at write time, so a
composer can add notes in any order. The sort is stable and puts note-offs
before note-ons at the same tick: a repeated pitch then restarts instead of
being cut by its own predecessor's note-off.

Examples
--------
>>> f = MidiFile(ppq=480)
>>> f.conductor.tempo(0, 120.0)
>>> t = f.add_track("piano")
>>> t.program(0, channel=0, program=0)
>>> t.note(0, 480, channel=0, pitch=60, velocity=100)
>>> f.to_bytes()[:4]
b'MThd'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from os import PathLike

__all__ = ["DRUM_CHANNEL", "MidiFile", "Track", "var_len", "parse_header"]

#: GM channel 10 (0-based 9) is the percussion channel.
DRUM_CHANNEL = 9

# Sort keys for events sharing a tick: setup (meta, program, controllers)
# must reach the synth before notes that depend on it, and note-offs must
# come before note-ons so a re-struck pitch is not silenced by its own tail.
_ORDER_META = 0
_ORDER_SETUP = 1
_ORDER_OFF = 2
_ORDER_ON = 3


def var_len(value: int) -> bytes:
    """Encode an integer as a MIDI variable-length quantity.

    Parameters
    ----------
    value : int
        0 <= value < 2**28.

    Returns
    -------
    bytes
        1 to 4 bytes, 7 bits each, most significant first, continuation bit set
        on all but the last.
    """
    if not 0 <= value < 1 << 28:
        raise ValueError(f"value must be in [0, 2**28), got {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def _check(name: str, value: int, lo: int, hi: int) -> int:
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


@dataclass
class Track:
    """One MTrk chunk: a list of timed events.

    Parameters
    ----------
    name : str
        Written as a track-name meta event; shows up in any MIDI editor.
    """

    name: str = ""
    events: list[tuple[int, int, int, bytes]] = field(default_factory=list)

    def _add(self, tick: int, order: int, data: bytes) -> None:
        tick = int(tick)
        if tick < 0:
            raise ValueError(f"tick must be >= 0, got {tick}")
        # The running index keeps insertion order among equal (tick, order).
        self.events.append((tick, order, len(self.events), data))

    def meta(self, tick: int, kind: int, payload: bytes) -> None:
        """Add a meta event (``FF kind len payload``)."""
        self._add(tick, _ORDER_META, bytes([0xFF, kind]) + var_len(len(payload)) + payload)

    def tempo(self, tick: int, bpm: float) -> None:
        """Set the tempo in quarter notes per minute."""
        if not 1.0 <= bpm <= 1000.0:
            raise ValueError(f"bpm must be in [1, 1000], got {bpm}")
        us = int(round(60_000_000 / bpm))
        self.meta(tick, 0x51, us.to_bytes(3, "big"))

    def time_signature(self, tick: int, numerator: int, denominator: int) -> None:
        """Set the meter, e.g. (3, 4) or (6, 8)."""
        numerator = _check("numerator", numerator, 1, 255)
        if denominator not in (1, 2, 4, 8, 16, 32):
            raise ValueError(f"denominator must be a power of two <= 32, got {denominator}")
        # 24 MIDI clocks per metronome click and 8 32nds per quarter: the defaults.
        self.meta(tick, 0x58, bytes([numerator, denominator.bit_length() - 1, 24, 8]))

    def program(self, tick: int, channel: int, program: int) -> None:
        """Program change (0-based GM program number, 0..127)."""
        channel = _check("channel", channel, 0, 15)
        program = _check("program", program, 0, 127)
        self._add(tick, _ORDER_SETUP, bytes([0xC0 | channel, program]))

    def control(self, tick: int, channel: int, controller: int, value: int) -> None:
        """Control change, e.g. 7 volume, 10 pan, 11 expression, 91 reverb send."""
        channel = _check("channel", channel, 0, 15)
        controller = _check("controller", controller, 0, 127)
        value = _check("value", value, 0, 127)
        self._add(tick, _ORDER_SETUP, bytes([0xB0 | channel, controller, value]))

    def pitch_bend(self, tick: int, channel: int, value: int) -> None:
        """Pitch bend, value in [-8192, 8191] (0 = centre)."""
        channel = _check("channel", channel, 0, 15)
        v = _check("value", value, -8192, 8191) + 8192
        self._add(tick, _ORDER_SETUP, bytes([0xE0 | channel, v & 0x7F, v >> 7]))

    def note(self, tick: int, duration: int, channel: int, pitch: int, velocity: int) -> None:
        """Add a note as a note-on at ``tick`` and a note-off ``duration`` ticks later.

        Parameters
        ----------
        tick, duration : int
            Start and length in ticks; duration >= 1.
        channel : int
            0..15; 9 is percussion.
        pitch, velocity : int
            0..127; velocity >= 1 (velocity 0 would mean note-off).
        """
        channel = _check("channel", channel, 0, 15)
        pitch = _check("pitch", pitch, 0, 127)
        velocity = _check("velocity", velocity, 1, 127)
        duration = max(1, int(duration))
        self._add(tick, _ORDER_ON, bytes([0x90 | channel, pitch, velocity]))
        self._add(int(tick) + duration, _ORDER_OFF, bytes([0x80 | channel, pitch, 64]))

    def end_tick(self) -> int:
        """The tick of the last event (0 when empty)."""
        return max((e[0] for e in self.events), default=0)

    def to_bytes(self, end_tick: int | None = None) -> bytes:
        """Serialise as an ``MTrk`` chunk, delta-timed, with end-of-track.

        Parameters
        ----------
        end_tick : int, optional
            Where to put the end-of-track meta event; at least the last event.
        """
        body = bytearray()
        if self.name:
            name = self.name.encode("ascii", "replace")
            body += b"\x00\xff\x03" + var_len(len(name)) + name
        now = 0
        for tick, _, _, data in sorted(self.events, key=lambda e: (e[0], e[1], e[2])):
            body += var_len(tick - now) + data
            now = tick
        end = max(now, end_tick if end_tick is not None else now)
        body += var_len(end - now) + b"\xff\x2f\x00"
        return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


class MidiFile:
    """A format-1 Standard MIDI File.

    Parameters
    ----------
    ppq : int
        Ticks per quarter note (the header's division field), 1..32767.

    Attributes
    ----------
    conductor : Track
        Track 0, for tempo and time signature.
    tracks : list of Track
        All tracks, the conductor first.
    end_tick : int or None
        If set, every track's end-of-track event is placed here (or later, if
        a track has later events), so the player runs at least this long.
    """

    def __init__(self, ppq: int = 480) -> None:
        self.ppq = _check("ppq", ppq, 1, 0x7FFF)
        self.conductor = Track("conductor")
        self.tracks: list[Track] = [self.conductor]
        self.end_tick: int | None = None

    def add_track(self, name: str = "") -> Track:
        """Append and return a new empty track."""
        track = Track(name)
        self.tracks.append(track)
        return track

    def to_bytes(self) -> bytes:
        """The whole file: ``MThd`` header then one ``MTrk`` per track."""
        header = b"MThd" + struct.pack(">IHHH", 6, 1, len(self.tracks), self.ppq)
        end = self.end_tick
        return header + b"".join(t.to_bytes(end) for t in self.tracks)

    def save(self, path: str | PathLike[str]) -> None:
        """Write the file to ``path``."""
        with open(path, "wb") as fh:
            fh.write(self.to_bytes())


def parse_header(data: bytes) -> tuple[int, int, int]:
    """Read an SMF header and check the chunk structure.

    Parameters
    ----------
    data : bytes
        A whole MIDI file.

    Returns
    -------
    (format, ntracks, division) : tuple of int

    Raises
    ------
    ValueError
        If the header is malformed or the track chunks don't add up.
    """
    if len(data) < 14 or data[:4] != b"MThd":
        raise ValueError("not a Standard MIDI File: missing MThd")
    length, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    if length != 6:
        raise ValueError(f"MThd length must be 6, got {length}")
    pos = 8 + length
    for i in range(ntracks):
        if data[pos : pos + 4] != b"MTrk":
            raise ValueError(f"track {i}: missing MTrk at byte {pos}")
        (size,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if data[pos + 8 + size - 3 : pos + 8 + size] != b"\xff\x2f\x00":
            raise ValueError(f"track {i}: does not end with end-of-track")
        pos += 8 + size
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes after the last track")
    return fmt, ntracks, division
