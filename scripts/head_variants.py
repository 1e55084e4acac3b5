"""Head training variants on cached embeddings (docs/heads.md): chosen by the seen soundfont's validation loss, reported on the unseen one.

Needs the folders of ``scripts/render_soundfont_check.py`` (ROOT/seen, ROOT/unseen,
ROOT/split-*/). Every fit is :func:`genredream.models.heads.fit_head`, the trainer's
own, on the cached embeddings (no model file is exported, so a variant costs seconds):

    python scripts/head_variants.py embed CACHE SPLIT VIEW,VIEW      # embed training views
    python scripts/head_variants.py variants CACHE SPLIT 'GRID_JSON'   # one JSON line per fit
    python scripts/head_variants.py extend CACHE SPLIT 'CONFIG_JSON'   # 8 genres -> 10: rehearsal, frozen, lwf
    python scripts/head_variants.py forget CACHE SPLIT 'CONFIG_JSON'   # 8 -> 10, old songs present: L2-SP, distillation, ...

``HEADS_ROOT`` (default /tmp/i18/sf) is ROOT. ``HEADS_BODY`` (default musicnn-msd) is the
body whose embeddings are read (and embedded): musicnn-msd or musicnn-mtt. One torch thread.

With ROOT/valid-sf (the validation songs rendered with a third soundfont,
``render_soundfont_check.py --valid-soundfont``), every variant also reports
that validation (``valid3_*``): the honest way to choose among variants
(docs/heads.md, fourth pass). A grid entry's ``"body"`` (musicnn-msd, musicnn-mtt, or
musicnn-msd+musicnn-mtt: both concatenated) overrides HEADS_BODY. A grid entry's ``"stop": "third"`` early-stops on
it instead of on the training soundfont's validation songs. ``HEADS_THIRD``
(default valid-sf) names that folder. ``HEADS_FOURTH`` names another rendering of
the validation songs that every fit is also scored on (``valid4_*``), never stopped on.
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
from genredream.models.archs.musicnn_head import GenreHead, MusicnnHead, make_head_meta  # noqa: E402
from genredream.models.contract import load, resolve_model  # noqa: E402
from genredream.models.data import Song, scan  # noqa: E402
from genredream.models.embed_cache import EmbeddingCache, song_embeddings  # noqa: E402
from genredream.models.extend import transplant  # noqa: E402
from genredream.models.heads import HEAD_RECIPE, _per_class, _scores, _stack, fit_head  # noqa: E402
from genredream.models.inputs import InputSpec  # noqa: E402

ROOT = Path(os.environ.get("HEADS_ROOT", "/tmp/i18/sf"))
THIRD = ROOT / os.environ.get("HEADS_THIRD", "valid-sf")
# A fourth soundfont's renderings of the validation songs (docs/heads.md, sixth pass): scored only, never stopped on.
FOURTH = ROOT / os.environ["HEADS_FOURTH"] if os.environ.get("HEADS_FOURTH") else None
CACHE = sys.argv[2]
MODE = sys.argv[1]
GEN = sorted(d.name for d in (ROOT / "seen").iterdir() if d.is_dir())
BODY = os.environ.get("HEADS_BODY", "musicnn-msd")
_BODIES = {}


def body_of(name):
    """(net, spec, cache) of one musicnn body, loaded once."""
    if name not in _BODIES:
        path = resolve_model(name)
        n = MusicnnHead(GEN, "pooled", 0)
        n.load_body(load(path).module.state_dict())
        n.eval()
        sp = InputSpec(make_head_meta(n, name, "ISC"))
        _BODIES[name] = (n, sp, EmbeddingCache(CACHE, name, path, sp.length))
    return _BODIES[name]


net, spec, cache = body_of(BODY)


def songs(split, name):
    return [Song(ROOT / "seen" / ln, ln.split("/")[0]) for ln in (ROOT / split / f"{name}.txt").read_text().split()]


def third(split, folder=None):
    """The split's validation songs rendered with the third soundfont (THIRD, or ``folder``), those rendered."""
    folder = folder or THIRD
    return [Song(folder / s.path.relative_to(ROOT / "seen"), s.genre) for s in songs(split, "valid")
            if (folder / s.path.relative_to(ROOT / "seen")).is_file()]


def emb(ss, view="", body=None):
    """Window embeddings of songs ``ss`` through ``body`` (default BODY); "musicnn-msd+musicnn-mtt" concatenates
    the bodies' embeddings window by window (a measurement only: the product runs one body)."""
    names = (body or BODY).split("+")
    per = [song_embeddings(ss, *body_of(b), view=view)[0] for b in names]
    if len(per) == 1:
        return per[0]
    return [(s, {k: np.concatenate([p[i][1][k] for p in per], axis=1) for k in per[0][i][1]}) for i, (s, _) in enumerate(per[0])]


unseen = [s for s in scan(ROOT / "unseen").songs]


def run(split, views, layer="pooled", hidden=0, wd=1e-4, ls=0.0, seed=0, genres=None, test_genres=None, stop="seen", lr=None, body=None):
    genres = genres or GEN
    tr = [s for s in songs(split, "train") if s.genre in genres]
    va = [s for s in (songs(split, "valid") if stop == "seen" else third(split)) if s.genre in genres]
    items = []
    for v in views:
        items += emb(tr, v, body)
    xtr, ytr, _ = _stack(items, genres, layer)
    vi = emb(va, body=body)
    xva, yva, sva = _stack(vi, genres, layer)
    torch.manual_seed(seed)
    head = GenreHead(xtr.shape[1], len(genres), hidden)
    head.in_mean.copy_(torch.from_numpy(xtr.mean(0)))
    head.in_std.copy_(torch.from_numpy(xtr.std(0) + 1e-3))
    r = dict(HEAD_RECIPE, weight_decay=wd, label_smoothing=ls, lr=lr or HEAD_RECIPE["lr"])
    t = time.time()
    best, hist = fit_head(head, (xtr, ytr), (xva, yva, sva, len(vi)), r, seed)
    fit_s = time.time() - t
    info = dict(valid_loss=best["loss"], best_epoch=best["epoch"], fit_s=round(fit_s, 2), n_train_windows=len(ytr))
    # The choosing signals: renderings that are neither the training soundfont nor the test one.
    for key, folder in (("valid3", THIRD), ("valid4", FOURTH)):
        items = emb([s for s in third(split, folder) if s.genre in genres], body=body) if folder else []
        if items:
            x, y, sng = _stack(items, genres, layer)
            sc = _scores(head, x, y, sng, len(items))
            info.update({f"{key}_loss": round(sc["loss"], 4), f"{key}_window": round(sc["window_accuracy"], 4),
                         f"{key}_song": round(sc["song_accuracy"], 4), f"{key}_songs": len(items)})
    return head, info


def test(head, genres, layer="pooled", only=None, body=None):
    te = [s for s in unseen if s.genre in (only or genres)]
    ti = emb(te, body=body)
    x, y, song = _stack(ti, genres, layer)
    s = _scores(head, x, y, song, len(ti))
    return dict(unseen_window=s["window_accuracy"], unseen_song=s["song_accuracy"], per_class=_per_class(s["y_win"], s["p_win"], genres, only))


if MODE == "embed":
    # Only songs already rendered (so it can run while render_soundfont_check.py is still writing; run it again after).
    for split in sys.argv[3].split(","):
        for v in sys.argv[4].split(","):
            for name in ("train", "valid", "test") if v == "plain" else ("train",):
                if not (ROOT / split / f"{name}.txt").is_file():
                    continue
                ss = [s for s in songs(split, name) if s.path.is_file()]
                t, c, m0 = time.time(), time.process_time(), cache.misses
                emb(ss, "" if v == "plain" else v)
                print(split, name, v, len(ss), "songs,", cache.misses - m0, "embedded in", round(time.time() - t, 1), "s wall,",
                      round(time.process_time() - c, 1), "s CPU", flush=True)
        t, c, m0 = time.time(), time.process_time(), cache.misses
        ss = third(split)
        emb(ss)
        print(split, THIRD.name, len(ss), "songs,", cache.misses - m0, "embedded in", round(time.time() - t, 1), "s wall,",
              round(time.process_time() - c, 1), "s CPU", flush=True)
    emb(unseen)

if MODE == "variants":
    split = sys.argv[3]
    grid = json.loads(sys.argv[4])
    for g in grid:
        name = g.pop("name", None)  # a label for the table, passed through
        views = ["" if v == "plain" else v for v in g.pop("views")]
        accs = []
        for seed in g.pop("seeds", [0]):
            head, info = run(split, views, seed=seed, **g)
            res = dict(name=name, split=split, views=views, seed=seed, **g, **info, **test(head, GEN, g.get("layer", "pooled"), body=g.get("body")))
            res.pop("per_class") if seed else None
            print(json.dumps(res), flush=True)

if MODE == "extend":
    split = sys.argv[3]
    cfgs = json.loads(sys.argv[4])
    views = ["" if v == "plain" else v for v in cfgs.pop("views", ["plain"])]
    hidden = cfgs.pop("hidden", 0)
    wd = cfgs.pop("wd", 1e-4)
    ls = cfgs.pop("ls", 0.0)
    old, new = GEN[:8], GEN[8:]
    for seed in cfgs.pop("seeds", [0]):
        h8, i8 = run(split, views, hidden=hidden, wd=wd, ls=ls, seed=seed, genres=old)
        t8 = test(h8, old, only=old)
        h10, i10 = run(split, views, hidden=hidden, wd=wd, ls=ls, seed=seed, genres=GEN)
        out = {"seed": seed, "eight_old": t8["unseen_window"], "scratch_all": test(h10, GEN)["unseen_window"], "scratch_old": test(h10, GEN, only=old)["unseen_window"]}

        def from_parent(mode):
            data_genres = GEN if mode != "lwf" else new
            tr = [s for s in songs(split, "train") if s.genre in data_genres]
            va = [s for s in songs(split, "valid") if s.genre in data_genres]
            items = []
            for v in views:
                items += emb(tr, v)
            xtr, ytr, _ = _stack(items, GEN, "pooled")
            vi = emb(va)
            xva, yva, sva = _stack(vi, GEN, "pooled")
            torch.manual_seed(seed)
            head = GenreHead(xtr.shape[1], 10, hidden)
            transplant(h8.state_dict(), head, 8)
            r = dict(HEAD_RECIPE, weight_decay=wd, label_smoothing=ls)
            frozen, teacher = 0, None
            if mode in ("frozen", "lwf"):
                frozen = 8
            if mode == "lwf":
                with torch.no_grad():
                    teacher = h8(torch.from_numpy(xtr)).numpy()
            best, _ = fit_head(head, (xtr, ytr), (xva, yva, sva, len(vi)), r, seed, frozen_rows=frozen, teacher=teacher)
            return head, best

        for mode in ("rehearsal", "frozen", "lwf"):
            h, b = from_parent(mode)
            out[f"{mode}_all"] = test(h, GEN)["unseen_window"]
            out[f"{mode}_old"] = test(h, GEN, only=old)["unseen_window"]
            out[f"{mode}_epoch"] = b["epoch"]
        print(json.dumps(out), flush=True)

if MODE == "forget":
    # 8 genres -> 10 with every old song present: what keeps the old genres (docs/heads.md, third pass).
    # Each variant is chosen by the SEEN soundfont's validation songs; unseen and seen test are reported.
    split = sys.argv[3]
    cfg = json.loads(sys.argv[4])
    names = cfg.get("variants", ["rehearsal", "frozen", "l2sp-0.01", "l2sp-0.1", "l2sp-1", "bias", "kd-old", "lr-1e-3", "l2sp-0.1+kd-old"])
    old, new = GEN[:8], GEN[8:]
    seen_test = songs(split, "test")

    def data(genres):
        tr = [s for s in songs(split, "train") if s.genre in genres]
        va = [s for s in songs(split, "valid") if s.genre in genres]
        return _stack(emb(tr), GEN, "pooled")[:2], emb(va)

    def evaluate(head, n_out=None):
        """Validation (seen) and test (seen, unseen) on all genres and on the old ones; ``n_out``: the parent's 8 units."""
        res = {}
        for tag, pool in (("valid", [s for s in songs(split, "valid")]), ("seen", seen_test), ("unseen", unseen)):
            for part, gs in (("all", GEN), ("old", old)):
                if n_out is not None and part == "all":
                    continue
                items = emb([s for s in pool if s.genre in gs])
                if not items:
                    continue
                x, y, sng = _stack(items, GEN, "pooled")
                sc = _scores(head, x, y, sng, len(items), n_out=n_out)
                res[f"{tag}_{part}"] = round(sc["window_accuracy"] * 100, 2)
                res[f"{tag}_{part}_song"] = round(sc["song_accuracy"] * 100, 2)
                if tag == "valid":
                    res[f"{tag}_{part}_loss"] = round(sc["loss"], 4)
        return res

    (xtr, ytr), vi = data(GEN)
    xva, yva, sva = _stack(vi, GEN, "pooled")
    (x8, y8), vi8 = data(old)
    xva8, yva8, sva8 = _stack(vi8, GEN, "pooled")
    for seed in cfg.get("seeds", [0]):
        torch.manual_seed(seed)
        h8 = GenreHead(x8.shape[1], 8, 0)
        h8.in_mean.copy_(torch.from_numpy(x8.mean(0))); h8.in_std.copy_(torch.from_numpy(x8.std(0) + 1e-3))
        fit_head(h8, (x8, y8), (xva8, yva8, sva8, len(vi8)), dict(HEAD_RECIPE), seed)
        print(json.dumps({"seed": seed, "variant": "parent (8 genres)", **evaluate(h8, n_out=8)}), flush=True)
        torch.manual_seed(seed)
        h10 = GenreHead(x8.shape[1], 10, 0)
        h10.in_mean.copy_(torch.from_numpy(xtr.mean(0))); h10.in_std.copy_(torch.from_numpy(xtr.std(0) + 1e-3))
        b, _ = fit_head(h10, (xtr, ytr), (xva, yva, sva, len(vi)), dict(HEAD_RECIPE), seed)
        print(json.dumps({"seed": seed, "variant": "10 from the start", "epoch": b["epoch"], **evaluate(h10)}), flush=True)
        with torch.no_grad():
            teacher = h8(torch.from_numpy(xtr)).numpy()
        for name in names:
            torch.manual_seed(seed)
            head = GenreHead(x8.shape[1], 10, 0)
            transplant(h8.state_dict(), head, 8)  # keeps the parent's standardisation, as train_head does
            r = dict(HEAD_RECIPE)
            kw = {}
            for part in name.split("+"):
                if part == "frozen":
                    kw["frozen_rows"] = 8
                elif part.startswith("l2sp-"):
                    kw["anchor"] = (8, {k: v.clone() for k, v in h8.state_dict().items()}, float(part[5:]))
                elif part == "bias":
                    with torch.no_grad():  # new units start silent: zero weights, the lowest old bias
                        head.net[-1].weight[8:] = 0
                        head.net[-1].bias[8:] = head.net[-1].bias[:8].min()
                elif part == "kd-old":
                    kw["teacher"], kw["distill_on"] = teacher, ytr < 8
                elif part == "kd-all":
                    kw["teacher"] = teacher
                elif part.startswith("lr-"):
                    r["lr"] = float(part[3:])
            t = time.time()
            b, _ = fit_head(head, (xtr, ytr), (xva, yva, sva, len(vi)), r, seed, **kw)
            print(json.dumps({"seed": seed, "variant": name, "epoch": b["epoch"], "fit_s": round(time.time() - t, 1), **evaluate(head)}), flush=True)
