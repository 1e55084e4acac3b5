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

__all__ = ["cache_root", "file_sha256", "EmbeddingCache"]

KEYS = ("pooled", "penultimate")


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

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.npz"

    def get(self, key: str):
        """The arrays stored under ``key`` (a file's sha256), or None."""
        p = self._path(key)
        try:
            with np.load(p) as z:
                out = {k: z[k] for k in KEYS}
        except (OSError, KeyError, ValueError):  # absent, or a truncated write from a killed run
            self.misses += 1
            return None
        self.hits += 1
        return out

    def put(self, key: str, arrays: dict) -> None:
        """Store atomically (a temporary file renamed into place), so a killed run leaves no half entry."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **{k: np.asarray(arrays[k], dtype=np.float32) for k in KEYS})
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
