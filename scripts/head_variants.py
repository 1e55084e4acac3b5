"""Head training variants on cached embeddings (docs/heads.md): chosen by the seen soundfont's validation loss, reported on the unseen one.

Needs the folders of ``scripts/render_soundfont_check.py`` (ROOT/seen, ROOT/unseen,
ROOT/split-*/). Every fit is :func:`genredream.models.heads.fit_head`, the trainer's
own, on the cached embeddings (no model file is exported, so a variant costs seconds):

    python scripts/head_variants.py embed CACHE SPLIT VIEW,VIEW      # embed training views
    python scripts/head_variants.py variants CACHE SPLIT 'GRID_JSON'   # one JSON line per fit
    python scripts/head_variants.py extend CACHE SPLIT 'CONFIG_JSON'   # 8 genres -> 10: rehearsal, frozen, lwf

``HEADS_ROOT`` (default /tmp/i18/sf) is ROOT. One torch thread.
"""
import json
import os
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
from genredream.models.archs.musicnn_head import GenreHead, MusicnnHead, make_head_meta  # noqa: E402
from genredream.models.contract import load, resolve_model  # noqa: E402
from genredream.models.data import Song, scan  # noqa: E402
from genredream.models.embed_cache import EmbeddingCache, song_embeddings  # noqa: E402
from genredream.models.heads import HEAD_RECIPE, _per_class, _scores, _stack, fit_head  # noqa: E402
from genredream.models.inputs import InputSpec  # noqa: E402

ROOT = Path(os.environ.get("HEADS_ROOT", "/tmp/i18/sf"))
CACHE = sys.argv[2]
MODE = sys.argv[1]
GEN = sorted(d.name for d in (ROOT / "seen").iterdir() if d.is_dir())
body_path = resolve_model("musicnn-msd")
body = load(body_path)
net = MusicnnHead(GEN, "pooled", 0)
net.load_body(body.module.state_dict())
net.eval()
spec = InputSpec(make_head_meta(net, "musicnn-msd", "ISC"))
cache = EmbeddingCache(CACHE, "musicnn-msd", body_path, spec.length)


def songs(split, name):
    return [Song(ROOT / "seen" / ln, ln.split("/")[0]) for ln in (ROOT / split / f"{name}.txt").read_text().split()]


def emb(ss, view=""):
    return song_embeddings(ss, net, spec, cache, view=view)[0]


unseen = [s for s in scan(ROOT / "unseen").songs]


def run(split, views, layer="pooled", hidden=0, wd=1e-4, ls=0.0, seed=0, genres=None, test_genres=None):
    genres = genres or GEN
    tr = [s for s in songs(split, "train") if s.genre in genres]
    va = [s for s in songs(split, "valid") if s.genre in genres]
    items = []
    for v in views:
        items += emb(tr, v)
    xtr, ytr, _ = _stack(items, genres, layer)
    vi = emb(va)
    xva, yva, sva = _stack(vi, genres, layer)
    torch.manual_seed(seed)
    head = GenreHead(xtr.shape[1], len(genres), hidden)
    head.in_mean.copy_(torch.from_numpy(xtr.mean(0)))
    head.in_std.copy_(torch.from_numpy(xtr.std(0) + 1e-3))
    r = dict(HEAD_RECIPE, weight_decay=wd, label_smoothing=ls)
    t = time.time()
    best, hist = fit_head(head, (xtr, ytr), (xva, yva, sva, len(vi)), r, seed)
    fit_s = time.time() - t
    return head, dict(valid_loss=best["loss"], best_epoch=best["epoch"], fit_s=round(fit_s, 2), n_train_windows=len(ytr))


def test(head, genres, layer="pooled", only=None):
    te = [s for s in unseen if s.genre in (only or genres)]
    ti = emb(te)
    x, y, song = _stack(ti, genres, layer)
    s = _scores(head, x, y, song, len(ti))
    return dict(unseen_window=s["window_accuracy"], unseen_song=s["song_accuracy"], per_class=_per_class(s["y_win"], s["p_win"], genres, only))


if MODE == "embed":
    for split in sys.argv[3].split(","):
        for v in sys.argv[4].split(","):
            t = time.time(); m0 = cache.misses
            emb(songs(split, "train"), "" if v == "plain" else v)
            print(split, v, "embedded", cache.misses - m0, "in", round(time.time() - t, 1), "s", flush=True)
    emb(songs("split-mid", "valid")); emb(unseen)

if MODE == "variants":
    split = sys.argv[3]
    grid = json.loads(sys.argv[4])
    for g in grid:
        views = ["" if v == "plain" else v for v in g.pop("views")]
        accs = []
        for seed in g.pop("seeds", [0]):
            head, info = run(split, views, seed=seed, **g)
            res = dict(split=split, views=views, seed=seed, **g, **info, **test(head, GEN, g.get("layer", "pooled")))
            res.pop("per_class") if seed else None
            print(json.dumps(res), flush=True)

if MODE == "extend":
    from genredream.models.extend import transplant
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
