"""`genredream evaluate-generator`: classify generated clips against the real continuation (the paper's Figure 7).

The evaluation is :func:`genredream.models.generator.evaluate.evaluate_generators`.
"""

from __future__ import annotations

import argparse
import json
import sys

from genredream.models.generator.evaluate import DEFAULT_CLASSIFIER

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Generate a continuation for every genre from held-out songs and classify it (the paper's Figure 7),\n"
        "next to the same classifier on the real continuation; also the level and noisiness of what is generated."
    )
    p.epilog = "example:\n  genredream evaluate-generator data/corpus-heldout --classifier doyle --out-dir generator-eval\n"
    p.add_argument("heldout", help="held-out collection: HELDOUT/<genre>/<audio files>")
    p.add_argument("--classifier", default=DEFAULT_CLASSIFIER, help=f"classifier model name or .pt (default {DEFAULT_CLASSIFIER}, the paper's CNN)")
    p.add_argument("--generators", help="folder of generator files (default: installed generators)")
    p.add_argument("--songs", type=int, default=10, help="held-out songs per genre (default 10, as the paper)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds generated per clip (default 5)")
    p.add_argument("--offset", type=float, default=1.0, help="where the 0.9 s seed starts in each song (default 1 s)")
    p.add_argument("--noise", type=float, default=0.0, help="noise fed back while generating (see `generate --noise`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="generator-eval", help="where the PNGs and evaluation.json go (default generator-eval)")
    p.add_argument("--examples", type=int, default=0, help="write this many seed+generated WAVs per genre")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true")


def main(args) -> int:
    from genredream.models.archive import ModelFileError
    from genredream.models.data import CollectionError
    from genredream.models.generator.evaluate import evaluate_generators

    try:
        r = evaluate_generators(
            args.heldout, args.classifier, args.generators, songs=args.songs, seconds=args.seconds, offset=args.offset,
            noise=args.noise, seed=args.seed, out_dir=args.out_dir, examples=args.examples, progress=not args.no_progress,
        )
    except (ModelFileError, CollectionError, ValueError) as e:
        print(f"genredream evaluate-generator: {e}", file=sys.stderr)
        return 2
    summary = {k: r[k]["accuracy"] for k in ("generated", "raw", "real", "real_fullband")}
    if args.json:
        print(json.dumps({"accuracy": summary, "level_vs_seed_db": r["level_vs_seed_db"], "out_dir": args.out_dir}, indent=1))
        return 0
    print(f"{r['classifier']} on {len(r['genres'])} genres x {r['songs_per_genre']} held-out songs, {r['seconds']:g} s each:")
    print(
        f"  generated (level matched): {summary['generated']:.0%}   network's own level: {summary['raw']:.0%}   "
        f"real continuation at 10 kHz: {summary['real']:.0%}   real at the classifier's {r['classifier_sample_rate']} Hz: {summary['real_fullband']:.0%}"
    )
    lv = r["level_vs_seed_db"]
    print(f"  level vs seed: generated {lv['generated']:+.1f} dB, network's own {lv['raw']:+.1f} dB, real {lv['real']:+.1f} dB")
    for g in r["genres"]:
        print(f"  {g:>12}: generated {r['generated']['per_genre'][g]:.0%}  real {r['real']['per_genre'][g]:.0%}")
    if r["left_out"]:
        print("  left out: " + ", ".join(f"{g} ({why})" for g, why in r["left_out"]))
    print(f"  figures and evaluation.json in {args.out_dir}")
    return 0
