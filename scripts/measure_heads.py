"""The measurements of docs/heads.md: heads across soundfonts, and adding genres with --from.

Needs the folders of ``scripts/render_soundfont_check.py`` (OUT/seen,
OUT/unseen, OUT/split). Every head is trained with the real trainer
(:func:`genredream.models.heads.train_head`) on the seen soundfont; the unseen
soundfont's test songs go through the same body (cached embeddings) and the
trained head, which is what the head file computes on those windows (one
variant is also checked end to end with ``genredream evaluate``).

    python scripts/measure_heads.py /tmp/sfcheck --cache-dir /tmp/sfcheck/cache > heads.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def cfg(data, out, cache, split, **kw):
    from genredream.models.train import TrainConfig

    base = dict(data=str(data), arch="musicnn-head", out=str(out), seed=0, progress=False, threads=1, cache_dir=str(cache), split_files=[str(p) for p in split])
    base.update(kw)
    return TrainConfig(**base)


def unseen_accuracy(model_path, unseen, cache_dir):
    """Window and song accuracy of a head file's head on the unseen soundfont's songs (cached body embeddings)."""
    import torch

    from genredream.models.archs.musicnn_head import MusicnnHead
    from genredream.models.contract import load
    from genredream.models.registry import resolve_model
    from genredream.models.data import scan
    from genredream.models.embed_cache import EmbeddingCache
    from genredream.models.heads import _per_class, _scores, _stack, song_embeddings
    from genredream.models.inputs import InputSpec

    m = load(model_path)
    head = m.meta["head"]
    net = MusicnnHead(m.labels, head["layer"], head["hidden"])
    net.load_state_dict(m.module.state_dict())
    net.eval()
    coll = scan(unseen)
    songs = [s for s in coll.songs if s.genre in m.labels]
    spec = InputSpec(m.meta)
    cache = EmbeddingCache(cache_dir, head["embedding"], resolve_model(head["embedding"]), spec.length)
    items, _ = song_embeddings(songs, net, spec, cache)
    x, y, song = _stack(items, m.labels, head["layer"])
    s = _scores(net.head, x, y, song, len(items))
    return {"window_accuracy": s["window_accuracy"], "song_accuracy": s["song_accuracy"], "songs": len(items),
            "per_class_accuracy": _per_class(s["y_win"], s["p_win"], m.labels)}


def subset_split(split, genres, dst):
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for p in split:
        lines = [ln for ln in Path(p).read_text().splitlines() if ln.split("/")[0] in genres]
        q = dst / Path(p).name
        q.write_text("\n".join(lines) + "\n")
        out.append(q)
    return out


def subset_collection(seen, genres, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for g in genres:
        if not (dst / g).exists():
            (dst / g).symlink_to((seen / g).resolve())
    (dst / "corpus.json").write_text((seen / "corpus.json").read_text())
    return dst


def main(argv=None):
    import torch

    from genredream.models.heads import train_head

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--only", choices=["variants", "extend"], help="one part only")
    p.add_argument("--split-dir", help="train/valid/test.txt to use (default ROOT/split); an empty test.txt tests on the unseen soundfont only")
    p.add_argument("--variants", default="penultimate:0,penultimate:256,pooled:0,pooled:256", help="head layer:hidden pairs to compare")
    p.add_argument("--embeddings", default="musicnn-msd,musicnn-mtt", help="bodies to compare (default both)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(a.root)
    seen, unseen = root / "seen", root / "unseen"
    split = [Path(a.split_dir or root / "split") / f"{n}.txt" for n in ("train", "valid", "test")]
    work = root / "heads"
    work.mkdir(exist_ok=True)
    res = {}
    quiet = lambda m: print(m, file=sys.stderr)  # noqa: E731

    if a.only in (None, "variants"):
        res["variants"] = []
        for emb in a.embeddings.split(","):
            for variant in a.variants.split(","):
                layer, hidden = variant.split(":")[0], int(variant.split(":")[1])
                if True:
                    out = work / f"{emb}-{layer}-h{hidden}.pt"
                    t = time.time()
                    rep = train_head(cfg(seen, out, a.cache_dir, split, embedding=emb, head_layer=layer, head_hidden=hidden), log=quiet)
                    wall = time.time() - t
                    un = unseen_accuracy(out, unseen, a.cache_dir)
                    row = {"embedding": emb, "layer": layer, "hidden": hidden, "seen_test_window": rep["test"]["window_accuracy"], "train_songs": rep["split"]["songs"]["train"],
                           "seen_test_song": rep["test"]["song_accuracy"], "unseen_window": un["window_accuracy"], "unseen_song": un["song_accuracy"],
                           "unseen_per_class": un["per_class_accuracy"], "valid_loss": min(h["valid_loss"] for h in rep["history"]),
                           "train_seconds": rep["train_seconds"], "embed_seconds": rep["embedding"]["embed_seconds"],
                           "embedded_files": rep["embedding"]["embedded_files"], "wall_seconds": round(wall, 1)}
                    print(json.dumps(row), file=sys.stderr)
                    res["variants"].append(row)

    if a.only in (None, "extend"):
        genres = sorted(d.name for d in seen.iterdir() if d.is_dir())
        eight = genres[:8]
        ext = {}
        c8 = subset_collection(seen, eight, work / "eight")
        s8 = subset_split(split, eight, work / "split8")
        m8 = work / "eight.pt"
        r8 = train_head(cfg(c8, m8, a.cache_dir, s8), log=quiet)
        from genredream.models.contract import load

        r10 = train_head(cfg(seen, work / "ten-from.pt", a.cache_dir, split, from_model=load(m8)), log=quiet)
        s10 = train_head(cfg(seen, work / "ten-scratch.pt", a.cache_dir, split), log=quiet)
        ext["eight_test_window"] = r8["test"]["window_accuracy"]
        ext["from_test_window"] = r10["test"]["window_accuracy"]
        ext["from_test_song"] = r10["test"]["song_accuracy"]
        ext["scratch_test_window"] = s10["test"]["window_accuracy"]
        ext["scratch_test_song"] = s10["test"]["song_accuracy"]
        ext["old_before"] = r10["from"].get("before")
        ext["old_after"] = r10["from"].get("after")
        ext["from_train_seconds"] = r10["train_seconds"]
        ext["from_embedded_files"] = r10["embedding"]["embedded_files"]
        # On the unseen soundfont's test songs too: all ten genres, and the eight old ones per genre before and after.
        for key, f in (("eight", m8), ("from", work / "ten-from.pt"), ("scratch", work / "ten-scratch.pt")):
            ext[f"{key}_unseen"] = unseen_accuracy(f, unseen, a.cache_dir)
        res["extend"] = ext
        print(json.dumps(ext), file=sys.stderr)
    json.dump(res, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
