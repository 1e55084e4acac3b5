"""Pictures of a dream: mel spectrograms before and after, their difference in dB, and the objective per step.

``genredream dream --plot`` draws them; ``scripts/dream_figures.py`` makes
docs/figures/dream-before-after.png with the same functions.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["plot_dream", "mel_db", "difference_db", "DIFF_RANGE_DB"]

#: Colour range of the difference panel (dB either way).
DIFF_RANGE_DB = 20.0


def mel_db(y, sr, n_mels=96):
    """The mel power spectrogram of ``y`` in dB (46 ms frames, hop a quarter), as the plot draws it."""
    from genredream.engine.mel import MelConfig, power_to_db

    n_fft = int(2 ** round(math.log2(0.046 * sr)))
    cfg = MelConfig(sr=int(sr), n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, scaling="power")
    return power_to_db(cfg.melspectrogram(np.ascontiguousarray(y, np.float32)))


def difference_db(before_db, after_db, floor_db=80.0):
    """Dreamed minus dry per mel bin and frame (dB); 0 where both are more than ``floor_db`` below the loudest bin (nothing to compare)."""
    top = max(float(before_db.max()), float(after_db.max()))
    lo = top - floor_db
    diff = np.maximum(after_db, lo) - np.maximum(before_db, lo)
    return diff


def plot_dream(png, before, after, sr, res, objective, model_name, gain=1.0, title=None):
    """Before, after (normalised), after minus before in dB (the normalisation gain taken out), and the objective per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mels = [mel_db(y, sr) for y in (before, after)]
    lo = max(min(float(m.min()) for m in mels), max(float(m.max()) for m in mels) - 80)
    hi = max(float(m.max()) for m in mels)
    diff = difference_db(mels[0], mels[1] - 20 * math.log10(max(gain, 1e-12)))
    n_mels = mels[0].shape[0]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), gridspec_kw={"height_ratios": [3, 3, 3, 2]}, layout="constrained")
    extent = [0, before.size / sr, 0, n_mels]
    for ax, m, t in zip(axes[:2], mels, ("before", "after (normalised)")):
        im = ax.imshow(m, origin="lower", aspect="auto", extent=extent, vmin=lo, vmax=hi, cmap="magma")
        ax.set_title(f"mel spectrogram, {t}")
        ax.set_ylabel("mel band")
    fig.colorbar(im, ax=axes[:2], label="dB")
    ax = axes[2]
    im = ax.imshow(diff, origin="lower", aspect="auto", extent=extent, vmin=-DIFF_RANGE_DB, vmax=DIFF_RANGE_DB, cmap="RdBu_r")
    ax.set_title(f"dreamed minus dry (dB, the normalisation gain of {20 * math.log10(max(gain, 1e-12)):+.1f} dB taken out): red added, blue removed", fontsize=9)
    ax.set_ylabel("mel band")
    ax.set_xlabel("time (s)")
    fig.colorbar(im, ax=axes[2], label="dB")
    ax = axes[3]
    if res is not None:
        ax.plot(range(1, len(res.objective_per_step) + 1), res.objective_per_step, marker=".", label="at each step (its windows, file edges included)")
        ax.axhline(res.before, color="grey", ls="--", lw=1, label=f"original {res.before:.4g}")
        ax.axhline(res.after, color="C1", ls="--", lw=1, label=f"dreamed {res.after:.4g}")
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    ax.set_title(title or f"{model_name}: {objective.describe()}", fontsize=9)
    fig.savefig(png, dpi=90)
    plt.close(fig)
