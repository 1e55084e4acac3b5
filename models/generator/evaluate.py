"""Evaluating generators (`genredream evaluate-generator`): the paper's Figure 7, and what it hid.

For every genre that has a generator and that the classifier knows, the
first ``--songs`` songs of the held-out collection each seed a continuation:
the 0.9 s from ``--offset`` (default 1 s), decoded at 10 kHz, is continued
for ``--seconds`` (default 5), and the generated audio alone (not the seed)
is classified. As a reference the same classifier scores the *real* audio
that follows the same seed, decoded at 10 kHz too (so both have the
generator's 5 kHz bandwidth, and only the generation differs).

Also measured, because the paper's networks "dissolved into noise after about
2 s" with an amplitude "much lower" than the seed:

The real continuation is also scored at the classifier's own rate (full
band): a classifier trained on 22 kHz audio may call everything band-limited
to 5 kHz "classical" (ours do), and then Figure 7 measures the bandwidth,
not the generator. :func:`bandlimit_collection` writes a 10 kHz copy of a
collection to train a classifier that hears what the generator can make.

* level: RMS (dBFS) of every 0.1 s of the continuation, with level matching
  (the default) and the network's raw output, against the seed's RMS and the
  real continuation's;
* noisiness: spectral flatness (geometric / arithmetic mean of the power
  spectrum, 0 = pure tones, about 0.56 for white noise with these frames) of
  every 0.5 s, generated against real.

Writes into ``--out-dir``: ``generated.confusion.png``, ``real.confusion.png``,
``raw.confusion.png`` (the network's own level, as in the paper),
``real_fullband.confusion.png``,
``levels.png``, ``examples.png`` (spectrograms) and ``evaluation.json``; ``--examples N`` also writes N
generated WAVs per genre.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

__all__ = ["bandlimit_collection", "evaluate_generators", "spectral_flatness", "DEFAULT_CLASSIFIER"]

#: The paper classified its generated clips with its own CNN (our ``doyle``).
DEFAULT_CLASSIFIER = "doyle"


def _norm(label):
    return re.sub(r"[^a-z0-9]", "", label.lower())


def spectral_flatness(x, n_fft=512):
    """Mean spectral flatness of ``x`` over Hann frames of ``n_fft`` (hop n_fft/2); nan for silence."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < n_fft:
        return float("nan")
    hop = n_fft // 2
    idx = np.arange(n_fft)[None, :] + hop * np.arange((x.size - n_fft) // hop + 1)[:, None]
    p = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)) ** 2 + 1e-20
    keep = p.mean(axis=1) > 1e-12
    if not keep.any():
        return float("nan")
    p = p[keep]
    return float(np.mean(np.exp(np.mean(np.log(p), axis=1)) / np.mean(p, axis=1)))


def _chunk_db(x, n):
    from genredream.models.generator.stepper import rms_db

    return [rms_db(x[i : i + n]) for i in range(0, x.size - n + 1, n)]


def _scores(classifier, spec, audio_10k, sr_gen):
    """Softmax/sigmoid scores of one clip (resampled to the classifier's rate, fitted to its window)."""
    import soxr
    import torch

    from genredream.models.data import fit_length

    y = soxr.resample(audio_10k, sr_gen, spec.sample_rate).astype(np.float32) if spec.sample_rate != sr_gen else audio_10k
    y, _ = fit_length(y, spec.window_samples)
    y = y[: spec.window_samples]
    f = spec.song_features(y)
    x = torch.from_numpy(spec.batch([f], [0]))
    with torch.no_grad():
        logits = classifier.module(x)
    act = torch.sigmoid(logits) if classifier.meta["activation"] == "sigmoid" else torch.softmax(logits, 1)
    return act[0].double().numpy()


def evaluate_generators(heldout, classifier, generators_dir=None, songs=10, seconds=5.0, offset=1.0, noise=0.0, seed=0, out_dir=None, examples=0, progress=False):
    """Generate from held-out songs, classify generated and real clips; return the result dict (see module doc)."""
    import soundfile as sf

    from genredream.models.contract import load
    from genredream.models.registry import resolve_model
    from genredream.models.data import load_audio, scan
    from genredream.models.generator.file import list_generators, validate_generator
    from genredream.models.generator.stepper import generate, rms_db
    from genredream.models.inputs import InputSpec
    from genredream.models.train import TrainProgress, confusion, plot_confusion

    clf = load(resolve_model(classifier))
    labels = list(clf.meta["labels"])
    spec = InputSpec(clf.meta)
    by_norm = {_norm(lab): i for i, lab in enumerate(labels)}
    gens = list_generators([generators_dir] if generators_dir else None)
    coll = scan(heldout)
    pairs, missing = [], []
    for g in coll.genres:
        if g not in gens:
            missing.append((g, "no generator"))
        elif _norm(g) not in by_norm:
            missing.append((g, f"classifier {clf.meta['name']} has no label for it"))
        else:
            pairs.append(g)
    if not pairs:
        raise ValueError(f"nothing to evaluate: {missing}")
    out_dir = Path(out_dir) if out_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    rows = {"generated": ([], []), "raw": ([], []), "real": ([], []), "real_fullband": ([], [])}
    per_clip = []
    examples_audio = []  # (genre, sr, seed, real, generated) of each genre's first song
    with TrainProgress(progress) as prog:
        bar = prog.task("generating and classifying", len(pairs) * songs)
        for genre in pairs:
            gen = validate_generator(gens[genre])
            sr, C, P = gen.sample_rate, gen.context, gen.predict
            n = int(round(seconds * sr))
            truth = by_norm[_norm(genre)]
            files = sorted((s.path for s in coll.songs if s.genre == genre), key=str)[:songs]
            for k, path in enumerate(files):
                audio = load_audio(path, sr)
                a = int(round(offset * sr))
                if audio.size < a + C + n:
                    a = max(0, audio.size - C - n)
                seed_audio = audio[a : a + C]
                real = audio[a + C : a + C + n]
                if real.size < n:
                    real = np.concatenate([real, np.zeros(n - real.size, np.float32)])
                full = load_audio(path, spec.sample_rate)  # the same 5 s at the classifier's own rate: full band
                fa = int(round((a + C) / sr * spec.sample_rate))
                real_full = full[fa : fa + spec.window_samples]
                y, info = generate(gen, seed_audio, seconds, noise=noise, seed=seed, level="match", return_info=True)
                y_raw = generate(gen, seed_audio, seconds, noise=noise, seed=seed, level="raw")
                clip = {"genre": genre, "file": str(path), "offset_s": a / sr, "seed_db": rms_db(seed_audio)}
                for kind, audio_k, rate in (("generated", y, sr), ("raw", y_raw, sr), ("real", real, sr), ("real_fullband", real_full, spec.sample_rate)):
                    s = _scores(clf, spec, audio_k, rate)
                    pred = int(np.argmax(s))
                    rows[kind][0].append(truth)
                    rows[kind][1].append(pred)
                    clip[kind] = {"predicted": labels[pred], "score_true": float(s[truth]), "db": rms_db(audio_k)}
                    if rate == sr:
                        clip[kind]["chunk_db"] = _chunk_db(audio_k, P)
                        clip[kind]["flatness"] = [spectral_flatness(audio_k[i : i + sr // 2]) for i in range(0, n - sr // 2 + 1, sr // 2)]
                per_clip.append(clip)
                if k == 0:
                    examples_audio.append((genre, sr, seed_audio, real, y))
                if out_dir and k < examples:
                    sf.write(out_dir / f"{genre}.{k}.wav", np.concatenate([seed_audio, y]), sr, subtype="PCM_16")
                prog.update(bar, 1, info=genre)
    nl = len(labels)
    res = {"classifier": clf.meta["name"], "heldout": str(Path(heldout).resolve()), "genres": pairs, "left_out": missing, "songs_per_genre": songs, "seconds": seconds, "offset_s": offset, "noise": noise, "labels": labels}
    for kind, (t, p) in rows.items():
        cm = confusion(t, p, nl)
        res[kind] = {
            "accuracy": float(np.mean(np.array(t) == np.array(p))),
            "per_genre": {g: float(np.mean([c[kind]["predicted"] == labels[by_norm[_norm(g)]] for c in per_clip if c["genre"] == g])) for g in pairs},
            "confusion": cm.tolist(),
            "clip_db_mean": float(np.mean([c[kind]["db"] for c in per_clip])),
        }
    res["seed_db_mean"] = float(np.mean([c["seed_db"] for c in per_clip]))
    for kind in ("generated", "raw", "real"):
        res[kind]["chunk_db_mean"] = np.mean([c[kind]["chunk_db"] for c in per_clip], axis=0).tolist()
        res[kind]["flatness_mean"] = np.nanmean([c[kind]["flatness"] for c in per_clip], axis=0).tolist()
    res["level_vs_seed_db"] = {k: res[k]["clip_db_mean"] - res["seed_db_mean"] for k in ("generated", "raw", "real")}
    res["classifier_sample_rate"] = spec.sample_rate
    res["clips"] = per_clip
    if out_dir:
        rows_idx = sorted({by_norm[_norm(g)] for g in pairs})
        sub = [labels[i] for i in rows_idx]
        for kind, title in (("generated", "generated (level matched)"), ("raw", "generated (network's own level)"), ("real", "real continuation at 10 kHz"), ("real_fullband", f"real continuation at {spec.sample_rate} Hz")):
            cm = np.asarray(res[kind]["confusion"])[np.ix_(rows_idx, rows_idx)]
            plot_confusion(cm, sub, out_dir / f"{kind}.confusion.png", f"{clf.meta['name']} on {title}: accuracy {res[kind]['accuracy']:.0%}")
        plot_levels(res, out_dir / "levels.png")
        plot_examples(examples_audio[:3], out_dir / "examples.png")
        (out_dir / "evaluation.json").write_text(json.dumps(res, indent=1))
    return res


def bandlimit_collection(src, dst, sr=10_000, genres=None):
    """Write a copy of a folder-per-genre collection resampled to ``sr`` (16-bit WAV), same layout.

    Train a classifier on it (``genredream train DST --arch zheng ...``; the
    files are decoded back at the model's rate) to score generated audio with
    a classifier that never relied on content above ``sr / 2``.
    Returns the number of files written.
    """
    import soundfile as sf

    from genredream.models.data import load_audio, scan

    coll = scan(src, genres)
    dst = Path(dst)
    n = 0
    for song in coll.songs:
        out = dst / song.genre / (song.path.stem + ".wav")
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, np.clip(load_audio(song.path, sr), -1, 1), sr, subtype="PCM_16")
        n += 1
    return n


def plot_levels(res, path):
    """Two panels: RMS per 0.1 s (dBFS) and spectral flatness per 0.5 s, generated vs raw vs real."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    colors = {"generated": "C0", "raw": "C1", "real": "C2"}
    names = {"generated": "generated, level matched", "raw": "generated, network's level", "real": "real continuation"}
    for kind in ("generated", "raw", "real"):
        db = res[kind]["chunk_db_mean"]
        a.plot(0.1 * np.arange(len(db)) + 0.05, db, color=colors[kind], label=names[kind])
        fl = res[kind]["flatness_mean"]
        b.plot(0.5 * np.arange(len(fl)) + 0.25, fl, color=colors[kind], marker=".", label=names[kind])
    a.axhline(res["seed_db_mean"], color="k", ls="--", lw=1, label="seed (0.9 s)")
    a.set_xlabel("seconds after the seed")
    a.set_ylabel("RMS (dBFS), mean over clips")
    a.legend(fontsize=7)
    b.set_xlabel("seconds after the seed")
    b.set_ylabel("spectral flatness (0 tonal, ~0.56 noise)")
    b.set_ylim(0, 0.7)
    fig.suptitle(f"{res['classifier']}: {len(res['genres'])} genres x {res['songs_per_genre']} held-out songs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_examples(examples, path):
    """Spectrograms of seed + real continuation next to seed + generated, one row per genre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        return
    fig, axes = plt.subplots(len(examples), 2, figsize=(8, 1.6 * len(examples) + 0.4), squeeze=False, sharex=True, sharey=True)
    for row, (genre, sr, seed, real, gen) in enumerate(examples):
        for col, (what, cont) in enumerate((("real", real), ("generated", gen))):
            ax = axes[row, col]
            x = np.concatenate([seed, cont]).astype(np.float64) + 1e-9
            ax.specgram(x, NFFT=512, Fs=sr, noverlap=384, cmap="magma", vmin=-140, vmax=-20)
            ax.axvline(seed.size / sr, color="w", lw=1, ls="--")
            ax.set_title(f"{genre}: seed + {what}", fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("s (dashed: end of the 0.9 s seed)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=55)
    plt.close(fig)
