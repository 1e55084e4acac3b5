"""Render composed songs to WAV with the FluidSynth command-line synthesiser.

Rendering is deterministic: FluidSynth's reverb and chorus are fixed DSP
without random state, so they stay on (the styles set per-channel sends); the
only random element of its file output, the dither applied when it converts
to 16 bit, is avoided by asking for raw 32-bit float and converting here.
Each clip is peak-normalised to -1 dBFS, trimmed or zero-padded to exactly the
requested length, and written as 16-bit PCM with the standard-library
:mod:`wave` writer, whose header has no timestamps, so two renders of the same
song are byte-identical.

Songs are composed and rendered in worker processes (one FluidSynth process
at a time per worker), so a pool of two keeps two cores busy.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .compose import compose_song

__all__ = [
    "SAMPLE_RATE",
    "PEAK_DBFS",
    "SOUNDFONT_CANDIDATES",
    "RenderError",
    "FluidsynthNotFoundError",
    "SoundfontNotFoundError",
    "find_fluidsynth",
    "fluidsynth_version",
    "find_soundfont",
    "render_midi",
    "write_wav",
    "RenderJob",
    "render_song",
    "render_songs",
]

SAMPLE_RATE = 22050
#: Peak level every clip is normalised to.
PEAK_DBFS = -1.0
#: Where a General MIDI soundfont is looked for, in order, when neither a path
#: nor the ``GENREDREAM_SOUNDFONT`` environment variable names one.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
FLUIDSYNTH_INSTALL = (
    "install FluidSynth: `sudo apt-get install fluidsynth fluid-soundfont-gm` (Debian/Ubuntu), "
    "`brew install fluid-synth` (macOS), or set GENREDREAM_FLUIDSYNTH to the executable")
SOUNDFONT_INSTALL = (
    "install a General MIDI soundfont: `sudo apt-get install fluid-soundfont-gm` "
    "(Debian/Ubuntu), or pass --soundfont PATH / set GENREDREAM_SOUNDFONT")


class RenderError(RuntimeError):
    """FluidSynth failed or produced unusable audio."""


class FluidsynthNotFoundError(RenderError):
    """The ``fluidsynth`` executable is not installed."""


class SoundfontNotFoundError(RenderError, FileNotFoundError):
    """No soundfont at the given path or any default location."""


def find_fluidsynth() -> str:
    """Path of the ``fluidsynth`` executable.

    ``GENREDREAM_FLUIDSYNTH`` overrides the ``PATH`` search.

    Raises
    ------
    FluidsynthNotFoundError
        With installation instructions.
    """
    override = os.environ.get("GENREDREAM_FLUIDSYNTH")
    if override:
        if os.access(override, os.X_OK):
            return override
        raise FluidsynthNotFoundError(
            f"GENREDREAM_FLUIDSYNTH={override!r} is not an executable; {FLUIDSYNTH_INSTALL}")
    found = shutil.which("fluidsynth")
    if not found:
        raise FluidsynthNotFoundError(f"fluidsynth was not found on PATH; {FLUIDSYNTH_INSTALL}")
    return found


def fluidsynth_version(executable: str | None = None) -> str:
    """FluidSynth's version string, e.g. ``"2.3.1"`` (``"unknown"`` if unparsable)."""
    exe = executable or find_fluidsynth()
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("FluidSynth runtime version"):
            return line.rsplit(" ", 1)[-1].strip()
    return "unknown"


def find_soundfont(path: str | os.PathLike[str] | None = None) -> Path:
    """Locate a General MIDI soundfont (.sf2).

    Parameters
    ----------
    path : path-like, optional
        If given, only this path is tried; otherwise only
        ``$GENREDREAM_SOUNDFONT`` if set, else :data:`SOUNDFONT_CANDIDATES`.

    Returns
    -------
    pathlib.Path
        An existing file, made absolute (it goes into corpus.json).

    Raises
    ------
    SoundfontNotFoundError
        Listing every path tried and how to install one.
    """
    env = os.environ.get("GENREDREAM_SOUNDFONT")
    # An explicit choice (argument or environment) is never silently replaced
    # by a default: a corpus rendered with another soundfont sounds different.
    if path is not None:
        tried = [Path(path)]
    elif env:
        tried = [Path(env)]
    else:
        tried = [Path(p) for p in SOUNDFONT_CANDIDATES]
    for p in tried:
        if p.is_file():
            return p.resolve()
    raise SoundfontNotFoundError(
        "no soundfont found; tried: " + ", ".join(str(p) for p in tried) + f"; {SOUNDFONT_INSTALL}")


def _to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")


def write_wav(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> None:
    """Write float audio in [-1, 1] as 16-bit PCM WAV.

    Parameters
    ----------
    path : path-like
    audio : np.ndarray, shape (samples,) or (samples, channels), float
    sample_rate : int
        In Hz.
    """
    audio = np.asarray(audio)
    frames = audio if audio.ndim == 2 else audio[:, None]
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(_to_int16(frames).tobytes())


def render_midi(
    midi_path: str | os.PathLike[str],
    seconds: float,
    soundfont: str | os.PathLike[str],
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
    gain: float = 0.5,
    executable: str | None = None,
) -> np.ndarray:
    """Render a MIDI file to float audio of exactly ``seconds``.

    Runs ``fluidsynth -ni -q -F OUT -T raw -O float -r RATE -g GAIN SF2 MIDI``
    with reverb and chorus on, dynamic sample loading and 64 voices.

    Parameters
    ----------
    midi_path : path-like
        Standard MIDI file.
    seconds : float
        Output length; longer renders are cut, shorter ones zero-padded.
    soundfont : path-like
        A .sf2 file.
    sample_rate : int
        In Hz (FluidSynth synthesises at this rate directly).
    channels : {1, 2}
        1 averages FluidSynth's stereo output.
    gain : float
        FluidSynth master gain; the float output does not clip, so this only
        matters for its internal headroom.
    executable : str, optional
        fluidsynth to run; found on PATH by default.

    Returns
    -------
    np.ndarray, float32, shape (round(seconds * sample_rate),) for mono or
    (samples, 2) for stereo, peak-normalised to :data:`PEAK_DBFS`.

    Raises
    ------
    RenderError
        If FluidSynth fails or the result is silent.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    exe = executable or find_fluidsynth()
    n = int(round(seconds * sample_rate))
    with tempfile.TemporaryDirectory(prefix="genredream-render-") as tmp:
        raw = Path(tmp) / "out.raw"
        cmd = [exe, "-n", "-i", "-q", "-F", str(raw), "-T", "raw", "-O", "float", "-E", "little",
               "-r", str(int(sample_rate)), "-g", f"{gain:g}", "-R", "1", "-C", "1",
               # Loading only the samples a song uses saves most of the start-up
               # time with a 148 MB soundfont; 64 voices cap the cost of long pad
               # releases (quiet released voices are stolen first, inaudibly).
               "-o", "synth.dynamic-sample-loading=1", "-o", "synth.polyphony=64",
               os.fspath(soundfont), os.fspath(midi_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not raw.exists():
            raise RenderError(f"fluidsynth failed (exit {proc.returncode}) on {midi_path}: "
                              f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        data = np.fromfile(raw, dtype="<f4")
    stereo = data[: data.size // 2 * 2].reshape(-1, 2).astype(np.float64)
    audio = stereo.mean(axis=1) if channels == 1 else stereo
    if audio.shape[0] >= n:
        audio = audio[:n]
    else:
        pad = [(0, n - audio.shape[0])] + [(0, 0)] * (audio.ndim - 1)
        audio = np.pad(audio, pad)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not peak > 1e-6:
        raise RenderError(f"fluidsynth rendered silence for {midi_path}")
    audio *= 10.0 ** (PEAK_DBFS / 20.0) / peak
    return audio.astype(np.float32)


@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs to compose and render one song.

    Attributes
    ----------
    genre : str
    index : int
        Song number within the genre.
    seed : int
    seconds : float
    wav_path : str
        Where to write the clip.
    soundfont : str
    sample_rate : int
    channels : int
    midi_path : str, optional
        If set, the MIDI file is kept there.
    """

    genre: str
    index: int
    seed: int
    seconds: float
    wav_path: str
    soundfont: str
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    midi_path: str | None = None


def render_song(job: RenderJob) -> dict:
    """Compose, render and write one song; return its corpus.json entry.

    The entry holds every parameter the composer drew plus the clip's RMS
    level before normalisation was applied, in dBFS of the normalised clip.
    """
    song = compose_song(job.genre, job.seed, job.index, job.seconds)
    with tempfile.TemporaryDirectory(prefix="genredream-midi-") as tmp:
        midi_path = job.midi_path or str(Path(tmp) / "song.mid")
        song.midi.save(midi_path)
        audio = render_midi(midi_path, job.seconds, job.soundfont, job.sample_rate, job.channels)
    write_wav(job.wav_path, audio, job.sample_rate)
    rms = float(np.sqrt(np.mean(np.square(audio.astype(np.float64)))))
    return {**song.params, "rms_dbfs": round(20 * np.log10(max(rms, 1e-12)), 2)}


def render_songs(
    jobs: Sequence[RenderJob],
    workers: int = 2,
    on_done: Callable[[RenderJob, dict], None] | None = None,
) -> list[dict]:
    """Render many songs with a process pool.

    Parameters
    ----------
    jobs : sequence of RenderJob
    workers : int
        Worker processes; 1 renders in this process (easier to debug).
    on_done : callable, optional
        Called in this process as ``on_done(job, entry)`` when a song is
        finished (in completion order), e.g. to advance a progress bar.

    Returns
    -------
    list of dict
        The entries, in the order of ``jobs``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results: list[dict | None] = [None] * len(jobs)
    if workers == 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            results[i] = render_song(job)
            if on_done:
                on_done(job, results[i])
        return results  # type: ignore[return-value]
    # spawn, not fork: the caller may be a threaded engine process, and a
    # forked child of a threaded parent can deadlock on a lock held at fork.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = {pool.submit(render_song, job): i for i, job in enumerate(jobs)}
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if on_done:
                    on_done(jobs[i], results[i])
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results  # type: ignore[return-value]

