"""`genredream run`: the engine, live or on a file.

Input: an audio file (``--input``, as fast as possible unless ``--realtime``)
or an audio device (``--device``; duplex, so dreamed audio can go back out).
Output: the live view in the terminal, JSON lines (``--jsonl``), and a
summary at the end (results emitted, latency p50/p99, skipped windows).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "main", "build_engine", "ENGINE_HOOKS"]

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
    p.add_argument("--hop", type=float, default=0.5, help="seconds between results (default 0.5)")
    p.add_argument("--duration", type=float, help="stop after this many seconds of stream time")
    p.add_argument("--realtime", action="store_true", help="play a file at real-time pace (default: as fast as possible)")
    p.add_argument("--loop", action="store_true", help="loop the file (use with --duration or stop with Ctrl-C)")
    p.add_argument("--block", type=int, default=None, help="frames per block (default 1024 for files, 256 for devices)")
    p.add_argument("--channels", type=int, default=None, help="input channels to open on the device (default: up to 2, averaged)")
    p.add_argument("--samplerate", type=int, default=None, help="device sample rate (default: the device's)")
    p.add_argument("--output-device", metavar="NAME_OR_INDEX", help="where dreamed audio goes (default: the input device, duplex)")
    p.add_argument("--when-late", choices=["dry", "silence"], default="dry", help="device output when no dreamed audio is ready (default dry)")
    p.add_argument("--jsonl", metavar="PATH", help="write every result as a JSON line ('-' for stdout)")
    p.add_argument("--no-view", action="store_true", help="no live view (for scripts and logs)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for inference (default 1: keeps a core for audio)")
    p.add_argument("--dream", nargs="?", const="all", metavar="LAYER", help="dream while running (not built yet in this version)")
    from bridge.cli import add_osc_arguments

    add_osc_arguments(p)


def build_engine(sample_rate, model_names, window, hop, threads=1):
    """An Engine with the requested models loaded (raises ModelLoadError with the reason)."""
    from engine.runtime import Engine
    from models.classify import default_model

    engine = Engine(sample_rate, window=window, hop=hop, torch_threads=threads)
    for m in model_names or [str(default_model())]:
        engine.load_model(m)
    for hook in ENGINE_HOOKS:
        hook(engine)
    return engine


def main(args) -> int:
    from rich.console import Console

    from engine.io.sinks import JsonlSink, summary
    from engine.runtime import ModelLoadError
    from models.contract import ModelFileError
    from models.data import AudioFileError

    err = Console(stderr=True)
    if args.dream:
        err.print("[red]genredream run:[/] --dream is not built yet in this version (see `genredream --help`)")
        return 2
    if args.loop and not args.duration and not args.realtime:
        err.print("[red]genredream run:[/] --loop without --realtime or --duration would never end; add --duration S")
        return 2
    jsonl = osc = None
    if getattr(args, "osc_port", None) is not None:
        from bridge.cli import OscAttachment, run_osc

        if args.input is None and args.device is None:
            try:
                return run_osc(args, err)  # audio in over OSC
            except (ModelLoadError, ModelFileError, ValueError) as e:
                err.print(f"[red]genredream run:[/] {e}")
                return 2
        osc = OscAttachment(args, err)  # control, scores and dreamed audio over OSC
    try:
        if args.device is not None or args.input is None:
            try:
                from engine.io import device
            except ImportError:
                err.print("[red]genredream run:[/] live device input is not built yet in this version; use --input FILE")
                return 2
            return device.run_device(args, err)
        from engine.io.file import FileSource

        src = FileSource(args.input, block=args.block or 1024, loop=args.loop)
        engine = build_engine(src.sample_rate, args.model, args.window, args.hop, args.threads)
        if args.jsonl:
            jsonl = JsonlSink(args.jsonl)
            engine.sinks.append(jsonl)
        view_on = not args.no_view and not (args.jsonl == "-")
        if view_on:
            from engine.io.view import LiveView

            with LiveView(engine):
                engine.run_blocks(src.blocks(), realtime=args.realtime, duration=args.duration)
        else:
            engine.run_blocks(src.blocks(), realtime=args.realtime, duration=args.duration)
    except (AudioFileError, ModelLoadError, ModelFileError, ValueError) as e:
        err.print(f"[red]genredream run:[/] {e}")
        return 2
    except KeyboardInterrupt:
        err.print("stopped")
    finally:
        if jsonl:
            jsonl.close()
        if osc:
            osc.close()
    out = Console(stderr=args.jsonl == "-")
    for line in summary(engine):
        out.print(line)
    return 0 if not engine.counters["model_errors"] else 1
