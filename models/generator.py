"""Genre generators (Doyle & Lopez): model files, training, generation.

A generator continues audio: it takes 0.9 s of 10 kHz audio and predicts the
next 0.1 s (:class:`genredream.models.archs.doyle_gru.DoyleGRU`), one network per genre.
Generating is autoregressive, as in the paper: the prediction is appended and
the newest 0.9 s is the next input.

Commands (the lead wires them into ``engine/cli/``):

* ``genredream train-generator DATA --genre G --out FILE.pt`` (or ``--all
  --out-dir DIR``): :func:`add_train_generator_arguments` / :func:`train_generator_main`;
* ``genredream generate --genre G --seed-audio FILE --seconds 5 --out OUT.wav``:
  :func:`add_generate_arguments` / :func:`generate_main`;
* ``genredream evaluate-generator`` lives in :mod:`genredream.models.generator_eval`.

Generator files
---------------
A generator is not a classifier, so it does not go through
:func:`genredream.models.contract.save` (which checks ``forward -> [batch, n_labels]``
logits and ``features()``). It is the same kind of file (a TorchScript
archive with ``genredream.json``, read with the contract's archive helpers),
with its own metadata schema, ``task: "generator"``:

=====================  ==========================================================
key                    meaning
=====================  ==========================================================
``name``               str, e.g. ``"doyle-gru-classical"``
``version``            str
``task``               ``"generator"`` (a classifier loader rejects it: unknown task)
``arch``               ``"doyle-gru"``
``genre``              str, the genre it continues (``--genre`` finds files by it)
``sample_rate``        int, Hz (10000)
``context_samples``    int, input length (9000)
``predict_samples``    int, output length (1000)
``level``              object: ``{"normalised_rms": 0.1, "in_forward": true}``
``sizes``              object: the architecture's sizes (channels, kernel, ...)
``licence``            str
``provenance``         object: data, split, epochs, losses, seed, ...
=====================  ==========================================================

Methods: ``forward(x[batch, context]) -> [batch, predict]`` float32, audio at
the input's level; ``predict_normalised`` (training only needs it eager).
:func:`validate_generator` runs it on noise and silence (finite, right shape);
:func:`save_generator` also checks the round trip (identical outputs after
loading), like :func:`genredream.models.contract.save`. Shipped generators live in
``models/pretrained/generators/<genre>.pt``; ``$GENREDREAM_GENERATORS``
(``os.pathsep``-separated) or ``~/.genredream/generators`` are searched first.

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

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "GENERATOR_TASK",
    "GENERATORS_DIR",
    "GeneratorFile",
    "Stepper",
    "TrainGeneratorConfig",
    "add_generate_arguments",
    "add_train_generator_arguments",
    "build_generator",
    "check_generator_meta",
    "find_generator",
    "generate",
    "generate_main",
    "generator_dirs",
    "list_generators",
    "load_generator",
    "rms_db",
    "save_generator",
    "train_generator",
    "train_generator_main",
    "validate_generator",
]

GENERATOR_TASK = "generator"
GENERATORS_DIR = Path(__file__).resolve().parent / "pretrained" / "generators"
ARCH = "doyle-gru"
LICENCE = "CC0-1.0 (weights trained on genredream's synthetic corpus)"
#: Contexts quieter than this RMS (-60 dBFS) are not used for training.
MIN_TRAIN_RMS = 1e-3
#: Largest gain level matching applies to one chunk (+40 dB): a network that
#: predicts digital silence stays (nearly) silent instead of amplifying rounding.
MAX_LEVEL_GAIN = 100.0
#: Samples over which the junction correction fades out (5 ms at 10 kHz).
DECLICK_SAMPLES = 50


def rms_db(x) -> float:
    """RMS level of ``x`` in dBFS (-200 for silence)."""
    x = np.asarray(x, dtype=np.float64)
    r = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return 20 * math.log10(max(r, 1e-10))


# ---------------------------------------------------------------------------
# model files


def _bad(where, key, why):
    from genredream.models.contract import ModelFileError

    return ModelFileError(f"{where}: invalid generator metadata: {key}: {why}")


def check_generator_meta(meta, where="metadata") -> dict:
    """Check a generator's ``genredream.json``; return it. Raises ModelFileError naming the field."""
    if not isinstance(meta, dict):
        raise _bad(where, "genredream.json", f"must hold a JSON object, got {type(meta).__name__}")
    for key in ("name", "version", "task", "arch", "genre", "sample_rate", "context_samples", "predict_samples", "licence", "provenance"):
        if key not in meta:
            raise _bad(where, key, "missing (required)")
    if meta["task"] != GENERATOR_TASK:
        raise _bad(where, "task", f"must be {GENERATOR_TASK!r} for a generator, got {meta['task']!r} (a classifier? use models.contract.load)")
    for key in ("name", "version", "arch", "genre", "licence"):
        if not isinstance(meta[key], str) or not meta[key].strip():
            raise _bad(where, key, f"must be a non-empty string, got {meta[key]!r}")
    for key in ("sample_rate", "context_samples", "predict_samples"):
        v = meta[key]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise _bad(where, key, f"must be a positive integer, got {v!r}")
    if not isinstance(meta["provenance"], dict):
        raise _bad(where, "provenance", "must be an object")
    return meta


@dataclass
class GeneratorFile:
    """A loaded generator: path, checked metadata and the TorchScript module (eval mode)."""

    path: Path
    meta: dict
    module: object = field(repr=False)

    @property
    def genre(self) -> str:
        return self.meta["genre"]

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def context(self) -> int:
        return int(self.meta["context_samples"])

    @property
    def predict(self) -> int:
        return int(self.meta["predict_samples"])


def read_generator_meta(path) -> dict:
    """The checked metadata of a generator file, without loading torch."""
    from genredream.models.contract import META_NAME, ModelFileError
    from genredream.models.archive import meta_entry, open_archive

    path = Path(path)
    with open_archive(path) as zf:
        entry = meta_entry(zf)
        if entry is None:
            raise ModelFileError(f"{path}: missing {META_NAME} metadata: not a genredream generator; save it with models.generator.save_generator")
        raw = zf.read(entry)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: invalid generator metadata: not valid UTF-8 JSON ({e})") from None
    return check_generator_meta(meta, str(path))


def load_generator(path) -> GeneratorFile:
    """Load a generator file (format, metadata, methods; no run: see :func:`validate_generator`)."""
    import torch

    from genredream.models.contract import ModelFileError
    from genredream.models.archive import quiet_torchscript

    path = Path(path).expanduser()
    meta = read_generator_meta(path)
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise ModelFileError(f"{path}: truncated or corrupt: torch.jit.load failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    module.eval()
    return GeneratorFile(path, meta, module)


def _run_checks(path, module, meta):
    import torch

    from genredream.models.contract import ModelFileError

    c, p = int(meta["context_samples"]), int(meta["predict_samples"])
    gen = torch.Generator().manual_seed(1234)
    noise = torch.clamp(0.1 * torch.randn(2, c, generator=gen), -1, 1)
    for what, x in (("noise", noise), ("silence", torch.zeros(2, c))):
        with torch.no_grad():
            try:
                y = module(x)
            except Exception as e:
                raise ModelFileError(f"{path}: forward() failed on a [2, {c}] {what} input: {str(e).strip().splitlines()[0]}") from None
        if not isinstance(y, torch.Tensor) or list(y.shape) != [2, p] or y.dtype != torch.float32:
            got = (list(y.shape), str(y.dtype)) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ModelFileError(f"{path}: forward() returned {got} on {what}, expected float32 [2, {p}]")
        if not bool(torch.isfinite(y).all()):
            raise ModelFileError(f"{path}: output has NaN or Inf on {what}")
    return noise


def validate_generator(path) -> GeneratorFile:
    """Load a generator and run it on noise and silence: ``[2, predict]`` float32, finite."""
    g = load_generator(path)
    _run_checks(g.path, g.module, g.meta)
    return g


def save_generator(module, meta, path) -> GeneratorFile:
    """Script, write (with ``genredream.json``), validate and round-trip check a generator.

    Written to a temporary directory first and moved into place only when
    every check passes, like :func:`genredream.models.contract.save`.
    """
    import torch

    from genredream.models.contract import META_NAME, ModelFileError
    from genredream.models.archive import quiet_torchscript

    path = Path(path).expanduser()
    check_generator_meta(meta, str(path))
    meta_json = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
    was = module.training
    module.eval()
    try:
        with quiet_torchscript():
            scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
        x = _run_checks(path, scripted, meta)
        with torch.no_grad():
            before = scripted(x)
            eager = module(x)
        if not torch.allclose(before, eager, rtol=1e-5, atol=1e-6):
            raise ModelFileError(f"{path}: scripted output differs from eager by {float((before - eager).abs().max()):.3g}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=".genredream-save-", dir=path.parent))
        try:
            tmp = tmpdir / path.name
            with quiet_torchscript():
                torch.jit.save(scripted, str(tmp), _extra_files={META_NAME: meta_json})
            loaded = validate_generator(tmp)
            with torch.no_grad():
                after = loaded.module(x)
            if not torch.equal(before, after):
                raise ModelFileError(f"{path}: round trip failed: outputs after loading differ by {float((before - after).abs().max()):.3g}")
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    finally:
        module.train(was)
    return GeneratorFile(path, loaded.meta, loaded.module)


def generator_dirs() -> list[Path]:
    """Search order: ``$GENREDREAM_GENERATORS`` or ``~/.genredream/generators``, then the shipped ones."""
    env = os.environ.get("GENREDREAM_GENERATORS")
    user = [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else [Path.home() / ".genredream" / "generators"]
    return user + [GENERATORS_DIR]


def list_generators(dirs=None) -> dict:
    """``{genre: path}`` of the generator files found (first in search order wins); unreadable files are skipped."""
    from genredream.models.contract import ModelFileError

    out = {}
    for d in generator_dirs() if dirs is None else [Path(x) for x in dirs]:
        d = Path(d).expanduser()
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.pt")):
            try:
                genre = read_generator_meta(f)["genre"]
            except ModelFileError:
                continue
            out.setdefault(genre, f)
    return out


def find_generator(genre=None, path=None, dirs=None) -> Path:
    """The file for ``--generator PATH`` or ``--genre G`` (raises ModelFileError listing the genres there are)."""
    from genredream.models.contract import ModelFileError

    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelFileError(f"{p}: file not found")
        return p
    if not genre:
        raise ModelFileError("name a genre (--genre) or a generator file (--generator)")
    found = list_generators(dirs)
    if genre not in found:
        where = ", ".join(str(d) for d in (generator_dirs() if dirs is None else dirs))
        known = ", ".join(sorted(found)) or "none"
        raise ModelFileError(f"no generator for genre {genre!r}; generators installed: {known} (searched {where}); train one with `genredream train-generator`")
    return found[genre]


def build_generator(genre, **sizes):
    """A fresh :class:`DoyleGRU` and its metadata (provenance filled in by training)."""
    from genredream.models.archs.doyle_gru import CONTEXT_SAMPLES, PREDICT_SAMPLES, SAMPLE_RATE, SIZES, TARGET_RMS, DoyleGRU

    s = dict(SIZES, **sizes)
    module = DoyleGRU(**s)
    meta = {
        "name": f"{ARCH}-{genre}",
        "version": "1.0.0",
        "task": GENERATOR_TASK,
        "arch": ARCH,
        "genre": genre,
        "sample_rate": SAMPLE_RATE,
        "context_samples": CONTEXT_SAMPLES,
        "predict_samples": PREDICT_SAMPLES,
        "input": "waveform",
        "level": {"normalised_rms": TARGET_RMS, "in_forward": True},
        "sizes": s,
        "parameters": int(sum(p.numel() for p in module.parameters())),
        "licence": LICENCE,
        "provenance": {"source": "Doyle & Lopez, Genre classification and generation of music samples via neural networks"},
    }
    return module, meta


# ---------------------------------------------------------------------------
# data


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


# ---------------------------------------------------------------------------
# training


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

    from genredream.models.train import _Progress, seed_everything

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = out.with_suffix(".ckpt")
    module, meta = build_generator(cfg.genre, **cfg.sizes)
    C, P, target = module.context, module.predict, module.target_rms
    clip = C + P
    with _Progress(cfg.progress) as prog:
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


# ---------------------------------------------------------------------------
# generation


def _declick(chunk, prev2, n=DECLICK_SAMPLES):
    """Shift the chunk's start so it continues the previous two samples' line, fading the shift out over ``n`` samples."""
    expected = 2 * prev2[-1] - prev2[-2]
    d = expected - chunk[0]
    n = min(n, chunk.size)
    chunk[:n] += d * (0.5 + 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(np.float32)
    return chunk


class Stepper:
    """Autoregressive state: a context buffer, the level target, the noise generator.

    :func:`generate` and the engine's continuation (:mod:`genredream.engine.continuation`)
    both step with it; the module may change between steps (the engine
    switches genre mid-continuation), as long as the rates agree.

    Parameters
    ----------
    seed_audio : float32 [>= context] at the generator's rate; its last ``context`` samples start it.
    context, predict : int
        Samples in and out per step (9000 and 1000).
    noise, seed, level, declick
        As in :func:`generate`.
    """

    def __init__(self, seed_audio, context, predict, noise=0.0, seed=0, level="match", declick=True):
        if level not in ("match", "raw"):
            raise ValueError(f"level must be 'match' or 'raw', got {level!r}")
        if not (noise >= 0 and math.isfinite(noise)):
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        seed_audio = np.asarray(seed_audio, dtype=np.float32).ravel()
        if seed_audio.size < context:
            raise ValueError(f"seed audio has {seed_audio.size} samples; the generator needs {context}")
        self.C, self.P = int(context), int(predict)
        self.ctx = seed_audio[-self.C :].copy()
        self.target = float(np.sqrt(np.mean(self.ctx.astype(np.float64) ** 2)))
        self.noise, self.level, self.declick = float(noise), level, bool(declick)
        self.rng = np.random.default_rng(seed)
        self.raw_db, self.gains = [], []

    def step(self, module):
        """One chunk of ``predict`` samples (float32), appended to the context."""
        import torch

        with torch.no_grad():
            y = module(torch.from_numpy(self.ctx)[None])[0].numpy().astype(np.float32, copy=True)
        if not np.all(np.isfinite(y)):
            y = np.zeros_like(y)
        self.raw_db.append(rms_db(y))
        g = 1.0
        if self.level == "match":
            r = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
            g = min(MAX_LEVEL_GAIN, self.target / r) if r > 0 else 1.0
            y *= np.float32(g)
        self.gains.append(g)
        if self.noise > 0:
            y += np.float32(self.noise * self.target) * self.rng.standard_normal(self.P).astype(np.float32)
        if self.declick:
            y = _declick(y, self.ctx[-2:])
        np.clip(y, -1.0, 1.0, out=y)
        self.ctx = np.concatenate([self.ctx[self.P :], y])
        return y


#: Seconds between `generate` progress lines on stderr.
PROGRESS_EVERY = 5.0


def generate(gen, seed_audio, seconds=5.0, noise=0.0, seed=0, level="match", declick=True, return_info=False,
             progress=None, chunks=None):
    """Continue ``seed_audio`` for ``seconds``, 0.1 s at a time (autoregressive).

    Parameters
    ----------
    gen : GeneratorFile or torch module with ``forward([1, context]) -> [1, predict]`` and ``describe()``
    seed_audio : float32 [>= context] at the generator's rate (10 kHz)
        Its last ``context`` samples (0.9 s) are the first input.
    seconds : float
        Length of the continuation (the seed is not included).
    noise : float
        Gaussian noise added to each predicted chunk before it is fed back,
        relative to the seed's RMS (0 = deterministic, the paper's scheme).
        Seeded by ``seed``: same seed, same output.
    level : {"match", "raw"}
        ``"match"`` (default) scales each chunk to the seed's RMS (gain at
        most :data:`MAX_LEVEL_GAIN`): the fix for the paper's too-quiet
        output. ``"raw"``: the network's output as it is.
    declick : bool
        Make each chunk start where the previous one's slope points
        (a 5 ms correction), against clicks at the 0.1 s junctions.
    progress : callable(done_samples, total_samples), optional
        Called after every chunk (cheap: the caller decides when to print).
    chunks : list, optional
        Each 0.1 s chunk is appended here as it is made, so a caller that is
        interrupted can still write what was generated.

    Returns
    -------
    float32 [round(seconds * sr)] (and, with ``return_info``, a dict of
    per-chunk raw RMS (dBFS) and applied gains, and the seed's RMS).
    """
    module = gen.module if isinstance(gen, GeneratorFile) else gen
    if isinstance(gen, GeneratorFile):
        C, P, sr = gen.context, gen.predict, gen.sample_rate
    else:
        sr, C, P = (int(v) for v in module.describe())
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    st = Stepper(seed_audio, C, P, noise=noise, seed=seed, level=level, declick=declick)
    n = int(round(seconds * sr))
    chunks = [] if chunks is None else chunks
    done = 0
    for _ in range(-(-n // P)):
        chunks.append(st.step(module))
        done += P
        if progress is not None:
            progress(min(done, n), n)
    out = np.concatenate(chunks)[:n]
    if return_info:
        return out, {"chunk_raw_rms_db": st.raw_db, "chunk_gain": st.gains, "seed_rms_db": 20 * math.log10(max(st.target, 1e-10))}
    return out


# ---------------------------------------------------------------------------
# commands


def add_train_generator_arguments(p: argparse.ArgumentParser):
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


def train_generator_main(args) -> int:
    from genredream.models.contract import ModelFileError
    from genredream.models.data import CollectionError, scan

    try:
        if args.all:
            if not args.out_dir:
                print("genredream train-generator: --all needs --out-dir")
                return 2
            genres = scan(args.data).genres
            if args.genres:
                want = args.genres.split(",")
                unknown = [g for g in want if g not in genres]
                if unknown:
                    print(f"genredream train-generator: no folder for {unknown}; found {', '.join(genres)}")
                    return 2
                genres = want
            outs = [(g, Path(args.out_dir) / f"{g}.pt") for g in genres]
        else:
            if not args.out:
                print("genredream train-generator: --genre needs --out FILE.pt")
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
        print(f"genredream train-generator: {e}")
        return 2
    return 0


def add_generate_arguments(p: argparse.ArgumentParser):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Continue 0.9 s of seed audio in a genre with a trained generator, 0.1 s at a time (Doyle & Lopez).\n"
        "The seed file is decoded at 10 kHz; the 0.9 s starting at --offset seeds the network."
    )
    p.epilog = "example:\n  genredream generate --genre jazz --seed-audio song.wav --seconds 5 --out jazz-dream.wav\n"
    p.add_argument("--genre", help="genre whose generator to use (see models/pretrained/generators)")
    p.add_argument("--generator", help="generator file (.pt) instead of --genre")
    p.add_argument("--seed-audio", required=True, help="audio file whose 0.9 s seed the continuation")
    p.add_argument("--offset", type=float, default=0.0, help="seconds into the seed file where the 0.9 s start (default 0)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds to generate (default 5)")
    p.add_argument("--out", required=True, help="WAV file to write (16-bit PCM, 10 kHz unless --samplerate)")
    p.add_argument("--samplerate", type=int, help="resample the output to this rate (default: the generator's 10000 Hz)")
    p.add_argument("--include-seed", action="store_true", help="write the 0.9 s seed before the continuation")
    p.add_argument("--noise", type=float, default=0.0, help="noise fed back with each chunk, relative to the seed RMS (default 0: deterministic)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --noise (default 0)")
    p.add_argument("--level", choices=["match", "raw"], default="match", help="match each chunk to the seed's RMS (default) or keep the network's level")
    p.add_argument("--no-declick", action="store_true", help="leave the 0.1 s junctions as the network predicts them")
    p.add_argument("--progress", type=float, default=PROGRESS_EVERY, metavar="S",
                   help=f"a progress line on stderr every S seconds (default {PROGRESS_EVERY:g}; 0: none); Ctrl-C writes what is done")


def generate_main(args) -> int:
    import soundfile as sf

    from genredream.models.contract import ModelFileError
    from genredream.models.data import AudioFileError, check_length, load_audio

    import sys

    chunks = []
    interrupted = False
    clock = {"t0": time.monotonic(), "last": time.monotonic()}

    def progress(done, total):
        now = time.monotonic()
        if args.progress and now - clock["last"] >= args.progress:  # a line every few seconds, on stderr
            clock["last"] = now
            sr_ = g.sample_rate
            print(f"generate: {done / sr_:.1f} s of {total / sr_:g} s ({done / total:.0%}), "
                  f"{done / sr_ / (now - clock['t0']):.1f}x real time; Ctrl-C writes what is done", file=sys.stderr, flush=True)

    try:
        g = validate_generator(find_generator(args.genre, args.generator))
        audio = load_audio(args.seed_audio, g.sample_rate)
        check_length(audio.size, g.sample_rate, args.seed_audio)  # the same minimum as run, classify and dream
        a = int(round(args.offset * g.sample_rate))
        seed_audio = audio[a : a + g.context]
        if seed_audio.size < g.context:
            raise ValueError(f"{args.seed_audio}: needs {g.context / g.sample_rate:g} s from {args.offset:g} s; it is {audio.size / g.sample_rate:.2f} s long")
        try:
            y, info = generate(g, seed_audio, args.seconds, noise=args.noise, seed=args.seed, level=args.level,
                               declick=not args.no_declick, return_info=True, progress=progress, chunks=chunks)
        except KeyboardInterrupt:  # write what was generated
            interrupted = True
            y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            info = None
    except (ModelFileError, AudioFileError, ValueError) as e:
        print(f"genredream generate: {e}", file=sys.stderr)
        return 2
    if args.include_seed:
        y = np.concatenate([seed_audio, y])
    sr = g.sample_rate
    if args.samplerate and args.samplerate != sr:
        import soxr

        y = soxr.resample(y, sr, args.samplerate).astype(np.float32)
        sr = args.samplerate
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.out, np.clip(y, -1, 1), sr, subtype="PCM_16")
    if interrupted:
        print(f"interrupted: wrote {args.out}: {y.size / sr:.1f} s of the {args.seconds:g} s asked for", file=sys.stderr)
        return 130
    print(
        f"wrote {args.out}: {args.seconds:g} s of {g.genre} from {args.seed_audio} at {args.offset:g} s; "
        f"seed {info['seed_rms_db']:.1f} dBFS, output {rms_db(y):.1f} dBFS (network's own level {np.mean(info['chunk_raw_rms_db']):.1f} dBFS, level {args.level})"
    )
    return 0
