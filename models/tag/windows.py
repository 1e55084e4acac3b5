"""One file, streamed: decode in blocks, resample, mel, and cut the model windows.

The windows and their inputs are ``genredream classify``'s
(:func:`genredream.models.classify.classify_file`): the same starts
(:func:`genredream.models.data.consecutive_starts`, the last window aligned to the
file's end), the same features (:class:`genredream.models.inputs.InputSpec`, a window
is a slice of the song's unscaled mel, scaled afterwards) and the same
repeat-padding of files shorter than a window. Only the memory differs:
classify decodes the whole file and computes its whole mel; here
``soundfile`` reads blocks, :class:`genredream.engine.resample.StreamingResampler`
and :class:`genredream.engine.mel.StreamingMel` (whose concatenated output equals the
one-shot functions) turn them into frames, and only the frames a window
still needs are kept, so memory does not grow with the file's length.

Models that share a sample rate share its resampler, and models that share
a mel configuration share its mel, as in the engine's front ends.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings

import numpy as np

from genredream.engine.mel import StreamingMel
from genredream.engine.resample import StreamingResampler
from genredream.models.data import AudioFileError, consecutive_starts, fit_length
from genredream.models.inputs import InputSpec

__all__ = ["hop_units", "FileWindows", "BLOCK_FRAMES", "LEVEL_BIN_S"]

#: Frames read per block: 64 k frames is 1.5 s at 44.1 kHz, a few hundred kB.
BLOCK_FRAMES = 1 << 16
#: The level is kept as the energy of every LEVEL_BIN_S of the decoded audio
#: (36 000 numbers an hour), so any window's level is known without its samples.
LEVEL_BIN_S = 0.1


def hop_units(spec: InputSpec, overlap: float) -> int:
    """The hop between window starts, in the spec's units, for an overlap fraction.

    ``overlap=0`` is ``classify``'s hop (one window length); 0.5 is half a
    window, rounded down (313 mel frames -> 156).
    """
    return max(1, int(spec.length * (1.0 - overlap)))


def _spooled(data, path):
    """Bytes as a temporary file named like ``path`` (ffmpeg needs a file and likes the extension)."""
    fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(path)[1])
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return tmp


def _downmix(y):
    """``y.mean(axis=1)`` of a ``[frames, channels]`` float32 block, bit for bit, stereo 20 times faster.

    numpy's mean along the short last axis of a stereo block costs 1.4 ms
    per 64 k frames (a few per cent of a tagging worker's time); for two
    channels it is the float32 sum of the pair halved, which two vector
    operations compute exactly so (halving is exact, as is the division
    numpy does). Other channel counts keep numpy's mean: its summation
    order for many channels is its own.
    """
    if y.shape[1] == 2:
        m = y[:, 0] + y[:, 1]
        m /= 2
        return m
    return y.mean(axis=1)


class _Feature:
    """One shared stream of features (samples at a rate, or unscaled mel frames) with the tail still needed."""

    def __init__(self, spec: InputSpec):
        self.mel = StreamingMel.from_config(spec.mel, keep_frames=1) if spec.kind == "mel" else None
        self.buf = np.zeros((spec.mel.n_mels, 0) if self.mel else 0, dtype=np.float32)
        self.base = 0  # absolute unit index of buf[..., 0]
        self.total = 0  # units so far

    def push(self, y):
        new = self.mel.push(y) if self.mel else y
        self._append(new)

    def flush(self):
        if self.mel:
            self._append(self.mel.flush())

    def _append(self, new):
        if new.shape[-1]:
            self.buf = np.concatenate([self.buf, new], axis=-1)
            self.total += new.shape[-1]

    def trim(self, keep_from):
        keep_from = min(max(keep_from, self.base), self.total)
        if keep_from > self.base:
            self.buf = self.buf[..., keep_from - self.base :].copy()
            self.base = keep_from


class _Rate:
    """One model sample rate: its resampler and the start of the stream (for files shorter than a window)."""

    def __init__(self, in_rate, sr, keep):
        self.sr = sr
        self.resampler = StreamingResampler(in_rate, sr)
        self.keep = keep  # samples kept from the start: the longest window at this rate
        self.head = []
        self.head_n = 0
        self.total = 0

    def push(self, block):
        y = self.resampler.process(block)
        self._note(y)
        return y

    def flush(self):
        y = self.resampler.flush()
        self._note(y)
        return y

    def _note(self, y):
        if self.head_n < self.keep and y.size:
            self.head.append(y[: self.keep - self.head_n])
            self.head_n += self.head[-1].size
        self.total += y.size


class FileWindows:
    """Iterate ``(model_index, window_index, start, x)`` over one file's windows, streaming.

    ``x`` is the model input of one window (float32, ``InputSpec.window``).
    After the iteration: :attr:`duration_s`, :attr:`sample_rate`,
    :attr:`channels`, :attr:`starts` (per model, in units) and
    :attr:`model_seconds` (the file's length at each model's rate, for
    the windows' end times as classify reports them).

    Raises :class:`genredream.models.data.AudioFileError` for a file that cannot be
    decoded, is empty or holds NaN/Inf samples.
    """

    def __init__(self, path, specs, overlap=0.0, block_frames=BLOCK_FRAMES, data=None):
        self.path = str(path)
        self.data = data  # the file's bytes when they came through Ray's object store, else None
        self.specs = list(specs)
        self.hops = [hop_units(s, overlap) for s in self.specs]
        self.block_frames = int(block_frames)
        self.duration_s = self.sample_rate = self.channels = None
        self.starts = [[] for _ in self.specs]
        self.model_seconds = [0.0 for _ in self.specs]
        self._energy = []  # sum of squares of each LEVEL_BIN_S of the decoded (mono) audio
        self._bin = None  # frames per bin, once the rate is known

    def _measure(self, block):
        """Add a decoded block's energy to the level bins."""
        if self._bin is None:
            self._bin = max(1, int(round(self.sample_rate * LEVEL_BIN_S)))
            self._fill = 0  # frames in the last bin
        sq = np.square(block, dtype=np.float64)
        i = 0
        while i < sq.size:
            if self._fill == 0:
                self._energy.append(0.0)
            take = min(self._bin - self._fill, sq.size - i)
            self._energy[-1] += float(sq[i : i + take].sum())
            self._fill = (self._fill + take) % self._bin
            i += take

    def level_db(self, start_s=0.0, end_s=None):
        """RMS level (dBFS, -200 for digital silence) of the decoded audio from ``start_s`` to ``end_s``
        (to the nearest LEVEL_BIN_S; the whole file by default), as the engine's windows report it."""
        if not self._energy:
            return -200.0
        a = int(round(start_s / LEVEL_BIN_S))
        b = len(self._energy) if end_s is None else max(a + 1, int(round(end_s / LEVEL_BIN_S)))
        e = self._energy[a:b] or self._energy[-1:]
        frames = max(1, min(len(self._energy), b) - a) * self._bin
        rms = (sum(e) / frames) ** 0.5
        return float(20 * np.log10(max(rms, 1e-10)))

    def _blocks(self):
        """Mono float32 blocks at the file's rate; sets sample_rate and channels first."""
        import soundfile as sf

        try:
            f = sf.SoundFile(self.path if self.data is None else io.BytesIO(self.data))
        except Exception as first:
            # Formats libsndfile does not read (m4a, wma, old mp3) go through
            # librosa's ffmpeg path, as load_audio does: whole, not streamed.
            tmp = None if self.data is None else _spooled(self.data, self.path)
            try:
                import librosa

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    y, sr = librosa.load(tmp or self.path, sr=None, mono=True)
            except Exception as second:
                # The decoders' own words, without the name of what they opened
                # (a path, a buffer or a temporary file): the same file gets the
                # same error row however it reached the worker.
                why = getattr(first, "error_string", None) or str(first)
                again = str(second).replace(tmp, self.path) if tmp else str(second)
                raise AudioFileError(f"{self.path}: cannot decode ({type(first).__name__}: {why}; fallback: {again})") from None
            finally:
                if tmp:
                    os.unlink(tmp)
            self.sample_rate, self.channels = int(sr), 1
            yield np.ascontiguousarray(y, dtype=np.float32)
            return
        with f:
            self.sample_rate, self.channels = int(f.samplerate), int(f.channels)
            while True:
                try:
                    y = f.read(self.block_frames, dtype="float32", always_2d=True)
                except Exception as e:
                    raise AudioFileError(f"{self.path}: damaged after {f.tell()} frames ({type(e).__name__}: {e})") from None
                if not len(y):
                    return
                yield _downmix(y)

    def __iter__(self):
        rates, feats = {}, {}
        for s in self.specs:
            feats.setdefault((s.sample_rate, s.mel), None)
        next_start = [0 for _ in self.specs]
        frames = 0
        for block in self._blocks():
            if not np.all(np.isfinite(block)):
                raise AudioFileError(f"{self.path}: contains NaN or Inf samples")
            self._measure(block)
            if not rates:
                for s in self.specs:
                    r = rates.get(s.sample_rate)
                    if r is None:
                        r = rates[s.sample_rate] = _Rate(self.sample_rate, s.sample_rate, 0)
                    r.keep = max(r.keep, s.window_samples)
                    if feats[(s.sample_rate, s.mel)] is None:
                        feats[(s.sample_rate, s.mel)] = _Feature(s)
            frames += block.size
            for sr, r in rates.items():
                y = r.push(block)
                for (fsr, _), ft in feats.items():
                    if fsr == sr:
                        ft.push(y)
            yield from self._ready(rates, feats, next_start, final=False)
        if frames == 0:
            raise AudioFileError(f"{self.path}: decodes to no samples")
        self.duration_s = frames / self.sample_rate
        for sr, r in rates.items():
            y = r.flush()
            for (fsr, _), ft in feats.items():
                if fsr == sr:
                    ft.push(y)
                    ft.flush()
        yield from self._ready(rates, feats, next_start, final=True)

    def _ready(self, rates, feats, next_start, final):
        for i, s in enumerate(self.specs):
            r, ft = rates[s.sample_rate], feats[(s.sample_rate, s.mel)]
            # A file shorter than the window is repeat-padded as classify does;
            # whether it is can only be told from its samples at the model rate.
            if r.total < s.window_samples:
                if final:
                    yield from self._short(i, s, r)
                continue
            L, hop = s.length, self.hops[i]
            while next_start[i] + L <= ft.total:
                yield self._window(i, s, ft, next_start[i])
                next_start[i] += hop
            if final:
                self.model_seconds[i] = r.total / s.sample_rate
                if self.starts[i][-1] != ft.total - L:
                    yield self._window(i, s, ft, ft.total - L)
        if not final:
            # Keep what the next windows (and a final end-aligned one) need.
            for key, ft in feats.items():
                users = [j for j, s in enumerate(self.specs) if (s.sample_rate, s.mel) == key]
                keep = min(min(next_start[j], ft.total - self.specs[j].length) for j in users)
                ft.trim(keep)

    def _window(self, i, s, ft, start):
        self.starts[i].append(start)
        return i, len(self.starts[i]) - 1, start, s.window(ft.buf, start - ft.base)

    def _short(self, i, s, r):
        audio = np.concatenate(r.head) if r.head else np.zeros(0, np.float32)
        self.model_seconds[i] = audio.size / s.sample_rate
        audio, _ = fit_length(audio, s.window_samples)
        f = s.song_features(audio)
        for start in consecutive_starts(s.units(f), s.length, self.hops[i]):
            self.starts[i].append(int(start))
            yield i, len(self.starts[i]) - 1, int(start), s.window(f, int(start))
