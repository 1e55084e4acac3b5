"""Where the engine's audio comes from: the :class:`Source` protocol.

A source knows its sample rate and channels before the engine exists (the
engine is built at the source's rate), then feeds the engine on its sample
clock until it is done. :class:`genredream.engine.session.Session` drives
every source the same way::

    source.start(session)            # the engine is built, the output transform attached
    why = source.run(session)        # blocks until the stream ends, a duration, or Ctrl-C
    source.stop(session)             # always (also after Ctrl-C or a failed start): stop the input
    engine.stop(drain=True)          # the session: score what has arrived
    source.close(session)            # always: release what is left (last datagrams out, sockets)
    session summary + source.summary_lines()

Implementations: :class:`genredream.engine.io.file.FileSource` (a file),
:class:`genredream.engine.io.device_source.DeviceSource` (an audio device,
C or Python callback), :class:`genredream.bridge.source.OscSource` (OSC
audio in). Subclassing :class:`Source` gives the optional methods' defaults.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Source", "END", "DURATION", "STREAM_LOST", "wait_stream"]

#: Why :meth:`Source.run` returned: the stream is complete (the output transform emits its tail),
END = "end"
#: the requested duration of stream time was reached,
DURATION = "duration"
#: or the stream stopped on its own (a device removed, the JACK server quit).
STREAM_LOST = "stream"


@runtime_checkable
class Source(Protocol):
    """Audio for the engine: float32 blocks written to ``engine.write`` on the sample clock."""

    #: Hz; the engine runs at this rate (it resamples per model).
    sample_rate: int
    #: Input channels the engine keeps (1: mono); the output transform gives them back.
    channels: int

    def start(self, session) -> None:
        """Start feeding ``session.engine`` (built, transform attached); start its workers if live."""
        ...

    def run(self, session) -> str:
        """Block until done; return :data:`END`, :data:`DURATION` or :data:`STREAM_LOST`.

        ``session.duration`` (seconds of stream time, or None) says when to
        stop. A Ctrl-C raises out of here; the session then stops cleanly.
        """
        ...

    def stop(self, session) -> None:
        """Stop the input (before the engine drains). Called even if :meth:`start` never ran."""

    def close(self, session) -> None:
        """Release what is left once the engine has drained. Called even if :meth:`start` never ran."""

    def summary_lines(self) -> list[str]:
        """Lines added to the run's summary (counters of the device, the socket, ...)."""
        return []

    def describe(self) -> dict | None:
        """A JSON record about the input, written to the JSON lines at the end of a complete run."""
        return None


def wait_stream(engine, duration=None, alive=None, tick=None, poll=0.05):
    """The wait of a live source: until ``duration`` seconds of stream time, or the stream stops.

    ``alive()`` False: the stream stopped on its own (:data:`STREAM_LOST`).
    ``tick()`` runs every ``poll`` seconds (publishing counters, say).
    """
    from genredream.engine.interrupt import check

    limit = None if duration is None else int(round(duration * engine.sample_rate))
    while True:
        check()  # a Ctrl-C that start-up swallowed stops the stream here (engine/interrupt.py)
        if tick is not None:
            tick()
        if limit is not None and engine.ring.total_written >= limit:
            return DURATION
        if alive is not None and not alive():
            return STREAM_LOST
        time.sleep(poll)
