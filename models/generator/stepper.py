"""Generating: the autoregressive step (:class:`Stepper`) and :func:`generate`.

Each step feeds the newest 0.9 s to the network and appends the 0.1 s it
predicts, as in the paper; the level of each chunk is matched to the seed's
(the fix for the paper's too-quiet output) and its start is joined to the
previous chunk's slope (no click at the junctions). The engine's continuation
(:mod:`genredream.engine.continuation`) steps with the same :class:`Stepper`.
"""

from __future__ import annotations

import math

import numpy as np

from genredream.models.generator.file import GeneratorFile

__all__ = ["Stepper", "generate", "rms_db", "MAX_LEVEL_GAIN", "DECLICK_SAMPLES", "PROGRESS_EVERY"]

#: Largest gain level matching applies to one chunk (+40 dB): a network that
#: predicts digital silence stays (nearly) silent instead of amplifying rounding.
MAX_LEVEL_GAIN = 100.0
#: Samples over which the junction correction fades out (5 ms at 10 kHz).
DECLICK_SAMPLES = 50


def rms_db(x) -> float:
    """RMS level of ``x`` in dBFS (-200 for silence)."""
    x = np.asarray(x, dtype=np.float64)
    r = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return 20 * math.log10(max(r, 1e-10))


def _declick(chunk, prev2, n=DECLICK_SAMPLES):
    """Shift the chunk's start so it continues the previous two samples' line, fading the shift out over ``n`` samples."""
    expected = 2 * prev2[-1] - prev2[-2]
    d = expected - chunk[0]
    n = min(n, chunk.size)
    chunk[:n] += d * (0.5 + 0.5 * np.cos(np.pi * np.arange(n) / n)).astype(np.float32)
    return chunk


class Stepper:
    """Autoregressive state: a context buffer, the level target, the noise generator.

    :func:`generate` and the engine's continuation (:mod:`genredream.engine.continuation`)
    both step with it; the module may change between steps (the engine
    switches genre mid-continuation), as long as the rates agree.

    Parameters
    ----------
    seed_audio : float32 [>= context] at the generator's rate; its last ``context`` samples start it.
    context, predict : int
        Samples in and out per step (9000 and 1000).
    noise, seed, level, declick
        As in :func:`generate`.
    """

    def __init__(self, seed_audio, context, predict, noise=0.0, seed=0, level="match", declick=True):
        if level not in ("match", "raw"):
            raise ValueError(f"level must be 'match' or 'raw', got {level!r}")
        if not (noise >= 0 and math.isfinite(noise)):
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        seed_audio = np.asarray(seed_audio, dtype=np.float32).ravel()
        if seed_audio.size < context:
            raise ValueError(f"seed audio has {seed_audio.size} samples; the generator needs {context}")
        self.C, self.P = int(context), int(predict)
        self.ctx = seed_audio[-self.C :].copy()
        self.target = float(np.sqrt(np.mean(self.ctx.astype(np.float64) ** 2)))
        self.noise, self.level, self.declick = float(noise), level, bool(declick)
        self.rng = np.random.default_rng(seed)
        self.raw_db, self.gains = [], []

    def step(self, module):
        """One chunk of ``predict`` samples (float32), appended to the context."""
        import torch

        with torch.no_grad():
            y = module(torch.from_numpy(self.ctx)[None])[0].numpy().astype(np.float32, copy=True)
        if not np.all(np.isfinite(y)):
            y = np.zeros_like(y)
        self.raw_db.append(rms_db(y))
        g = 1.0
        if self.level == "match":
            r = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
            g = min(MAX_LEVEL_GAIN, self.target / r) if r > 0 else 1.0
            y *= np.float32(g)
        self.gains.append(g)
        if self.noise > 0:
            y += np.float32(self.noise * self.target) * self.rng.standard_normal(self.P).astype(np.float32)
        if self.declick:
            y = _declick(y, self.ctx[-2:])
        np.clip(y, -1.0, 1.0, out=y)
        self.ctx = np.concatenate([self.ctx[self.P :], y])
        return y


#: Seconds between `generate` progress lines on stderr.
PROGRESS_EVERY = 5.0


def generate(gen, seed_audio, seconds=5.0, noise=0.0, seed=0, level="match", declick=True, return_info=False,
             progress=None, chunks=None):
    """Continue ``seed_audio`` for ``seconds``, 0.1 s at a time (autoregressive).

    Parameters
    ----------
    gen : GeneratorFile or torch module with ``forward([1, context]) -> [1, predict]`` and ``describe()``
    seed_audio : float32 [>= context] at the generator's rate (10 kHz)
        Its last ``context`` samples (0.9 s) are the first input.
    seconds : float
        Length of the continuation (the seed is not included).
    noise : float
        Gaussian noise added to each predicted chunk before it is fed back,
        relative to the seed's RMS (0 = deterministic, the paper's scheme).
        Seeded by ``seed``: same seed, same output.
    level : {"match", "raw"}
        ``"match"`` (default) scales each chunk to the seed's RMS (gain at
        most :data:`MAX_LEVEL_GAIN`): the fix for the paper's too-quiet
        output. ``"raw"``: the network's output as it is.
    declick : bool
        Make each chunk start where the previous one's slope points
        (a 5 ms correction), against clicks at the 0.1 s junctions.
    progress : callable(done_samples, total_samples), optional
        Called after every chunk (cheap: the caller decides when to print).
    chunks : list, optional
        Each 0.1 s chunk is appended here as it is made, so a caller that is
        interrupted can still write what was generated.

    Returns
    -------
    float32 [round(seconds * sr)] (and, with ``return_info``, a dict of
    per-chunk raw RMS (dBFS) and applied gains, and the seed's RMS).
    """
    module = gen.module if isinstance(gen, GeneratorFile) else gen
    if isinstance(gen, GeneratorFile):
        C, P, sr = gen.context, gen.predict, gen.sample_rate
    else:
        sr, C, P = (int(v) for v in module.describe())
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    st = Stepper(seed_audio, C, P, noise=noise, seed=seed, level=level, declick=declick)
    n = int(round(seconds * sr))
    chunks = [] if chunks is None else chunks
    done = 0
    for _ in range(-(-n // P)):
        chunks.append(st.step(module))
        done += P
        if progress is not None:
            progress(min(done, n), n)
    out = np.concatenate(chunks)[:n]
    if return_info:
        return out, {"chunk_raw_rms_db": st.raw_db, "chunk_gain": st.gains, "seed_rms_db": 20 * math.log10(max(st.target, 1e-10))}
    return out
