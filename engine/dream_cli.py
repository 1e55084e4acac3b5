"""`genredream dream IN OUT`: deep-dream an audio file offline (Geng, Ren & Ogihara 2017).

The file is decoded (its channels kept; the mid, their mean, is what is
dreamed: engine/channels.py says why), resampled to the model's rate, and
dreamed there. Toward a label (``--target``) the default is the dream that
transfers (:func:`genredream.engine.dream_transfer.dream_transfer`: a time-varying EQ
ascended on an ensemble's target logits with random transformations each
step); ``--param wave``, and any ``--layer`` objective, use Geng's
waveform ascent (:func:`genredream.engine.dream_core.dream_offline`: normalised steps,
[-1, 1], spectral mask). ``--judge MODEL`` scores the target with a model
that took no part in the dream, before and after. The change the dream made
is resampled back to the file's rate and added to every channel of the
original (``--mix`` of it: the file's content above the model's Nyquist is
kept). The result is peak-normalised to -1 dBFS, as the paper normalised
its clips, and written as 16-bit PCM WAV at the input's sample rate, as
long as the input, with its channels. ``--plot`` writes a PNG: the mel
spectrogram before and after, their difference in dB, and the objective per
step. ``--depth`` is the live control's mapping (engine/dream_depth.py) made
offline: steps per sample and the share of the change heard.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

__all__ = ["add_arguments", "main", "dream_file", "mel_db", "difference_db", "PEAK_DBFS"]

#: Peak level of the written file (the paper normalised each clip).
PEAK_DBFS = -1.0


def add_arguments(p: argparse.ArgumentParser):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Deep-dream an audio file: gradient ascent on a genre classifier's activations (Geng, Ren & Ogihara 2017).\n"
        "Toward a label (--target), the default dreams a time-varying EQ for an ensemble (musicnn-msd + musicnn-mtt) with\n"
        "random transformations every step: a change other networks and listeners hear (docs/dream.md).\n"
        "Without a target it ascends one layer's mean activation, or all layers' (as in the paper)."
    )
    p.epilog = (
        "examples:\n"
        "  genredream dream song.wav dreamed.wav                         # all layers of the default model\n"
        "  genredream dream song.wav low.wav --model geng --layer conv1  # low layer: attack-like features\n"
        "  genredream dream song.wav high.wav --model geng --layer conv3 # high layer: harmonic patterns\n"
        "  genredream dream song.wav rockier.wav --target rock --judge doyle  # toward a label; a held-out model judges\n"
        "  genredream dream song.wav jazzier.wav --target jazz --plot    # push toward a label, with a PNG\n"
        "  genredream dream song.wav wave.wav --target rock --param wave --model musicnn-msd  # Geng's waveform ascent\n"
        "  genredream dream song.wav less.wav --target rock --away --mix 0.5\n"
        "\n"
        "`genredream models` lists models; an unknown --layer or --target lists what the model has."
    )
    p.add_argument("input", metavar="IN", help="audio file (wav, flac, ogg, mp3, au)")
    p.add_argument("output", metavar="OUT", help="where to write the dreamed audio (16-bit PCM WAV)")
    p.add_argument(
        "--model",
        default=None,
        help="model name or .pt path; with --target a comma-separated ensemble is allowed "
        "(default: musicnn-msd,musicnn-mtt for a target, those that have the label; musicnn-msd for a layer)",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--layer", default=None, metavar="NAME|all", help="layer whose mean activation to ascend, or 'all' (default all)")
    what.add_argument("--target", default=None, metavar="LABEL", help="push toward this label instead (log-probability)")
    p.add_argument("--away", action="store_true", help="with --target: push away from the label (waveform dream)")
    p.add_argument(
        "--param",
        choices=["eq", "wave"],
        default=None,
        help="what the dream changes: eq = a time-varying EQ (the default with --target: it transfers to other networks), "
        "wave = the samples themselves (Geng et al.; the only choice for --layer)",
    )
    p.add_argument("--judge", default=None, metavar="MODEL", help="with --target: also report this model's logit rise for the target (it must not be a dreaming model)")
    p.add_argument("--steps", type=int, default=None, help="gradient steps (default 6 for eq, 20 for wave)")
    p.add_argument("--max-db", type=float, default=None, metavar="DB", help="eq: strength, how far the EQ may boost or cut (default 12 dB)")
    p.add_argument("--step-size", type=float, default=None, help="wave: RMS change per step, full scale 1 (default 0.003)")
    p.add_argument("--mix", type=float, default=1.0, help="0 = dry, 1 = full dream (default 1)")
    p.add_argument(
        "--depth",
        type=float,
        default=None,
        metavar="D",
        help="0..1, as in `run --depth`: 0 = the input (normalised), 0.5 = --steps at full strength, 1 = three times the steps; scales --mix below 0.5",
    )
    p.add_argument("--mask-range", type=float, default=None, metavar="DB", help="spectral mask range in dB, 0 = no mask (default 60)")
    p.add_argument("--jitter", action="store_true", help="move the window tiling randomly every step (fewer grid traces, less gain)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dither (and jitter): same seed, same output (default 0)")
    p.add_argument("--plot", nargs="?", const=True, default=None, metavar="PNG", help="write a PNG (default: OUT with .png) of the mel before/after, their difference (dB) and the objective per step")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


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
    default: :data:`genredream.engine.dream_transfer.DEFAULT_ENSEMBLE` for a target,
    :func:`genredream.models.classify.default_model` for a layer). ``plot``: None,
    True (OUT with ``.png``) or a path. ``param``: ``"eq"`` (default with a
    target, not away) or ``"wave"``. ``judge``: a model that takes no part
    in the dream, scoring the target before and after. ``depth`` (0..1,
    optional): :func:`genredream.engine.dream_depth.depth_settings` with ``steps`` as
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
    engine.dream_core.DreamError
        Unknown layer/label, unusable model, a judge that dreams, bad numbers.
    models.data.AudioFileError
        Unreadable input.
    """
    import time

    import soundfile as sf
    import soxr

    from genredream.engine.channels import read_channels
    from genredream.engine.dream_core import DEFAULT_MASK_RANGE_DB, DEFAULT_STEP_SIZE, DreamError, dream_offline, load_dream_model, make_objective
    from genredream.engine.dream_depth import depth_settings
    from genredream.engine.dream_transfer import DEFAULT_ENSEMBLE, DEFAULT_MAX_DB, DEFAULT_STEPS, Ensemble, dream_transfer, judge_score
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
    if isinstance(model, str) and "," in model:
        model = [m.strip() for m in model.split(",") if m.strip()]
    if model is None:
        if param == "eq":
            from genredream.models.registry import resolve_model

            model = []
            for name in DEFAULT_ENSEMBLE:
                try:
                    resolve_model(name)
                    model.append(name)
                except Exception:  # not installed: dream with the others
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
    frames, sr_in = read_channels(input_path)  # [n, channels]
    if frames.size == 0:
        raise AudioFileError(f"{input_path}: no samples")
    audio = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]  # the mid, dreamed
    check_length(frames.shape[0], sr_in, input_path)  # the same minimum as run, classify and generate
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
        _plot(png, audio, out.mean(axis=1, dtype=np.float32), sr_in, res, _Described(described), ", ".join(m.name for m in dreamers), gain=gain)
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


#: Colour range of the difference panel (dB either way).
DIFF_RANGE_DB = 20.0


def mel_db(y, sr, n_mels=96):
    """The mel power spectrogram of ``y`` in dB (46 ms frames, hop a quarter), as the plot draws it."""
    from genredream.engine.mel import MelConfig, power_to_db

    n_fft = int(2 ** round(math.log2(0.046 * sr)))
    cfg = MelConfig(sr=int(sr), n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, scaling="power")
    return power_to_db(cfg.melspectrogram(np.ascontiguousarray(y, np.float32)))


def difference_db(before_db, after_db, floor_db=80.0):
    """Dreamed minus dry per mel bin and frame (dB); 0 where both are more than ``floor_db`` below the loudest bin (nothing to compare)."""
    top = max(float(before_db.max()), float(after_db.max()))
    lo = top - floor_db
    diff = np.maximum(after_db, lo) - np.maximum(before_db, lo)
    return diff


def _plot(png, before, after, sr, res, objective, model_name, gain=1.0, title=None):
    """Before, after (normalised), after minus before in dB (the normalisation gain taken out), and the objective per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mels = [mel_db(y, sr) for y in (before, after)]
    lo = max(min(float(m.min()) for m in mels), max(float(m.max()) for m in mels) - 80)
    hi = max(float(m.max()) for m in mels)
    diff = difference_db(mels[0], mels[1] - 20 * math.log10(max(gain, 1e-12)))
    n_mels = mels[0].shape[0]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), gridspec_kw={"height_ratios": [3, 3, 3, 2]}, layout="constrained")
    extent = [0, before.size / sr, 0, n_mels]
    for ax, m, t in zip(axes[:2], mels, ("before", "after (normalised)")):
        im = ax.imshow(m, origin="lower", aspect="auto", extent=extent, vmin=lo, vmax=hi, cmap="magma")
        ax.set_title(f"mel spectrogram, {t}")
        ax.set_ylabel("mel band")
    fig.colorbar(im, ax=axes[:2], label="dB")
    ax = axes[2]
    im = ax.imshow(diff, origin="lower", aspect="auto", extent=extent, vmin=-DIFF_RANGE_DB, vmax=DIFF_RANGE_DB, cmap="RdBu_r")
    ax.set_title(f"dreamed minus dry (dB, the normalisation gain of {20 * math.log10(max(gain, 1e-12)):+.1f} dB taken out): red added, blue removed", fontsize=9)
    ax.set_ylabel("mel band")
    ax.set_xlabel("time (s)")
    fig.colorbar(im, ax=axes[2], label="dB")
    ax = axes[3]
    if res is not None:
        ax.plot(range(1, len(res.objective_per_step) + 1), res.objective_per_step, marker=".", label="at each step (its windows, file edges included)")
        ax.axhline(res.before, color="grey", ls="--", lw=1, label=f"original {res.before:.4g}")
        ax.axhline(res.after, color="C1", ls="--", lw=1, label=f"dreamed {res.after:.4g}")
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    ax.set_title(title or f"{model_name}: {objective.describe()}", fontsize=9)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(args) -> int:
    from rich.console import Console

    from genredream.engine.dream_core import DreamError
    from genredream.models.contract import ModelFileError
    from genredream.models.data import AudioFileError

    err = Console(stderr=True)
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))

    def progress(k, value):
        if not args.quiet:
            err.print(f"step {k + 1}: objective {value:.6g}", highlight=False)

    try:
        info = dream_file(
            args.input,
            args.output,
            model=args.model,
            layer=args.layer,
            target=args.target,
            away=args.away,
            steps=args.steps,
            step_size=args.step_size,
            mix=args.mix,
            mask_range=args.mask_range,
            jitter=args.jitter,
            seed=args.seed,
            plot=args.plot,
            progress=progress,
            depth=args.depth,
            param=args.param,
            judge=args.judge,
            max_db=args.max_db,
        )
    except (DreamError, AudioFileError, ModelFileError) as e:
        err.print(f"[red]genredream dream:[/] {e}", highlight=False, soft_wrap=True)
        return 2
    out = Console()
    out.print(
        f"{info['output']}: {info['samples']} samples x {info['channels']} channel(s) at {info['sample_rate']} Hz, 16-bit PCM; "
        f"{info['model']}, {info['objective']}: {info['before']:.6g} -> {info['after']:.6g}",
        highlight=False,
    )
    if info["rises"]:
        parts = [f"{name} {rise:+.2f}" + (" (judge)" if name == info["judge"] else "") for name, rise in info["rises"].items()]
        out.print(f"target logit rise: {', '.join(parts)} ({info['seconds']:.1f} s)", highlight=False)
    if info["plot"]:
        out.print(f"plot: {info['plot']}", highlight=False)
    return 0
