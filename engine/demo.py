"""`genredream demo`: the engine on a short clip, live.

The demo renders a short clip from the synthetic corpus on first use (two
genres back to back, so the scores change half-way), plays it into the engine
at real-time pace with the default model(s), shows the live view and ends
with a summary. Without FluidSynth it falls back to a built-in test signal.

``--frontend`` shows the streaming front end alone: a built-in test signal
(a chord that changes every second over a kick-and-hat pattern) is cut into
audio-callback-sized blocks, written into the RingBuffer as an audio thread
would, resampled to the model rate and turned into mel frames by
StreamingMel. Every hop it prints the window's loudest bands; at the end it
checks the streamed frames against the offline mel of the whole signal and
reports what each stage cost per block, against the block's real-time budget.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from genredream.engine.mel import MelConfig, StreamingMel, hz_to_mel, mel_to_hz, melspectrogram, power_to_db
from genredream.engine.resample import StreamingResampler
from genredream.engine.ringbuffer import RingBuffer


DEMO_GENRES = ("classical", "metal")


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


def test_signal(seconds, sr, seed=0):
    """Chords over a kick/hat pattern; float32 stereo [samples, 2] like a device block."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    roots = [220.0, 174.6, 261.6, 196.0]
    y = np.zeros_like(t)
    for i, root in enumerate(roots * int(np.ceil(seconds / len(roots) + 1))):
        seg = (t >= i) & (t < i + 1)
        for ratio in (1.0, 1.26, 1.5):
            y[seg] += 0.12 * np.sin(2 * np.pi * root * ratio * t[seg])
    beat = 0.5
    ph = np.mod(t, beat)
    y += 0.5 * np.sin(2 * np.pi * 60 * ph) * np.exp(-ph * 30)  # kick on every beat
    ph8 = np.mod(t + beat / 2, beat)
    y += 0.1 * rng.standard_normal(t.size) * np.exp(-ph8 * 80)  # hat on the off-beat
    stereo = np.stack([y, y * 0.9], axis=1).astype(np.float32)
    return stereo


def demo_clip(console=None):
    """Path of the demo clip, rendering it on first use (about 2 s of CPU)."""
    import os
    import tempfile
    from pathlib import Path

    import soundfile as sf

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genredream"
    clip = cache / "demo-clip.wav"
    if clip.exists():
        return clip
    from genredream.models.corpus.build import build_corpus

    if console:
        console.print("rendering the demo clip (synthetic corpus, FluidSynth) ...")
    with tempfile.TemporaryDirectory() as tmp:
        build_corpus(tmp, list(DEMO_GENRES), songs_per_genre=1, seconds=8, seed=7, progress=False)
        parts = [sf.read(next((Path(tmp) / g).glob("*.wav")), dtype="float32")[0] for g in DEMO_GENRES]
        cache.mkdir(parents=True, exist_ok=True)
        sf.write(clip.with_suffix(".tmp.wav"), np.concatenate(parts), 22050, subtype="PCM_16")
        clip.with_suffix(".tmp.wav").replace(clip)
    return clip


def default_demo_models():
    from genredream.models.registry import list_models

    names = {m["name"] for m in list_models() if m["error"] is None}
    return [n for n in ("musicnn-msd", "zheng") if n in names] or None


def main(args) -> int:
    from rich.console import Console

    if args.frontend:
        return main_frontend(args)
    from genredream.engine.io.file import FileSource
    from genredream.engine.io.sinks import summary
    from genredream.engine.run import build_engine

    con = Console()
    try:
        clip = demo_clip(con)
    except Exception as e:  # no FluidSynth or soundfont: still show the engine
        con.print(f"[yellow]cannot render the demo clip ({e}); using the built-in test signal[/]")
        clip = None
    if clip is not None:
        src = FileSource(clip, block=512)
        blocks, sr = src.blocks(), src.sample_rate
        what = f"{clip} ({' then '.join(DEMO_GENRES)}, {src.seconds:.0f} s)"
    else:
        sig = test_signal(12.0, 48000)
        blocks, sr, what = (sig[i : i + 512] for i in range(0, sig.shape[0], 512)), 48000, "built-in test signal (12 s)"
    models = args.model or default_demo_models()
    engine = build_engine(sr, models, 5.0, 0.5)
    con.print(f"[bold]genredream demo[/]: {what} -> models {', '.join(engine.models)}; {'as fast as possible' if args.fast else 'real-time pace'}")
    if args.no_view:
        engine.run_blocks(blocks, realtime=not args.fast)
    else:
        from genredream.engine.io.view import LiveView

        with LiveView(engine):
            engine.run_blocks(blocks, realtime=not args.fast)
    for line in summary(engine):
        con.print(line)
    return 0 if engine.counters["results"] else 1


def main_frontend(args) -> int:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    cfg = MelConfig(sr=22050, n_fft=2048, hop_length=512, n_mels=128, scaling="db")
    dev_sr, block = args.device_rate, args.block
    audio = test_signal(args.seconds, dev_sr)
    ring = RingBuffer(int(dev_sr * (args.window + 1)))
    rs = StreamingResampler(dev_sr, cfg.sr)
    sm = StreamingMel.from_config(cfg, keep_frames=cfg.frames_for(cfg.sr * args.window) + 8)
    con.print(
        f"[bold]genredream demo[/]: {args.seconds:g} s test signal, {dev_sr} Hz stereo in {block}-frame blocks "
        f"-> ring -> soxr to {cfg.sr} Hz -> streaming mel ({cfg.n_mels} bands, n_fft {cfg.n_fft}, hop {cfg.hop_length})"
    )
    # Warm the compiled kernels so the timings below are steady-state, not compilation.
    ring.write(audio[:block])
    StreamingMel.from_config(cfg).push(np.zeros(4096, np.float32))
    ring = RingBuffer(ring.capacity)

    t_write, t_front = [], []
    frames, cursor, next_report = [], 0, args.hop
    hop_samples = int(args.hop * dev_sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.sr / 2), cfg.n_mels + 2))
    band_hz = edges[1:-1]  # each band's centre frequency
    for i in range(0, audio.shape[0], block):
        t0 = time.perf_counter_ns()
        ring.write(audio[i : i + block])
        t_write.append(time.perf_counter_ns() - t0)
        if ring.total_written - cursor >= hop_samples or i + block >= audio.shape[0]:
            t0 = time.perf_counter_ns()
            new, start = ring.read_since(cursor)
            cursor = start + new.size
            frames.append(sm.push(rs.process(new)))
            t_front.append((time.perf_counter_ns() - t0, new.size))
            now = ring.total_written / dev_sr
            if now + 1e-9 >= next_report and sm.frames_out:
                n = min(sm.frames_out, sm.keep_frames)
                win = power_to_db(sm.latest(n), ref=1.0)
                loud = np.argsort(win.mean(axis=1))[::-1][:3]
                con.print(
                    f"  t={now:5.2f} s  frames={sm.frames_out:4d}  level={win.max():6.1f} dB  "
                    f"loudest bands: " + ", ".join(f"#{b} (~{band_hz[b]:.0f} Hz)" for b in loud)
                )
                next_report += args.hop
    frames.append(sm.push(rs.flush()))
    frames.append(sm.flush())
    streamed = np.concatenate(frames, axis=1)

    mono = audio.mean(axis=1)
    offline = melspectrogram(np.concatenate([rs_offline(mono, dev_sr, cfg.sr)]), **_mel_kwargs(cfg))
    err = np.abs(streamed - offline).max() / max(np.abs(offline).max(), 1e-30)

    w = np.array(t_write) / 1e3
    per_block_budget_us = block / dev_sr * 1e6
    f_ns = np.array([t for t, _ in t_front]) / 1e3
    f_budget = np.array([n for _, n in t_front]) / dev_sr * 1e6
    tab = Table(title="what it cost", show_header=True)
    tab.add_column("stage")
    tab.add_column("median", justify="right")
    tab.add_column("p99", justify="right")
    tab.add_column("share of real time (median)", justify="right")
    tab.add_row("ring write per block (audio thread)", f"{np.median(w):.1f} us", f"{np.percentile(w, 99):.1f} us", f"{np.median(w) / per_block_budget_us:.2%}")
    tab.add_row("resample + mel per hop (worker)", f"{np.median(f_ns):.0f} us", f"{np.percentile(f_ns, 99):.0f} us", f"{np.median(f_ns / f_budget):.2%}")
    con.print(tab)
    con.print(
        f"streamed {streamed.shape[1]} mel frames; offline mel of the whole signal has {offline.shape[1]}; "
        f"max relative difference {err:.2e} ({'agree' if err <= 1e-4 else 'DISAGREE'})"
    )
    con.print(f"ring: {ring.counters()}")
    return 0 if err <= 1e-4 and streamed.shape == offline.shape else 1


def rs_offline(y, sr_in, sr_out):
    import soxr

    return soxr.resample(y.astype(np.float32), sr_in, sr_out)


def _mel_kwargs(cfg):
    return dict(sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, power=cfg.power, htk=cfg.htk, norm=cfg.norm)
