"""Folder-per-genre collections: scanning, decoding, song-level splits, windows.

A collection is a folder with one sub-folder per genre, the GTZAN layout
``genres/<genre>/<file>`` or anyone's own library sorted the same way (as in
Smith's paper, where a user trains on their own collection and adds genres
later: adding a genre is adding a folder). Files may be wav, flac, ogg, mp3 or
au at any sample rate and channel count; they are decoded, downmixed to mono
and resampled to the model's rate.

Splits are by song, never by window, so no part of a song is both learned and
tested. Training windows start at random positions (Lidy & Schindler 2016's
random-segment sampling, 30 segments per file and epoch); evaluation windows
are consecutive.

Nothing here aborts a long run over one bad file: an unreadable file is
skipped with a warning and counted; a file shorter than the window is
repeat-padded and flagged. An empty genre folder, or a collection with fewer
than two genres, is a clear error at the start.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioFileError",
    "CollectionError",
    "Collection",
    "Song",
    "load_audio",
    "scan",
    "split_songs",
    "read_split_files",
    "DecodedSong",
    "decode_songs",
    "random_starts",
    "consecutive_starts",
    "fit_length",
]

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".au")


class AudioFileError(Exception):
    """A file that cannot be decoded; the message names the path and the decoder's reason."""


class CollectionError(ValueError):
    """A collection folder that cannot be used as it is (the message says how to fix it)."""


@dataclass(frozen=True)
class Song:
    path: Path
    genre: str

    @property
    def song_id(self):
        """Split key: a song is the file (GTZAN's ``blues.00012.wav``)."""
        return f"{self.genre}/{self.path.name}"


@dataclass
class Collection:
    """What :func:`scan` found. ``genres`` is sorted, so label indices are stable."""

    root: Path
    genres: list
    songs: list
    ignored: list = field(default_factory=list)  # non-audio files, with the reason

    def by_genre(self):
        out = {g: [] for g in self.genres}
        for s in self.songs:
            out[s.genre].append(s)
        return out


def scan(root, genres=None):
    """List a folder-per-genre collection.

    Parameters
    ----------
    root : path
        The collection folder (``root/<genre>/<files>``). A ``genres/`` folder
        inside it (the GTZAN archive's layout) is used when ``root`` itself
        holds only that.
    genres : list of str, optional
        Restrict to these genres (e.g. Geng et al.'s five); each must exist.

    Returns
    -------
    Collection

    Raises
    ------
    CollectionError
        Missing folder, no genre sub-folders, an empty genre folder, fewer
        than two genres, or an asked-for genre that is not there.
    """
    root = Path(root)
    if not root.is_dir():
        raise CollectionError(f"{root}: not a folder. A collection is a folder with one sub-folder per genre.")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if [p.name for p in subdirs] == ["genres"]:
        root, subdirs = subdirs[0], sorted(p for p in subdirs[0].iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise CollectionError(f"{root}: no genre sub-folders. Expected {root}/<genre>/<audio files>, e.g. {root}/jazz/song1.wav")
    if genres is not None:
        names = {p.name for p in subdirs}
        unknown = [g for g in genres if g not in names]
        if unknown:
            raise CollectionError(f"{root}: no folder for genre(s) {unknown}; found {sorted(names)}")
        subdirs = [p for p in subdirs if p.name in set(genres)]
    songs, ignored, empty = [], [], []
    for d in subdirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and not p.name.startswith("."))
        audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
        ignored += [(p, "not an audio file extension") for p in files if p.suffix.lower() not in AUDIO_EXTENSIONS]
        if not audio:
            empty.append(d.name)
        songs += [Song(p, d.name) for p in audio]
    if empty:
        raise CollectionError(
            f"{root}: genre folder(s) {empty} contain no audio files ({', '.join(AUDIO_EXTENSIONS)}). "
            "Add files or remove the folder."
        )
    found = [d.name for d in subdirs]
    if len(found) < 2:
        raise CollectionError(f"{root}: found only genre {found}; a classifier needs at least two genre folders")
    return Collection(root=root, genres=found, songs=songs, ignored=ignored)


def load_audio(path, sr):
    """Decode a file to float32 mono at ``sr`` Hz.

    libsndfile (soundfile) reads wav, flac, ogg, au and, from 1.1 on, mp3;
    anything it refuses goes to librosa's audioread/ffmpeg path.

    Returns
    -------
    np.ndarray, float32, shape [samples]

    Raises
    ------
    AudioFileError
        With the path and the decoder's reason (also for empty or non-finite audio).
    """
    import soundfile as sf

    path = Path(path)
    try:
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except Exception as first:
        try:
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, file_sr = librosa.load(str(path), sr=None, mono=True)
        except Exception as second:
            raise AudioFileError(f"{path}: cannot decode ({type(first).__name__}: {first}; fallback: {second})") from second
    if y.size == 0:
        raise AudioFileError(f"{path}: decodes to no samples")
    if not np.all(np.isfinite(y)):
        raise AudioFileError(f"{path}: contains NaN or Inf samples")
    if int(file_sr) != int(sr):
        import soxr

        y = soxr.resample(y, file_sr, sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def split_songs(songs, valid=0.1, test=0.2, seed=0):
    """Stratified song-level split.

    Each genre's songs are shuffled with ``seed`` and cut into test, valid and
    train parts (test first, so changing ``valid`` never moves a test song).
    Every split gets at least one song per genre when the genre has three or
    more songs. Zheng's GTZAN setup uses a 20 % test split.

    Returns
    -------
    dict with keys "train", "valid", "test" -> list of Song
    """
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise ValueError(f"valid ({valid}) and test ({test}) must be fractions in [0, 1) with valid + test < 1")
    rng = np.random.default_rng(seed)
    by = {}
    for s in songs:
        by.setdefault(s.genre, []).append(s)
    out = {"train": [], "valid": [], "test": []}
    for genre in sorted(by):
        group = sorted(by[genre], key=lambda s: s.song_id)
        order = rng.permutation(len(group))
        group = [group[i] for i in order]
        n = len(group)
        n_test = int(round(test * n))
        n_valid = int(round(valid * n))
        if n >= 3:
            n_test = max(n_test, 1) if test > 0 else 0
            n_valid = max(n_valid, 1) if valid > 0 else 0
        out["test"] += group[:n_test]
        out["valid"] += group[n_test : n_test + n_valid]
        out["train"] += group[n_test + n_valid :]
    return out


def read_split_files(collection, train, valid=None, test=None):
    """Explicit splits from list files (e.g. GTZAN's fault-filtered split).

    Each list file has one entry per line: a path relative to the collection
    root (``blues/blues.00012.wav``), or a bare file name when names are
    unique; ``#`` starts a comment. Songs in no list are left out.

    Raises
    ------
    CollectionError
        An entry that matches no song, or a song listed in two splits.
    """
    by_rel = {str(s.path.relative_to(collection.root)): s for s in collection.songs}
    by_name = {}
    for s in collection.songs:
        by_name.setdefault(s.path.name, []).append(s)
    out, seen = {}, {}
    for split, f in (("train", train), ("valid", valid), ("test", test)):
        out[split] = []
        if f is None:
            continue
        for lineno, line in enumerate(Path(f).read_text().splitlines(), 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            song = by_rel.get(entry)
            if song is None:
                named = by_name.get(Path(entry).name, [])
                song = named[0] if len(named) == 1 else None
            if song is None:
                raise CollectionError(f"{f}:{lineno}: {entry!r} matches no song in {collection.root}")
            if song.song_id in seen and seen[song.song_id] != split:
                raise CollectionError(f"{f}:{lineno}: {entry!r} is already in the {seen[song.song_id]} split")
            seen[song.song_id] = split
            out[split].append(song)
    return out


@dataclass
class DecodedSong:
    song: Song
    label: int
    audio: np.ndarray  # float32 [samples] at the model rate, at least one window long
    padded: bool  # shorter than a window and repeat-padded


@dataclass
class DecodeReport:
    decoded: list
    skipped: list  # (path, reason)
    padded: list  # paths


def fit_length(y, n):
    """Repeat ``y`` until it is at least ``n`` samples (a short song loops, as a DJ would)."""
    if y.size >= n:
        return y, False
    reps = -(-n // y.size)
    return np.tile(y, reps)[: max(n, y.size)], True


def decode_songs(songs, genres, sr, window_samples, progress=None):
    """Decode songs at ``sr``; skip (and report) what cannot be read.

    Parameters
    ----------
    songs : list of Song
    genres : list of str
        Label order; ``label = genres.index(song.genre)``.
    sr : int
        Target sample rate in Hz.
    window_samples : int
        Songs shorter than this are repeat-padded to it and flagged.
    progress : callable(int), optional
        Called with 1 after each file (for a progress bar).
    """
    decoded, skipped, padded = [], [], []
    for s in songs:
        try:
            y = load_audio(s.path, sr)
        except AudioFileError as e:
            warnings.warn(f"skipping {e}", stacklevel=2)
            skipped.append((str(s.path), str(e)))
        else:
            y, was_short = fit_length(y, window_samples)
            if was_short:
                padded.append(str(s.path))
            decoded.append(DecodedSong(s, genres.index(s.genre), y, was_short))
        if progress:
            progress(1)
    return DecodeReport(decoded, skipped, padded)


def random_starts(length, window, count, rng):
    """``count`` random window starts in a signal of ``length`` (samples or frames)."""
    if length < window:
        raise ValueError(f"length ({length}) is shorter than the window ({window})")
    return rng.integers(0, length - window + 1, size=count)


def consecutive_starts(length, window, hop=None):
    """Starts of consecutive windows (hop defaults to the window: no overlap).

    The last window is aligned to the end when the length is not a multiple
    of the hop, so every sample is covered.
    """
    hop = window if hop is None else hop
    if length < window:
        raise ValueError(f"length ({length}) is shorter than the window ({window})")
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] != length - window:
        starts.append(length - window)
    return np.asarray(starts, dtype=np.int64)
