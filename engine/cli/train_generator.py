"""`genredream train-generator`: train the Doyle & Lopez generation network for a genre (or every genre).

The training itself is :func:`genredream.models.generator.train.train_generator`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Train the Doyle & Lopez generation network (1-D conv + bidirectional GRU; 0.9 s of 10 kHz audio in,\n"
        "the next 0.1 s out, MSE) for one genre, or for every genre folder of DATA with --all.\n"
        "Each song gives all but its last second to training (random 1 s clips) and its last second to validation."
    )
    p.epilog = (
        "examples:\n"
        "  genredream train-generator data/corpus-train --genre classical --out classical.pt\n"
        "  genredream train-generator data/corpus-train --all --out-dir models/pretrained/generators\n"
    )
    p.add_argument("data", help="collection folder: DATA/<genre>/<audio files>")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--genre", help="the genre folder to learn")
    g.add_argument("--all", action="store_true", help="one generator per genre folder (OUT-DIR/<genre>.pt)")
    p.add_argument("--genres", help="with --all: comma-separated subset")
    p.add_argument("--out", help="generator file to write (.pt); FILE.loss.png and FILE.report.json go beside it")
    p.add_argument("--out-dir", help="with --all: folder for <genre>.pt")
    p.add_argument("--epochs", type=int, default=40, help="maximum epochs (default 40; the paper ran 1000 on a GPU)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--clips-per-song", type=int, default=9, help="random 1 s training clips per song and epoch (default 9)")
    p.add_argument("--patience", type=int, default=6, help="stop after this many epochs without a better validation loss")
    p.add_argument("--max-songs", type=int, help="use at most this many songs per genre")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same generator (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def main(args) -> int:
    from genredream.models.archive import ModelFileError
    from genredream.models.data import CollectionError, scan
    from genredream.models.generator.train import TrainGeneratorConfig, train_generator

    try:
        if args.all:
            if not args.out_dir:
                print("genredream train-generator: --all needs --out-dir", file=sys.stderr)
                return 2
            genres = scan(args.data).genres
            if args.genres:
                want = args.genres.split(",")
                unknown = [g for g in want if g not in genres]
                if unknown:
                    print(f"genredream train-generator: no folder for {unknown}; found {', '.join(genres)}", file=sys.stderr)
                    return 2
                genres = want
            outs = [(g, Path(args.out_dir) / f"{g}.pt") for g in genres]
        else:
            if not args.out:
                print("genredream train-generator: --genre needs --out FILE.pt", file=sys.stderr)
                return 2
            outs = [(args.genre, Path(args.out))]
        for genre, out in outs:
            cfg = TrainGeneratorConfig(
                data=args.data, genre=genre, out=str(out), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                clips_per_song=args.clips_per_song, patience=args.patience, seed=args.seed, max_songs=args.max_songs,
                resume=args.resume, threads=args.threads, progress=not args.no_progress,
            )
            r = train_generator(cfg)
            print(
                f"wrote {r['model_file']}: best validation MSE {r['best_valid_loss']:.5f} at epoch {r['best_epoch']} "
                f"({r['best_valid_ratio_to_silence']:.3f} of predicting silence), {r['train_seconds']:.0f} s; loss curve {r['loss_plot']}"
            )
    except (CollectionError, ModelFileError, ValueError) as e:
        print(f"genredream train-generator: {e}", file=sys.stderr)
        return 2
    return 0
