"""Build a synthetic genre corpus on disk in the GTZAN layout.

::

    OUT/
      corpus.json                 genres, seed, seconds, soundfont, per-song parameters
      blues/blues.00000.wav       16-bit PCM, 22050 Hz, exactly `seconds` long
      blues/blues.00001.wav
      ...

The same arguments always produce byte-identical files (see
:mod:`genredream.models.corpus.render`), so a corpus can be rebuilt instead of shipped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .genres import GENRES, get_genre
from .render import (
    SAMPLE_RATE,
    RenderJob,
    find_fluidsynth,
    find_soundfont,
    fluidsynth_version,
    render_songs,
)

__all__ = ["CorpusReport", "build_corpus", "song_filename", "MANIFEST"]

MANIFEST = "corpus.json"
#: Written into corpus.json so readers can tell the layout version.
FORMAT_VERSION = 1


def song_filename(genre: str, index: int, ext: str = "wav") -> str:
    """GTZAN-style file name, e.g. ``blues.00007.wav``."""
    return f"{genre}.{index:05d}.{ext}"


@dataclass
class CorpusReport:
    """What :func:`build_corpus` wrote and how fast.

    Attributes
    ----------
    out_dir : pathlib.Path
    manifest : pathlib.Path
        The corpus.json file.
    genres : list of str
    songs_per_genre : int
    seconds : float
        Length of every clip.
    sample_rate : int
    files : list of pathlib.Path
        Every wav written, genre by genre.
    wall_seconds : float
        Time the build took.
    """

    out_dir: Path
    manifest: Path
    genres: list[str]
    songs_per_genre: int
    seconds: float
    sample_rate: int
    files: list[Path] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def audio_seconds(self) -> float:
        """Total length of the audio written."""
        return len(self.files) * self.seconds

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio produced per second of wall-clock time."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


def _check_genres(genres: Sequence[str] | str | None) -> list[str]:
    if genres is None:
        return list(GENRES)
    if isinstance(genres, str):
        genres = genres.split(",")
    out: list[str] = []
    for g in genres:
        if not g.strip():
            continue
        name = get_genre(g).name  # raises UnknownGenreError listing the known ones
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("genres is empty; known genres: " + ", ".join(GENRES))
    return out


def build_corpus(
    out_dir: str | os.PathLike[str],
    genres: Sequence[str] | str | None = None,
    songs_per_genre: int = 100,
    seconds: float = 30.0,
    seed: int = 0,
    soundfont: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    jobs: int = 2,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
    keep_midi: bool = False,
) -> CorpusReport:
    """Compose and render a synthetic genre corpus.

    Parameters
    ----------
    out_dir : path-like
        Created if missing. Existing files of the same names are overwritten;
        other files are left alone.
    genres : sequence of str or comma-separated str, optional
        Genre names (see :func:`genredream.models.corpus.genres.genre_names`); all by
        default. Duplicates are dropped; order is kept.
    songs_per_genre : int
        >= 1 (GTZAN has 100).
    seconds : float
        Length of every clip, > 0 (GTZAN clips are 30 s).
    seed : int
        >= 0. Song ``i`` of genre ``g`` depends only on (seed, g, i, seconds).
    soundfont : path-like, optional
        A General MIDI .sf2; found in the usual places by default.
    progress : bool
        Show a rich progress bar on stderr.
    jobs : int
        Worker processes.
    sample_rate : int
        In Hz.
    channels : {1, 2}
        Mono (default, as GTZAN) or stereo.
    keep_midi : bool
        Also keep ``<genre>.<index>.mid`` next to each wav.

    Returns
    -------
    CorpusReport

    Raises
    ------
    models.corpus.genres.UnknownGenreError
        For an unknown genre (a ValueError).
    ValueError
        For a bad count, length, seed or channel count.
    models.corpus.render.FluidsynthNotFoundError, SoundfontNotFoundError
        When a component is missing, with installation instructions.
    """
    names = _check_genres(genres)
    if int(songs_per_genre) != songs_per_genre or songs_per_genre < 1:
        raise ValueError(f"songs_per_genre must be an integer >= 1, got {songs_per_genre!r}")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels!r}")
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    # Missing components fail before anything is written.
    exe = find_fluidsynth()
    sf2 = find_soundfont(soundfont)

    t0 = time.perf_counter()
    out = Path(out_dir)
    render_jobs = []
    for g in names:
        (out / g).mkdir(parents=True, exist_ok=True)
        for i in range(int(songs_per_genre)):
            render_jobs.append(RenderJob(
                genre=g, index=i, seed=int(seed), seconds=float(seconds),
                wav_path=str(out / g / song_filename(g, i)), soundfont=str(sf2),
                sample_rate=int(sample_rate), channels=int(channels),
                midi_path=str(out / g / song_filename(g, i, "mid")) if keep_midi else None))

    if progress:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        bar = Progress(TextColumn("[bold]corpus[/] {task.description}"), BarColumn(),
                       MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                       transient=False)
        with bar:
            task = bar.add_task("rendering", total=len(render_jobs))

            def advance(job: RenderJob, _entry: dict) -> None:
                bar.update(task, advance=1, description=song_filename(job.genre, job.index))

            entries = render_songs(render_jobs, workers=int(jobs), on_done=advance)
            bar.update(task, description="done")
    else:
        entries = render_songs(render_jobs, workers=int(jobs))

    songs = []
    for job, entry in zip(render_jobs, entries):
        rel = Path(job.wav_path).relative_to(out).as_posix()
        songs.append({"file": rel, **entry})
    manifest = {
        "format": "genredream-corpus",
        "version": FORMAT_VERSION,
        "genres": names,
        "songs_per_genre": int(songs_per_genre),
        "seed": int(seed),
        "seconds": float(seconds),
        "sample_rate": int(sample_rate),
        "channels": int(channels),
        "soundfont": {"path": str(sf2), "size": sf2.stat().st_size},
        "synth": {"name": "fluidsynth", "version": fluidsynth_version(exe)},
        "genre_descriptions": {g: GENRES[g].description for g in names},
        "songs": songs,
    }
    manifest_path = out / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    report = CorpusReport(out, manifest_path, names, int(songs_per_genre), float(seconds),
                          int(sample_rate), [Path(j.wav_path) for j in render_jobs])
    report.wall_seconds = time.perf_counter() - t0
    return report
