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
import re
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
    "check_path",
    "check_length",
    "file_damage",
    "header_damage",
    "MIN_SECONDS",
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


#: The shortest audio file genredream analyses, dreams or continues. A shorter file says nothing
#: about genre: looped to a model's window it would be scored as confidently as a song.
MIN_SECONDS = 1.0
#: Windows quieter than this RMS level (dBFS) are flagged low-energy, by `run` (the engine),
#: `classify` and `tag` alike: still scored (a performer may be playing softly), but marked so
#: that scores of near-silence can be told apart.
LOW_ENERGY_DB = -60.0


def check_path(path):
    """Raise AudioFileError when ``path`` does not exist or is a folder (before any decoder's message)."""
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")


def check_length(n_samples, sr, path, minimum=MIN_SECONDS):
    """Refuse audio shorter than ``minimum`` seconds (the same rule in run, classify, dream and generate)."""
    if n_samples < minimum * sr:
        raise AudioFileError(
            f"{path}: {n_samples / sr:.3g} s of audio ({n_samples} samples); genredream needs at least {minimum:g} s"
        )


def header_damage(sf_file):
    """What libsndfile's log says is wrong with an open ``soundfile.SoundFile``, or None.

    Returns ``{"reason", "declared_frames"}`` (declared_frames None when the
    file does not say): a WAV/AIFF whose data chunk is shorter than its header
    says (cut off), an Ogg whose last page lacks its end-of-stream bit (cut off).
    """
    log = getattr(sf_file, "extra_info", "") or ""
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", log, re.M)
    if m and int(m.group(1)) > int(m.group(2)):
        said, has = int(m.group(1)), int(m.group(2))
        return {"reason": f"the header says {said} bytes of audio, the file holds {has} (cut off)",
                "declared_frames": int(round(sf_file.frames * said / max(has, 1)))}
    if "lacks an end-of-stream bit" in log:
        return {"reason": "the Ogg stream has no end-of-stream mark (cut off)", "declared_frames": None}
    return None


def file_damage(path, decoded_seconds):
    """``{"reason", "decoded_s", "declared_s"}`` when ``path`` is damaged (cut off), else None.

    ``decoded_seconds`` is what the decoder returned; a file is damaged when
    libsndfile's log says so (:func:`header_damage`) or when it declares more
    audio than was decoded.
    """
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            hd, frames, sr = header_damage(f), f.frames, f.samplerate
    except Exception:
        return None  # not libsndfile's: nothing to compare with
    if hd is None and frames / sr <= decoded_seconds + 1e-3:
        return None
    declared = hd["declared_frames"] if hd is not None else frames
    reason = hd["reason"] if hd is not None else f"it declares {frames / sr:.1f} s, {decoded_seconds:.1f} s could be decoded"
    return {"reason": reason, "decoded_s": round(decoded_seconds, 3), "declared_s": None if declared is None else round(declared / sr, 3)}


def _reason(e):
    """A decoder's exception as text that is never empty (audioread's NoBackendError has no message)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


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
    check_path(path)
    try:
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
    except Exception as first:
        salvaged = _read_until_damage(path)  # a file cut off part way: what decodes before the damage
        if salvaged is not None:
            y, file_sr = salvaged
            return _finish(path, y, file_sr, sr)
        try:
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, file_sr = librosa.load(str(path), sr=None, mono=True)
        except Exception as second:
            raise AudioFileError(f"{path}: cannot decode ({_reason(first)}; fallback decoder: {_reason(second)})") from second
    return _finish(path, y, file_sr, sr)


def _finish(path, y, file_sr, sr):
    if y.size == 0:
        raise AudioFileError(f"{path}: decodes to no samples")
    if not np.all(np.isfinite(y)):
        raise AudioFileError(f"{path}: contains NaN or Inf samples")
    if int(file_sr) != int(sr):
        import soxr

        y = soxr.resample(y, file_sr, sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def _read_until_damage(path, block=65536):
    """(mono float32, rate) of what libsndfile decodes before an error, or None (nothing decoded).

    :func:`file_damage` then reports the file as damaged (it declares more than this).
    """
    import soundfile as sf

    parts = []
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            try:
                for b in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                    parts.append(b.mean(axis=1))
            except Exception:
                pass
    except Exception:
        return None
    if not parts:
        return None
    return np.concatenate(parts), rate


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
