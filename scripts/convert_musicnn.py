#!/usr/bin/env python3
"""One-off: port the musicnn checkpoints (MSD and MTT) to genredream model files.

The ``musicnn`` PyPI package (0.1.0, ISC licence, Music Technology Group, UPF)
ships TensorFlow 1 checkpoints. This script

1. ``inputs`` (project venv): renders a few test clips at 16 kHz (FluidSynth
   with the GM soundfont, and numpy noise), computes their float32 log-mel
   with :mod:`genredream.engine.mel` (``logc_scale``), and writes ``WORK/inputs.npz``;
2. ``tf`` (a throwaway TensorFlow venv; TF is never a dependency of the
   package): for each model reads every checkpoint variable into
   ``WORK/weights_<model>.npz``, builds the package's own ``models.py`` graph,
   restores the checkpoint with ``tf.compat.v1.train.Saver`` (a failure is
   fatal, and every restored variable is compared with the checkpoint), and
   runs it on the float32 log-mel inputs: ``WORK/reference_<model>.npz``
   holds the logits, probabilities and every intermediate feature;
3. ``torch`` (project venv): loads the weights into
   :class:`genredream.models.archs.musicnn.Musicnn`, compares every output with the
   reference, writes the test fixtures (``tests/fixtures/musicnn/``), the
   model files (``models/pretrained/musicnn-{msd,mtt}.pt``) with a report
   beside each, and the licence text;
4. ``analyse`` (project venv): the 5 s window against the mean of 3 s
   patches, librosa 0.7's reflect padding, the extractor's float16 cast, on
   more renders (figures in ``docs/musicnn.md`` and the reports);
5. ``all``: the four in order (``--tf-python`` names the TF interpreter);
6. ``reexport`` (project venv, no TensorFlow): rebuild the shipped files
   from their own weights after the architecture's code changed, checking
   them against the old files first.

Usage::

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf-keras
    .venv/bin/python scripts/convert_musicnn.py all --tf-python /tmp/tfvenv/bin/python

The musicnn wheel is fetched with ``pip download --no-deps musicnn==0.1.0``
unless ``--musicnn-dir`` points at an unpacked copy.

Why not ``musicnn.extractor``: it casts the mel to float16 before
``log10(10000 x + 1)`` (overflow to inf above 6.55 with current NumPy) and
swallows checkpoint-restore errors (random weights). See docs/musicnn.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "musicnn"
PRETRAINED = ROOT / "models" / "pretrained"
MODELS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}
MUSICNN_VERSION = "0.1.0"
SR = 16000
PATCH = 187  # frames: musicnn's 3-second training patch
SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

# Exactly which mel the references were fed (see docs/musicnn.md, "Mel").
MEL_SOURCE = (
    "genredream.engine.mel.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96) then engine.mel.logc_scale "
    "(float32); equal to librosa>=0.10 feature.melspectrogram defaults: center=True, pad_mode='constant', "
    "power=2, htk=False, norm='slaney', periodic Hann"
)


# ---------------------------------------------------------------------------
# shared helpers


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fetch_musicnn(work: Path, pip: str) -> Path:
    """Unpacked musicnn package directory (``.../musicnn``), fetched once into WORK."""
    pkg = work / "musicnn_pkg"
    if not (pkg / "musicnn" / "models.py").exists():
        pkg.mkdir(parents=True, exist_ok=True)
        subprocess.run([pip, "-m", "pip", "download", "-q", "--no-deps", f"musicnn=={MUSICNN_VERSION}", "-d", str(pkg)], check=True)
        (wheel,) = pkg.glob("musicnn-*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(pkg)
    return pkg / "musicnn"


# ---------------------------------------------------------------------------
# stage 1: test clips (project venv)


def _var_len(v):
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def write_midi(path, notes, programs, bpm=120.0, ppq=480):
    """A format-0 MIDI file. notes: (start_beat, dur_beats, channel, pitch, velocity); programs: {channel: program}."""
    ev = []
    for ch, prog in programs.items():
        ev.append((0, 0, bytes([0xC0 | ch, prog])))
    for start, dur, ch, pitch, vel in notes:
        t0, t1 = int(round(start * ppq)), int(round((start + dur) * ppq))
        ev.append((t0, 2, bytes([0x90 | ch, pitch, vel])))
        ev.append((t1, 1, bytes([0x80 | ch, pitch, 0])))
    ev.sort(key=lambda e: (e[0], e[1]))
    tempo = int(round(60e6 / bpm))
    body = b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    now = 0
    for t, _, data in ev:
        body += _var_len(t - now) + data
        now = t
    body += b"\x00\xff\x2f\x00"
    Path(path).write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, ppq) + b"MTrk" + struct.pack(">I", len(body)) + body)


def render_fluidsynth(notes, programs, bpm, seconds, gain=0.6):
    """Mono float32 audio at 16 kHz, ``seconds`` long, rendered by FluidSynth."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as d:
        mid, wav = Path(d) / "x.mid", Path(d) / "x.wav"
        write_midi(mid, notes, programs, bpm)
        subprocess.run(
            ["fluidsynth", "-ni", "-q", "-g", str(gain), "-r", str(SR), "-T", "wav", "-F", str(wav), SF2, str(mid)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        y, sr = sf.read(wav, dtype="float32", always_2d=True)
    assert sr == SR, sr
    y = y.mean(axis=1)
    n = int(seconds * SR)
    y = np.pad(y, (0, max(0, n - y.size)))[:n]
    return y


def clip_orchestral(seconds=5.0):
    """Strings ensemble chords, a violin line and a piano arpeggio (andante, D minor)."""
    notes = []
    chords = [(50, 57, 62, 65), (46, 53, 58, 62), (43, 50, 55, 58), (45, 52, 57, 61)]  # Dm Bb Gm A
    for i, ch in enumerate(chords):
        for p in ch:
            notes.append((i * 2.0, 2.0, 0, p, 70))  # strings, 2 beats each (bpm 84)
    melody = [74, 72, 70, 69, 67, 69, 70, 72, 74, 76, 77, 76]
    for i, p in enumerate(melody):
        notes.append((i * 0.667, 0.667, 1, p, 85))  # violin
    for i in range(24):
        ch = chords[(i // 6) % 4]
        notes.append((i * 0.333, 0.6, 2, ch[i % 4] + 12, 55))  # piano arpeggio
    return render_fluidsynth(notes, {0: 48, 1: 40, 2: 0}, bpm=84, seconds=seconds)


def clip_electronic(seconds=5.0):
    """Four-on-the-floor drums, synth bass and a saw lead at 128 bpm, loud."""
    notes = []
    for b in range(12):
        notes.append((b, 0.25, 9, 36, 127))  # kick
        notes.append((b + 0.5, 0.1, 9, 42, 100))  # off-beat closed hat
        if b % 2 == 1:
            notes.append((b, 0.25, 9, 39, 115))  # clap
        notes.append((b + 0.5, 0.4, 1, 33 + (3 if b % 4 == 3 else 0), 120))  # bass
    for i, p in enumerate([69, 72, 76, 72, 69, 72, 76, 79] * 3):
        notes.append((i * 0.5, 0.45, 2, p, 110))  # lead
    return render_fluidsynth(notes, {1: 38, 2: 81}, bpm=128, seconds=seconds, gain=0.9)


def clip_noise(seconds=3.0, seed=0):
    """Pink noise (1/f power), RMS 0.1."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    y = np.fft.irfft(spec, n)
    return (0.1 * y / np.sqrt(np.mean(y**2))).astype(np.float32)


# The stored fixtures, kept to a few hundred KB: the loud electronic clip at the
# engine's 5 s window (313 frames), the orchestral one at the 3 s training
# length (188 frames), and 1 s of noise (63 frames: a length the network never
# saw, which only a correct time-padding and pooling port gets right).
CLIPS = {
    "orchestral": lambda: clip_orchestral(3.0),
    "electronic": lambda: clip_electronic(5.0),
    "noise": lambda: clip_noise(1.0),
}


def quantise(y):
    """int16 samples (what the fixture stores) and the float32 signal they represent."""
    q = np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)
    return q, q.astype(np.float32) / 32768.0


def logmel(y):
    from genredream.engine.mel import logc_scale, melspectrogram

    return logc_scale(melspectrogram(y, sr=SR, n_fft=512, hop_length=256, n_mels=96))


def patch_starts(frames):
    """Frame offsets of the 187-frame patches fed to TF: the first, the last, and for a 5 s clip two between."""
    last = frames - PATCH
    if last < 0:
        return []
    return sorted({int(round(k * last / 3)) for k in range(4)})


def stage_inputs(work: Path):
    sys.path.insert(0, str(ROOT))
    arrays = {}
    for name, fn in CLIPS.items():
        q, y = quantise(fn())
        lm = logmel(y)
        arrays[f"{name}/audio_int16"] = q
        arrays[f"{name}/logmel"] = lm
        arrays[f"{name}/patch_starts"] = np.array(patch_starts(lm.shape[1]), dtype=np.int64)
        log(f"{name}: {y.size / SR:.2f} s, rms {np.sqrt(np.mean(y**2)):.3f}, logmel {lm.shape}, max mel {lm.max():.2f}")
    np.savez(work / "inputs.npz", **arrays)


def extra_clips():
    """More audio for the 5 s vs 3 s comparison and the sanity check (not stored as fixtures)."""
    out = {}
    # numpy-only: harmonic tones + synthetic drums
    t = np.arange(5 * SR) / SR
    y = np.zeros_like(t)
    for k, f0 in enumerate([220.0, 277.18, 329.63, 440.0]):
        for h in range(1, 8):
            y += 0.3 / h * np.sin(2 * np.pi * f0 * h * t + k) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t + k))
    beat = (t * 2.0) % 1.0
    kick = np.sin(2 * np.pi * 60 * t * (1 + 2 * np.exp(-beat * 30))) * np.exp(-beat * 12)
    rng = np.random.default_rng(1)
    hat = rng.standard_normal(t.size) * np.exp(-((t * 4.0 + 0.5) % 1.0) * 40)
    y = 0.1 * y / np.abs(y).max() + 0.5 * kick + 0.1 * hat
    out["tones+drums"] = (0.8 * y / np.abs(y).max()).astype(np.float32)
    # a slow solo piano
    notes = [(i * 1.0, 1.5, 0, p, 70) for i, p in enumerate([60, 64, 67, 72, 67, 64, 62, 65, 69, 74])]
    out["piano"] = render_fluidsynth(notes, {0: 0}, bpm=100, seconds=5.0)
    # distorted guitar power chords + rock beat
    notes = []
    for b in range(10):
        for p in (40, 47, 52) if b < 5 else (45, 52, 57):
            notes.append((b, 0.9, 0, p, 120))
        notes.append((b, 0.2, 9, 36 if b % 2 == 0 else 38, 120))
        notes.append((b, 0.2, 9, 42, 90))
        notes.append((b + 0.5, 0.2, 9, 42, 90))
    out["rock"] = render_fluidsynth(notes, {0: 30}, bpm=120, seconds=5.0, gain=0.8)
    out["orchestral-b"] = clip_orchestral(8.0)[3 * SR :]  # another 5 s of the same piece
    out["pink noise 5 s"] = clip_noise(5.0, seed=3)
    return out


# ---------------------------------------------------------------------------
# stage 2: TensorFlow reference (TF venv)

TF_FEATURES = ["timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"]


def stage_tf(work: Path, musicnn_dir: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # tf.compat.v1.layers (which models.py uses) needs Keras 2: pip install tf-keras
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    sys.path.insert(0, str(musicnn_dir.parent))
    from musicnn import configuration as mconf  # the package's own code
    from musicnn import models as mmodels

    inputs = dict(np.load(work / "inputs.npz"))
    clips = sorted({k.split("/")[0] for k in inputs})
    for short, model in MODELS.items():
        prefix = str(musicnn_dir / model) + "/"  # files are "<dir>/.index", ".data-..."
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        names = sorted(k for k in reader.get_variable_to_shape_map() if "Adam" not in k and not k.endswith("_power"))
        weights = {k: reader.get_tensor(k) for k in names}
        np.savez(work / f"weights_{short}.npz", **weights)
        labels = mconf.MSD_LABELS if short == "msd" else mconf.MTT_LABELS

        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            x = tf.compat.v1.placeholder(tf.float32, [None, None, mconf.N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            outs = mmodels.define_model(x, is_training, model, len(labels))
            probs = tf.nn.sigmoid(outs[0])
        sess = tf.compat.v1.Session()
        saver = tf.compat.v1.train.Saver()
        saver.restore(sess, prefix)  # no try/except: a failed restore ends the script
        # Prove the restore: every graph variable equals the checkpoint's value.
        gvars = tf.compat.v1.global_variables()
        if len(gvars) != len(names):
            raise SystemExit(f"{model}: graph has {len(gvars)} variables, checkpoint {len(names)}")
        for v, val in zip(gvars, sess.run(gvars)):
            if not np.array_equal(val, weights[v.op.name]):
                raise SystemExit(f"{model}: variable {v.op.name} differs from the checkpoint after restore")
        log(f"{model}: restored and verified {len(gvars)} variables")

        ref = {}
        for clip in clips:
            lm = inputs[f"{clip}/logmel"]  # [96, frames] float32
            feeds = {"window": lm.T[None]}
            for s in inputs[f"{clip}/patch_starts"]:
                feeds[f"patch{int(s)}"] = lm.T[None, int(s) : int(s) + PATCH]
            for key, xin in feeds.items():
                assert xin.dtype == np.float32
                vals = sess.run([outs[0], probs] + list(outs[1:]), {x: xin, is_training: False})
                ref[f"{clip}/{key}/logits"] = vals[0][0]
                ref[f"{clip}/{key}/probs"] = vals[1][0]
                for fname, v in zip(TF_FEATURES, vals[2:]):
                    ref[f"{clip}/{key}/{fname}"] = v[0]
                top = np.argsort(-vals[1][0])[:5]
                log(f"  {clip:>10s} {key:>9s}: " + ", ".join(f"{labels[i]} {vals[1][0][i]:.2f}" for i in top))
        ref["labels"] = np.array(labels)
        ref["tf_version"] = np.array(tf.__version__)
        np.savez(work / f"reference_{short}.npz", **ref)
        sess.close()


# ---------------------------------------------------------------------------
# stage 3: torch port, comparison, fixtures, model files (project venv)


def load_tf_weights(net, w):
    """Copy TF checkpoint variables (dict name -> array) into a :class:`Musicnn`.

    The layout traps: TF conv kernels are ``[time, freq, in, out]`` (NHWC
    graph) where torch wants ``[out, in, freq, time]`` for our ``[B, 1, F, T]``
    layout; the mid end's "2-D" convs span all channels and are 1-D convs over
    time; and the back end flattens ``[753, 2]`` (max, mean interleaved per
    channel) where ours concatenates ``[max(753), mean(753)]``.
    """
    import torch

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    def bn(mod, name, perm=None):
        p = (lambda a: a) if perm is None else (lambda a: a[perm])
        mod.weight.data.copy_(t(p(w[f"{name}/gamma"])))
        mod.bias.data.copy_(t(p(w[f"{name}/beta"])))
        mod.running_mean.copy_(t(p(w[f"{name}/moving_mean"])))
        mod.running_var.copy_(t(p(w[f"{name}/moving_variance"])))

    def conv2d(mod, name):
        mod.weight.data.copy_(t(w[f"{name}/kernel"].transpose(3, 2, 1, 0)))  # [kt,kf,in,out] -> [out,in,kf,kt]
        mod.bias.data.copy_(t(w[f"{name}/bias"]))

    def conv1d(mod, name):
        mod.weight.data.copy_(t(w[f"{name}/kernel"][:, :, 0, :].transpose(2, 1, 0)))  # [kt,c,1,out] -> [out,c,kt]
        mod.bias.data.copy_(t(w[f"{name}/bias"]))

    used = set()
    w0 = w

    class _Tracked:  # records which checkpoint variables were consumed
        def __getitem__(self, k):
            used.add(k)
            return w0[k]

    w = _Tracked()

    with torch.no_grad():
        bn(net.input_bn, "batch_normalization")
        for blk, i in zip(net.timbral, (0, 1)):
            conv2d(blk.conv, f"conv2d_{i}" if i else "conv2d")
            bn(blk.bn, f"batch_normalization_{i + 1}")
        for blk, i in zip(net.temporal, (2, 3, 4)):  # kernels 128, 64, 32
            conv2d(blk.conv, f"conv2d_{i}")
            bn(blk.bn, f"batch_normalization_{i + 1}")
        for blk, i in zip(net.mid, (5, 6, 7)):
            conv1d(blk.conv, f"conv2d_{i}")
            bn(blk.bn, f"batch_normalization_{i + 1}")
        n = net.pool_bn.num_features // 2
        perm = np.concatenate([2 * np.arange(n), 2 * np.arange(n) + 1])  # ours[i] = theirs[perm[i]]
        bn(net.pool_bn, "batch_normalization_9", perm)
        net.dense.weight.data.copy_(t(w["dense/kernel"][perm].T))
        net.dense.bias.data.copy_(t(w["dense/bias"]))
        bn(net.dense_bn, "batch_normalization_10")
        net.out.weight.data.copy_(t(w["dense_1/kernel"].T))
        net.out.bias.data.copy_(t(w["dense_1/bias"]))
    missing = set(w0) - used
    if missing:
        raise SystemExit(f"checkpoint variables not used by the port: {sorted(missing)}")
    return net


def tf_feature_to_ours(name, a):
    """A TF feature for one item ([T, C] or [T, C, 1] or [C]) in our layout ([C, T] or [C])."""
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[:, :, 0]
    return a.T if a.ndim == 2 else a


def build_torch(labels, weights):
    from genredream.models.archs.musicnn import Musicnn

    net = Musicnn(labels)
    load_tf_weights(net, weights)
    return net.eval()


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stage_torch(work: Path, musicnn_dir: Path, write_models=True):
    import torch

    sys.path.insert(0, str(ROOT))
    from genredream.models.archs.musicnn import MSD_GENRES, MSD_LABELS, MTT_GENRES, MTT_LABELS, MUSICNN_LAYERS

    torch.set_num_threads(2)
    inputs = dict(np.load(work / "inputs.npz"))
    clips = sorted({k.split("/")[0] for k in inputs})
    FIXTURES.mkdir(parents=True, exist_ok=True)
    PRETRAINED.mkdir(parents=True, exist_ok=True)
    fixture = {c: {} for c in clips}
    for c in clips:
        fixture[c]["audio_int16"] = inputs[f"{c}/audio_int16"]
        fixture[c]["logmel"] = inputs[f"{c}/logmel"]
        fixture[c]["patch_starts"] = inputs[f"{c}/patch_starts"]
    nets = {}
    report = {}
    for short, model in MODELS.items():
        weights = dict(np.load(work / f"weights_{short}.npz"))
        ref = dict(np.load(work / f"reference_{short}.npz"))
        labels = [str(s) for s in ref["labels"]]
        assert labels == (MSD_LABELS if short == "msd" else MTT_LABELS), f"{model}: label list differs from the package's"
        net = build_torch(labels, weights)
        nets[short] = net
        dev = {"probs": 0.0, "logits": 0.0}
        dev_feat = {f: 0.0 for f in MUSICNN_LAYERS}
        with torch.no_grad():
            for c in clips:
                lm = inputs[f"{c}/logmel"]
                keys = ["window"] + [f"patch{int(s)}" for s in inputs[f"{c}/patch_starts"]]
                for key in keys:
                    s = 0 if key == "window" else int(key[5:])
                    xin = lm if key == "window" else lm[:, s : s + PATCH]
                    x = torch.from_numpy(np.ascontiguousarray(xin))[None]
                    logits = net(x)[0].numpy()
                    probs = torch.sigmoid(net(x))[0].numpy()
                    feats = [f[0].numpy() for f in net.features(x)]
                    dev["logits"] = max(dev["logits"], float(np.abs(logits - ref[f"{c}/{key}/logits"]).max()))
                    dev["probs"] = max(dev["probs"], float(np.abs(probs - ref[f"{c}/{key}/probs"]).max()))
                    for fname, ours in zip(MUSICNN_LAYERS, feats):
                        theirs = tf_feature_to_ours(fname, ref[f"{c}/{key}/{fname}"])
                        assert ours.shape == theirs.shape, (fname, ours.shape, theirs.shape)
                        scale = max(1.0, float(np.abs(theirs).max()))
                        dev_feat[fname] = max(dev_feat[fname], float(np.abs(ours - theirs).max()) / scale)
                    fixture[c][f"{short}_{key}_probs"] = ref[f"{c}/{key}/probs"].astype(np.float32)
                    if key == "window":
                        for fname in ("mean_pool", "max_pool", "penultimate"):
                            fixture[c][f"{short}_window_{fname}"] = ref[f"{c}/{key}/{fname}"].astype(np.float32)
        log(f"{model}: max |torch - TF| probs {dev['probs']:.2e}, logits {dev['logits']:.2e}")
        log("   features (relative to max(1, |ref|)): " + ", ".join(f"{k} {v:.1e}" for k, v in dev_feat.items()))
        if dev["probs"] > 1e-5:
            raise SystemExit(f"{model}: port differs from TF by {dev['probs']:.2e} > 1e-5 on probabilities")
        report[short] = {
            "max_abs_dev_probs": dev["probs"],
            "max_abs_dev_logits": dev["logits"],
            "max_rel_dev_features": dev_feat,
            "tf_version": str(ref["tf_version"]),
            "labels": labels,
            "genre_labels": MSD_GENRES if short == "msd" else MTT_GENRES,
        }

    meta_common = {
        "mel_source": MEL_SOURCE,
        "sr": SR,
        "patch_frames": PATCH,
        "musicnn_version": MUSICNN_VERSION,
        "tf_version": report["msd"]["tf_version"],
        "note": "audio = audio_int16 / 32768; logmel = logc_scale(melspectrogram(audio)) [96, frames]; "
        "<model>_window_probs: TF on the whole logmel; <model>_patch<s>_probs: TF on logmel[:, s:s+187]",
    }
    for c in clips:
        arrays = dict(fixture[c])
        arrays["meta"] = np.array(json.dumps({**meta_common, "clip": c}))
        np.savez_compressed(FIXTURES / f"{c}.npz", **arrays)
        log(f"fixture {c}.npz: {(FIXTURES / f'{c}.npz').stat().st_size / 1024:.0f} KiB")

    lic_src = musicnn_dir.parent / f"musicnn-{MUSICNN_VERSION}.dist-info" / "LICENSE.md"
    licence_text = lic_src.read_text()
    (PRETRAINED / "LICENSE-musicnn.txt").write_text(licence_text)
    if write_models:
        save_models(nets, report, musicnn_dir, licence_text)
    (work / "report.json").write_text(json.dumps(report, indent=1))
    return nets, report


def save_models(nets, report, musicnn_dir, licence_text):
    from genredream.models import contract
    from genredream.models.archs.musicnn import MUSICNN_LAYERS, musicnn_mel_config

    for short, model in MODELS.items():
        res = (musicnn_dir / model / "experiment.result").read_text().strip()
        cfg = json.loads((musicnn_dir / model / "config.json").read_text())
        data = "MagnaTagATune (MTT), 50 most frequent tags" if short == "mtt" else "Million Song Dataset (MSD), 50 most frequent last.fm tags"
        meta = {
            "name": f"musicnn-{short}",
            "arch": "musicnn",  # what the model is (engine/dream/defaults.py keys the dream's defaults by it)
            "version": MUSICNN_VERSION,
            "labels": report[short]["labels"],
            "genre_labels": report[short]["genre_labels"],
            "task": "tags",
            "activation": "sigmoid",
            "sample_rate": SR,
            "window_seconds": 5.0,
            "input": "mel",
            "mel": musicnn_mel_config().to_dict(),
            "layers": list(MUSICNN_LAYERS),
            "licence": "ISC (Music Technology Group, Universitat Pompeu Fabra 2019); full text in LICENSE-musicnn.txt:\n"
            + licence_text,
            "provenance": {
                "source": f"musicnn {MUSICNN_VERSION} (PyPI), checkpoint {model}",
                "authors": "Jordi Pons, Xavier Serra (Music Technology Group, UPF)",
                "paper": "Pons & Serra, musicnn: pre-trained convolutional neural networks for music audio tagging, ISMIR LBD 2019",
                "data": data,
                "accuracy": res.replace("\n", "; "),
                "split": "the authors' test split" if short == "mtt" else "the authors' MSD validation/test split (as reported by the package)",
                "trained_on_frames": cfg["n_frames"],
                "converted_by": "scripts/convert_musicnn.py",
                "checkpoint_sha256": sha256(musicnn_dir / model / ".data-00000-of-00001"),
                "max_abs_dev_vs_tensorflow": report[short]["max_abs_dev_probs"],
                "tensorflow_version": report[short]["tf_version"],
            },
        }
        path = PRETRAINED / f"musicnn-{short}.pt"
        contract.save(nets[short], meta, path)
        contract.validate(path)
        side = {k: v for k, v in report[short].items() if k not in ("labels",)}
        (PRETRAINED / f"musicnn-{short}.json").write_text(json.dumps(side, indent=1) + "\n")
        log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


# ---------------------------------------------------------------------------
# stage 4: what the engine's choices cost (project venv; the port is proven by now)


def window_vs_patches(net, lm, stride=1):
    """Tag probabilities of the whole window, and of every 187-frame patch in it (start stride ``stride``)."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(lm))[None]
        whole = torch.sigmoid(net(x))[0].numpy()
        starts = list(range(0, lm.shape[1] - PATCH + 1, stride))
        patches = torch.stack([x[0, :, s : s + PATCH] for s in starts])
        per = torch.cat([torch.sigmoid(net(patches[i : i + 32])) for i in range(0, len(starts), 32)]).numpy()
    return whole, per


def stage_analyse(work: Path):
    """5 s window vs mean of 3 s patches; librosa-0.7 reflect padding; the float16 trap. Prints a JSON summary."""
    import librosa
    import torch

    sys.path.insert(0, str(ROOT))
    from genredream.engine.mel import logc_scale

    torch.set_num_threads(2)
    clips = {"orchestral": clip_orchestral(5.0), "electronic": clip_electronic(5.0)}
    clips.update(extra_clips())
    out = {}
    for short in MODELS:
        ref = np.load(work / f"reference_{short}.npz")
        labels = [str(s) for s in ref["labels"]]
        net = build_torch(labels, dict(np.load(work / f"weights_{short}.npz")))
        rows = {}
        for name, y in clips.items():
            _, y = quantise(y)
            lm = logmel(y)
            assert lm.shape[1] == 313, lm.shape
            whole, per = window_vs_patches(net, lm)
            mean3 = per.mean(axis=0)
            d = np.abs(whole - mean3)
            spread = np.abs(per - mean3).max()  # how far single 3 s patches stray from their mean
            top_w, top_m = np.argsort(-whole)[:5], np.argsort(-mean3)[:5]
            # librosa 0.7 (musicnn's era) padded centred frames by reflection, not zeros
            mel_reflect = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=256, n_mels=96, pad_mode="reflect")
            with torch.no_grad():
                p_reflect = torch.sigmoid(net(torch.from_numpy(logc_scale(mel_reflect))[None]))[0].numpy()
                # the package extractor's float16 trap
                with np.errstate(over="ignore"):
                    mel16 = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=256, n_mels=96).astype(np.float16)
                    lm16 = np.log10(10000 * mel16 + 1)
                n_inf = int(np.isinf(lm16).sum())
                p16 = torch.sigmoid(net(torch.from_numpy(np.nan_to_num(lm16.astype(np.float32), posinf=1e30))[None]))[0].numpy()
            rows[name] = {
                "max_abs_window_minus_mean_patches": float(d.max()),
                "mean_abs_window_minus_mean_patches": float(d.mean()),
                "tag_of_max": labels[int(d.argmax())],
                "max_abs_single_patch_minus_mean_patches": float(spread),
                "top5_window": [f"{labels[i]} {whole[i]:.2f}" for i in top_w],
                "top5_mean_patches": [f"{labels[i]} {mean3[i]:.2f}" for i in top_m],
                "top5_overlap": len(set(top_w) & set(top_m)),
                "max_abs_reflect_pad_minus_ours": float(np.abs(p_reflect - whole).max()),
                "float16_trap_inf_values": n_inf,
                "float16_trap_max_abs_change": float(np.abs(p16 - whole).max()),
            }
            r = rows[name]
            log(
                f"{short} {name:>15s}: |5s - mean(3s)| max {r['max_abs_window_minus_mean_patches']:.3f} "
                f"({r['tag_of_max']}) mean {r['mean_abs_window_minus_mean_patches']:.4f}; single patch vs mean "
                f"{r['max_abs_single_patch_minus_mean_patches']:.3f}; top5 overlap {r['top5_overlap']}/5; "
                f"reflect pad {r['max_abs_reflect_pad_minus_ours']:.1e}; f16 infs {n_inf} -> {r['float16_trap_max_abs_change']:.2f}"
            )
            log("      window: " + ", ".join(r["top5_window"]))
        out[short] = rows
    (work / "analysis.json").write_text(json.dumps(out, indent=1))
    merge_analysis(work)
    print(json.dumps(out, indent=1))


def merge_analysis(work: Path):
    """Add the 5 s vs 3 s figures to the report beside each model file."""
    out = json.loads((work / "analysis.json").read_text())
    for short in MODELS:
        side = PRETRAINED / f"musicnn-{short}.json"
        if not side.exists():
            continue
        rep = json.loads(side.read_text())
        rep["window_5s_vs_mean_of_3s_patches"] = {
            clip: {k: r[k] for k in ("max_abs_window_minus_mean_patches", "mean_abs_window_minus_mean_patches",
                                     "max_abs_single_patch_minus_mean_patches", "top5_overlap", "top5_window")}
            for clip, r in out[short].items()
        }
        side.write_text(json.dumps(rep, indent=1) + "\n")


# ---------------------------------------------------------------------------
# re-export: the architecture's code changed (new methods, faster paths), the weights did not


def stage_reexport():
    """Rebuild the shipped files from their own weights and metadata with the current code.

    Needs no TensorFlow: the weights come from the shipped files. Before a
    file is replaced, the new network must agree with the old file on the
    test fixtures' mel within 1e-5 in the tag probabilities.
    """
    import numpy as np
    import torch

    from genredream.models import contract
    from genredream.models.archs.musicnn import Musicnn

    fixtures = sorted((ROOT / "tests" / "fixtures" / "musicnn").glob("*.npz"))
    for short in MODELS:
        path = PRETRAINED / f"musicnn-{short}.pt"
        old = contract.load(path)
        net = Musicnn(list(old.meta["labels"])).eval()
        net.load_state_dict(old.module.state_dict())
        worst = 0.0
        with torch.no_grad():
            for f in fixtures:
                x = torch.from_numpy(np.load(f)["logmel"].astype(np.float32))
                x = x[None] if x.dim() == 2 else x
                worst = max(worst, float((torch.sigmoid(net(x)) - torch.sigmoid(old.module(x))).abs().max()))
        if worst > 1e-5:
            raise SystemExit(f"{path}: the re-built network differs from the shipped file by {worst:.3g}; not replaced")
        contract.save(net, dict(old.meta), path)
        log(f"re-exported {path} ({path.stat().st_size / 1e6:.1f} MB; max deviation from the old file {worst:.2g})")


# ---------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["inputs", "tf", "torch", "analyse", "all", "reexport"])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "musicnn_convert")
    ap.add_argument("--musicnn-dir", type=Path, help="unpacked musicnn package directory (the one holding models.py)")
    ap.add_argument("--tf-python", default=os.environ.get("TF_PYTHON", "/tmp/tfvenv/bin/python"))
    ap.add_argument("--no-models", action="store_true", help="stage torch: compare and write fixtures only")
    a = ap.parse_args(argv)
    if a.stage == "reexport":
        stage_reexport()
        return
    a.work.mkdir(parents=True, exist_ok=True)
    mdir = a.musicnn_dir or fetch_musicnn(a.work, sys.executable)
    if a.stage in ("inputs", "all"):
        stage_inputs(a.work)
    if a.stage == "tf":
        stage_tf(a.work, mdir)
    elif a.stage == "all":
        subprocess.run([a.tf_python, __file__, "tf", "--work", str(a.work), "--musicnn-dir", str(mdir)], check=True)
    if a.stage in ("torch", "all"):
        stage_torch(a.work, mdir, write_models=not a.no_models)
    if a.stage in ("analyse", "all"):
        stage_analyse(a.work)


if __name__ == "__main__":
    main()
