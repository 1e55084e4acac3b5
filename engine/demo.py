"""What `genredream demo` plays and measures (the command is engine/cli/demo.py).

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

import time

import numpy as np

from genredream.engine.io.source import END, Source
from genredream.engine.mel import MelConfig, StreamingMel, hz_to_mel, mel_to_hz, melspectrogram, power_to_db
from genredream.engine.resample import StreamingResampler
from genredream.engine.ringbuffer import RingBuffer

__all__ = ["DEMO_GENRES", "ArraySource", "test_signal", "demo_clip", "default_demo_models", "run_frontend", "FRONTEND_MEL"]

DEMO_GENRES = ("classical", "metal")

#: The front end `demo --frontend` streams (musicnn's: 22.05 kHz, 128 mel bands in dB).
FRONTEND_MEL = MelConfig(sr=22050, n_fft=2048, hop_length=512, n_mels=128, scaling="db")


class ArraySource(Source):
    """Audio already in memory as a session's source: float32 ``[n]`` or ``[n, channels]``.

    Also the shortest example of a source (docs/architecture.md, "Where to add").
    """

    def __init__(self, audio, sample_rate, block=512, realtime=True):
        self.audio, self.sample_rate, self.block, self.realtime = audio, int(sample_rate), int(block), realtime
        self.channels = audio.shape[1] if audio.ndim == 2 else 1

    def start(self, session):
        pass  # nothing to open: run() writes the blocks

    def run(self, session):
        blocks = (self.audio[i : i + self.block] for i in range(0, self.audio.shape[0], self.block))
        session.engine.run_blocks(blocks, realtime=self.realtime, duration=session.duration)
        return END


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


def demo_clip(notify=None):
    """Path of the demo clip, rendering it on first use (about 2 s of CPU); ``notify(text)`` hears why it waits."""
    import os
    import tempfile
    from pathlib import Path

    import soundfile as sf

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genredream"
    clip = cache / "demo-clip.wav"
    if clip.exists():
        return clip
    from genredream.models.corpus.build import build_corpus

    if notify:
        notify("rendering the demo clip (synthetic corpus, FluidSynth) ...")
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


def run_frontend(seconds=6.0, device_rate=48000, block=256, hop=0.5, window=5.0, on_hop=None):
    """The streaming front end alone on the test signal: ring -> soxr -> streaming mel, timed.

    ``on_hop(report)`` hears every hop: ``t`` (s), ``frames``, ``level_db`` and
    ``loudest`` [(band, centre Hz), ...]. Returns a dict: the streamed and
    offline mel frame counts, ``max_rel_diff`` between them, ``agree``, the
    per-block ring write and per-hop front-end times (microseconds) with
    their real-time budgets, and the ring's counters.
    """
    cfg = FRONTEND_MEL
    dev_sr = device_rate
    audio = test_signal(seconds, dev_sr)
    ring = RingBuffer(int(dev_sr * (window + 1)))
    rs = StreamingResampler(dev_sr, cfg.sr)
    sm = StreamingMel.from_config(cfg, keep_frames=cfg.frames_for(cfg.sr * window) + 8)
    # Warm the compiled kernels so the timings below are steady-state, not compilation.
    ring.write(audio[:block])
    StreamingMel.from_config(cfg).push(np.zeros(4096, np.float32))
    ring = RingBuffer(ring.capacity)

    t_write, t_front = [], []
    frames, cursor, next_report = [], 0, hop
    hop_samples = int(hop * dev_sr)
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
                if on_hop is not None:
                    on_hop({"t": now, "frames": sm.frames_out, "level_db": float(win.max()),
                            "loudest": [(int(b), float(band_hz[b])) for b in loud]})
                next_report += hop
    frames.append(sm.push(rs.flush()))
    frames.append(sm.flush())
    streamed = np.concatenate(frames, axis=1)

    mono = audio.mean(axis=1)
    offline = melspectrogram(np.concatenate([rs_offline(mono, dev_sr, cfg.sr)]), **_mel_kwargs(cfg))
    err = float(np.abs(streamed - offline).max() / max(np.abs(offline).max(), 1e-30))
    return {
        "config": cfg,
        "streamed_frames": streamed.shape[1],
        "offline_frames": offline.shape[1],
        "max_rel_diff": err,
        "agree": err <= 1e-4 and streamed.shape == offline.shape,
        "write_us": np.array(t_write) / 1e3,
        "write_budget_us": block / dev_sr * 1e6,
        "frontend_us": np.array([t for t, _ in t_front]) / 1e3,
        "frontend_budget_us": np.array([n for _, n in t_front]) / dev_sr * 1e6,
        "ring": ring.counters(),
    }


def rs_offline(y, sr_in, sr_out):
    import soxr

    return soxr.resample(y.astype(np.float32), sr_in, sr_out)


def _mel_kwargs(cfg):
    return dict(sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, power=cfg.power, htk=cfg.htk, norm=cfg.norm)
