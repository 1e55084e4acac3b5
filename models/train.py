"""Training a seed architecture (`genredream train`, engine/cli/train.py).

Each architecture's default recipe is its paper's (:data:`genredream.models.archs.RECIPES`),
overridable by flags. Songs are split by song (:mod:`genredream.models.data`); every
epoch draws random 5-second windows from each training song (Lidy &
Schindler's random-segment sampling), validates on consecutive windows of the
validation songs, and keeps the best weights (early stopping). At the end the
best model is tested on the test songs, exported in the model-file contract,
and a report is written beside it:

* ``FILE.report.json``: accuracy (per window and per song), per-class
  accuracy, the confusion matrix, the split, the recipe, skipped files;
* ``FILE.confusion.png``: the test confusion matrix;
* ``FILE.ckpt``: the resumable training state (``--resume``).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["train", "TrainConfig", "TrainProgress", "trainable_archs", "seed_everything", "confusion", "plot_confusion", "choose_splits"]


@dataclass
class TrainConfig:
    data: str
    arch: str
    out: str
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    segments_per_file: int | None = None
    valid: float = 0.1
    test: float = 0.2
    split_files: list | None = None  # [train.txt, valid.txt, test.txt]
    genres: list | None = None
    patience: int = 5
    seed: int = 0
    resume: bool = False
    threads: int | None = None
    progress: bool = True
    name: str | None = None
    from_model: object = None  # --from: a models.contract.LoadedModel
    freeze_body: bool = False
    embedding: str | None = None  # musicnn-head: the body (musicnn-msd or musicnn-mtt)
    head_layer: str | None = None
    head_hidden: int | None = None
    cache_dir: str | None = None
    valid_dir: str | None = None  # --valid-dir: validation songs from another folder (e.g. another soundfont)


def trainable_archs():
    """The architectures `train` can train: the seed papers' and musicnn-head."""
    from genredream.models.archs import ARCHS

    return set(ARCHS) | {"musicnn-head"}


def seed_everything(seed):
    """Seed Python, NumPy and torch: the same seed gives the same model."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _recipe(cfg):
    from genredream.models.archs import RECIPES

    r = dict(RECIPES[cfg.arch])
    for key in ("epochs", "lr", "batch_size", "optimizer"):
        if getattr(cfg, key) is not None:
            r[key] = getattr(cfg, key)
    r["segments_per_file"] = cfg.segments_per_file or r.get("segments_per_file", 8)
    return r


def _optimizer(module, r):
    import torch

    if r["optimizer"] == "sgd":
        return torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=r["lr"], momentum=r["momentum"], nesterov=bool(r["nesterov"] and r["momentum"] > 0), weight_decay=r["weight_decay"])
    return torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=r["lr"], weight_decay=r["weight_decay"])


def _evaluate(module, spec, songs, feats, batch_size):
    """Consecutive windows of each song -> per-window and per-song predictions."""
    import torch

    from genredream.models.data import consecutive_starts

    module.eval()
    y_win, p_win, y_song, p_song, loss_sum, n = [], [], [], [], 0.0, 0
    with torch.no_grad():
        for d, f in zip(songs, feats):
            starts = consecutive_starts(spec.units(f), spec.length)
            probs = []
            for i in range(0, len(starts), batch_size):
                x = torch.from_numpy(spec.batch([f] * len(starts[i : i + batch_size]), starts[i : i + batch_size]))
                logits = module(x)
                loss_sum += float(torch.nn.functional.cross_entropy(logits, torch.full((x.shape[0],), d.label), reduction="sum"))
                n += x.shape[0]
                probs.append(torch.softmax(logits, dim=1).numpy())
            probs = np.concatenate(probs)
            y_win += [d.label] * len(probs)
            p_win += probs.argmax(1).tolist()
            y_song.append(d.label)
            p_song.append(int(probs.mean(0).argmax()))
    return dict(
        loss=loss_sum / max(n, 1),
        window_accuracy=float(np.mean(np.array(y_win) == np.array(p_win))) if y_win else None,
        song_accuracy=float(np.mean(np.array(y_song) == np.array(p_song))) if y_song else None,
        y_win=y_win,
        p_win=p_win,
        y_song=y_song,
        p_song=p_song,
    )


def confusion(y_true, y_pred, n):
    m = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        m[t, p] += 1
    return m


def plot_confusion(matrix, labels, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color="white" if rows[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class TrainProgress:
    """A rich progress bar, or nothing (tests, --no-progress); shared by every training loop."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar:
            self.bar.__exit__(*exc)

    def task(self, description, total):
        return self.bar.add_task(description, total=total, info="") if self.bar else None

    def update(self, task, advance=0, **fields):
        if self.bar is not None and task is not None:
            self.bar.update(task, advance=advance, **fields)

    def log(self, msg):
        if self.bar:
            self.bar.console.print(msg)
        else:
            print(msg, flush=True)



def choose_splits(cfg, coll):
    """The song-level split a training config asks for, and its description for the report.

    ``--split-files`` names the songs of each split; otherwise songs are
    split at random, stratified by genre, with ``cfg.seed``.

    ``--valid-dir DIR`` takes the validation songs (early stopping, the best
    epoch) from another folder-per-genre collection, e.g. the same songs
    rendered with a soundfont that is neither the training nor the test one
    (docs/heads.md, fourth pass): with ``--split-files`` the VALID list is read
    against DIR, otherwise every song of DIR validates. The validation songs
    of DATA are then used for neither training nor validation.
    """
    from genredream.models.data import CollectionError, read_split_files, scan, split_songs

    if cfg.split_files:
        files = list(cfg.split_files)
        if cfg.valid_dir:
            files[1] = None  # read against DIR below
        splits = read_split_files(coll, *files)
        split_desc = {"kind": "files", "files": [str(p) for p in cfg.split_files]}
    else:
        splits = split_songs(coll.songs, cfg.valid, cfg.test, cfg.seed)
        split_desc = {"kind": "random by song, stratified", "valid": cfg.valid, "test": cfg.test, "seed": cfg.seed}
    if cfg.valid_dir:
        other = scan(cfg.valid_dir)
        unknown = sorted(set(other.genres) - set(coll.genres))
        if unknown and not cfg.genres:  # with --genres, DIR's other folders are left out as DATA's are
            raise CollectionError(f"--valid-dir {cfg.valid_dir}: genre folders {', '.join(unknown)} are not in {cfg.data}")
        wanted = set(cfg.genres or coll.genres)
        other.songs = [s for s in other.songs if s.genre in wanted]
        splits["valid"] = read_split_files(other, cfg.split_files[1])["train"] if cfg.split_files else list(other.songs)
        if not splits["valid"]:
            raise CollectionError(f"--valid-dir {cfg.valid_dir}: no songs of the training genres")
        split_desc["valid_dir"] = str(cfg.valid_dir)
    return splits, split_desc

def train(cfg: TrainConfig) -> dict:
    """Train, test, export. Returns the report dict (also written as JSON)."""
    import torch

    from genredream.models import contract
    from genredream.models.archs import build
    from genredream.models.data import decode_songs, random_starts, scan
    from genredream.models.extend import data_provenance, extend_labels, lineage, output_layer, transplant
    from genredream.models.inputs import InputSpec

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt_path = out.with_suffix(".ckpt")
    r = _recipe(cfg)

    coll = scan(cfg.data, cfg.genres)
    splits, split_desc = choose_splits(cfg, coll)
    for name in ("train", "valid", "test"):
        if not splits[name] and not (name == "valid" and cfg.valid == 0) and not (name == "test" and cfg.test == 0):
            raise contract_error(f"the {name} split is empty: {cfg.data} has too few songs per genre for these fractions")

    parent = cfg.from_model
    genres = extend_labels(parent.meta["labels"], coll.genres) if parent else list(coll.genres)
    module, meta = build(cfg.arch, genres)
    grown, out_layer = [], None
    if parent:
        grown = transplant(parent.module.state_dict(), module, len(parent.meta["labels"]))
    if cfg.freeze_body:
        out_layer = output_layer(module, len(genres))
        for k, p in module.named_parameters():
            p.requires_grad_(k.startswith(out_layer + "."))
    spec = InputSpec(meta)
    with TrainProgress(cfg.progress) as prog:
        decoded, skipped, padded = {}, [], []
        t_dec = prog.task("decoding", sum(len(v) for v in splits.values()))
        for name in ("train", "valid", "test"):
            rep = decode_songs(splits[name], genres, spec.sample_rate, spec.window_samples, progress=lambda k: prog.update(t_dec, k))
            decoded[name] = rep.decoded
            skipped += rep.skipped
            padded += rep.padded
        if not decoded["train"]:
            raise contract_error("no training song could be decoded; see the warnings above")
        feats = {k: [spec.song_features(d.audio) for d in v] for k, v in decoded.items()}

        opt = _optimizer(module, r)
        start_epoch, history, best = 0, [], {"loss": math.inf, "epoch": -1, "state": None}
        if cfg.resume and ckpt_path.exists():
            state = torch.load(ckpt_path, weights_only=False)
            module.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
            torch.set_rng_state(state["torch_rng"])
            prog.log(f"resumed from {ckpt_path} after epoch {state['epoch'] + 1}")
        rng = np.random.default_rng([cfg.seed, start_epoch])

        n_train = len(decoded["train"])
        per_epoch = n_train * r["segments_per_file"]
        t_ep = prog.task(f"training {cfg.arch}", r["epochs"] * per_epoch)
        prog.update(t_ep, start_epoch * per_epoch)
        labels = np.array([d.label for d in decoded["train"]])
        t0 = time.time()
        epoch = start_epoch - 1
        for epoch in range(start_epoch, r["epochs"]):
            module.train()
            if out_layer is not None:  # --freeze-body: the body's batch norms keep their statistics, dropout is off
                module.eval()
                module.get_submodule(out_layer).train()
            song_idx = np.repeat(np.arange(n_train), r["segments_per_file"])
            rng.shuffle(song_idx)
            loss_sum = correct = seen = 0
            for i in range(0, len(song_idx), r["batch_size"]):
                idx = song_idx[i : i + r["batch_size"]]
                if len(idx) < 2:  # batch norm cannot train on a single example
                    continue
                starts = [random_starts(spec.units(feats["train"][j]), spec.length, 1, rng)[0] for j in idx]
                x = torch.from_numpy(spec.batch([feats["train"][j] for j in idx], starts))
                y = torch.from_numpy(labels[idx])
                opt.zero_grad()
                logits = module(x)
                loss = torch.nn.functional.cross_entropy(logits, y)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(idx)
                prog.update(t_ep, len(idx), info=f"epoch {epoch + 1} loss {loss_sum / seen:.3f} acc {correct / seen:.0%}")
            val = _evaluate(module, spec, decoded["valid"], feats["valid"], r["batch_size"]) if decoded["valid"] else None
            entry = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1)}
            if val:
                entry.update(valid_loss=val["loss"], valid_accuracy=val["window_accuracy"])
            history.append(entry)
            monitor = val["loss"] if val else entry["train_loss"]
            if monitor < best["loss"]:
                best = {"loss": monitor, "epoch": epoch + 1, "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}
            prog.log(
                f"epoch {epoch + 1}: train loss {entry['train_loss']:.3f} acc {entry['train_accuracy']:.1%}"
                + (f", valid loss {val['loss']:.3f} acc {val['window_accuracy']:.1%}" if val else "")
                + (" (best)" if best["epoch"] == epoch + 1 else "")
            )
            torch.save(
                {"model": module.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "history": history, "best": best, "torch_rng": torch.get_rng_state(), "config": {k: v for k, v in vars(cfg).items() if k != "from_model"}},
                ckpt_path,
            )
            if epoch + 1 - best["epoch"] >= cfg.patience:
                prog.log(f"early stop: no better validation loss for {cfg.patience} epochs")
                prog.update(t_ep, (r["epochs"] - epoch - 1) * per_epoch)
                break
        train_seconds = time.time() - t0

    if best["state"] is not None:
        module.load_state_dict(best["state"])
    module.eval()
    test = _evaluate(module, spec, decoded["test"], feats["test"], r["batch_size"]) if decoded["test"] else None
    n = len(genres)
    report = {
        "arch": cfg.arch,
        "model_file": str(out),
        "report_file": str(out.with_suffix(".report.json")),
        "data": data_provenance(coll.root),
        "genres": genres,
        "split": split_desc | {"songs": {k: len(v) for k, v in decoded.items()}},
        "recipe": r,
        "seed": cfg.seed,
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "train_seconds": round(train_seconds, 1),
        "history": history,
        "skipped_files": skipped,
        "padded_files": padded,
        "ignored_files": [str(p) for p, _ in coll.ignored],
    }
    if test:
        cm = confusion(test["y_win"], test["p_win"], n)
        per_class = {g: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, g in enumerate(genres)}
        report["test"] = {
            "songs": len(decoded["test"]),
            "windows": len(test["y_win"]),
            "loss": test["loss"],
            "window_accuracy": test["window_accuracy"],
            "song_accuracy": test["song_accuracy"],
            "per_class_accuracy": per_class,
            "confusion": cm.tolist(),
            "confusion_song": confusion(test["y_song"], test["p_song"], n).tolist(),
        }
        plot_confusion(cm, genres, out.with_suffix(".confusion.png"), f"{cfg.arch}: test windows, accuracy {test['window_accuracy']:.1%}")
    else:
        # None, not NaN: the model file's metadata is strict JSON.
        report["test"] = {"songs": 0, "windows": 0, "window_accuracy": None, "song_accuracy": None}

    meta["name"] = cfg.name or out.stem
    meta["provenance"] = dict(
        meta["provenance"],
        trained=True,
        data=report["data"],
        accuracy={"test_window": report["test"]["window_accuracy"], "test_song": report["test"]["song_accuracy"]},
        split=report["split"],
        recipe={k: v for k, v in r.items() if k != "source"},
        recipe_source=r["source"],
        seed=cfg.seed,
        epochs=len(history),
    )
    if parent:
        report["from"] = _forgetting(parent, module, spec, decoded["test"], feats["test"], r["batch_size"], genres, grown, cfg.freeze_body)
        meta["provenance"]["lineage"] = lineage(parent.meta, parent.path)
    contract.save(module, meta, out)
    out.with_suffix(".report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def _forgetting(parent, module, spec, songs, feats, batch_size, labels, grown, frozen):
    """The old genres' test accuracy with the parent model and with the new one (the same test songs)."""
    old = list(parent.meta["labels"])
    keep = [i for i, d in enumerate(songs) if d.label < len(old)]
    songs, feats = [songs[i] for i in keep], [feats[i] for i in keep]
    out = {"model": parent.meta["name"], "file": str(parent.path), "old_genres": old, "new_genres": labels[len(old):], "grown": grown,
           "freeze_body": frozen, "test_songs": len(songs)}
    if songs:
        for when, m in (("before", parent.module), ("after", module)):
            e = _evaluate(m, spec, songs, feats, batch_size)
            cm = confusion(e["y_win"], e["p_win"], len(labels))
            out[when] = {"window_accuracy": e["window_accuracy"], "song_accuracy": e["song_accuracy"],
                         "per_class_accuracy": {g: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, g in enumerate(old)}}
    return out


def contract_error(msg):
    from genredream.models.data import CollectionError

    return CollectionError(msg)
