"""`genredream demo`: the engine on a short clip, live; or, with ``--frontend``, the front end alone.

What it plays and measures is engine/demo.py; the run is a
:class:`genredream.engine.session.Session` like `genredream run`'s.
"""

from __future__ import annotations

import argparse

import numpy as np

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser):
    p.add_argument("--frontend", action="store_true", help="show only the streaming front end (ring, resampler, mel) on a test signal")
    p.add_argument("--fast", action="store_true", help="run as fast as possible instead of at real-time pace")
    p.add_argument("--model", action="append", help="model(s) to run (default: musicnn-msd and zheng when installed)")
    p.add_argument("--no-view", action="store_true", help="no live view (summary only)")
    p.add_argument("--seconds", type=float, default=6.0, help="--frontend: length of the test signal (default 6)")
    p.add_argument("--device-rate", type=int, default=48000, help="sample rate of the simulated audio interface (default 48000)")
    p.add_argument("--block", type=int, default=256, help="audio callback block size in frames (default 256)")
    p.add_argument("--hop", type=float, default=0.5, help="seconds between window reports (default 0.5)")
    p.add_argument("--window", type=float, default=5.0, help="analysis window in seconds (default 5)")


def main(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    if args.frontend:
        return main_frontend(args)
    from genredream.engine.demo import DEMO_GENRES, ArraySource, default_demo_models, demo_clip, test_signal
    from genredream.engine.io.file import FileSource
    from genredream.engine.runtime import ModelLoadError
    from genredream.engine.session import Session
    from genredream.models.contract import ModelFileError

    con = Console()
    err = Console(stderr=True)
    try:
        clip = demo_clip(notify=con.print)
    except Exception as e:  # no FluidSynth or soundfont: still show the engine
        con.print(f"[yellow]cannot render the demo clip ({escape(str(e))}); using the built-in test signal[/]")
        clip = None
    if clip is not None:
        source = FileSource(clip, block=512, realtime=not args.fast)
        what = f"{clip} ({' then '.join(DEMO_GENRES)}, {source.seconds:.0f} s)"
    else:
        source = ArraySource(test_signal(12.0, 48000), 48000, block=512, realtime=not args.fast)
        what = "built-in test signal (12 s)"
    models = args.model or default_demo_models()
    con.print(f"[bold]genredream demo[/]: {escape(what)} -> models {escape(', '.join(models)) if models else 'the default model'}; "
              f"{'as fast as possible' if args.fast else 'real-time pace'}")
    session = Session(models, 5.0, 0.5, 1, view=not args.no_view, notify=lambda text, kind="info": err.print(escape(text), highlight=False))
    try:
        res = session.run(source)
    except (ModelLoadError, ModelFileError, ValueError) as e:
        err.print(f"[red]genredream demo:[/] {escape(str(e))}", highlight=False)
        return 2
    for line in res.summary:
        con.print(line, highlight=False)
    if res.interrupted is not None:
        from genredream.engine import interrupt

        return interrupt.exit_code(res.interrupted)
    return 0 if res.engine.counters["results"] else 1


def main_frontend(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from genredream.engine.demo import FRONTEND_MEL as cfg, run_frontend

    con = Console()
    dev_sr, block = args.device_rate, args.block
    con.print(
        f"[bold]genredream demo[/]: {args.seconds:g} s test signal, {dev_sr} Hz stereo in {block}-frame blocks "
        f"-> ring -> soxr to {cfg.sr} Hz -> streaming mel ({cfg.n_mels} bands, n_fft {cfg.n_fft}, hop {cfg.hop_length})"
    )

    def on_hop(r):
        con.print(
            f"  t={r['t']:5.2f} s  frames={r['frames']:4d}  level={r['level_db']:6.1f} dB  "
            f"loudest bands: " + ", ".join(f"#{b} (~{hz:.0f} Hz)" for b, hz in r["loudest"])
        )

    r = run_frontend(args.seconds, dev_sr, block, args.hop, args.window, on_hop=on_hop)
    w, f_us, f_budget = r["write_us"], r["frontend_us"], r["frontend_budget_us"]
    tab = Table(title="what it cost", show_header=True)
    tab.add_column("stage")
    tab.add_column("median", justify="right")
    tab.add_column("p99", justify="right")
    tab.add_column("share of real time (median)", justify="right")
    tab.add_row("ring write per block (audio thread)", f"{np.median(w):.1f} us", f"{np.percentile(w, 99):.1f} us", f"{np.median(w) / r['write_budget_us']:.2%}")
    tab.add_row("resample + mel per hop (worker)", f"{np.median(f_us):.0f} us", f"{np.percentile(f_us, 99):.0f} us", f"{np.median(f_us / f_budget):.2%}")
    con.print(tab)
    con.print(
        f"streamed {r['streamed_frames']} mel frames; offline mel of the whole signal has {r['offline_frames']}; "
        f"max relative difference {r['max_rel_diff']:.2e} ({'agree' if r['max_rel_diff'] <= 1e-4 else 'DISAGREE'})"
    )
    con.print(f"ring: {r['ring']}")
    return 0 if r["agree"] else 1
