"""File player: any file the models' loader reads, as a stream of blocks.

The file plays at its own sample rate (the engine resamples per model), as
fast as possible by default (analysis) or at real-time pace (``--realtime``,
to rehearse what a live input would do), once or looped.

Files libsndfile reads (wav, flac, ogg, au, and mp3 from libsndfile 1.1) are
decoded block by block while they play, so memory does not grow with the
file's length (an hour-long file costs what a minute does). Anything else
goes through the models' loader (:func:`genredream.models.data.load_audio`), whole.

A damaged file (cut off, or unreadable part way) plays up to the damage;
:attr:`FileSource.damage` then says what is wrong and how much was decoded.

:class:`FileSource` is a :class:`genredream.engine.io.source.Source`: a
:class:`genredream.engine.session.Session` runs it like any other input.
"""

from __future__ import annotations

import itertools

import numpy as np

from genredream.engine.io.source import END, Source

__all__ = ["FileSource"]


class FileSource(Source):
    """Blocks of a decoded audio file.

    Parameters
    ----------
    path : path
        wav, flac, ogg, mp3 or au (anything :func:`genredream.models.data.load_audio` reads).
    block : int
        Frames per block (like an audio callback's block size).
    loop : bool
        Start again at the end, forever (stop it with a duration).
    realtime : bool
        Play at real-time pace with the engine's workers running (to
        rehearse a live input); else as fast as possible, inline.
    progress : float
        As a session source, a progress line every ``progress`` seconds of
        wall-clock time (0: none; the live view shows progress itself).

    Raises
    ------
    models.data.AudioFileError
        With the path and the decoder's reason; also for a missing file and a
        file shorter than :data:`genredream.models.data.MIN_SECONDS`.
    """

    def __init__(self, path, block=1024, loop=False, realtime=False, progress=0.0):
        import soundfile as sf

        from genredream.models.data import AudioFileError, check_length, check_path, header_damage, load_audio

        if int(block) != block or block < 1:
            raise ValueError(f"block must be a positive number of frames, got {block!r}")
        check_path(path)
        self.path = str(path)
        self.block = int(block)
        self.loop = bool(loop)
        self.realtime = bool(realtime)
        self.progress = float(progress or 0.0)
        self.audio = None  # whole-file decode, only for files libsndfile cannot stream
        # The file's channels are kept (engine/channels.py): the engine scores
        # their mean and a dreamer gives every channel back.
        self.channels = 1
        self.damage = None
        self.decoded_frames = 0
        try:
            with sf.SoundFile(self.path) as f:
                self.sample_rate = int(f.samplerate)
                self.frames = int(f.frames)
                self.channels = int(f.channels)
                hd = header_damage(f)
        except Exception:
            # not for libsndfile: the loader's fallback decodes it whole, at 44.1 kHz
            self.sample_rate = 44100
            self.audio = load_audio(path, self.sample_rate)
            self.frames = int(self.audio.size)
            hd = None
        if self.frames == 0:
            raise AudioFileError(f"{path}: no samples")
        check_length(self.frames, self.sample_rate, path)
        if hd is not None:
            self._set_damage(hd["reason"], hd["declared_frames"])

    @property
    def seconds(self):
        return self.frames / self.sample_rate

    def _set_damage(self, reason, declared_frames):
        self.damage = {
            "reason": reason,
            "decoded_s": round(self.decoded_frames / self.sample_rate, 3),
            "declared_s": None if declared_frames is None else round(declared_frames / self.sample_rate, 3),
        }

    def damage_text(self):
        """One line for a warning, or None."""
        d = self.damage
        if d is None:
            return None
        whole = f" of {d['declared_s']:.1f} s" if d["declared_s"] else ""
        return f"{self.path} is damaged: {d['reason']}; {self.decoded_frames / self.sample_rate:.1f} s{whole} decoded"

    def _decode(self):
        """One pass over the file, block by block: float32 mono ``[n]``, or ``[n, channels]`` frames."""
        import soundfile as sf

        if self.audio is not None:
            self.decoded_frames = self.audio.size
            for i in range(0, self.audio.size, self.block):
                yield self.audio[i : i + self.block]
            return
        n = 0
        with sf.SoundFile(self.path) as f:
            it = f.blocks(blocksize=self.block, dtype="float32", always_2d=True)
            while True:
                try:
                    b = next(it)
                except StopIteration:
                    break
                except Exception as e:  # unreadable part way: play what was decoded, say so
                    self.decoded_frames = max(self.decoded_frames, n)
                    self._set_damage(f"unreadable after {n / self.sample_rate:.1f} s ({type(e).__name__}: {e})", self.frames)
                    return
                y = b if b.shape[1] > 1 else b[:, 0]
                n += y.shape[0]
                self.decoded_frames = max(self.decoded_frames, n)
                yield np.ascontiguousarray(y, dtype=np.float32)
        if n < self.frames and self.damage is None:
            self._set_damage(f"decoded {n} of the {self.frames} frames its header declares", self.frames)
        elif self.damage is not None:
            self.damage["decoded_s"] = round(n / self.sample_rate, 3)

    def blocks(self):
        """Yield float32 blocks, mono ``[n]`` or ``[n, channels]`` frames (the last one may be shorter)."""
        passes = itertools.count() if self.loop else range(1)
        for _ in passes:
            yield from self._decode()


    # -- as a session's source (engine/io/source.py) ------------------------------------

    def start(self, session):
        if self.damage is not None:  # known from the header: say so before the results come
            session.notify(f"{self.damage_text()}; analysing what can be decoded", "warning")

    def run(self, session):
        """Play the file into the engine (inline, or paced with the workers running); the file's end is the stream's."""
        engine = session.engine
        blocks = self.blocks()
        if self.progress > 0 and not session.view:
            from genredream.engine.io.progress import file_progress

            blocks = file_progress(blocks, engine, self, self.progress, session.duration, session.notify)
        engine.run_blocks(blocks, realtime=self.realtime, duration=session.duration)
        if self.damage is not None:
            session.notify(self.damage_text(), "warning")
        return END

    def describe(self):
        return {"type": "input", "path": self.path, "sample_rate": self.sample_rate,
                "decoded_s": round(self.decoded_frames / self.sample_rate, 3), "damaged": self.damage}


def silence_blocks(sample_rate, seconds, block=1024):
    """Blocks of digital silence (for tests and the low-energy path)."""
    n = int(round(seconds * sample_rate))
    z = np.zeros(block, np.float32)
    for i in range(0, n, block):
        yield z[: min(block, n - i)]
