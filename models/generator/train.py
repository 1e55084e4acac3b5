"""Training a generator, one genre at a time (``genredream train-generator``).

Training data (the paper, scaled to 10-second songs)
---------------------------------------------------
The paper cut 1-second clips from 30-second GTZAN songs, 29 s of each song for
training and 1 s for validation. Our synthetic songs are 10 s, so each song
gives its first 9 s to training and its last 1 s to validation (one
validation clip per song); every epoch draws ``clips_per_song`` (default 9)
random 1-second clips from each song's training part. A clip is 0.9 s of
context and the 0.1 s that follows; both are scaled by the gain that brings
the context to RMS 0.1 (silent contexts are skipped), and the loss is MSE on
those normalised samples. The paper held 10 of 100 songs per genre out for
its generation test; we train on all songs of the training corpus and test on
the separately rendered held-out corpus (another seed), which is stricter.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genredream.models.generator.file import build_generator, save_generator

__all__ = ["TrainGeneratorConfig", "train_generator", "song_parts", "normalise_clips", "plot_losses", "plot_loss_grid"]

#: Contexts quieter than this RMS (-60 dBFS) are not used for training.
MIN_TRAIN_RMS = 1e-3


def song_parts(audio, sr, valid_seconds=1.0, clip_seconds=1.0):
    """Split a song into its training part and its validation clip (the last ``valid_seconds``).

    Returns ``(train, valid)`` float32 arrays, or None when the song is too
    short for a training clip and a validation clip.
    """
    nv, nc = int(round(valid_seconds * sr)), int(round(clip_seconds * sr))
    if audio.size < nv + nc or nv < nc:
        return None
    return audio[: audio.size - nv], audio[audio.size - nv : audio.size - nv + nc]


def normalise_clips(clips, context, target_rms):
    """Scale each ``[context + predict]`` clip so its context has RMS ``target_rms``; drop silent contexts.

    Returns
    -------
    x : float32 [n, context], y : float32 [n, predict]
    """
    clips = np.asarray(clips, dtype=np.float32).reshape(len(clips), -1)
    rms = np.sqrt(np.mean(clips[:, :context].astype(np.float64) ** 2, axis=1))
    keep = rms >= MIN_TRAIN_RMS
    g = (target_rms / np.maximum(rms[keep], MIN_TRAIN_RMS)).astype(np.float32)[:, None]
    c = clips[keep] * g
    return np.ascontiguousarray(c[:, :context]), np.ascontiguousarray(c[:, context:])


@dataclass
class TrainGeneratorConfig:
    data: str
    genre: str
    out: str
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    clips_per_song: int = 9
    valid_seconds: float = 1.0
    patience: int = 6
    seed: int = 0
    max_songs: int | None = None
    resume: bool = False
    threads: int | None = None
    progress: bool = True
    sizes: dict = field(default_factory=dict)


def plot_losses(history, path, title):
    """Training and validation loss per epoch (normalised MSE), with the zero-prediction baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ep, [h["train_loss"] for h in history], label="training", marker=".")
    ax.plot(ep, [h["valid_loss"] for h in history], label="validation", marker=".")
    if history:
        ax.axhline(history[0]["valid_zero_loss"], color="grey", ls="--", lw=1, label="predict silence (valid)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (context at RMS 0.1)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_loss_grid(reports, path):
    """Validation and training loss of several generators (``FILE.report.json`` dicts), relative to predicting silence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(reports)
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 1.8 * rows + 0.4), squeeze=False)
    for ax, r in zip(axes.flat, reports):
        h, z = r["history"], r["valid_zero_loss"]
        ep = [e["epoch"] for e in h]
        ax.plot(ep, [1e3 * e["train_loss"] for e in h], lw=1, label="training")
        ax.plot(ep, [1e3 * e["valid_loss"] for e in h], lw=1, label="validation")
        ax.axhline(1e3 * z, color="grey", ls="--", lw=0.8, label="silence (valid)")
        ax.set_title(f"{r['genre']}: best valid {r['best_valid_loss'] / z:.3f} x silence", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("MSE x 1000 (context RMS 0.1)", fontsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _load_genre(cfg, prog):
    from genredream.models.archs.doyle_gru import SAMPLE_RATE
    from genredream.models.data import AudioFileError, CollectionError, load_audio, scan

    coll = scan(cfg.data)
    if cfg.genre not in coll.genres:
        raise CollectionError(f"{coll.root}: no folder for genre {cfg.genre!r}; found {', '.join(coll.genres)}")
    songs = sorted((s.path for s in coll.songs if s.genre == cfg.genre), key=str)
    if cfg.max_songs:
        songs = songs[: cfg.max_songs]
    task = prog.task(f"decoding {cfg.genre}", len(songs))
    train, valid, skipped = [], [], []
    for p in songs:
        try:
            y = load_audio(p, SAMPLE_RATE)
        except AudioFileError as e:
            skipped.append((str(p), str(e)))
        else:
            parts = song_parts(y, SAMPLE_RATE, cfg.valid_seconds)
            if parts is None:
                skipped.append((str(p), f"shorter than {1 + cfg.valid_seconds:g} s"))
            else:
                train.append(parts[0])
                valid.append(parts[1])
        prog.update(task, 1)
    if not train:
        raise CollectionError(f"{cfg.data}/{cfg.genre}: no song could be used (each needs {1 + cfg.valid_seconds:g} s); skipped: {skipped[:3]}")
    return songs, train, valid, skipped


def train_generator(cfg: TrainGeneratorConfig) -> dict:
    """Train one genre's generator; write FILE.pt, FILE.loss.png, FILE.report.json (and FILE.ckpt for --resume)."""
    import torch

    from genredream.models.train import TrainProgress, seed_everything

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = out.with_suffix(".ckpt")
    module, meta = build_generator(cfg.genre, **cfg.sizes)
    C, P, target = module.context, module.predict, module.target_rms
    clip = C + P
    with TrainProgress(cfg.progress) as prog:
        songs, train_parts, valid_clips, skipped = _load_genre(cfg, prog)
        vx, vy = normalise_clips(np.stack(valid_clips), C, target)
        vx_t, vy_t = torch.from_numpy(vx), torch.from_numpy(vy)
        zero_loss = float(torch.mean(vy_t**2))

        def valid_loss():
            module.eval()
            with torch.no_grad():
                total = sum(float(torch.sum((module.predict_normalised(vx_t[i : i + 128]) - vy_t[i : i + 128]) ** 2)) for i in range(0, len(vx_t), 128))
            return total / max(vy_t.numel(), 1)

        initial_loss = valid_loss()
        opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
        start, history, best = 0, [], {"loss": math.inf, "epoch": 0, "state": None}
        if cfg.resume and ckpt.exists():
            st = torch.load(ckpt, weights_only=False)
            module.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            start, history, best = st["epoch"] + 1, st["history"], st["best"]
            torch.set_rng_state(st["torch_rng"])
            prog.log(f"resumed from {ckpt} after epoch {start}")
        per_epoch = len(train_parts) * cfg.clips_per_song
        bar = prog.task(f"training generator {cfg.genre}", cfg.epochs * per_epoch)
        prog.update(bar, start * per_epoch)
        t0 = time.time() - (history[-1]["seconds"] if history else 0.0)  # seconds count across resumes
        for epoch in range(start, cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            clips = []
            for part in train_parts:
                for s in rng.integers(0, part.size - clip + 1, size=cfg.clips_per_song):
                    clips.append(part[s : s + clip])
            x, y = normalise_clips(np.stack(clips), C, target)
            order = rng.permutation(len(x))
            module.train()
            loss_sum = seen = 0.0
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
                opt.zero_grad()
                loss = torch.mean((module.predict_normalised(xb) - yb) ** 2)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                opt.step()
                loss_sum += float(loss.detach()) * len(idx)
                seen += len(idx)
                prog.update(bar, len(idx) * per_epoch / max(len(order), 1), info=f"epoch {epoch + 1} loss {loss_sum / seen:.5f}")
            vloss = valid_loss()
            entry = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "valid_loss": vloss, "valid_zero_loss": zero_loss, "seconds": round(time.time() - t0, 1)}
            history.append(entry)
            if vloss < best["loss"]:
                best = {"loss": vloss, "epoch": epoch + 1, "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}
            prog.log(
                f"{cfg.genre} epoch {epoch + 1}: train {entry['train_loss']:.5f}, valid {vloss:.5f} "
                f"({vloss / zero_loss:.3f} of predicting silence)" + (" (best)" if best["epoch"] == epoch + 1 else "")
            )
            torch.save({"model": module.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "history": history, "best": best, "torch_rng": torch.get_rng_state()}, ckpt)
            if epoch + 1 - best["epoch"] >= cfg.patience:
                prog.log(f"early stop: no better validation loss for {cfg.patience} epochs")
                break
        seconds = time.time() - t0
    if best["state"] is not None:
        module.load_state_dict(best["state"])
    report = {
        "genre": cfg.genre,
        "model_file": str(out),
        "loss_plot": str(out.with_suffix(".loss.png")),
        "data": str(Path(cfg.data).resolve()),
        "songs": len(train_parts),
        "split": f"per song: all but the last {cfg.valid_seconds:g} s train, the last {cfg.valid_seconds:g} s one validation clip",
        "train_clips_per_epoch": per_epoch,
        "valid_clips": int(len(vx)),
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "best_valid_loss": best["loss"],
        "valid_zero_loss": zero_loss,
        "initial_valid_loss": initial_loss,
        "best_valid_ratio_to_silence": best["loss"] / zero_loss if zero_loss else None,
        "train_seconds": round(seconds, 1),
        "recipe": {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "optimizer": "adam", "clips_per_song": cfg.clips_per_song, "patience": cfg.patience, "grad_clip": 1.0},
        "seed": cfg.seed,
        "history": history,
        "skipped_files": skipped,
    }
    meta["provenance"] = dict(
        meta["provenance"],
        trained=True,
        data=report["data"],
        split=report["split"],
        songs=report["songs"],
        recipe=report["recipe"],
        seed=cfg.seed,
        epochs=len(history),
        best_epoch=best["epoch"],
        valid_loss=best["loss"],
        valid_zero_loss=zero_loss,
    )
    save_generator(module, meta, out)
    plot_losses(history, out.with_suffix(".loss.png"), f"doyle-gru {cfg.genre}: best valid {best['loss']:.4f} (silence {zero_loss:.4f})")
    out.with_suffix(".report.json").write_text(json.dumps(report, indent=1, default=str))
    return report
