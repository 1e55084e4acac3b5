"""Before/after spectrograms of `genredream dream` toward a few targets, for docs/dream.md.

Renders a short stereo clip of the synthetic corpus (FluidSynth), dreams it
offline toward each target with the command's own code
(:func:`genredream.engine.dream.offline.dream_file`, default settings but ``--steps``), and
draws one PNG: the mid's mel spectrogram before, after each dream, and each
dream's difference (dreamed minus dry, dB, the normalisation gain taken
out), with the dreaming model's score for the target before and after. No
audio is kept (the clip and the dreams live in a temporary directory).

    .venv/bin/python scripts/dream_figures.py                      # docs/figures/dream-before-after.png
    .venv/bin/python scripts/dream_figures.py --targets rock jazz --genre blues --steps 20
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="musicnn-msd")
    p.add_argument("--targets", nargs="+", default=["rock", "electronic", "jazz"])
    p.add_argument("--genre", default="classical", help="synthetic corpus genre of the clip (default classical)")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="docs/figures/dream-before-after.png")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf
    import soxr
    import torch

    from genredream.engine.dream.objective import load_dream_model, probabilities
    from genredream.engine.dream.offline import dream_file
    from genredream.engine.dream.plot import DIFF_RANGE_DB, difference_db, mel_db
    from genredream.models.corpus.build import build_corpus

    torch.set_num_threads(1)
    lm = load_dream_model(args.model)
    labels = list(lm.meta["labels"])

    def score(y, sr, target):
        x = soxr.resample(y, sr, lm.sample_rate).astype(np.float32)
        n = lm.n_samples
        wins = [x[i : i + n] for i in range(0, max(1, x.size - n + 1), n // 2)]
        wins = [np.pad(w, (0, n - w.size)) for w in wins]
        return float(probabilities(lm, np.stack(wins))[:, labels.index(target)].mean())

    with tempfile.TemporaryDirectory() as tmp:
        build_corpus(tmp, [args.genre], songs_per_genre=1, seconds=args.seconds, seed=args.seed, progress=False, channels=2)
        clip = next((Path(tmp) / args.genre).glob("*.wav"))
        dry, sr = sf.read(clip, dtype="float32", always_2d=True)
        dry_mid = dry.mean(axis=1)
        before = mel_db(dry_mid, sr)
        rows = []
        for t in args.targets:
            print(f"dreaming toward {t} ...", file=sys.stderr)
            info = dream_file(clip, Path(tmp) / f"{t}.wav", model=lm, target=t, steps=args.steps, seed=args.seed)
            out, _ = sf.read(Path(tmp) / f"{t}.wav", dtype="float32", always_2d=True)
            mid = out.mean(axis=1) / info["gain"]
            after = mel_db(mid, sr)
            rows.append((t, after, difference_db(before, after), score(dry_mid, sr, t), score(mid, sr, t), out.shape[1]))
    n = len(rows)
    fig, axes = plt.subplots(2, n + 1, figsize=(3.6 * (n + 1), 5.6), layout="constrained")
    extent = [0, dry_mid.size / sr, 0, before.shape[0]]
    hi = max(float(before.max()), *(float(r[1].max()) for r in rows))
    kw = dict(origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=hi - 80, vmax=hi)
    axes[0, 0].imshow(before, **kw)
    axes[0, 0].set_title(f"before: {args.genre} (synthetic, stereo)", fontsize=9)
    axes[0, 0].set_ylabel("mel band")
    axes[1, 0].axis("off")
    axes[1, 0].text(
        0.0, 0.5,
        f"{lm.name}, toward each target,\n{args.steps} steps, default settings;\n"
        "p(target): mean over 50 %-overlapping\nwindows, before -> after.\n"
        "Bottom: dreamed minus dry (dB).\nRegenerate: scripts/dream_figures.py",
        fontsize=9, va="center",
    )
    for i, (t, after, diff, p0, p1, ch) in enumerate(rows, start=1):
        im = axes[0, i].imshow(after, **kw)
        axes[0, i].set_title(f"toward {t}: p {p0:.3f} -> {p1:.3f}", fontsize=9)
        dm = axes[1, i].imshow(diff, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r", vmin=-DIFF_RANGE_DB, vmax=DIFF_RANGE_DB)
        axes[1, i].set_title(f"{t}: dreamed - dry", fontsize=9)
        axes[1, i].set_xlabel("time (s)")
        assert ch == 2  # stereo in, stereo out
    fig.colorbar(im, ax=axes[0, :], label="dB", shrink=0.8)
    fig.colorbar(dm, ax=axes[1, 1:], label="dB", shrink=0.8)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=60)
    plt.close(fig)
    from PIL import Image

    # A 128-colour palette: a third of the bytes, no visible change (keeps the repo lean).
    Image.open(args.out).convert("RGB").quantize(128).save(args.out, optimize=True)
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {size / 1024:.0f} KB; " + "; ".join(f"{t}: p {p0:.3f} -> {p1:.3f}" for t, _, _, p0, p1, _ in rows))
    return 0 if math.isfinite(size) else 1


if __name__ == "__main__":
    sys.exit(main())
