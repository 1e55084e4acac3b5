"""The ``--continue`` options of ``genredream run`` (the continuation itself: engine/continuation.py)."""

from genredream.engine.continuation import DEFAULT_HOLD_S, DEFAULT_THRESHOLD_DB

__all__ = ["add_continue_arguments", "continue_requested"]


def add_continue_arguments(p):
    """The ``--continue`` options of ``genredream run``."""
    g = p.add_argument_group("continuation (engine/continuation.py; docs/generator.md)")
    g.add_argument("--continue", dest="continue_", action="store_true", help="when the input falls silent, keep playing a continuation in the current top genre (Doyle & Lopez generators) until input returns")
    g.add_argument("--continue-genre", metavar="GENRE", help="always continue in this genre (default: the classifier's top genre)")
    g.add_argument("--continue-model", metavar="NAME", help="classifier whose top genre chooses the generator (default: the first loaded model with a genre that has one)")
    g.add_argument("--continue-generators", metavar="DIR", help="folder of generator files (default: installed generators)")
    g.add_argument("--continue-threshold", type=float, default=DEFAULT_THRESHOLD_DB, metavar="DB", help=f"input under this level (dBFS, per 10 ms) is silence (default {DEFAULT_THRESHOLD_DB:g})")
    g.add_argument("--continue-hold", type=float, default=DEFAULT_HOLD_S, metavar="S", help=f"seconds of silence before the continuation starts (default {DEFAULT_HOLD_S:g}); adds to the output latency")
    g.add_argument("--continue-noise", type=float, default=0.0, metavar="X", help="noise fed back while generating, relative to the seed's level (default 0)")
    g.add_argument("--continue-out", metavar="FILE.wav", help="write the output stream (input + continuation; 16-bit PCM at the input rate, aligned with the input)")


def continue_requested(args):
    return bool(getattr(args, "continue_", False) or getattr(args, "continue_out", None))
