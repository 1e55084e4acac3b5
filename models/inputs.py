"""From audio to what a model file's ``forward`` takes, the same way everywhere.

Training, ``genredream classify`` and the engine must feed a model identical
inputs, or accuracy measured offline says nothing about the stage. The engine
computes one mel stream per configuration and hands a model the newest
``n_frames`` frames; so here a song's *unscaled* mel is computed once over the
whole song and a window is a slice of its frames, scaled afterwards (the dB
scaling's ``top_db`` floor is relative to the window's own peak, as it is at
run time). Waveform models take a slice of samples.
"""

from __future__ import annotations

import numpy as np

from genredream.engine.mel import MelConfig, apply_scaling

__all__ = ["InputSpec"]


class InputSpec:
    """How one model file wants its input, read from its metadata.

    Attributes
    ----------
    kind : {"waveform", "mel"}
    sample_rate : int
    window_samples : int
        Samples in one window (``round(sample_rate * window_seconds)``).
    length : int
        The window in the unit of :meth:`song_features`' last axis: samples
        for waveform models, frames for mel models.
    unit_samples : int
        Samples per unit (1, or the mel hop), to turn positions into seconds.
    """

    def __init__(self, meta):
        self.kind = meta["input"]
        self.sample_rate = int(meta["sample_rate"])
        self.window_samples = int(round(self.sample_rate * float(meta["window_seconds"])))
        if self.kind == "mel":
            self.mel = MelConfig.from_dict(meta["mel"])
            self.length = self.mel.frames_for(self.window_samples)
            self.unit_samples = self.mel.hop_length
        elif self.kind == "waveform":
            self.mel = None
            self.length = self.window_samples
            self.unit_samples = 1
        else:
            raise ValueError(f"input must be 'waveform' or 'mel', got {self.kind!r}")

    def song_features(self, audio):
        """Whole-song features: the samples, or the unscaled mel float32 [n_mels, frames]."""
        audio = np.asarray(audio, dtype=np.float32)
        if self.kind == "waveform":
            return audio
        return self.mel.melspectrogram(audio)

    def window(self, feats, start):
        """The model input for the window starting at ``start`` (in units), float32."""
        if self.kind == "waveform":
            return feats[start : start + self.length]
        return apply_scaling(feats[:, start : start + self.length], self.mel.scaling)

    def batch(self, feats_list, starts):
        """Stack windows ``[(feats, start), ...]`` into one float32 array for ``forward``."""
        return np.stack([self.window(f, s) for f, s in zip(feats_list, starts)]).astype(np.float32, copy=False)

    def units(self, feats):
        return feats.shape[-1]

    def seconds(self, start):
        """Stream time in seconds of a position given in units."""
        return start * self.unit_samples / self.sample_rate
