"""The random draws of one song: its generator and the choice helpers.

Every random choice of a song comes from the generator :func:`song_rng`
returns (see :mod:`.compose`), drawn through these helpers in a fixed order.
"""

from __future__ import annotations

import zlib

import numpy as np


def song_rng(seed: int, genre: str, index: int) -> np.random.Generator:
    """The generator all of one song's choices come from.

    Parameters
    ----------
    seed : int
        Corpus seed (>= 0).
    genre : str
        Genre name.
    index : int
        Song index within the genre (>= 0).
    """
    return np.random.default_rng([int(seed), zlib.crc32(genre.encode("utf-8")), int(index)])



def _weighted_choice(rng: np.random.Generator, items, weights):
    w = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]
