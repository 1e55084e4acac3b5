"""`genredream run`: the engine, live or on a file.

Input: an audio file (``--input``, as fast as possible unless ``--realtime``)
or an audio device (``--device``; duplex, so dreamed audio can go back out).
Output: the live view in the terminal, JSON lines (``--jsonl``), and a
summary at the end (results emitted, latency p50/p99, skipped windows).
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_arguments", "main", "build_engine", "ENGINE_HOOKS", "attach_dreamer", "dream_requested"]

#: Seconds between progress lines on stderr when the live view is off.
PROGRESS_EVERY = 5.0

#: The shortest --hop: 20 results a second per model. Below it the engine spends its time starting
#: windows (0.0001 s asked for 60 000 windows of a 6 s file and printed nothing).
MIN_HOP = 0.05

#: Callables run on every engine build_engine makes (the OSC bridge attaches itself this way
#: to the engine a device or file run builds).
ENGINE_HOOKS = []


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
    d = p.add_argument_group("dreaming (engine/dream.py; docs/dream.md)")
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
    from genredream.engine.continuation import add_continue_arguments

    add_continue_arguments(p)  # --continue: keep playing a generated continuation when the input falls silent
    from genredream.bridge.cli import add_osc_arguments

    add_osc_arguments(p)


def fast_jit():
    """Run TorchScript models without the profiling executor's graph optimisation.

    With it, the first two calls of musicnn's step each spent 1-10 s
    compiling (measured here: 8.3 and 8.4 s on the loaded 2-core VM, against
    0.7 and 0.1 s without), at every start and at every hot load during a
    set, for a steady state within measurement noise of the unoptimised one
    (112-127 ms against 126-131 ms per musicnn step on the same loaded VM;
    conv layers are already one native op each). GENREDREAM_JIT_OPTIMIZE=1
    keeps torch's default.
    """
    if os.environ.get("GENREDREAM_JIT_OPTIMIZE") == "1":
        return
    import torch

    torch._C._set_graph_executor_optimize(False)


def build_engine(sample_rate, model_names, window, hop, threads=1):
    """An Engine with the requested models loaded (raises ModelLoadError with the reason)."""
    from genredream.engine.runtime import Engine
    from genredream.models.classify import default_model

    fast_jit()
    engine = Engine(sample_rate, window=window, hop=hop, torch_threads=threads)
    for m in model_names or [str(default_model())]:
        engine.load_model(m)
    for hook in ENGINE_HOOKS:
        hook(engine)
    return engine


def dream_requested(args):
    """True when the run's options ask for dreaming (--dream, --target or --dream-out)."""
    return any(getattr(args, k, None) for k in ("dream", "target", "dream_out")) or getattr(args, "depth", None) is not None


def attach_dreamer(engine, args, writers=None):
    """Start the dreamer the options describe on ``engine`` (raises DreamError, a ValueError, with the reason).

    The dream model defaults to the first ``--model`` (reusing the engine's
    loaded copy). ``--dream-out`` adds a :class:`genredream.engine.dream.DreamWavWriter`
    to the dreamer's output sinks and to ``writers`` (close them at the end).
    """
    from genredream.engine.dream import Dreamer, add_wav_output
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
    engine.set_dreamer(dreamer)
    if args.dream_out:
        add_wav_output(dreamer, args.dream_out, engine.sample_rate, writers)
    return dreamer


def main(args) -> int:
    early = None
    if getattr(args, "osc_port", None) is not None and args.input is None and args.device is None:
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
        if early is not None and early._running:  # never handed over (stopped or failed while loading)
            early.close()


def _main(args, early) -> int:
    from rich.console import Console

    from genredream.engine.io.sinks import JsonlSink, summary
    from genredream.engine.runtime import ModelLoadError
    from genredream.models.contract import ModelFileError
    from genredream.models.data import AudioFileError

    err = Console(stderr=True)
    if not (MIN_HOP <= args.hop <= args.window):
        err.print(f"[red]genredream run:[/] --hop must be from {MIN_HOP:g} s to the window ({args.window:g} s), got {args.hop:g}")
        return 2
    if args.threads is not None and args.threads < 1:
        err.print(f"[red]genredream run:[/] --threads must be at least 1, got {args.threads}")
        return 2
    if args.away and not args.target:
        err.print("[red]genredream run:[/] --away needs --target LABEL")
        return 2
    if getattr(args, "osc_port", None) is not None and early is None:  # early: already bound, so free
        from genredream.bridge.cli import port_problem

        problem = port_problem(args.osc_host, args.osc_port)  # before the models load (seconds), not after
        if problem:
            err.print(f"[red]genredream run:[/] cannot listen for OSC on {args.osc_host}:{args.osc_port}: {problem} "
                      "(another genredream, or another program, uses the port: choose another with --osc-port N)")
            return 2
    writers = []  # --dream-out files, closed at the end
    dream_hook = None
    from genredream.engine.continuation import attach_continuer, continue_requested

    if continue_requested(args):
        if dream_requested(args):
            err.print("[red]genredream run:[/] --continue and --dream both write the output stream; choose one")
            return 2

        # The continuation takes the dreamer's slot: same output stream, finish and summary.
        def dream_hook(engine):
            attach_continuer(engine, args, writers)

        ENGINE_HOOKS.insert(0, dream_hook)
    if dream_requested(args):
        # Every engine this run builds (file, device, OSC) dreams; first, so the OSC bridge finds the dreamer.
        def dream_hook(engine):
            attach_dreamer(engine, args, writers)

        ENGINE_HOOKS.insert(0, dream_hook)
    if args.loop and not args.duration and not args.realtime:
        err.print("[red]genredream run:[/] --loop without --realtime or --duration would never end; add --duration S")
        return 2
    jsonl = osc = engine = None
    interrupted = None  # the KeyboardInterrupt (Ctrl-C) or interrupt.Terminated (SIGTERM) that stopped the run
    osc_in = getattr(args, "osc_port", None) is not None and args.input is None and args.device is None
    if getattr(args, "osc_port", None) is not None and not osc_in:
        from genredream.bridge.cli import OscAttachment

        osc = OscAttachment(args, err)  # control, scores and dreamed audio over OSC; audio from the file or device
    try:
        if osc_in:
            from genredream.bridge.cli import run_osc

            return run_osc(args, err, early)  # audio in over OSC (inside the try: the finally closes --dream-out files)
        if args.device is not None or args.input is None:
            try:
                from genredream.engine.io import device
            except ImportError:
                err.print("[red]genredream run:[/] live device input is not built yet in this version; use --input FILE")
                return 2
            return device.run_device(args, err)
        from genredream.engine.io.file import FileSource

        src = FileSource(args.input, block=args.block or 1024, loop=args.loop)
        if src.damage is not None:
            err.print(f"[yellow]warning:[/] {src.damage_text()}; analysing what can be decoded")
        # One inference thread by default, even for a file analysed as fast as possible: the engine's
        # front-end thread needs the other core, and with another job running, N torch threads on N
        # cores collapse (issue 16: 42.5 s against 16.5 s for a 30 s file).
        threads = args.threads or 1
        engine = build_engine(src.sample_rate, args.model, args.window, args.hop, threads)
        engine.set_channels(src.channels)  # a stereo file comes back stereo from the dreamer (engine/channels.py)
        if args.jsonl:
            jsonl = JsonlSink(args.jsonl)
            engine.sinks.append(jsonl)
        view_on = not args.no_view and args.jsonl != "-" and sys.stdout.isatty()
        if view_on:
            from genredream.engine.io.view import LiveView

            with LiveView(engine):
                engine.run_blocks(src.blocks(), realtime=args.realtime, duration=args.duration)
        else:
            blocks = src.blocks()
            if args.progress and args.progress > 0:
                from genredream.engine.io.progress import file_progress

                blocks = file_progress(blocks, engine, src, args, err)
            engine.run_blocks(blocks, realtime=args.realtime, duration=args.duration)
        if engine.dreamer is not None:
            engine.dreamer.finish(engine)  # the file's end: emit what is still being dreamed
        if src.damage is not None:
            err.print(f"[yellow]warning:[/] {src.damage_text()}")
        if jsonl:
            jsonl.write({"type": "input", "path": src.path, "sample_rate": src.sample_rate,
                         "decoded_s": round(src.decoded_frames / src.sample_rate, 3), "damaged": src.damage})
    except (AudioFileError, ModelLoadError, ModelFileError, ValueError) as e:
        err.print(f"[red]genredream run:[/] {e}")
        return 2
    except KeyboardInterrupt as e:
        from genredream.engine import interrupt

        interrupt.calm()  # a second Ctrl-C must not cut the clean-up below short
        interrupted = e
        err.print("stopped")
    finally:
        if jsonl:
            jsonl.close()
        if osc:
            osc.close()
        if dream_hook is not None and dream_hook in ENGINE_HOOKS:
            ENGINE_HOOKS.remove(dream_hook)
        for w in writers:
            w.close()
    out = Console(stderr=args.jsonl == "-")
    if engine is None:  # stopped while starting (device and OSC runs print their own summary)
        out.print("stopped during start-up (loading models): no audio was processed", highlight=False)
    else:
        for line in summary(engine):
            out.print(line, highlight=False)
    if interrupted is not None:
        from genredream.engine import interrupt

        return interrupt.exit_code(interrupted)
    return 0 if not engine.counters["model_errors"] else 1
