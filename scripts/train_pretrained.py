"""Train the shipped seed models (models/pretrained/) from the synthetic corpus.

    python scripts/train_pretrained.py [--archs zheng,lidy1,...] [--data data/corpus-train]
        [--heldout data/corpus-heldout]

Renders the corpora first if they are missing (seed 1 for training, 100
songs per genre; seed 2 for the held-out set, 20 per genre; 10-second songs),
trains each architecture with its paper's recipe (epochs capped, see CAPS),
measures accuracy on the held-out set, and writes
models/pretrained/<arch>.pt, <arch>.report.json and <arch>.confusion.png.
geng is trained on Geng et al.'s five genres; the others on GTZAN's ten.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GTZAN = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
GENG = ["alternative", "electronica", "pop", "rap", "rock"]  # Geng et al. 2017, Sec. 2
# Epoch caps for a shared 2-core CPU (about 1-2 min per epoch here); early
# stopping may end sooner. The synthetic genres are learned in a few epochs
# (zheng: 99.5 % validation accuracy after 4), so the papers' 15-150 epochs
# would only cost time. Lidy & Schindler drew 30 segments from each 30 s
# track; our songs are 10 s, so 8 windows of 5 s per song and epoch (as for
# the other nets) already overlap heavily.
CAPS = {"zheng": 8, "geng": 10, "lidy1": 5, "lidy2": 5, "lidy3": 4, "smith": 3, "doyle": 3}
SEGMENTS = 8
# doyle and smith are the heaviest nets (15 min per 8-window epoch on one
# niced thread here): half the windows per epoch, reaching 93 % validation
# accuracy after the first epoch all the same.
SEGMENTS_BY_ARCH = {"doyle": 4, "smith": 4}
# Smith gives no optimizer settings; at Adam 1e-3 (the registry's default
# choice) its validation loss rose after the first epoch (81 % held-out), so
# the shipped model uses 3e-4 and twice the epochs.
LR = {"smith": 3e-4}
CAPS["smith"] = 6


def ensure_corpus(path, seed, songs):
    if (Path(path) / "corpus.json").exists():
        return
    subprocess.run(
        [sys.executable, "-m", "genredream.engine.cli", "corpus", str(path), "--songs-per-genre", str(songs), "--seconds", "10", "--seed", str(seed), "--quiet"],
        check=True,
        cwd=ROOT,
    )


def generator_commit():
    """The commit of the corpus generator, so the corpus can be rendered again exactly."""
    out = subprocess.run(["git", "log", "-1", "--format=%h", "--", "models/corpus"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "models/corpus"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return out.stdout.strip() + ("+uncommitted" if dirty else "")


def main():
    from genredream.models.evaluate import evaluate
    from genredream.models.train import TrainConfig, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(CAPS))
    ap.add_argument("--data", default=str(ROOT / "data" / "corpus-train"))
    ap.add_argument("--heldout", default=str(ROOT / "data" / "corpus-heldout"))
    ap.add_argument("--out", default=str(ROOT / "models" / "pretrained"))
    ap.add_argument("--work", default=str(ROOT / "data" / "train-work"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (two processes with 1 each share 2 cores best)")
    args = ap.parse_args()
    commit = generator_commit()
    ensure_corpus(args.data, 1, 100)
    ensure_corpus(args.heldout, 2, 20)
    out, work = Path(args.out), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for arch in args.archs.split(","):
        genres = GENG if arch == "geng" else GTZAN
        t0 = time.time()
        tmp = work / f"{arch}.pt"
        report = train(
            TrainConfig(data=args.data, arch=arch, out=str(tmp), genres=genres, epochs=CAPS[arch], lr=LR.get(arch), valid=0.1, test=0.1, seed=1, patience=3, name=arch, progress=False,
                        segments_per_file=SEGMENTS_BY_ARCH.get(arch, SEGMENTS), resume=True, threads=args.threads)
        )
        held = evaluate(tmp, args.heldout, plot=str(out / f"{arch}.confusion.png"))
        # The held-out figure is the one the issue asks for: record it in the file's provenance too.
        from genredream.models.contract import load, save

        m = load(tmp)
        meta = dict(m.meta)
        meta["provenance"] = dict(
            meta["provenance"],
            data=f"synthetic genre corpus: genredream corpus --songs-per-genre 100 --seconds 10 --seed 1 (FluidR3_GM), generator at {commit}",
            heldout=f"genredream corpus --songs-per-genre 20 --seconds 10 --seed 2, generator at {commit}",
            genres=genres,
            accuracy={
                "heldout_window": held["window_accuracy"],
                "heldout_song": held["song_accuracy"],
                "test_window": report["test"]["window_accuracy"],
                "test_song": report["test"]["song_accuracy"],
            },
        )
        shutil.copy(tmp, out / f"{arch}.pt")
        save(m.module, meta, out / f"{arch}.pt")
        slim = {k: v for k, v in report.items() if k not in ("skipped_files", "padded_files", "ignored_files")}
        slim["data"] = meta["provenance"]["data"]
        slim["model_file"] = f"models/pretrained/{arch}.pt"
        slim["report_file"] = f"models/pretrained/{arch}.report.json"
        slim["heldout"] = {k: v for k, v in held.items() if k not in ("model_file", "data")}
        slim["wall_seconds"] = round(time.time() - t0, 1)
        (out / f"{arch}.report.json").write_text(json.dumps(slim, indent=1))
        print(f"{arch}: held-out {held['window_accuracy']:.1%} windows / {held['song_accuracy']:.1%} songs; {slim['wall_seconds']} s", flush=True)


if __name__ == "__main__":
    main()
