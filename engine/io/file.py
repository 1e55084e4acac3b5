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
        from engine.channels import read_channels

        if int(block) != block or block < 1:
            raise ValueError(f"block must be a positive number of frames, got {block!r}")
        self.path = str(path)
        # The file's channels are kept (engine/channels.py): the engine scores
        # their mean and a dreamer gives every channel back.
        frames, self.sample_rate = read_channels(path)
        self.channels = frames.shape[1]
        self.frames = frames if self.channels > 1 else None
        self.audio = frames[:, 0].copy() if self.channels == 1 else frames.mean(axis=1, dtype=np.float32)
        self.block = int(block)
        self.loop = bool(loop)

    @property
    def seconds(self):
        return self.audio.size / self.sample_rate

    def blocks(self):
        """Yield float32 blocks, mono ``[n]`` or ``[n, channels]`` frames (the last one may be shorter)."""
        x = self.audio if self.frames is None else self.frames
        passes = itertools.count() if self.loop else range(1)
        for _ in passes:
            for i in range(0, x.shape[0], self.block):
                yield x[i : i + self.block]


def silence_blocks(sample_rate, seconds, block=1024):
    """Blocks of digital silence (for tests and the low-energy path)."""
    n = int(round(seconds * sample_rate))
    z = np.zeros(block, np.float32)
    for i in range(0, n, block):
        yield z[: min(block, n - i)]
