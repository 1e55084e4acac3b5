"""File player: any file the models' loader reads, as a stream of blocks.

The file plays at its own sample rate (the engine resamples per model), as
fast as possible by default (analysis) or at real-time pace (``--realtime``,
to rehearse what a live input would do), once or looped.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["FileSource"]


class FileSource:
    """Blocks of a decoded audio file.

    Parameters
    ----------
    path : path
        wav, flac, ogg, mp3 or au (anything :func:`models.data.load_audio` reads).
    block : int
        Frames per block (like an audio callback's block size).
    loop : bool
        Start again at the end, forever (stop it with a duration).

    Raises
    ------
    models.data.AudioFileError
        With the path and the decoder's reason.
    """

    def __init__(self, path, block=1024, loop=False):
        import soundfile as sf

        from models.data import AudioFileError, load_audio

        if int(block) != block or block < 1:
            raise ValueError(f"block must be a positive number of frames, got {block!r}")
        try:
            sr = sf.info(str(path)).samplerate
        except Exception:
            sr = None  # not for libsndfile: let the loader's fallback decide, at 44.1 kHz
        self.path = str(path)
        self.sample_rate = int(sr or 44100)
        self.audio = load_audio(path, self.sample_rate)
        if self.audio.size == 0:
            raise AudioFileError(f"{path}: no samples")
        self.block = int(block)
        self.loop = bool(loop)

    @property
    def seconds(self):
        return self.audio.size / self.sample_rate

    def blocks(self):
        """Yield float32 mono blocks (the last one may be shorter)."""
        passes = itertools.count() if self.loop else range(1)
        for _ in passes:
            for i in range(0, self.audio.size, self.block):
                yield self.audio[i : i + self.block]


def silence_blocks(sample_rate, seconds, block=1024):
    """Blocks of digital silence (for tests and the low-energy path)."""
    n = int(round(seconds * sample_rate))
    z = np.zeros(block, np.float32)
    for i in range(0, n, block):
        yield z[: min(block, n - i)]
