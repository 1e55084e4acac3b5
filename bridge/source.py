"""OSC in a session: audio in over OSC as a source, or OSC control beside another source.

* :class:`OscSource`: ``genredream run --osc-port N`` without ``--input`` or
  ``--device``: audio arrives as ``/genredream/audio/in`` (or
  ``/audio/in/f``) and the engine runs at the source's rate (senders at
  other rates are resampled). With an :class:`genredream.bridge.early.EarlyPort`
  bound before the models loaded, its socket and the datagrams it kept go
  to the bridge, oldest first.
* :class:`OscControl`: with a file or a device as the source, OSC carries
  control, scores and dreamed audio (OSC audio in is refused).

Both use :class:`genredream.bridge.OscBridge` through its public methods and
give their counters as one summary line. Imports nothing heavy at the top:
the command line binds the port before torch loads.
"""

from __future__ import annotations

import time

from genredream.engine.io.source import Source, wait_stream

__all__ = ["OscSource", "OscControl", "port_problem", "DEFAULT_OSC_RATE"]

#: Engine sample rate for OSC audio in when none is given.
DEFAULT_OSC_RATE = 48000


def port_problem(host, port):
    """Why OSC cannot listen on host:port (the OSError's text), or None: checked before any model loads."""
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
    except OSError as e:
        return e.strerror or str(e)
    finally:
        s.close()
    return None


class _Endpoint:
    """Where the bridge listens and whom it answers (the ``--osc-*`` options)."""

    def __init__(self, host="127.0.0.1", port=None, allow=None, reply=(), control_port=None, lease=60.0):
        from genredream.bridge.protocol import DEFAULT_PORT

        self.host, self.port = host, DEFAULT_PORT if port is None else port
        self.allow, self.reply, self.control_port = allow, tuple(reply or ()), control_port
        self.lease = lease
        self.bridge = None

    def _bridge(self, engine, audio_in, sock=None):
        from genredream.bridge import OscBridge

        return OscBridge(engine, host=self.host, port=self.port, allow=self.allow, reply=self.reply,
                         audio_in=audio_in, control_port=self.control_port, sock=sock, lease=self.lease)

    def summary_lines(self):
        if self.bridge is None:
            return []
        st = self.bridge.status()
        return [
            f"osc: {st['packets']} packets in ({st['accepted']} accepted, {st['rejected']} rejected), "
            f"audio {st['audio_packets']} packets: {st['lost']} lost, {st['reordered']} reordered, "
            f"{st['duplicates']} duplicates, {st['restarts']} restarts; {st['packets_out']} packets out"
            + (f"; {st['overloaded']} audio packets dropped (overloaded)" if st["overloaded"] else "")
            + (f"; WORKERS DOWN: {st['workers_down']}" if st["workers_down"] else "")
        ]


class OscSource(_Endpoint, Source):
    """Audio in over OSC, at ``sample_rate`` Hz (mono).

    ``early``: an :class:`genredream.bridge.early.EarlyPort` already bound on
    the port (answering "loading" and keeping datagrams while the models
    load); it is handed over at :meth:`start`, or closed if the run never
    gets there.
    """

    channels = 1

    def __init__(self, sample_rate=None, early=None, **endpoint):
        super().__init__(**endpoint)
        self.sample_rate = int(sample_rate or DEFAULT_OSC_RATE)
        self.early = early

    def start(self, session):
        engine = session.engine
        kept, early = [], self.early
        try:
            if early is not None:
                sock, kept = early.handover()
                self.early = None
                self.bridge = self._bridge(engine, audio_in=True, sock=sock)
            else:
                self.bridge = self._bridge(engine, audio_in=True)
        except OSError as e:
            raise ValueError(f"cannot listen on {self.host}:{self.port}: {e}") from None
        for data, addr in kept:  # what arrived while loading, in order, before anything newer
            self.bridge.handle_datagram(data, addr)
        if early is not None and (kept or early.counters["dropped"]):
            dropped = early.counters["dropped"]
            session.notify(f"kept {len(kept)} OSC packets that arrived while loading" + (f" ({dropped} beyond the limit dropped)" if dropped else ""))
        engine.start()
        self.bridge.start()
        session.notify(
            f"listening for OSC on {self.host}:{self.bridge.port}"
            + (f" (control also on {self.bridge.control_port})" if self.bridge.control_port else "")
            + f"; engine at {self.sample_rate} Hz; models: {', '.join(engine.models) or 'none'}; Ctrl-C stops"
        )

    def run(self, session):
        return wait_stream(session.engine, session.duration)

    def close(self, session):
        if self.early is not None:  # never handed over (stopped or failed while loading)
            self.early.close()
            self.early = None
        if self.bridge is not None:
            time.sleep(0.05)  # the audio-out thread polls every few ms: the drained engine's last audio goes out
            self.bridge.stop()


class OscControl(_Endpoint):
    """OSC control, scores and dreamed audio for a session whose audio comes from a file or a device."""

    def attach(self, session):
        try:
            self.bridge = self._bridge(session.engine, audio_in=False).start()
        except OSError as e:
            raise ValueError(f"cannot listen for OSC on {self.host}:{self.port}: {e}") from None
        session.notify(f"OSC control on {self.host}:{self.bridge.port} (audio comes from the file or device)")

    def close(self):
        if self.bridge is not None:
            self.bridge.stop()
