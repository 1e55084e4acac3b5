"""``genredream corpus``: build the synthetic genre corpus from the command line (models/corpus/ does the work).

The main CLI owns the parser; this module only adds its arguments and runs::

    genredream corpus OUT [--genres G1,G2,...] [--songs-per-genre N] [--seconds S]
                          [--seed K] [--soundfont PATH] [--jobs N] [--list-genres]
"""

from __future__ import annotations

import argparse
import sys

from genredream.models.corpus.build import build_corpus
from genredream.models.corpus.genres import GENG_GENRES, GENRES, GTZAN_GENRES, UnknownGenreError
from genredream.models.corpus.render import RenderError

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``corpus`` subcommand's arguments to ``parser``."""
    parser.add_argument("out", nargs="?", help="output folder (GTZAN layout: OUT/<genre>/<genre>.00000.wav)")
    parser.add_argument("--genres", default=None, metavar="G1,G2,...",
                        help="comma-separated genres (default: all; see --list-genres)")
    parser.add_argument("--songs-per-genre", type=int, default=100, metavar="N",
                        help="songs per genre (default: 100, as GTZAN)")
    parser.add_argument("--seconds", type=float, default=30.0, metavar="S",
                        help="length of every clip in seconds (default: 30)")
    parser.add_argument("--seed", type=int, default=0, metavar="K",
                        help="random seed; the same seed gives byte-identical files (default: 0)")
    parser.add_argument("--soundfont", default=None, metavar="PATH",
                        help="General MIDI .sf2 (default: FluidR3_GM from fluid-soundfont-gm)")
    parser.add_argument("--jobs", type=int, default=2, metavar="N",
                        help="parallel render processes (default: 2)")
    parser.add_argument("--sample-rate", type=int, default=22050, metavar="HZ",
                        help="output sample rate (default: 22050)")
    parser.add_argument("--stereo", action="store_true", help="write stereo instead of mono")
    parser.add_argument("--keep-midi", action="store_true", help="keep the .mid next to each .wav")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--list-genres", action="store_true", help="print the known genres and exit")


def _list_genres() -> None:
    for name, genre in GENRES.items():
        tags = [t for t, group in (("GTZAN", GTZAN_GENRES), ("Geng", GENG_GENRES)) if name in group]
        feels = ", ".join(s.name for s in genre.styles)
        print(f"{name:<12} [{'/'.join(tags)}] feels: {feels}")
        print(f"{'':<12} {genre.description}")


def main(args: argparse.Namespace) -> int:
    """Run the subcommand; return the process exit status.

    0 on success, 2 for a usage error (bad genre, bad number), 1 when a
    component (FluidSynth, soundfont) is missing or rendering fails.
    """
    if args.list_genres:
        _list_genres()
        return 0
    prog = "genredream corpus"
    if not args.out:
        print(f"{prog}: error: the output folder OUT is required (or use --list-genres)",
              file=sys.stderr)
        return 2
    try:
        report = build_corpus(
            args.out, args.genres, args.songs_per_genre, args.seconds, args.seed,
            soundfont=args.soundfont, progress=not args.quiet, jobs=args.jobs,
            sample_rate=args.sample_rate, channels=2 if args.stereo else 1,
            keep_midi=args.keep_midi)
    except UnknownGenreError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except RenderError as exc:  # includes missing fluidsynth / soundfont
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"wrote {len(report.files)} clips ({len(report.genres)} genres x "
              f"{report.songs_per_genre}, {report.seconds:g} s each) to {report.out_dir} in "
              f"{report.wall_seconds:.1f} s ({report.realtime_factor:.0f}x real time); "
              f"manifest: {report.manifest}")
    return 0


if __name__ == "__main__":  # pragma: no cover - convenience for `python -m`
    p = argparse.ArgumentParser(prog="genredream corpus", description=__doc__.splitlines()[0])
    add_arguments(p)
    sys.exit(main(p.parse_args()))
