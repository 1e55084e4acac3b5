"""`genredream train DATA --arch musicnn-head`: your genres on musicnn's embeddings.

The body is a shipped musicnn tagger, frozen; only a small head is trained,
on the embeddings of every consecutive 5 s window of the collection's songs
(the windows ``genredream evaluate`` scores). The embeddings are cached per
file (:mod:`genredream.models.embed_cache`), so a second run, or a run after adding a
genre folder, only sends new or changed files through musicnn. The head is
then fitted in seconds: Adam on mini-batches of window embeddings, early
stopping on the validation songs' loss, best weights kept.

The model file is the body plus the head as one TorchScript module
(:class:`genredream.models.archs.musicnn_head.MusicnnHead`): it validates, streams in
the engine and dreams like the shipped musicnn.

``--from HEAD.pt`` starts from a head file: same body, same embedding, the
known genres keep their units (:mod:`genredream.models.extend`), the input
standardisation is kept, and the report shows the old genres' accuracy
before and after. With every old genre's songs in DATA all units train on
all of them (rehearsal); when some are missing, the old units' rows are kept
exactly and the parent's old-unit answers are distilled (learning without
forgetting). The body is always frozen here, so ``--freeze-body`` changes
nothing for a head.

Training can also use extra views of the training songs (windows every half
window, pitch or gain changes; :data:`genredream.models.embed_cache.VIEWS`),
each cached under its own key; the default is the plain windows
(docs/heads.md has the measurements).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["train_head", "song_embeddings", "HEAD_RECIPE"]

#: Head training: ours (no paper behind a head on these embeddings). lr 1e-2: at 1e-3 a linear head on
#: 100 songs was still improving at epoch 295 of 300 (docs/heads.md).
#: ``weight_decay_valid_dir``: with ``--valid-dir`` (validation songs of another sound, e.g. a third soundfont)
#: the weight decay is 1e-3, chosen on such a validation (csound's GM bank and MuseScore General both chose it
#: among label smoothing, weight decay, lr and a hidden layer; docs/heads.md, fourth pass). Without it the
#: validation is the training sound, which cannot rank them, so 1e-4 stays.
#: ``train_views_valid_dir``: with ``--valid-dir`` the training songs are also seen a semitone up ("up1"): first on
#: csound's bank in the fifth pass (0.5 point, under the rule's 1.0), then 3.3 points above the plain windows on a
#: fourth soundfont no pass had seen (OPL3 FM; docs/heads.md, sixth pass).
HEAD_RECIPE = dict(optimizer="adam", lr=1e-2, weight_decay=1e-4, batch_size=64, epochs=300, patience=30, hidden=0, layer="pooled",
                   label_smoothing=0.0, train_views=[""], distill_temperature=2.0, weight_decay_valid_dir=1e-3,
                   train_views_valid_dir=["", "up1"])


def _body(embedding: str):
    from genredream.models.contract import load
    from genredream.models.registry import resolve_model

    path = resolve_model(embedding)
    return path, load(path)


def song_embeddings(songs, net, spec, cache, progress=None, view=""):
    """See :func:`genredream.models.embed_cache.song_embeddings` (kept here for callers of the first version)."""
    from genredream.models.embed_cache import song_embeddings as embed

    return embed(songs, net, spec, cache, view=view, progress=progress)


def _stack(items, labels, layer):
    x = np.concatenate([e[layer] for _, e in items]) if items else np.zeros((0, 1), np.float32)
    y = np.concatenate([np.full(len(e[layer]), labels.index(s.genre)) for s, e in items]) if items else np.zeros(0, np.int64)
    song = np.concatenate([np.full(len(e[layer]), i) for i, (_, e) in enumerate(items)]) if items else np.zeros(0, np.int64)
    return x.astype(np.float32), y.astype(np.int64), song


def _scores(head, x, y, song, n_songs, n_out=None):
    """Window and song accuracy, window predictions, loss of ``head`` on embeddings (``n_out``: only the first units)."""
    import torch

    with torch.no_grad():
        logits = head(torch.from_numpy(x))
        if n_out is not None:
            logits = logits[:, :n_out]
        loss = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))) if len(y) else float("nan")
        probs = torch.softmax(logits, 1).numpy()
    p_win = probs.argmax(1)
    y_song = [int(y[song == i][0]) for i in range(n_songs)]
    p_song = [int(probs[song == i].mean(0).argmax()) for i in range(n_songs)]
    return dict(
        loss=loss,
        window_accuracy=float(np.mean(p_win == y)) if len(y) else None,
        song_accuracy=float(np.mean(np.array(y_song) == np.array(p_song))) if n_songs else None,
        y_win=y.tolist(),
        p_win=p_win.tolist(),
        y_song=y_song,
        p_song=p_song,
    )


def _per_class(y, p, labels, only=None):
    from genredream.models.train import confusion

    cm = confusion(y, p, len(labels))
    return {g: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, g in enumerate(labels) if only is None or g in only}


def _masked_l2(params, out_layer, mask):
    total = 0.0
    for p in params:
        if p is out_layer.weight:
            total = total + ((p * mask) ** 2).sum()
        elif p is out_layer.bias:
            total = total + ((p * mask[:, 0]) ** 2).sum()
        else:
            total = total + (p * p).sum()
    return total


def _l2sp_terms(head, anchor):
    """(parameter, parent value or None, row mask or None, strength) for :func:`_l2sp`."""
    import torch

    n_old, parent_state, strength = anchor
    out_layer = head.net[-1]
    terms = []
    for name, p in head.net.named_parameters():
        ref = parent_state[f"net.{name}"].detach().clone()
        if p is out_layer.weight or p is out_layer.bias:
            rows = torch.zeros(p.shape[0], dtype=torch.bool)
            rows[:n_old] = True
            full = torch.zeros_like(p)
            full[:n_old] = ref[:n_old]
            terms.append((p, full, rows, strength))
        else:
            terms.append((p, ref, None, strength))
    return terms


def _l2sp(terms, weight_decay):
    """L2-SP: the parent's parameters pull with ``strength``; the output layer's new rows get plain weight decay."""
    total = 0.0
    for p, ref, rows, strength in terms:
        if rows is None:
            total = total + 0.5 * strength * ((p - ref) ** 2).sum()
        else:
            total = total + 0.5 * strength * ((p[rows] - ref[rows]) ** 2).sum() + 0.5 * weight_decay * (p[~rows] ** 2).sum()
    return total


def fit_head(head, train, valid, r, seed, frozen_rows=0, teacher=None, anchor=None, distill_on=None):
    """Fit ``head`` on window embeddings; early stopping on the validation loss; best weights kept.

    ``train``: ``(x, y)``; ``valid``: ``(x, y, song, n_songs)`` (may be empty:
    then the training loss is monitored). ``frozen_rows``: the first output
    units keep their weights exactly (the parent's genres when ``--from`` has
    none of their songs). ``teacher``: the parent's old-unit logits on the
    training windows; the new head's old-unit softmax is pulled towards them
    (learning without forgetting, Li & Hoiem 2016, at ``r["distill_temperature"]``);
    ``distill_on``: a boolean per training window, distil only there (default all).
    ``anchor``: ``(n_old, parent_state, strength)``: L2-SP (Li, Grandvalet & Davoine
    2018): instead of weight decay towards zero, the shared layers and the first
    ``n_old`` output rows are pulled towards the parent's values (``parent_state``:
    the parent head's ``state_dict``) with ``strength``; the new rows keep plain
    weight decay.
    Returns ``(best, history)``, ``best`` = ``{"loss", "epoch"}``.
    """
    import torch

    xtr, ytr = train
    xva, yva, sva, n_va = valid
    params = list(head.net.parameters())
    out_layer = head.net[-1]
    if frozen_rows:
        # Zero the old units' gradient and weight decay: their rows stay the parent's, bit for bit.
        mask = torch.ones_like(out_layer.weight[:, :1])
        mask[:frozen_rows] = 0
        hooks = [out_layer.weight.register_hook(lambda g: g * mask), out_layer.bias.register_hook(lambda g: g * mask[:, 0])]
    # Frozen rows: their gradient is zero, so Adam's moments stay zero and so does their step; the weight
    # decay is then an explicit L2 term that leaves them out (Adam's own would shrink them).
    opt = torch.optim.Adam(params, lr=r["lr"], weight_decay=0.0 if (frozen_rows or anchor) else r["weight_decay"])
    sp_terms = _l2sp_terms(head, anchor) if anchor else None
    rng = np.random.default_rng(seed)
    best = {"loss": float("inf"), "epoch": 0, "state": copy.deepcopy(head.state_dict())}
    history = []
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    tt = torch.from_numpy(teacher) if teacher is not None else None
    don = torch.from_numpy(np.asarray(distill_on, bool)) if distill_on is not None else None
    T = float(r["distill_temperature"])
    for epoch in range(r["epochs"]):
        head.train()
        order = rng.permutation(len(ytr))
        loss_sum = 0.0
        for i in range(0, len(order), r["batch_size"]):
            idx = torch.from_numpy(order[i : i + r["batch_size"]])
            opt.zero_grad()
            logits = head(xt[idx])
            loss = torch.nn.functional.cross_entropy(logits, yt[idx], label_smoothing=r["label_smoothing"])
            if tt is not None:
                k = tt.shape[1]
                on = don[idx] if don is not None else torch.ones(len(idx), dtype=torch.bool)
                if on.any():
                    loss = loss + T * T * torch.nn.functional.kl_div(
                        torch.log_softmax(logits[on, :k] / T, 1), torch.softmax(tt[idx][on] / T, 1), reduction="sum") / len(idx)
            if frozen_rows and r["weight_decay"]:
                loss = loss + 0.5 * r["weight_decay"] * _masked_l2(params, out_layer, mask)
            if sp_terms:
                loss = loss + _l2sp(sp_terms, r["weight_decay"])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        head.eval()
        monitor = _scores(head, xva, yva, sva, n_va)["loss"] if len(yva) else loss_sum / len(ytr)
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / len(ytr), "valid_loss": monitor})
        if monitor < best["loss"]:
            best = {"loss": monitor, "epoch": epoch + 1, "state": copy.deepcopy(head.state_dict())}
        elif epoch + 1 - best["epoch"] >= r["patience"]:
            break
    if frozen_rows:
        for h in hooks:
            h.remove()
    head.load_state_dict(best.pop("state"))
    head.eval()
    return best, history


def train_head(cfg, log=print) -> dict:
    """Embed (cached), fit the head, test, export. Returns the report (also written as JSON)."""
    import torch

    from genredream.models import contract
    from genredream.models.archs.musicnn_head import EMBEDDINGS, MusicnnHead, make_head_meta
    from genredream.models.data import CollectionError, scan
    from genredream.models.embed_cache import EmbeddingCache, cache_root
    from genredream.models.extend import data_provenance, extend_labels, lineage, transplant
    from genredream.models.inputs import InputSpec
    from genredream.models.train import TrainProgress, choose_splits, confusion, plot_confusion, seed_everything

    t_wall = time.time()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    r = dict(HEAD_RECIPE)
    for key in ("epochs", "lr", "batch_size"):
        if getattr(cfg, key) is not None:
            r[key] = getattr(cfg, key)
    if getattr(cfg, "valid_dir", None):  # the recipe chosen on other sounds' validation (docs/heads.md, fourth and sixth passes)
        r["weight_decay"] = r["weight_decay_valid_dir"]
        r["train_views"] = list(r["train_views_valid_dir"])
    coll = scan(cfg.data, cfg.genres)

    parent = None
    if cfg.from_model:
        parent = cfg.from_model  # a LoadedModel, checked by the caller
        head_meta = parent.meta["head"]
        embedding, r["layer"], r["hidden"] = head_meta["embedding"], head_meta["layer"], int(head_meta["hidden"])
        if cfg.embedding and cfg.embedding != embedding:
            raise CollectionError(f"--embedding {cfg.embedding}: the model given to --from is a head on {embedding}")
        labels = extend_labels(parent.meta["labels"], coll.genres)
    else:
        embedding = cfg.embedding or "musicnn-msd"
        if embedding not in EMBEDDINGS:
            raise CollectionError(f"--embedding must be one of {', '.join(EMBEDDINGS)}, got {embedding!r}")
        if cfg.head_layer:
            r["layer"] = cfg.head_layer
        if cfg.head_hidden is not None:
            r["hidden"] = int(cfg.head_hidden)
        labels = list(coll.genres)

    splits, split_desc = choose_splits(cfg, coll)
    if not splits["train"]:
        raise CollectionError(f"the train split is empty: {cfg.data} has too few songs per genre")

    body_path, body = _body(embedding)
    net = MusicnnHead(labels, r["layer"], r["hidden"])
    net.load_body(body.module.state_dict())
    grown = []
    if parent is not None:
        grown = transplant(parent.module.state_dict(), net, len(parent.meta["labels"]))
    net.eval()
    spec = InputSpec(make_head_meta(net, embedding, body.meta["licence"]))
    cache = EmbeddingCache(cache_root(cfg.cache_dir), embedding, body_path, spec.length)

    t0, c0 = time.time(), time.process_time()
    views = [str(v) for v in (getattr(cfg, "head_views", None) or r["train_views"])]
    r["train_views"] = views
    with TrainProgress(cfg.progress) as prog:
        total = sum(len(v) for v in splits.values()) + (len(views) - 1) * len(splits["train"])
        task = prog.task(f"embedding with {embedding}", total)
        emb, skipped = {}, []
        for name in ("train", "valid", "test"):
            emb[name], sk = song_embeddings(splits[name], net, spec, cache, progress=lambda k: prog.update(task, k), view=views[0] if name == "train" else "")
            skipped += sk
        # Training-time views beyond the first (docs/heads.md): more windows of the same training songs.
        extra = []
        for v in views[1:]:
            extra += song_embeddings(splits["train"], net, spec, cache, progress=lambda k: prog.update(task, k), view=v)[0]
    embed_seconds = time.time() - t0
    embed_cpu_seconds = time.process_time() - c0
    log(f"embeddings: {cache.hits} files from the cache, {cache.misses} through {embedding} in {embed_seconds:.1f} s ({cache.dir})")
    if not emb["train"]:
        raise CollectionError("no training song could be decoded")

    layer = r["layer"]
    xtr, ytr, _ = _stack(emb["train"] + extra, labels, layer)
    xva, yva, sva = _stack(emb["valid"], labels, layer)
    xte, yte, ste = _stack(emb["test"], labels, layer)
    head = net.head
    if parent is None:
        head.in_mean.copy_(torch.from_numpy(xtr.mean(0)))
        head.in_std.copy_(torch.from_numpy(xtr.std(0) + 1e-3))  # floor: a constant unit must not blow up
    before_head = copy.deepcopy(head)

    t1, c1 = time.time(), time.process_time()
    frozen, teacher, from_mode = 0, None, None
    if parent is not None:
        from_mode = "rehearsal"  # every old genre has songs here: all units train on all of them
        n_old = len(parent.meta["labels"])
        absent = [g for g in parent.meta["labels"] if g not in {s.genre for s, _ in emb["train"]}]
        if absent:
            # The old genres' songs are not all here: keep the old units' rows as they were, and distil the
            # parent's old-unit answers on the new songs into the rest (what is shared: a hidden layer).
            frozen, from_mode = n_old, "learning without forgetting"
            with torch.no_grad():
                teacher = before_head(torch.from_numpy(xtr))[:, :n_old].numpy()
            log(f"--from: no songs of {', '.join(absent)} here: the {n_old} old units are kept as they were (learning without forgetting)")
    best, history = fit_head(head, (xtr, ytr), (xva, yva, sva, len(emb["valid"])), r, cfg.seed, frozen_rows=frozen, teacher=teacher)
    train_seconds = time.time() - t1
    train_cpu_seconds = time.process_time() - c1  # this process's CPU time: what a busy machine's wall clock hides
    log(f"head: {len(history)} epochs in {train_seconds:.1f} s on {len(ytr)} windows of {len(emb['train'])} songs (best epoch {best['epoch']})")

    n = len(labels)
    report = {
        "arch": "musicnn-head",
        "model_file": str(out),
        "report_file": str(out.with_suffix(".report.json")),
        "data": data_provenance(coll.root),
        "genres": labels,
        "embedding": {"body": embedding, "layer": layer, "hidden": r["hidden"], "window_hop": "consecutive 5 s windows", "train_views": views,
                      "cache": str(cache.dir), "cached_files": cache.hits, "embedded_files": cache.misses, "embed_seconds": round(embed_seconds, 1),
                      "embed_cpu_seconds": round(embed_cpu_seconds, 1)},
        "split": split_desc | {"songs": {k: len(v) for k, v in emb.items()}},
        "recipe": r,
        "seed": cfg.seed,
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu_seconds, 2),
        "history": history,
        "skipped_files": skipped,
    }
    if len(yte):
        test = _scores(head, xte, yte, ste, len(emb["test"]))
        cm = confusion(test["y_win"], test["p_win"], n)
        report["test"] = {
            "songs": len(emb["test"]),
            "windows": len(yte),
            "loss": test["loss"],
            "window_accuracy": test["window_accuracy"],
            "song_accuracy": test["song_accuracy"],
            "per_class_accuracy": _per_class(test["y_win"], test["p_win"], labels),
            "confusion": cm.tolist(),
            "confusion_song": confusion(test["y_song"], test["p_song"], n).tolist(),
        }
        plot_confusion(cm, labels, out.with_suffix(".confusion.png"), f"musicnn-head ({embedding}): test windows, accuracy {test['window_accuracy']:.1%}")
    else:
        report["test"] = {"songs": 0, "windows": 0, "window_accuracy": None, "song_accuracy": None}

    meta = make_head_meta(net, embedding, body.meta["licence"])
    meta["name"] = cfg.name or out.stem
    prov = dict(
        meta["provenance"],
        trained=True,
        data=report["data"],
        accuracy={"test_window": report["test"]["window_accuracy"], "test_song": report["test"]["song_accuracy"]},
        split=report["split"],
        recipe={k: v for k, v in r.items()},
        seed=cfg.seed,
        body={"name": embedding, "file": body_path.name},
    )
    if parent is not None:
        old = list(parent.meta["labels"])
        report["from"] = _forgetting(parent, old, before_head, head, emb["test"], labels, layer, grown)
        report["from"]["mode"] = from_mode
        report["from"]["old_units_frozen"] = frozen
        prov["lineage"] = lineage(parent.meta, parent.path)
    meta["provenance"] = prov
    contract.save(net, meta, out)
    report["wall_seconds"] = round(time.time() - t_wall, 1)
    out.with_suffix(".report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def _forgetting(parent, old, before_head, head, test_items, labels, layer, grown):
    """The old genres' test accuracy with the parent's head (its units only) and with the new head."""
    items = [(s, e) for s, e in test_items if s.genre in old]
    x, y, song = _stack(items, labels, layer)
    out = {"model": parent.meta["name"], "file": str(parent.path), "old_genres": old, "new_genres": labels[len(old):], "grown": grown, "test_songs": len(items)}
    if len(y):
        b = _scores(before_head, x, y, song, len(items), n_out=len(old))
        a = _scores(head, x, y, song, len(items))
        out["before"] = {"window_accuracy": b["window_accuracy"], "song_accuracy": b["song_accuracy"], "per_class_accuracy": _per_class(b["y_win"], b["p_win"], labels, old)}
        out["after"] = {"window_accuracy": a["window_accuracy"], "song_accuracy": a["song_accuracy"], "per_class_accuracy": _per_class(a["y_win"], a["p_win"], labels, old)}
    return out
