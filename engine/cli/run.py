"""`genredream run`: the engine, live or on a file.

Input: an audio file (``--input``, as fast as possible unless ``--realtime``),
an audio device (``--device``; duplex, so dreamed audio can go back out) or
OSC (``--osc-port`` alone). Output: the live view in the terminal, JSON lines
(``--jsonl``), OSC, and a summary at the end (results emitted, latency
p50/p99, skipped windows).

This module parses and prints; the run itself is a
:class:`genredream.engine.session.Session` with one source
(engine/io/file.py, engine/io/device_source.py, bridge/source.py). The
command line sits above every layer, so it may wire the OSC bridge in.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "main", "attach_dreamer", "dream_requested", "parse_reply"]

#: Seconds between progress lines on stderr when the live view is off.
PROGRESS_EVERY = 5.0

#: The shortest --hop: 20 results a second per model. Below it the engine spends its time starting
#: windows (0.0001 s asked for 60 000 windows of a 6 s file and printed nothing).
MIN_HOP = 0.05


def add_arguments(p: argparse.ArgumentParser):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Run the engine: genre scores for the last WINDOW seconds, every HOP seconds, from a file or an audio device.\n"
        "Each result says where its window ends (sample index, stream seconds) and how late it is (ms)."
    )
    p.epilog = (
        "examples:\n"
        "  genredream run --input song.wav                      # analyse a file as fast as possible\n"
        "  genredream run --input song.wav --realtime --loop    # rehearse: real-time pace, looped\n"
        "  genredream run --device 'JACK' --model musicnn-msd   # live from an audio interface or JACK\n"
        "  genredream run --input song.wav --no-view --jsonl -  # JSON lines on stdout, for scripts\n"
        "  genredream run --osc-port 9137 --osc-reply 127.0.0.1:9138  # audio in over OSC (Max, Pd), scores back\n"
        "\n"
        "`genredream devices` lists the audio devices; `genredream models` the models."
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="FILE", help="audio file to play into the engine (wav, flac, ogg, mp3, au)")
    src.add_argument("--device", metavar="NAME_OR_INDEX", help="audio input device (see `genredream devices`)")
    p.add_argument("--model", action="append", metavar="NAME_OR_PATH", help="model to run; repeat for several (default: musicnn-msd if installed, else the first shipped model)")
    p.add_argument("--window", type=float, default=5.0, help="seconds each model sees (default 5; must match the models)")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between results (default 0.5; from 0.05 to the window)")
    p.add_argument("--duration", type=float, help="stop after this many seconds of stream time")
    p.add_argument("--realtime", action="store_true", help="play a file at real-time pace (default: as fast as possible)")
    p.add_argument("--loop", action="store_true", help="loop the file (use with --duration or stop with Ctrl-C)")
    p.add_argument("--block", type=int, default=None, help="frames per block (default 1024 for files, 256 for devices)")
    p.add_argument("--channels", type=int, default=None, help="input channels to open on the device (default: up to 2, averaged)")
    p.add_argument("--samplerate", type=int, default=None, help="device sample rate (default: the device's)")
    p.add_argument("--output-device", metavar="NAME_OR_INDEX", help="where dreamed audio goes (default: the input device, duplex)")
    p.add_argument("--when-late", choices=["dry", "silence"], default="dry", help="device output when no dreamed audio is ready (default dry)")
    p.add_argument(
        "--ring-lead",
        type=float,
        default=None,
        metavar="S",
        help="seconds of output kept ready ahead of the device (0.02-2, default 0.3): absorbs a stall of Python "
        "(a model loading, the garbage collector) that long, and delays the device output by as much",
    )
    # Benchmark-only: the previous Python audio callback, kept to measure against (BENCHMARKS.md).
    p.add_argument("--audio-callback", choices=["c", "python"], default="c", help=argparse.SUPPRESS)
    p.add_argument("--jsonl", metavar="PATH", help="write every result as a JSON line ('-' for stdout)")
    p.add_argument("--no-view", action="store_true", help="no live view (for scripts and logs; also off when stdout is not a terminal)")
    p.add_argument("--progress", type=float, default=PROGRESS_EVERY, metavar="S",
                   help=f"without the live view, a progress line on stderr every S seconds (default {PROGRESS_EVERY:g}; 0: none)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for inference (default 1: the engine's other thread decodes and computes the front end, "
             "and one inference thread keeps its speed when another job shares the cores; more helps only on an idle machine)",
    )
    d = p.add_argument_group("dreaming (engine/dream/; docs/dream.md)")
    d.add_argument("--dream", nargs="?", const="all", default=None, metavar="LAYER|all", help="dream while running: ascend this layer's mean activation, or all layers' (the default)")
    d.add_argument("--target", metavar="LABEL", help="dream toward this label instead of a layer (implies --dream)")
    d.add_argument("--away", action="store_true", help="with --target: dream away from the label")
    d.add_argument("--steps", type=int, default=None, metavar="K", help="gradient steps per hop (default: per model, so a hop's steps take <= half the hop)")
    d.add_argument("--step-size", type=float, default=None, metavar="X", help="RMS change per step, full scale 1 (default 0.003)")
    d.add_argument("--mix", type=float, default=1.0, metavar="M", help="0 = dry, 1 = the full dream (default 1)")
    d.add_argument(
        "--depth",
        type=float,
        default=None,
        metavar="D",
        help="0..1, the performer's control (implies --dream): 0 = the dry input, up to 0.5 more steps and more of the change heard, "
        "above 0.5 more dream latency (more steps per sample); sets --steps and scales --mix; live: /genredream/dream/depth (docs/dream.md)",
    )
    d.add_argument("--dream-latency", type=float, default=None, metavar="S", help="seconds a sample stays being dreamed, from one hop to the window: more latency, more steps per sample (default: one hop)")
    d.add_argument("--dream-model", metavar="NAME_OR_PATH", help="model to dream with (default: the first --model)")
    d.add_argument("--dream-out", metavar="FILE.wav", help="write the dreamed stream (16-bit PCM at the input rate, aligned with the input)")
    from genredream.engine.cli.run_continue import add_continue_arguments

    add_continue_arguments(p)  # --continue: keep playing a generated continuation when the input falls silent
    _add_osc_arguments(p)


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


def _lease(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the lease is seconds, got {text!r}") from None
    if not (v >= 0 and v < 1e9):
        raise argparse.ArgumentTypeError(f"the lease must be 0 (forever) or more seconds, got {text!r}")
    return v


def _add_osc_arguments(p):
    from genredream.bridge.protocol import DEFAULT_PORT

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
    g.add_argument("--osc-lease", type=_lease, default=60.0, metavar="S",
                   help="seconds a /genredream/subscribe lasts unless sent again (default 60; 0: forever); "
                        "--osc-reply subscribers never expire")


def dream_requested(args):
    """True when the run's options ask for dreaming (--dream, --target or --dream-out)."""
    return any(getattr(args, k, None) for k in ("dream", "target", "dream_out")) or getattr(args, "depth", None) is not None


def attach_dreamer(engine, args, writers=None):
    """Start the dreamer the options describe on ``engine`` (raises DreamError, a ValueError, with the reason).

    The dream model defaults to the first ``--model`` (reusing the engine's
    loaded copy). ``--dream-out`` adds a :class:`genredream.engine.io.sinks.WavWriter`
    to the dreamer's output sinks and to ``writers`` (close them at the end).
    """
    from genredream.engine.dream import Dreamer
    from genredream.engine.io.sinks import add_wav_output
    from genredream.models.classify import default_model
    from genredream.models.contract import ModelFileError
    from genredream.models.registry import resolve_model

    name = args.dream_model or (args.model[0] if args.model else str(default_model()))
    model = name
    try:
        path = resolve_model(name).resolve()
        model = next((s.loaded for s in engine.models.values() if s.loaded.path.resolve() == path), name)
    except (ModelFileError, OSError):
        pass  # the Dreamer reports the unknown model with the known ones
    dreamer = Dreamer(
        model,
        layer=None if args.target else (args.dream or "all"),
        target=args.target,
        away=args.away,
        steps=args.steps,
        step_size=0.003 if args.step_size is None else args.step_size,
        mix=args.mix,
        latency=args.dream_latency,
        depth=getattr(args, "depth", None),
    )
    engine.set_transform(dreamer)
    if args.dream_out:
        add_wav_output(dreamer, args.dream_out, engine.sample_rate, writers)
    return dreamer


def main(args) -> int:
    from genredream.engine import startup

    startup.begin()  # a lighter torch import and no garbage collection until the models are warm (engine/startup.py)
    early = None
    osc_in = getattr(args, "osc_port", None) is not None and args.input is None and args.device is None
    if osc_in:
        # Audio in over OSC: bind the port before anything heavy is imported or
        # loaded; it answers /status "loading" and keeps what arrives (bridge/early.py).
        from genredream.bridge.early import EarlyPort

        try:
            early = EarlyPort(args.osc_host, args.osc_port)
        except OSError as e:
            print(f"genredream run: cannot listen for OSC on {args.osc_host}:{args.osc_port}: {e.strerror or e} "
                  "(another genredream, or another program, uses the port: choose another with --osc-port N)", file=sys.stderr)
            return 2
    try:
        return _main(args, early)
    finally:
        startup.end()  # the collector on and nothing left frozen, also when the run stopped before its source started
        if early is not None and early._running:  # never handed over (stopped or failed before the source started)
            early.close()


def _problem(args):
    """What is wrong with the options (checked before anything loads), or None."""
    if not (MIN_HOP <= args.hop <= args.window):
        return f"--hop must be from {MIN_HOP:g} s to the window ({args.window:g} s), got {args.hop:g}"
    if args.threads is not None and args.threads < 1:
        return f"--threads must be at least 1, got {args.threads}"
    if args.away and not args.target:
        return "--away needs --target LABEL"
    from genredream.engine.cli.run_continue import continue_requested

    if continue_requested(args) and dream_requested(args):
        return "--continue and --dream both write the output stream; choose one"
    if args.loop and not args.duration and not args.realtime:
        return "--loop without --realtime or --duration would never end; add --duration S"
    return None


def _source(args, early):
    """The Source the options name (raises AudioFileError, DeviceError or ValueError with the reason)."""
    if early is not None:
        from genredream.bridge.source import OscSource

        return OscSource(args.samplerate, early=early, **_endpoint(args))
    if args.input is None:
        from genredream.engine.io.device_source import DeviceSource

        return DeviceSource(args.device, args.output_device, args.channels, args.samplerate, args.block or 256, args.when_late,
                            callback=getattr(args, "audio_callback", "c"), ring_lead=getattr(args, "ring_lead", None))
    from genredream.engine.io.file import FileSource

    return FileSource(args.input, block=args.block or 1024, loop=args.loop, realtime=args.realtime, progress=args.progress or 0)


def _endpoint(args):
    return dict(host=args.osc_host, port=args.osc_port, allow=args.osc_allow, reply=args.osc_reply or (),
                control_port=getattr(args, "osc_control_port", None), lease=getattr(args, "osc_lease", 60.0))


def _transform(args):
    """The output transform the options ask for, as a Session's ``transform(engine, writers)``; or None."""
    from genredream.engine.cli.run_continue import continue_requested
    from genredream.engine.continuation import attach_continuer

    if continue_requested(args):
        # The continuation takes the dreamer's place: same output stream, finish and summary.
        return lambda engine, writers: attach_continuer(engine, args, writers)
    if dream_requested(args):
        return lambda engine, writers: attach_dreamer(engine, args, writers)
    return None


class _Stderr:
    """rich's Console on stderr, made at the first message: importing rich is 0.04-0.08 s of
    every start, which the first result need not wait for."""

    _console = None

    def print(self, *args, **kwargs):
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        self._console.print(*args, **kwargs)


def _main(args, early) -> int:
    err = _Stderr()

    def fail(msg):
        from rich.markup import escape

        err.print(f"[red]genredream run:[/] {escape(str(msg))}", highlight=False)
        return 2

    problem = _problem(args)
    if problem:
        return fail(problem)
    control = None
    if getattr(args, "osc_port", None) is not None and early is None:
        from genredream.bridge.source import OscControl, port_problem

        problem = port_problem(args.osc_host, args.osc_port)  # before the models load (seconds), not after
        if problem:
            return fail(f"cannot listen for OSC on {args.osc_host}:{args.osc_port}: {problem} "
                        "(another genredream, or another program, uses the port: choose another with --osc-port N)")
        control = OscControl(**_endpoint(args))  # control, scores and dreamed audio over OSC; audio from the file or device

    from genredream.engine.io.devices import DeviceError
    from genredream.engine.runtime import ModelLoadError
    from genredream.engine.session import Session
    from genredream.models.contract import ModelFileError
    from genredream.models.data import AudioFileError

    view = not args.no_view and args.jsonl != "-" and sys.stdout.isatty()

    def notify(text, kind="info"):
        from rich.markup import escape

        prefix = "[yellow]warning:[/] " if kind == "warning" else ""
        err.print(prefix + escape(text), highlight=False, soft_wrap=True)

    # One inference thread by default, even for a file analysed as fast as possible: the engine's
    # front-end thread needs the other core, and with another job running, N torch threads on N
    # cores collapse (a 30 s file took 42.5 s against 16.5 s with one thread, on the 2-core test machine).
    session = Session(args.model, args.window, args.hop, args.threads or 1, transform=_transform(args), control=control,
                      jsonl=args.jsonl, view=view, duration=args.duration, notify=notify)
    try:
        source = _source(args, early)
        res = session.run(source)
    except (AudioFileError, DeviceError, ModelLoadError, ModelFileError, ValueError) as e:
        return fail(e)
    if res.stopped_by == "stream":
        err.print("[red]genredream run:[/] the audio stream stopped on its own (device removed, or the JACK server quit)")
    from rich.console import Console

    out = Console(stderr=args.jsonl == "-")
    for line in res.summary:
        out.print(line, highlight=False)
    if res.interrupted is not None:
        from genredream.engine import interrupt

        return interrupt.exit_code(res.interrupted)
    return 0 if res.stopped_by != "stream" and not res.model_errors else 1
