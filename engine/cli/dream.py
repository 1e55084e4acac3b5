"""`genredream dream IN OUT`: deep-dream an audio file offline.

The command's arguments and output only; the work is
:func:`genredream.engine.dream.offline.dream_file` (docs/dream.md).
Errors go to stderr: exit 2 for a bad request (an unknown layer or label,
an unreadable file), 1 when the output cannot be written, 130 on Ctrl-C
(engine/cli/__init__.py).
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "main"]


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


def main(args) -> int:
    from rich.console import Console

    from genredream.engine.dream.objective import DreamError
    from genredream.models.contract import ModelFileError
    from genredream.models.data import AudioFileError

    err = Console(stderr=True)
    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))

    def progress(k, value):
        if not args.quiet:
            err.print(f"step {k + 1}: objective {value:.6g}", highlight=False)

    try:  # before minutes of dreaming: a folder that is missing or read-only fails now
        for path in (args.output, args.plot if isinstance(args.plot, str) else None):
            if path:
                _check_writable(path)
    except OSError as e:
        err.print(f"[red]genredream dream:[/] cannot write {e.filename or args.output}: {e.strerror or e}", highlight=False, soft_wrap=True)
        return 1
    try:
        from genredream.engine.dream.offline import dream_file

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
    except OSError as e:  # the output cannot be written (a full disk, a folder without write access)
        err.print(f"[red]genredream dream:[/] {e}", highlight=False, soft_wrap=True)
        return 1
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


def _check_writable(path):
    """Raise the OSError that writing ``path`` would raise, without changing an existing file."""
    from pathlib import Path

    p = Path(path)
    existed = p.exists()
    with open(p, "ab"):
        pass
    if not existed:
        p.unlink()
