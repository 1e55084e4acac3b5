"""`genredream train DATA --arch A --out FILE.pt`: train a seed architecture (or a head on musicnn).

The training is :func:`genredream.models.train.train` and, for
``musicnn-head``, :func:`genredream.models.heads.train_head`.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    from genredream.models.archs import ARCHS

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Train a seed architecture on a folder-per-genre collection and export it as a model file.\n\n"
        "DATA is a folder with one sub-folder per genre (GTZAN's genres/<genre>/<file> layout, or your own\n"
        "collection: adding a genre is adding a folder). The defaults are each paper's recipe."
    )
    p.epilog = (
        "examples:\n"
        "  genredream corpus data/corpus --songs-per-genre 20 --seconds 10 --seed 1\n"
        "  genredream train data/corpus --arch zheng --out zheng.pt\n"
        "  genredream train ~/Music/sorted --arch smith --out mine.pt --epochs 30\n"
        "  genredream train data/gtzan --arch lidy2 --out l2.pt --split-files train.txt valid.txt test.txt\n"
        "  genredream train ~/Music/sorted --arch musicnn-head --out mine.pt         # your genres on musicnn\n"
        "  genredream train ~/Music/sorted --from mine.pt --out mine2.pt             # after adding genre folders\n"
    )
    p.add_argument("data", help="collection folder: DATA/<genre>/<audio files>")
    p.add_argument("--arch", choices=sorted(ARCHS) + ["musicnn-head"],
                   help="architecture: a seed paper's, or musicnn-head (a small head on musicnn's embeddings; docs/heads.md). "
                   "Required unless --from gives it")
    p.add_argument("--out", required=True, help="model file to write (.pt); the report goes beside it")
    p.add_argument("--epochs", type=int, help="maximum epochs (default: the paper's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the paper's)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: the paper's)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], help="optimizer (default: the paper's)")
    p.add_argument("--segments-per-file", type=int, help="random 5 s windows per song and epoch (default 30 for lidy*, else 8)")
    p.add_argument("--valid", type=float, default=0.1, help="fraction of songs per genre for validation (default 0.1)")
    p.add_argument("--test", type=float, default=0.2, help="fraction of songs per genre for testing (default 0.2, Zheng's)")
    p.add_argument("--split-files", nargs=3, metavar=("TRAIN", "VALID", "TEST"), help="explicit song lists instead of a random split")
    p.add_argument("--valid-dir", metavar="DIR",
                   help="validation songs (early stopping) from this folder-per-genre collection instead of DATA, e.g. the same songs "
                        "rendered with another soundfont, so the model is chosen on a sound it does not train on; with --split-files "
                        "the VALID list is read against DIR; a musicnn head trained so uses the recipe chosen that way (weight decay 1e-3, "
                        "its training songs also a semitone up: the first run embeds them twice) (docs/heads.md)")
    p.add_argument("--genres", help="comma-separated subset of the genre folders (e.g. Geng's five)")
    p.add_argument("--patience", type=int, default=5, help="stop after this many epochs without a better validation loss (default 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same model (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if it exists")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--name", help="model name in the metadata (default: the file name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    g = p.add_argument_group("your genres over time (docs/heads.md)")
    g.add_argument("--from", dest="from_model", metavar="MODEL",
                   help="start from a trained model (name or .pt): its genres keep their output units, new genre folders add units")
    g.add_argument("--freeze-body", action="store_true", help="with --from: train only the output layer (a head is always trained alone)")
    g.add_argument("--embedding", choices=["musicnn-msd", "musicnn-mtt"], help="musicnn-head: the body whose embeddings the head reads (default musicnn-msd)")
    g.add_argument("--head-layer", choices=["penultimate", "pooled"], help="musicnn-head: the embedding (default pooled, 1506 values; docs/heads.md says why)")
    g.add_argument("--head-hidden", type=int, metavar="N", help="musicnn-head: hidden units (default 0: a linear head)")
    g.add_argument("--cache-dir", help="musicnn-head: embedding cache (default $GENREDREAM_CACHE or ~/.genredream/cache)")


def main(args) -> int:
    from genredream.models.contract import ModelFileError, load
    from genredream.models.registry import resolve_model
    from genredream.models.data import CollectionError
    from genredream.models.train import TrainConfig, train, trainable_archs

    parent = None
    if args.from_model:
        try:
            parent = load(resolve_model(args.from_model))
        except ModelFileError as e:
            print(f"genredream train: --from: {e}", file=sys.stderr)
            return 2
        arch = parent.meta.get("arch")
        if arch not in trainable_archs():
            print(f"genredream train: --from {args.from_model}: its metadata names architecture {arch!r}, which cannot be trained here", file=sys.stderr)
            return 2
        if args.arch and args.arch != arch:
            print(f"genredream train: --arch {args.arch} but {args.from_model} is a {arch} model", file=sys.stderr)
            return 2
        args.arch = arch
    elif not args.arch:
        print("genredream train: --arch is required (or --from MODEL)", file=sys.stderr)
        return 2
    if args.freeze_body and not parent:
        print("genredream train: --freeze-body needs --from MODEL (a fresh network has no trained body)", file=sys.stderr)
        return 2
    cfg = TrainConfig(
        data=args.data,
        arch=args.arch,
        out=args.out,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        segments_per_file=args.segments_per_file,
        valid=args.valid,
        test=args.test,
        split_files=args.split_files,
        genres=args.genres.split(",") if args.genres else None,
        patience=args.patience,
        seed=args.seed,
        resume=args.resume,
        threads=args.threads,
        progress=not args.no_progress,
        name=args.name,
        from_model=parent,
        freeze_body=args.freeze_body,
        embedding=args.embedding,
        head_layer=args.head_layer,
        head_hidden=args.head_hidden,
        cache_dir=args.cache_dir,
        valid_dir=args.valid_dir,
    )
    try:
        if cfg.arch == "musicnn-head":
            from genredream.models.heads import train_head

            report = train_head(cfg, log=(lambda m: print(m, flush=True)) if cfg.progress else (lambda m: None))
        else:
            report = train(cfg)
    except CollectionError as e:
        print(f"genredream train: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a --from model whose weights do not fit its architecture
        print(f"genredream train: {e}", file=sys.stderr)
        return 1
    t = report["test"]
    if t["songs"]:
        print(
            f"wrote {report['model_file']}: test accuracy {t['window_accuracy']:.1%} per window, "
            f"{t['song_accuracy']:.1%} per song on {t['songs']} songs; report {report['report_file']}"
        )
    else:
        print(f"wrote {report['model_file']} (no test split); report {report['report_file']}")
    fr = report.get("from")
    if fr and fr.get("before"):
        b, a = fr["before"], fr["after"]
        print(f"old genres ({len(fr['old_genres'])}, {fr['test_songs']} test songs): {b['window_accuracy']:.1%} per window with {fr['model']}, {a['window_accuracy']:.1%} now")
        for g in fr["old_genres"]:
            pb, pa = b["per_class_accuracy"].get(g), a["per_class_accuracy"].get(g)
            if pb is not None:
                print(f"  {g:>12}: {pb:.0%} -> {pa:.0%}")
        if fr["new_genres"]:
            print(f"new genres: {', '.join(fr['new_genres'])}")
    return 0
