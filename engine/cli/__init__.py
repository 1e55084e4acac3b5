"""`genredream`: the command line.

Each subcommand lives in its own module of this package; this file only
knows their names, one-line help and where to find them, so ``genredream --help``
answers at once without importing torch or compiling kernels. A subcommand
whose issue has not landed yet is listed with what it will do and says so
when called, instead of failing in some other way.

Convention: each command moves to its own module here,
``engine/cli/<command>.py``, which provides ``add_arguments(parser)`` and
``main(args) -> int`` and is the only place that parses arguments or prints;
the library modules it calls return values and raise. Errors go to stderr;
exit 2 for usage errors, 1 for failures, 130 on interrupt.
"""

from __future__ import annotations

import os as _os
import signal as _signal


def _stopped_while_importing(signum, frame):
    # A signal while this module's imports run: nothing has started, nothing
    # to flush; say so and leave without a traceback (128 + the signal).
    _os.write(2, b"interrupted\n")
    _os._exit(128 + signum)


_OLD_HANDLERS = {}
for _s in (_signal.SIGINT, _signal.SIGTERM):
    if _signal.getsignal(_s) in (_signal.default_int_handler, _signal.SIG_DFL):
        _OLD_HANDLERS[_s] = _signal.signal(_s, _stopped_while_importing)

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402

__all__ = ["main", "build_parser", "COMMANDS"]

# Imported: from here main() handles signals (engine/interrupt.py); the process's own handlers come back.
for _s, _h in _OLD_HANDLERS.items():
    _signal.signal(_s, _h)


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str | None  # provides add_arguments(parser) and main(args) -> int; None or absent = not built yet
    group: str


COMMANDS = [
    Command("demo", "stream a built-in test signal through the engine's front end and print what it computes", "genredream.engine.cli.demo", "start here"),
    Command("run", "run the engine live: audio device, file or OSC in; genre scores and dreamed audio out", "genredream.engine.cli.run", "perform"),
    Command("devices", "list audio devices and host APIs (JACK, CoreAudio, WASAPI, ...)", "genredream.engine.cli.devices", "perform"),
    Command("classify", "genre scores of an audio file, window by window and overall", "genredream.engine.cli.classify", "models"),
    Command("tag", "tag a music library by genre: one row per file (.csv/.jsonl/.parquet), local cores or Ray", "genredream.engine.cli.tag", "models"),
    Command("dream", "deep-dream an audio file offline (gradient ascent on a classifier's activations)", "genredream.engine.cli.dream", "models"),
    Command("models", "list shipped and user models: labels, input, sample rate, provenance", "genredream.engine.cli.models", "models"),
    Command("validate", "check a model file (TorchScript or .pt2) against the genredream model-file contract", "genredream.engine.cli.validate", "models"),
    Command("train", "train a seed architecture on a folder-per-genre collection", "genredream.engine.cli.train", "models"),
    Command("evaluate", "accuracy of a model on a folder-per-genre collection, with a confusion matrix", "genredream.engine.cli.evaluate", "models"),
    Command("corpus", "render a synthetic genre corpus (procedural MIDI + FluidSynth)", "genredream.engine.cli.corpus", "data"),
    Command("train-generator", "train the Doyle & Lopez GRU continuation network for a genre", "genredream.engine.cli.train_generator", "generate"),
    Command("generate", "continue seed audio in a genre with a trained generator", "genredream.engine.cli.generate", "generate"),
    Command("evaluate-generator", "classify generated clips and plot the confusion matrix", "genredream.engine.cli.evaluate_generator", "generate"),
]

_EPILOG = """\
examples:
  genredream demo
  genredream corpus data/corpus --songs-per-genre 10 --seconds 10 --seed 1
  genredream train data/corpus --arch zheng --out my-zheng.pt
  genredream classify song.wav --model my-zheng.pt

`genredream COMMAND --help` explains each command.
"""


def _available(cmd):
    """True when the command's module exists, found without running any package's __init__.

    ``importlib.util.find_spec("a.b.c")`` imports ``a.b`` first; for the corpus
    package that alone imports its renderer and costs 0.2 s of every start.
    """
    if cmd.module is None:
        return False
    parts = cmd.module.split(".")
    known = max(i for i in range(1, len(parts) + 1) if i == 1 or ".".join(parts[:i]) in sys.modules)
    try:
        parent = importlib.import_module(".".join(parts[:known]))
    except ModuleNotFoundError:
        return False
    if known == len(parts):
        return True
    path = getattr(parent, "__path__", None)
    for i in range(known, len(parts)):
        if path is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), path)
        if spec is None:
            return False
        path = spec.submodule_search_locations
    return True


def build_parser():
    parser = argparse.ArgumentParser(
        prog="genredream",
        description="Real-time genre scores and audio deep dream for live performers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for cmd in COMMANDS:
        label = cmd.help if _available(cmd) else f"{cmd.help} [not built yet]"
        p = sub.add_parser(cmd.name, help=label, description=cmd.help)
        p.set_defaults(_command=cmd)
    return parser, sub


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked: importlib.metadata costs 0.05 s of every start."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="show the version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {_version()}")  # on stdout, as argparse's own version action
        parser.exit()


def _version():
    try:
        from importlib.metadata import version

        return version("genredream")
    except Exception:  # running from a source tree that was never installed
        return "unknown"


def main(argv=None):
    from genredream.engine import interrupt

    with interrupt.handling():  # SIGTERM stops like Ctrl-C (exit 143)
        try:
            return _main(argv)
        except KeyboardInterrupt as e:  # before a command's own clean stop took over (imports, parsing)
            interrupt.calm()
            print("interrupted", file=sys.stderr)
            return interrupt.exit_code(e)
        except Exception as e:  # a failure no command turned into its own message: one line, exit 1
            if _os.environ.get("GENREDREAM_TRACEBACK") == "1":
                raise
            name = next((a for a in (sys.argv[1:] if argv is None else argv)[:1]), "")
            print(f"genredream {name}: {type(e).__name__}: {e}\n(GENREDREAM_TRACEBACK=1 shows where it happened)", file=sys.stderr)
            return 1


def _main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, sub = build_parser()
    if not argv:
        parser.print_help()
        return 0
    # Only the chosen subcommand's module is imported: torch loads in seconds,
    # and `genredream --help` should not wait for it.
    name = argv[0]
    cmd = next((c for c in COMMANDS if c.name == name), None)
    if cmd is not None and _available(cmd):
        mod = importlib.import_module(cmd.module)
        p = sub.choices[name]
        adder = getattr(mod, f"add_{name.replace('-', '_')}_arguments", None) or mod.add_arguments
        adder(p)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, its message already on stderr)
        return e.code if isinstance(e.code, int) else 2
    cmd = getattr(args, "_command", None)
    if cmd is None:
        parser.print_help()
        return 0
    if not _available(cmd):
        print(
            f"genredream {cmd.name}: not built yet in this version ({cmd.help}).\n"
            "See `genredream --help` for the commands that work now.",
            file=sys.stderr,
        )
        return 2
    mod = importlib.import_module(cmd.module)
    runner = getattr(mod, f"{cmd.name.replace('-', '_')}_main", None) or mod.main
    from genredream.engine import interrupt

    interrupt.check()  # a Ctrl-C an import swallowed: stop before the command starts anything
    return int(runner(args) or 0)

