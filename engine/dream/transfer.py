"""The dream that transfers: a perceptual parametrisation, an ensemble, and robustness to transformations.

Geng et al.'s dream (:mod:`genredream.engine.dream.wave`) changes the samples
themselves; ascending one network that way finds an adversarial change: the
dreaming model's score rises ten times more than another network's
(measured on real recordings: docs/dream.md, "The dream that transfers"). Three ideas from the feature-visualisation and adversarial literature
make a change that other networks (and listeners) hear too:

* **Parametrise the change in a perceptual space** (Olah et al., "Feature
  Visualization", Distill 2017): a **time-varying EQ** of the signal's STFT
  plus a texture layer, inverted with the original phase
  (:mod:`genredream.engine.dream.eq`): the change is a filter, not a hiss.
* **An ensemble** of networks (the shipped musicnn-msd and musicnn-mtt by
  default): the sum of their target logits. A direction several networks
  agree on is less specific to any one of them.
* **Expectation over transformation** (Athalye et al. 2018): every step
  scores random crops of the dreamed signal (random time shift), at a
  random gain, with a little noise added and a small random speed change
  (pitch and time together, by resampling), so the optimum is a change that
  survives them: the ones a different network's front end, a loudspeaker
  or a listener apply anyway.

The objective is the target's logit (log-odds: a sigmoid model's raw logit,
a softmax model's ``log p - log(1 - p)``): unlike ``log p`` it does not
saturate once a model is sure, so the ensemble keeps pushing the members
that are not. Adam (Kingma & Ba 2015) on the EQ parameters: the step in dB
does not depend on the gradient's scale.

The strength of the dream is ``max_db`` (how far the EQ may go) with
``steps`` and ``lr`` (how far it goes). Deterministic for a seed (CPU, the
same torch threads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genredream.engine.dream.defaults import takes_any_length
from genredream.engine.dream.eq import DEFAULT_BANDS, DEFAULT_GRID_S, DEFAULT_MAX_DB, DEFAULT_TEXTURE_DB, EqParam
from genredream.engine.dream.objective import DreamError, judge_score, label_index, load_dream_model, target_logits

__all__ = ["Ensemble", "TransferResult", "dream_transfer", "DEFAULT_ENSEMBLE", "DEFAULT_STEPS", "DEFAULT_LR", "DEFAULT_CROPS"]

#: The dreaming models when none are named (both musicnn taggers ship with the repository).
DEFAULT_ENSEMBLE = ("musicnn-msd", "musicnn-mtt")
#: Adam steps of the offline dream.
DEFAULT_STEPS = 6
#: Adam's learning rate on the EQ's tanh parameters (0.4: about 4.5 dB a step at first at 12 dB):
#: few strong steps, so that the offline dream runs faster than real time.
DEFAULT_LR = 0.4
#: Random crops scored per step and model.
DEFAULT_CROPS = 3
#: Crop of a model that takes any input length (musicnn): its own 3 s patches.
ANY_LENGTH_CROP_S = 3.0


# ---------------------------------------------------------------------------
# the dreaming models


class Ensemble:
    """The dreaming models that have the target label, and its index in each.

    All members must share one sample rate (the dream runs at it).
    """

    def __init__(self, models, target):
        if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
            models = [models]
        self.models = [load_dream_model(m) for m in models]
        if not self.models:
            raise DreamError("no dreaming model")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise DreamError(f"a model is named twice in the ensemble: {', '.join(names)}")
        rates = {m.sample_rate for m in self.models}
        if len(rates) != 1:
            raise DreamError(f"the dreaming models must share a sample rate; got {', '.join(f'{m.name} {m.sample_rate} Hz' for m in self.models)}")
        self.sample_rate = rates.pop()
        self.target = target
        # Members without the label sit this dream out (musicnn-mtt has no jazz); none with it is an error.
        have = [(m, label_index(m, target)) for m in self.models]
        if all(i is None for _, i in have):
            labels = sorted({lab for m in self.models for lab in m.meta["labels"]})
            raise DreamError(f"unknown target label {target!r} for {', '.join(names)}; their labels: {', '.join(labels)}")
        self.models = [m for m, i in have if i is not None]
        self.indices = [i for _, i in have if i is not None]
        # Crop length: musicnn (any length) sees its own 3 s patches; fixed-window models their window.
        self.crop = max(self._crop_of(m) for m in self.models)

    @staticmethod
    def _crop_of(lm):
        return int(round(ANY_LENGTH_CROP_S * lm.sample_rate)) if takes_any_length(lm) else lm.n_samples

    @property
    def names(self):
        return [m.name for m in self.models]

    def objective(self, xb):
        """Sum over models of the target's mean logit over the batch ``[B, samples]``."""
        total = 0.0
        for m, i in zip(self.models, self.indices):
            any_length = takes_any_length(m)
            x = xb if xb.shape[1] <= m.n_samples or any_length else xb[:, : m.n_samples]
            if x.shape[1] < m.n_samples and not any_length:
                x = torch.nn.functional.pad(x, (0, m.n_samples - x.shape[1]))
            total = total + target_logits(m, x, i).mean()
        return total

    def score(self, wave):
        """Each member's :func:`judge_score` of the target (dict name -> logit)."""
        return {m.name: judge_score(m, wave, self.target) for m in self.models}


# ---------------------------------------------------------------------------
# expectation over transformation


def _transform(y, crop, n_crops, rng, gain_db=6.0, noise_db=-40.0, speed=0.03):
    """``n_crops`` random crops of ``y`` (``[n]``) at a random gain, speed and noise: ``[n_crops, crop]``."""
    n = y.numel()
    out = []
    for _ in range(n_crops):
        s = float(rng.uniform(1 - speed, 1 + speed)) if speed > 0 else 1.0
        span = min(n, int(math.ceil(crop * s)) + 2)
        a = int(rng.integers(0, max(1, n - span + 1)))
        seg = y[a : a + span]
        if s != 1.0:  # resampling by linear interpolation: pitch and tempo move together
            m = int(min(crop, math.floor((seg.numel() - 1) / s)))
            pos = torch.arange(m, dtype=torch.float32) * s
            i0 = pos.floor().long().clamp(max=seg.numel() - 2)
            frac = pos - i0
            seg = seg[i0] * (1 - frac) + seg[i0 + 1] * frac
        seg = seg[:crop]
        if seg.numel() < crop:
            seg = torch.nn.functional.pad(seg, (0, crop - seg.numel()))
        g = 10 ** (float(rng.uniform(-gain_db, gain_db)) / 20)
        rms = float(torch.sqrt(torch.mean(seg.detach() ** 2)) + 1e-6)
        noise = torch.from_numpy(rng.standard_normal(crop).astype(np.float32)) * (rms * 10 ** (noise_db / 20))
        out.append(g * seg + noise)
    return torch.stack(out)


# ---------------------------------------------------------------------------
# offline


@dataclass
class TransferResult:
    """What :func:`dream_transfer` returns.

    Attributes
    ----------
    dreamed : np.ndarray, float32, shape [n]
        The dreamed signal at the ensemble's rate (not normalised; may exceed [-1, 1] before the caller's normalisation).
    objective_per_step : list of float
        The ensemble's objective (sum of target logits, transformed crops) at each step.
    before, after : dict
        Each dreaming model's :func:`judge_score` of the target, original and dreamed.
    """

    dreamed: np.ndarray
    objective_per_step: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)


def dream_transfer(
    ensemble,
    wave,
    steps=DEFAULT_STEPS,
    max_db=DEFAULT_MAX_DB,
    lr=DEFAULT_LR,
    bands=DEFAULT_BANDS,
    grid_s=DEFAULT_GRID_S,
    texture_db=DEFAULT_TEXTURE_DB,
    crops=DEFAULT_CROPS,
    eot=True,
    seed=0,
    progress=None,
):
    """Dream a whole signal toward the ensemble's target with the EQ parametrisation and EoT.

    Parameters
    ----------
    ensemble : Ensemble
    wave : array, float, shape [n]
        Mono samples at ``ensemble.sample_rate``.
    steps : int
        Adam steps.
    max_db : float
        Strength: the EQ's bound in dB (0: no change).
    lr : float
        Adam's learning rate on the tanh parameters.
    bands, grid_s : int, float
        The EQ's resolution.
    texture_db : float, optional
        Add the texture layer (see :class:`EqParam`).
    crops : int
        Random crops scored per step and model (3 s for musicnn, the window for others).
    eot : bool
        Random gain, speed and noise on every crop (False: crops only).
    seed : int

    Returns
    -------
    TransferResult
    """
    if int(steps) != steps or steps < 0:
        raise DreamError(f"steps must be a non-negative integer, got {steps!r}")
    if not (math.isfinite(max_db) and 0 <= max_db <= 40):
        raise DreamError(f"the EQ bound must be from 0 to 40 dB, got {max_db!r}")
    wave = np.nan_to_num(np.asarray(wave, dtype=np.float32)).clip(-1, 1)
    n = wave.size
    res = TransferResult(dreamed=wave.copy())
    res.before = ensemble.score(wave) if n else {}
    if n == 0 or steps == 0 or max_db == 0:
        res.after = dict(res.before)
        return res
    sr = ensemble.sample_rate
    crop = ensemble.crop
    dry = torch.from_numpy(wave)
    pad = max(0, crop - n)
    if pad:
        dry = torch.nn.functional.pad(dry, (0, pad))
    param = EqParam(dry, sr, bands=bands, grid_s=grid_s, max_db=max_db, texture_db=texture_db)
    opt = torch.optim.Adam(param.params, lr=lr)
    rng = np.random.default_rng(seed)
    k = max(1, int(crops))
    for step in range(int(steps)):
        opt.zero_grad()
        y = param.render()
        if eot:
            xb = _transform(y, crop, k, rng)
        else:
            starts = rng.integers(0, max(1, y.numel() - crop + 1), size=k)
            xb = torch.stack([y[int(s) : int(s) + crop] for s in starts])
        obj = ensemble.objective(xb)
        (-obj).backward()
        opt.step()
        res.objective_per_step.append(float(obj.detach()))
        if progress is not None:
            progress(step, res.objective_per_step[-1])
    with torch.no_grad():
        res.dreamed = param.render()[:n].numpy().astype(np.float32)
    res.after = ensemble.score(res.dreamed)
    return res
