"""`genredream generate`: continue seed audio in a genre with a trained generator.

Generating is :func:`genredream.models.generator.stepper.generate`; this module
reads the seed, reports progress on stderr and writes the WAV (what was made so
far, on Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from genredream.models.generator.stepper import PROGRESS_EVERY

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Continue 0.9 s of seed audio in a genre with a trained generator, 0.1 s at a time (Doyle & Lopez).\n"
        "The seed file is decoded at 10 kHz; the 0.9 s starting at --offset seeds the network."
    )
    p.epilog = "example:\n  genredream generate --genre jazz --seed-audio song.wav --seconds 5 --out jazz-dream.wav\n"
    p.add_argument("--genre", help="genre whose generator to use (see models/pretrained/generators)")
    p.add_argument("--generator", help="generator file (.pt) instead of --genre")
    p.add_argument("--seed-audio", required=True, help="audio file whose 0.9 s seed the continuation")
    p.add_argument("--offset", type=float, default=0.0, help="seconds into the seed file where the 0.9 s start (default 0)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds to generate (default 5)")
    p.add_argument("--out", required=True, help="WAV file to write (16-bit PCM, 10 kHz unless --samplerate)")
    p.add_argument("--samplerate", type=int, help="resample the output to this rate (default: the generator's 10000 Hz)")
    p.add_argument("--include-seed", action="store_true", help="write the 0.9 s seed before the continuation")
    p.add_argument("--noise", type=float, default=0.0, help="noise fed back with each chunk, relative to the seed RMS (default 0: deterministic)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --noise (default 0)")
    p.add_argument("--level", choices=["match", "raw"], default="match", help="match each chunk to the seed's RMS (default) or keep the network's level")
    p.add_argument("--no-declick", action="store_true", help="leave the 0.1 s junctions as the network predicts them")
    p.add_argument("--progress", type=float, default=PROGRESS_EVERY, metavar="S",
                   help=f"a progress line on stderr every S seconds (default {PROGRESS_EVERY:g}; 0: none); Ctrl-C writes what is done")


def main(args) -> int:
    import soundfile as sf

    from genredream.models.archive import ModelFileError
    from genredream.models.data import AudioFileError, check_length, load_audio
    from genredream.models.generator.file import find_generator, validate_generator
    from genredream.models.generator.stepper import generate, rms_db

    chunks = []
    interrupted = None
    clock = {"t0": time.monotonic(), "last": time.monotonic()}

    def progress(done, total):
        now = time.monotonic()
        if args.progress and now - clock["last"] >= args.progress:  # a line every few seconds, on stderr
            clock["last"] = now
            sr_ = g.sample_rate
            print(f"generate: {done / sr_:.1f} s of {total / sr_:g} s ({done / total:.0%}), "
                  f"{done / sr_ / (now - clock['t0']):.1f}x real time; Ctrl-C writes what is done", file=sys.stderr, flush=True)

    try:
        g = validate_generator(find_generator(args.genre, args.generator))
        audio = load_audio(args.seed_audio, g.sample_rate)
        check_length(audio.size, g.sample_rate, args.seed_audio)  # the same minimum as run, classify and dream
        a = int(round(args.offset * g.sample_rate))
        seed_audio = audio[a : a + g.context]
        if seed_audio.size < g.context:
            raise ValueError(f"{args.seed_audio}: needs {g.context / g.sample_rate:g} s from {args.offset:g} s; it is {audio.size / g.sample_rate:.2f} s long")
        try:
            y, info = generate(g, seed_audio, args.seconds, noise=args.noise, seed=args.seed, level=args.level,
                               declick=not args.no_declick, return_info=True, progress=progress, chunks=chunks)
        except KeyboardInterrupt as e:  # write what was generated
            from genredream.engine import interrupt

            interrupt.calm()
            interrupted = e
            y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            info = None
    except (ModelFileError, AudioFileError, ValueError) as e:
        print(f"genredream generate: {e}", file=sys.stderr)
        return 2
    if args.include_seed:
        y = np.concatenate([seed_audio, y])
    sr = g.sample_rate
    if args.samplerate and args.samplerate != sr:
        import soxr

        y = soxr.resample(y, sr, args.samplerate).astype(np.float32)
        sr = args.samplerate
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.out, np.clip(y, -1, 1), sr, subtype="PCM_16")
    if interrupted is not None:
        from genredream.engine import interrupt

        print(f"interrupted: wrote {args.out}: {y.size / sr:.1f} s of the {args.seconds:g} s asked for", file=sys.stderr)
        return interrupt.exit_code(interrupted)  # 130 for Ctrl-C, 143 for SIGTERM
    print(
        f"wrote {args.out}: {args.seconds:g} s of {g.genre} from {args.seed_audio} at {args.offset:g} s; "
        f"seed {info['seed_rms_db']:.1f} dBFS, output {rms_db(y):.1f} dBFS (network's own level {np.mean(info['chunk_raw_rms_db']):.1f} dBFS, level {args.level})"
    )
    return 0
