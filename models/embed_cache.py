"""musicnn embeddings of a collection's songs, cached per file by content hash.

Running musicnn's body over a song costs about as much as the rest of
training a head together, so ``genredream train --arch musicnn-head`` keeps
every song's embeddings on disk: retraining, adding a genre folder or
training a head from another head reads them back, and only new or changed
files go through musicnn.

Layout: ``ROOT/embeddings/<body>-<body sha256[:12]>-w<frames>/<file sha256>.npz``
with one row per consecutive 5 s window of the song (the windows
``genredream evaluate`` scores): ``pooled`` ``[n, 1506]`` and
``penultimate`` ``[n, 200]`` float32 (see ``models/archs/musicnn_head.py``).
The key is the file's content, so a renamed or moved file is still a hit and
an edited one is a miss (its old entry is simply never read again); the
directory name pins the body weights and the window, so another body never
reads these. ``ROOT`` is ``--cache-dir``, else ``$GENREDREAM_CACHE``, else
``~/.genredream/cache``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_root", "file_sha256", "EmbeddingCache", "VIEWS", "view_audio", "view_starts", "song_embeddings"]

KEYS = ("pooled", "penultimate")

#: Views of a song a head can be trained on: ``(semitones, gain, hop as a fraction of the window)``. ``""`` is the
#: consecutive 5 s windows ``genredream evaluate`` scores (validation and test always
#: use it); the others are training-time augmentations (docs/heads.md measures them):
#: ``half``/``quarter``: a window every half/quarter window (musicnn's own practice is
#: 50 % overlap), so a 10 s song gives 3/5 windows instead of 2; ``up1``/``down1``: the song resampled one
#: semitone up/down (pitch and tempo move together, as a turntable's speed does);
#: ``quiet``: 6 dB lower, which musicnn's log-compressed mel does not cancel.
#: The view is part of the cache key, so each view is embedded once per file.
VIEWS = {"": (0.0, 1.0, 1.0), "half": (0.0, 1.0, 0.5), "quarter": (0.0, 1.0, 0.25), "up1": (1.0, 1.0, 1.0),
         "down1": (-1.0, 1.0, 1.0), "quiet": (0.0, 0.5, 1.0)}

_BATCH_WINDOWS = 4  # musicnn windows per forward while embedding (memory stays ~100 MB)


def cache_root(override=None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("GENREDREAM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".genredream" / "cache"


def file_sha256(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class EmbeddingCache:
    """Per-file embeddings of one body at one window length.

    Attributes
    ----------
    dir : Path
    hits, misses : int
        Lookups answered from disk, and not.
    """

    def __init__(self, root, body_name: str, body_file, window_frames: int):
        self.dir = Path(root) / "embeddings" / f"{body_name}-{file_sha256(body_file)[:12]}-w{int(window_frames)}"
        self.hits = 0
        self.misses = 0

    def _path(self, key: str, view: str = "") -> Path:
        return self.dir / (f"{key}.{view}.npz" if view else f"{key}.npz")

    def get(self, key: str, view: str = ""):
        """The arrays stored under ``key`` (a file's sha256) and ``view`` (:data:`VIEWS`), or None."""
        p = self._path(key, view)
        try:
            with np.load(p) as z:
                out = {k: z[k] for k in KEYS}
        except (OSError, KeyError, ValueError):  # absent, or a truncated write from a killed run
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, key: str, arrays: dict, view: str = "") -> None:
        """Store atomically (a temporary file renamed into place), so a killed run leaves no half entry."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{k: np.asarray(arrays[k], dtype=np.float32) for k in KEYS})
            os.replace(tmp, self._path(key, view))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def view_audio(y, sr: int, view: str):
    """The song as ``view`` hears it (:data:`VIEWS`): resampled by the view's semitones, scaled by its gain."""
    semitones, gain, _ = VIEWS[view]
    if semitones:
        import soxr

        # Read as if recorded at sr * r and played back at sr: r times faster and higher.
        y = soxr.resample(y, sr * 2.0 ** (semitones / 12.0), sr).astype(np.float32)
    return y * np.float32(gain) if gain != 1.0 else y


def view_starts(n_units: int, length: int, view: str):
    """Window starts of ``view``: consecutive, or every half/quarter window (the last aligned to the end)."""
    from genredream.models.data import consecutive_starts

    return consecutive_starts(n_units, length, max(1, int(length * VIEWS[view][2])))


def song_embeddings(songs, net, spec, cache, view: str = "", progress=None):
    """Embeddings of each song's windows in ``view``: ``([(song, {"pooled", "penultimate"})], skipped)``.

    ``net``: an eager :class:`~genredream.models.archs.musicnn_head.MusicnnHead` (its body
    computes the embeddings). Cached by the file's content and the view;
    undecodable files are skipped and listed.
    """
    import torch

    from genredream.models.data import AudioFileError, fit_length, load_audio

    out, skipped = [], []
    net.eval()
    for s in songs:
        key = file_sha256(s.path)
        emb = cache.get(key, view)
        if emb is None:
            try:
                y = load_audio(s.path, spec.sample_rate)
            except AudioFileError as e:
                skipped.append((str(s.path), str(e)))
                if progress:
                    progress(1)
                continue
            y, _ = fit_length(view_audio(y, spec.sample_rate, view), spec.window_samples)
            f = spec.song_features(y)
            starts = view_starts(spec.units(f), spec.length, view)
            pooled, pen = [], []
            with torch.no_grad():
                for i in range(0, len(starts), _BATCH_WINDOWS):
                    x = torch.from_numpy(spec.batch([f] * len(starts[i : i + _BATCH_WINDOWS]), starts[i : i + _BATCH_WINDOWS]))
                    feats = net._all(x)  # timbral, temporal, cnn1-3, mean_pool, max_pool, penultimate, logits
                    pooled.append(net.pool_bn(torch.cat([feats[6], feats[5]], dim=1)).numpy())
                    pen.append(feats[7].numpy())
            emb = {"pooled": np.concatenate(pooled), "penultimate": np.concatenate(pen)}
            cache.put(key, emb, view)
        out.append((s, emb))
        if progress:
            progress(1)
    return out, skipped
