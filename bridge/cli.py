"""The OSC options of ``genredream run``, and running the engine on OSC audio.

``genredream run --osc-port [N]`` (default port :data:`genredream.bridge.protocol.DEFAULT_PORT`):

* without ``--input``/``--device``, audio comes in over OSC
  (``/genredream/audio/in`` or ``/audio/in/f``) and the engine runs at
  ``--samplerate`` (default 48000 Hz); senders at other rates are resampled;
* with ``--input`` or ``--device``, the file or device feeds the engine and
  OSC carries control, scores and dreamed audio (OSC audio in is refused).

This module is imported by ``genredream --help``: it imports nothing heavy
at the top.
"""

from __future__ import annotations

import argparse

from genredream.bridge.protocol import DEFAULT_PORT

__all__ = ["add_osc_arguments", "parse_reply", "port_problem", "run_osc", "OscAttachment", "DEFAULT_OSC_RATE"]

#: Engine sample rate for OSC audio in when --samplerate is not given.
DEFAULT_OSC_RATE = 48000


def parse_reply(text):
    """``host:port[:audio]`` -> ``(host, port, audio)``; audio is none, b or f."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected host:port or host:port:audio (audio: none, b, f), got {text!r}")
    host, port = parts[0] or "127.0.0.1", parts[1]
    audio = parts[2] if len(parts) == 3 else "none"
    if audio not in ("none", "b", "f"):
        raise argparse.ArgumentTypeError(f"audio must be none, b or f, got {audio!r}")
    try:
        port = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, got {port!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, got {port}")
    return host, port, audio


def add_osc_arguments(p):
    g = p.add_argument_group(
        "OSC (Max/MSP, Pure Data, DAWs; see docs/osc.md)",
        "With --osc-port and no --input/--device, audio comes in over OSC and the engine runs at --samplerate (default 48000).",
    )
    g.add_argument("--osc-port", type=int, nargs="?", const=DEFAULT_PORT, default=None, metavar="N",
                   help=f"listen for OSC on UDP port N (default port {DEFAULT_PORT} when N is left out)")
    g.add_argument("--osc-control-port", type=int, default=None, metavar="N",
                   help="also listen on UDP port N for control only (status, ping, subscribe, models, dream): "
                        "it answers even when the main port is flooded")
    g.add_argument("--osc-host", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 listens on every interface: an explicit choice)")
    g.add_argument("--osc-allow", nargs="+", metavar="HOST", help="use datagrams from these hosts only")
    g.add_argument("--osc-reply", action="append", type=parse_reply, metavar="HOST:PORT[:AUDIO]",
                   help="a default subscriber for scores (AUDIO: none, b or f for dreamed audio); repeatable. "
                        "Max's [udpsend] cannot receive, so give Max's [udpreceive] port here")


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


def _bridge(engine, args, audio_in, sock=None):
    from genredream.bridge.server import OscBridge

    return OscBridge(engine, host=args.osc_host, port=args.osc_port, allow=args.osc_allow,
                     reply=args.osc_reply or (), audio_in=audio_in,
                     control_port=getattr(args, "osc_control_port", None), sock=sock)


def _summary_line(bridge):
    st = bridge.status()
    return (
        f"osc: {st['packets']} packets in ({st['accepted']} accepted, {st['rejected']} rejected), "
        f"audio {st['audio_packets']} packets: {st['lost']} lost, {st['reordered']} reordered, "
        f"{st['duplicates']} duplicates, {st['restarts']} restarts; {st['packets_out']} packets out"
        + (f"; {st['overloaded']} audio packets dropped (overloaded)" if st["overloaded"] else "")
        + (f"; WORKERS DOWN: {st['workers_down']}" if st["workers_down"] else "")
    )


class OscAttachment:
    """Attach a bridge (control, scores, dreamed audio; no audio in) to the engine `run` builds."""

    def __init__(self, args, err):
        from genredream.engine import run

        self.args, self.err, self.bridge = args, err, None
        self._hooks = run.ENGINE_HOOKS
        self._hooks.append(self._attach)

    def _attach(self, engine):
        try:
            self.bridge = _bridge(engine, self.args, audio_in=False).start()
        except OSError as e:
            raise ValueError(f"cannot listen for OSC on {self.args.osc_host}:{self.args.osc_port}: {e}") from None
        self.err.print(f"OSC control on {self.args.osc_host}:{self.bridge.port} (audio comes from the file or device)")

    def close(self):
        if self._attach in self._hooks:
            self._hooks.remove(self._attach)
        if self.bridge is not None:
            self.bridge.stop()
            self.err.print(_summary_line(self.bridge))


def run_osc(args, err, early=None):
    """`genredream run --osc-port N` with OSC audio in. Returns the exit code.

    ``early``: a :class:`genredream.bridge.early.EarlyPort` bound before the models
    loaded; its socket and the datagrams it kept go to the bridge.
    """
    import time

    from rich.console import Console

    from genredream.engine.io.sinks import JsonlSink, summary
    from genredream.engine.run import build_engine

    rate = args.samplerate or DEFAULT_OSC_RATE
    engine = build_engine(rate, args.model, args.window, args.hop, args.threads or 1)
    kept = []
    try:
        if early is not None:
            sock, kept = early.handover()
            bridge = _bridge(engine, args, audio_in=True, sock=sock)
        else:
            bridge = _bridge(engine, args, audio_in=True)
    except OSError as e:
        err.print(f"[red]genredream run:[/] cannot listen on {args.osc_host}:{args.osc_port}: {e}")
        return 2
    for data, addr in kept:  # what arrived while loading, in order, before anything newer
        bridge.handle_datagram(data, addr)
    if early is not None and (kept or early.counters["dropped"]):
        err.print(f"kept {len(kept)} OSC packets that arrived while loading" + (f" ({early.counters['dropped']} beyond the limit dropped)" if early.counters["dropped"] else ""))
    jsonl = JsonlSink(args.jsonl) if args.jsonl else None
    if jsonl:
        engine.sinks.append(jsonl)
    limit = None if args.duration is None else int(round(args.duration * rate))
    engine.start()
    bridge.start()
    err.print(
        f"listening for OSC on {args.osc_host}:{bridge.port}"
        + (f" (control also on {bridge.control_port})" if bridge.control_port else "")
        + f"; engine at {rate} Hz; "
        f"models: {', '.join(engine.models) or 'none'}; Ctrl-C stops"
    )

    def wait():
        while limit is None or engine.ring.total_written < limit:
            time.sleep(0.05)

    interrupted = None
    try:
        if not args.no_view and args.jsonl != "-":
            from genredream.engine.io.view import LiveView

            with LiveView(engine):
                wait()
        else:
            wait()
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (engine/interrupt.py)
        from genredream.engine import interrupt

        interrupt.calm()
        interrupted = e
        err.print("stopped")
    finally:
        engine.stop(drain=True)  # first: the last windows' scores and dreamed audio still go out over OSC
        time.sleep(0.05)  # the audio-out thread polls every few ms
        bridge.stop()
        if jsonl:
            jsonl.close()
    out = Console(stderr=args.jsonl == "-")
    for line in summary(engine):  # includes the dreamer's line
        out.print(line, highlight=False)
    out.print(_summary_line(bridge))
    if interrupted is not None:
        from genredream.engine import interrupt

        return interrupt.exit_code(interrupted)
    return 0 if not engine.counters["model_errors"] else 1
