"""The offline dream of a file (``genredream dream IN OUT``, engine/cli/dream.py; Geng, Ren & Ogihara 2017).

The file is decoded (its channels kept; the mid, their mean, is what is
dreamed: engine/channels.py says why), resampled to the model's rate, and
dreamed there. Toward a label (``--target``) the default is the dream that
transfers (:func:`genredream.engine.dream.transfer.dream_transfer`: a time-varying EQ
ascended on an ensemble's target logits with random transformations each
step); ``--param wave``, and any ``--layer`` objective, use Geng's
waveform ascent (:func:`genredream.engine.dream.wave.dream_offline`: normalised steps,
[-1, 1], spectral mask). ``--judge MODEL`` scores the target with a model
that took no part in the dream, before and after. The change the dream made
is resampled back to the file's rate and added to every channel of the
original (``--mix`` of it: the file's content above the model's Nyquist is
kept). The result is peak-normalised to -1 dBFS, as the paper normalised
its clips, and written as 16-bit PCM WAV at the input's sample rate, as
long as the input, with its channels. ``--plot`` writes a PNG (:mod:`genredream.engine.dream.plot`): the mel
spectrogram before and after, their difference in dB, and the objective per
step. ``--depth`` is the live control's mapping (engine/dream/depth.py) made
offline: steps per sample and the share of the change heard.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from genredream.engine.dream.plot import plot_dream

__all__ = ["dream_file", "PEAK_DBFS"]

#: Peak level of the written file (the paper normalised each clip).
PEAK_DBFS = -1.0


def dream_file(
    input_path,
    output_path,
    model=None,
    layer=None,
    target=None,
    away=False,
    steps=None,
    step_size=None,
    mix=1.0,
    mask_range=None,
    jitter=False,
    seed=0,
    plot=None,
    progress=None,
    depth=None,
    param=None,
    judge=None,
    max_db=None,
):
    """Dream a file and write the result; returns a dict of what was done.

    Parameters are the command's options (``model`` a name, path,
    LoadedModel, or for the eq dream a list or comma-separated ensemble;
    default: :data:`genredream.engine.dream.transfer.DEFAULT_ENSEMBLE` for a target,
    :func:`genredream.models.classify.default_model` for a layer). ``plot``: None,
    True (OUT with ``.png``) or a path. ``param``: ``"eq"`` (default with a
    target, not away) or ``"wave"``. ``judge``: a model that takes no part
    in the dream, scoring the target before and after. ``depth`` (0..1,
    optional): :func:`genredream.engine.dream.depth.depth_settings` with ``steps`` as
    the budget; the streaming latency becomes steps (``steps x
    latency_hops``), the gain multiplies ``mix``.

    Returns
    -------
    dict
        ``model`` (names, comma-separated), ``objective`` (description),
        ``before``/``after`` (the objective of the original and the dreamed
        signal at the model rate; for eq the ensemble's mean target logit),
        ``rises`` (model name -> the target's logit rise, dreaming models
        and judge; empty for a layer), ``judge`` (its name or None),
        ``per_step``, ``sample_rate``, ``samples``, ``channels``, ``gain``
        (the normalisation gain applied), ``steps`` and ``mix`` (in effect),
        ``output``, ``plot`` (path or None), ``param``, ``seconds`` (the
        dream's CPU-bound wall time).

    Raises
    ------
    engine.dream.objective.DreamError
        Unknown layer/label, unusable model, a judge that dreams, bad numbers.
    models.data.AudioFileError
        Unreadable input.
    """
    import time

    import soundfile as sf
    import soxr

    from genredream.engine.channels import read_channels
    from genredream.engine.dream.objective import DreamError, judge_score, load_dream_model, make_objective
    from genredream.engine.dream.wave import DEFAULT_MASK_RANGE_DB, DEFAULT_STEP_SIZE, dream_offline
    from genredream.engine.dream.depth import depth_settings
    from genredream.engine.dream.eq import DEFAULT_MAX_DB
    from genredream.engine.dream.transfer import DEFAULT_ENSEMBLE, DEFAULT_STEPS, Ensemble, dream_transfer
    from genredream.models.data import AudioFileError, check_length

    if not (0.0 <= float(mix) <= 1.0):
        raise DreamError(f"--mix must be from 0 to 1, got {mix!r}")
    if param is None:
        param = "eq" if (target is not None and not away) else "wave"
    if param not in ("eq", "wave"):
        raise DreamError(f"--param must be eq or wave, got {param!r}")
    if param == "eq" and target is None:
        raise DreamError("--param eq needs a target label (--target LABEL); layers dream with --param wave")
    if param == "eq" and away:
        raise DreamError("--away dreams with --param wave")
    if judge is not None and target is None:
        raise DreamError("--judge needs a target label (--target LABEL): it scores the target")
    if steps is None:
        steps = DEFAULT_STEPS if param == "eq" else 20
    if int(steps) != steps or steps < 0:
        raise DreamError(f"--steps must be a non-negative integer, got {steps!r}")
    step_size = DEFAULT_STEP_SIZE if step_size is None else float(step_size)
    if not (math.isfinite(step_size) and 0 <= step_size <= 1):
        raise DreamError(f"--step-size must be from 0 to 1, got {step_size!r}")
    max_db = DEFAULT_MAX_DB if max_db is None else float(max_db)
    mask_range = DEFAULT_MASK_RANGE_DB if mask_range is None else float(mask_range)
    if depth is not None:
        try:
            d = depth_settings(depth, steps)
        except ValueError as e:
            raise DreamError(f"--{e}") from None
        steps, mix = int(round(d.steps * d.latency_hops)), float(mix) * d.gain
    # The input first: a missing or damaged file is said at once, before seconds of model loading.
    frames, sr_in = read_channels(input_path)  # [n, channels]
    if frames.size == 0:
        raise AudioFileError(f"{input_path}: no samples")
    audio = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]  # the mid, dreamed
    check_length(frames.shape[0], sr_in, input_path)  # the same minimum as run, classify and generate
    if isinstance(model, str) and "," in model:
        model = [m.strip() for m in model.split(",") if m.strip()]
    if model is None:
        if param == "eq":
            from genredream.models.contract import ModelFileError
            from genredream.models.registry import resolve_model

            model = []
            for name in DEFAULT_ENSEMBLE:
                try:
                    resolve_model(name)
                    model.append(name)
                except ModelFileError:  # no such model here (not installed): dream with the others
                    pass
        if not model:
            from genredream.models.classify import default_model

            model = default_model()
    if param == "eq":
        ens = Ensemble(model, target)
        dreamers = ens.models
    else:
        if isinstance(model, (list, tuple)):
            if len(model) != 1:
                raise DreamError("an ensemble of models dreams with --param eq and a --target only")
            model = model[0]
        lm = load_dream_model(model)
        objective = make_objective(lm, layer=layer, target=target, away=away)
        dreamers = [lm]
    jm = None
    if judge is not None:
        jm = load_dream_model(judge)
        clash = [m.name for m in dreamers if m.name == jm.name or str(m.path) == str(jm.path)]
        if clash:
            raise DreamError(
                f"the judge {jm.name} also dreams: a judge must take no part in the dream; "
                f"choose another judge or leave it out of --model ({', '.join(m.name for m in dreamers)})"
            )
        judge_score(jm, np.zeros(16, np.float32), target)  # refuses a judge without the label, before any work
    sr_m = dreamers[0].sample_rate
    dry_m = audio if sr_m == sr_in else soxr.resample(audio, sr_in, sr_m, quality="HQ").astype(np.float32)
    t0 = time.perf_counter()
    rises = {}
    if param == "eq":
        res = dream_transfer(ens, dry_m, steps=int(steps), max_db=max_db, seed=seed, progress=progress)
        rises = {k: res.after[k] - res.before[k] for k in res.after}
        before, after = float(np.mean(list(res.before.values()))), float(np.mean(list(res.after.values())))
        described = f"target {ens.target!r} (sum of the logits of {', '.join(ens.names)}), time-varying EQ +-{max_db:g} dB, {int(steps)} steps"
    else:
        res = dream_offline(lm, dry_m, objective, steps=int(steps), step_size=step_size, seed=seed, mask_range=mask_range, jitter=jitter, progress=progress)
        before, after = res.before, res.after
        described = objective.describe()
        if target is not None:
            rises[lm.name] = judge_score(lm, res.dreamed, target) - judge_score(lm, dry_m, target)
    seconds = time.perf_counter() - t0
    change = res.dreamed - dry_m
    if sr_m != sr_in:
        change = soxr.resample(change, sr_m, sr_in, quality="HQ").astype(np.float32)
    change = _fit(change, audio.size)
    out = frames + np.float32(mix) * change[:, None]  # the mid's change on every channel
    if jm is not None:
        # The judge hears the file as dreamed, before the normalisation (a gain), at its own rate.
        def at_judge(y):
            return y if jm.sample_rate == sr_in else soxr.resample(y, sr_in, jm.sample_rate, quality="HQ").astype(np.float32)

        rises[jm.name] = judge_score(jm, at_judge(np.clip(out, -1, 1).mean(axis=1, dtype=np.float32)), target) - judge_score(jm, at_judge(audio), target)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    gain = 10 ** (PEAK_DBFS / 20) / peak if peak > 1e-9 else 1.0
    out = np.clip(out * gain, -1.0, 1.0).astype(np.float32)
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(output_path), out if out.shape[1] > 1 else out[:, 0], sr_in, subtype="PCM_16", format="WAV")
    png = None
    if plot:
        png = Path(output_path).with_suffix(".png") if plot is True else Path(plot)
        res.before, res.after = before, after
        plot_dream(png, audio, out.mean(axis=1, dtype=np.float32), sr_in, res, _Described(described), ", ".join(m.name for m in dreamers), gain=gain)
    return {
        "model": ", ".join(m.name for m in dreamers),
        "objective": described,
        "before": before,
        "after": after,
        "rises": rises,
        "judge": None if jm is None else jm.name,
        "per_step": res.objective_per_step,
        "sample_rate": sr_in,
        "samples": int(out.shape[0]),
        "channels": int(out.shape[1]),
        "gain": gain,
        "steps": int(steps),
        "mix": float(mix),
        "output": str(output_path),
        "plot": None if png is None else str(png),
        "param": param,
        "seconds": seconds,
    }


class _Described:
    """What the plot's title needs of an objective."""

    def __init__(self, text):
        self.text = text

    def describe(self):
        return self.text


def _fit(x, n):
    if x.size >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.size, np.float32)])
