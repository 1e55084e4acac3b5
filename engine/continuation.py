"""`genredream run --continue`: when the performer stops, keep playing in their genre.

A :class:`Continuer` is an output transform (:mod:`genredream.engine.transform`,
the engine's ``transform`` slot), as the streaming
:class:`genredream.engine.dream.stream.Dreamer` is: it is called once per hop on the inference worker (after the
classifiers) and writes the engine's output stream ``engine.output``, where
``engine.output[j]`` is what plays for input sample ``j``.

While input is present, the output is the input (dry) and the continuer
*follows* it: it keeps the top genre of the classifier's latest result (a
non-low-energy window) and the input ring holds the context. When the input
falls silent (every 10 ms block of it under ``threshold`` dBFS for at least
``hold`` seconds), the output from the silence's first sample on is the dry
input plus a continuation that a Doyle & Lopez generator
(:mod:`genredream.models.generator`) produces, 0.1 s at a time, from the last 0.9 s
before the silence, in the current top genre (the generator can change
between chunks when the classifier's top genre changes). When input returns
the continuation fades out and the dry input plays alone again.

Output, sample-exact, no clicks
-------------------------------
After the job of hop boundary ``B`` (input samples), ``engine.output`` has
exactly ``B - lag_samples`` samples, where ``lag_samples = hold + one 10 ms
block``: a sample is written only when it is known whether the silence it
belongs to lasted ``hold``. The continuation is added with a raised-cosine
envelope (30 ms in at the silence's start, 30 ms out where the input returns);
each generated chunk starts where the previous one's slope points
(:func:`genredream.models.generator.stepper._declick`) and is resampled back to the input rate
with a streaming soxr resampler, so nothing jumps. ``latency_samples`` is
what a device should delay its output by (as for the dreamer,
:func:`genredream.engine.transform.output_latency`): ``lag`` + one hop (until
the next job) + one hop for the job to finish + a device block.

The continuation is level matched: every chunk is scaled to the RMS of the
0.9 s seed (the fix for the paper's too-quiet generators, see docs/generator.md).
"""

from __future__ import annotations

import collections
import math
import re
import time

import numpy as np

from genredream.engine.transform import FADE_S, OutputTransform, output_latency

__all__ = ["Continuer", "ContinuationError", "DEFAULT_THRESHOLD_DB", "DEFAULT_HOLD_S", "attach_continuer"]

#: Input quieter than this (dBFS, per 10 ms block) is silence.
DEFAULT_THRESHOLD_DB = -50.0
#: Silence must last this long before the continuation starts (shorter rests are music).
DEFAULT_HOLD_S = 0.3
#: Block of the silence detector.
BLOCK_S = 0.01


class ContinuationError(ValueError):
    """The continuer cannot run as asked (no generators, an unknown genre, ...)."""


def _norm(label):
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


class Continuer(OutputTransform):
    """Streams a genre-conditioned continuation whenever the input falls silent.

    Parameters
    ----------
    generators : dict {genre: path} or folder or None
        Generator files (default: the installed ones, :func:`genredream.models.generator.list_generators`).
    model : str, optional
        Name of the engine's classifier whose top genre chooses the generator
        (default: the first loaded model with a label that has a generator).
    genre : str, optional
        Always continue in this genre (no classifier needed).
    threshold_db : float
        Silence threshold per 10 ms block, dBFS.
    hold : float
        Seconds of silence before the continuation starts.
    noise, seed : float, int
        Noise fed back while generating (:func:`genredream.models.generator.generate`), and its seed.
    headroom : float
        Share of a hop a job may take, in the reported latency.

    Attributes
    ----------
    latency_samples, lag_samples : int
        See the module docstring (set by :meth:`prepare`).
    output_sinks : list of callable(block, start_index)
        Called with every block written to ``engine.output``.
    history : deque of dict
        One entry per hop: seq, boundary, state (``follow``/``continue``), genre, chunks generated, seconds.
    counters : collections.Counter
        ``hops``, ``chunks``, ``continuations`` (silences that started one), ``late_chunks``.
    """

    kind = "continuation"
    name = "continuation"

    def __init__(self, generators=None, model=None, genre=None, threshold_db=DEFAULT_THRESHOLD_DB, hold=DEFAULT_HOLD_S, noise=0.0, seed=0, headroom=1.0):
        from genredream.models.generator import list_generators

        if generators is None or isinstance(generators, (str, bytes)) or hasattr(generators, "__fspath__"):
            found = list_generators(None if generators is None else [generators])
        else:
            found = dict(generators)
        if not found:
            raise ContinuationError("no generators installed: train them with `genredream train-generator DATA --all --out-dir DIR` (or pass --continue-generators DIR)")
        if genre is not None and genre not in found:
            raise ContinuationError(f"no generator for genre {genre!r}; generators: {', '.join(sorted(found))}")
        if not (hold > 0 and math.isfinite(hold)):
            raise ContinuationError(f"hold must be a positive number of seconds, got {hold!r}")
        self.paths = found
        #: The generators' rate (the engine keeps a front end of this rate alive while attached).
        self.sample_rate = 10_000
        self.model_name = model
        self.fixed_genre = genre
        self.threshold_db = float(threshold_db)
        self.hold_s = float(hold)
        self.noise = float(noise)
        self.seed = int(seed)
        self.headroom = float(headroom)
        self.enabled = True
        self.gens = {}
        self.genre = genre
        self.output_sinks = []
        self.history = collections.deque(maxlen=2000)
        self.counters = collections.Counter()
        self.latency_samples = None
        self.lag_samples = None
        self._prepared_for = None
        self._engine_id = None
        self._finished = False

    # -- parameters (any thread: the OSC bridge) ----------------------------------

    def set_params(self, **kw):
        """Change ``enabled`` (bool), ``genre`` (a genre with a generator, or None for the
        classifier's top genre), ``threshold_db`` or ``noise`` while running; they apply
        from the next hop. Raises :class:`ContinuationError` (a ValueError) and changes
        nothing on a bad key or value.
        """
        known = ("enabled", "genre", "threshold_db", "noise")
        unknown = sorted(set(kw) - set(known))
        if unknown:
            raise ContinuationError(f"unknown continuation parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if kw.get("genre") is not None and kw["genre"] not in self.paths:
            raise ContinuationError(f"no generator for genre {kw['genre']!r}; generators: {', '.join(sorted(self.paths))}")
        for key in ("threshold_db", "noise"):
            if key in kw and not (isinstance(kw[key], (int, float)) and math.isfinite(kw[key]) and (key != "noise" or kw[key] >= 0)):
                raise ContinuationError(f"{key} must be a finite number{' >= 0' if key == 'noise' else ''}, got {kw[key]!r}")
        if "enabled" in kw:
            self.enabled = bool(kw["enabled"])
        if "genre" in kw:
            self.fixed_genre = kw["genre"]
        if "threshold_db" in kw:
            self.threshold_db = float(kw["threshold_db"])
        if "noise" in kw:
            self.noise = float(kw["noise"])
        return {"enabled": self.enabled, "genre": self.fixed_genre, "threshold_db": self.threshold_db, "noise": self.noise}

    # -- setting up -------------------------------------------------------------

    def prepare(self, engine):
        """Load and validate the generators, fix the sample-exact layout (outside the engine's lock)."""
        from genredream.models.generator import validate_generator

        if not self.gens:
            for g, p in self.paths.items():
                self.gens[g] = validate_generator(p)
        first = next(iter(self.gens.values()))
        self.gen_sr, self.C, self.P = first.sample_rate, first.context, first.predict
        self.sample_rate = self.gen_sr
        for g, gf in self.gens.items():
            if (gf.sample_rate, gf.context, gf.predict) != (self.gen_sr, self.C, self.P):
                raise ContinuationError(f"generator {g} ({gf.path}) has another rate or shape than {first.genre}'s")
        sr = engine.sample_rate
        self.sr = sr
        self.block = max(1, int(round(BLOCK_S * sr)))
        self.hold = int(math.ceil(self.hold_s * sr))
        self.fade = max(2, int(round(FADE_S * sr)))
        self.seed_in = int(math.ceil((self.C / self.gen_sr + 0.1) * sr))  # input samples the seed is cut from
        if self.seed_in + self.hold + engine.hop_samples > engine.ring.capacity:
            raise ContinuationError(f"the engine's input ring ({engine.ring.capacity} samples) is too short for a {self.C / self.gen_sr:g} s seed")
        self.lag_samples = self.hold + self.block
        self.latency_samples = output_latency(self.lag_samples, engine.hop_samples, self.headroom)
        # Warm up: TorchScript specialises on the first calls.
        import torch

        with torch.no_grad():
            for gf in self.gens.values():
                gf.module(torch.zeros(1, self.C))
        self._prepared_for = id(engine)

    def attach(self, engine):
        """Start following ``engine`` from its current input position."""
        if self._prepared_for != id(engine):
            raise ContinuationError("Continuer.prepare(engine) must run before attach")
        if self._engine_id is not None and self._engine_id != id(engine):
            raise ContinuationError("this Continuer is attached to another engine; make a new one")
        self._engine_id = id(engine)
        if getattr(engine, "output", None) is None:  # engines before the output hook: give it its output ring
            from genredream.engine.ringbuffer import RingBuffer

            engine.output = RingBuffer(engine.ring.capacity)
        start = engine.output.total_written
        if start < engine.ring.total_written:  # attached mid-stream: what came before passes dry
            dry, _ = engine.ring.read_since(max(start, engine.ring.oldest_available))
            engine.output.write(np.zeros(engine.ring.total_written - start - dry.size, np.float32))
            engine.output.write(dry)
            start = engine.ring.total_written
        self._analysed = start  # input index up to which 10 ms blocks were classified active/silent
        self._silent_since = start  # None while active; the first silent sample otherwise
        self._played = False  # any active input yet (nothing to continue before)
        self._regions = []  # [start, end or None]: continuation regions, input indices
        self._gen = None  # the running continuation: dict(start, stepper, back, out, out_start)
        self._finished = False

    # -- per hop -------------------------------------------------------------------

    def _update_genre(self, engine):
        if self.fixed_genre:
            self.genre = self.fixed_genre
            return
        results = getattr(engine, "last_results", {}) or {}
        names = [self.model_name] if self.model_name else list(results)
        by_norm = {_norm(g): g for g in self.gens}
        for name in names:
            r = results.get(name)
            if r is None or r.error or not r.scores or r.low_energy:
                continue
            allowed = set(r.genre_labels or r.labels)
            ranked = sorted((s, lab) for lab, s in zip(r.labels, r.scores) if lab in allowed and _norm(lab) in by_norm)
            if ranked:
                self.genre = by_norm[_norm(ranked[-1][1])]
                return

    def _analyse(self, engine, upto):
        """Classify whole 10 ms blocks up to ``upto`` as active or silent; open/close regions."""
        while self._analysed + self.block <= upto:
            a = self._analysed
            x, start = engine.ring.read_since(a, max_n=self.block)
            active = x.size > 0 and 20 * math.log10(max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-10)) >= self.threshold_db
            b = a + self.block
            if active:
                if self._regions and self._regions[-1][1] is None:
                    self._regions[-1][1] = a  # input returns: the continuation fades out from here
                self._silent_since = None
                self._played = True
            else:
                if self._silent_since is None:
                    self._silent_since = a
                s0 = self._silent_since
                open_region = self._regions and self._regions[-1][1] is None
                if not open_region and self.enabled and self._played and b - s0 >= self.hold and (not self._regions or self._regions[-1][0] != s0):
                    if self.genre is not None:
                        self._regions.append([s0, None])
                        self.counters["continuations"] += 1
            self._analysed = b

    def _start_generation(self, engine, s0):
        import soxr

        from genredream.engine.resample import StreamingResampler
        from genredream.models.generator import Stepper

        seed, start = engine.ring.read_since(max(0, s0 - self.seed_in), max_n=min(s0, self.seed_in))
        seed = seed[: max(0, s0 - start)]
        y = soxr.resample(seed, self.sr, self.gen_sr).astype(np.float32) if seed.size else np.zeros(0, np.float32)
        if y.size < self.C:
            y = np.concatenate([np.zeros(self.C - y.size, np.float32), y])
        self._gen = {
            "start": s0,
            "stepper": Stepper(y, self.C, self.P, noise=self.noise, seed=self.seed + self.counters["continuations"]),
            "back": StreamingResampler(self.gen_sr, self.sr) if self.gen_sr != self.sr else None,
            "out": np.zeros(0, np.float32),
            "out_start": s0,
        }

    def _generated(self, a, b):
        """Continuation samples for input indices [a, b), generating chunks as needed."""
        g = self._gen
        while g["out_start"] + g["out"].size < b:
            y = g["stepper"].step(self.gens[self.genre].module)
            self.counters["chunks"] += 1
            if g["back"] is not None:
                y = g["back"].process(y)
            g["out"] = np.concatenate([g["out"], y.astype(np.float32, copy=False)])
        lo = a - g["out_start"]
        seg = g["out"][lo : lo + (b - a)].copy()
        # drop what will not be read again
        g["out"] = g["out"][lo:]
        g["out_start"] = a
        return seg

    def _envelope(self, region, a, b):
        """The continuation's gain for input indices [a, b) of ``region``: fade in at its start, out at its end."""
        idx = np.arange(a, b)
        s0, r = region
        w = np.clip((idx - s0 + 0.5) / self.fade, 0.0, 1.0)
        if r is not None:
            w = np.minimum(w, np.clip(1.0 - (idx - r + 0.5) / self.fade, 0.0, 1.0))
        return (0.5 - 0.5 * np.cos(np.pi * w)).astype(np.float32)

    def _write(self, engine, end):
        out_ring = engine.output
        o = out_ring.total_written
        n = end - o
        if n <= 0:
            return 0
        out = self.read_input(engine, o, n).copy()
        made = 0
        for region in self._regions:
            s0, r = region
            stop = None if r is None else r + self.fade
            a, b = max(o, s0), end if stop is None else min(end, stop)
            if b <= a:
                continue
            if self._gen is None or self._gen["start"] != s0:
                self._start_generation(engine, s0)
            before = self.counters["chunks"]
            out[a - o : b - o] += self._envelope(region, a, b) * self._generated(a, b)
            made += self.counters["chunks"] - before
        self._regions = [rg for rg in self._regions if rg[1] is None or rg[1] + self.fade > end]
        if self._gen is not None and not any(rg[0] == self._gen["start"] for rg in self._regions):
            self._gen = None
        np.clip(out, -1.0, 1.0, out=out)
        out_ring.write(out)
        self.to_sinks(engine, out, o)
        return made

    def process(self, engine, job):
        """One hop (inference worker, after the classifiers): follow or continue, write ``engine.output`` up to ``B - lag``."""
        tag = getattr(job, "dream", None)
        if tag is not None and isinstance(tag, tuple) and tag and tag[0] is not self:
            return None
        if self._finished:
            return None
        t0 = time.perf_counter()
        # The classifiers have just scored this hop's window: their top genre is
        # the current one (results of low-energy windows are ignored).
        self._update_genre(engine)
        self._analyse(engine, job.boundary)
        made = self._write(engine, job.boundary - self.lag_samples)
        dt = time.perf_counter() - t0
        state = "continue" if self._regions and self._regions[-1][1] is None and self._regions[-1][0] < job.boundary - self.lag_samples else "follow"
        entry = {"seq": job.seq, "boundary": job.boundary, "state": state, "genre": self.genre, "chunks": made, "seconds": dt, "rtf": dt / engine.hop}
        self.history.append(entry)
        self.counters["hops"] += 1
        return entry

    def finish(self, engine):
        """End of a file: decide the last samples with what is known and fill ``engine.output`` to the input's end."""
        if self._finished or self._engine_id != id(engine):
            return
        self._analyse(engine, engine.ring.total_written)
        self._write(engine, engine.ring.total_written)
        self._finished = True

    # -- reporting ----------------------------------------------------------------------

    def status(self):
        h = self.history[-1] if self.history else None
        rtfs = [e["rtf"] for e in self.history]
        return {
            "kind": "continuation",
            "genre": self.genre,
            "state": h["state"] if h else "follow",
            "generators": sorted(self.gens or self.paths),
            "threshold_db": self.threshold_db,
            "hold_s": self.hold_s,
            "latency_samples": self.latency_samples,
            "lag_samples": self.lag_samples,
            "rtf_p50": float(np.median(rtfs)) if rtfs else float("nan"),
            "rtf_max": float(np.max(rtfs)) if rtfs else float("nan"),
            "counters": dict(self.counters),
        }

    def summary(self):
        st = self.status()
        return (
            f"continue (genre {st['genre']}, silence < {self.threshold_db:g} dBFS for {self.hold_s:g} s): latency {st['latency_samples']} samples "
            f"({st['latency_samples'] / self.sr:.3f} s), continuations {self.counters['continuations']}, chunks {self.counters['chunks']}, "
            f"RTF p50 {st['rtf_p50']:.3f} max {st['rtf_max']:.3f}"
        )


def attach_continuer(engine, args, writers=None):
    """Start the continuation the options describe on ``engine`` (in the engine's output-transform slot).

    Raises :class:`ContinuationError` (a ValueError) with the reason.
    ``--continue-out`` adds a WAV writer to the output sinks and to ``writers``.
    """
    if getattr(engine, "set_transform", None) is None:
        raise ContinuationError("this engine has no output hook (Engine.set_transform)")
    if args.continue_model and args.continue_model not in engine.models:
        raise ContinuationError(f"--continue-model {args.continue_model!r} is not a loaded model; loaded: {', '.join(engine.models)}")
    c = Continuer(
        args.continue_generators,
        model=args.continue_model,
        genre=args.continue_genre,
        threshold_db=args.continue_threshold,
        hold=args.continue_hold,
        noise=args.continue_noise,
    )
    engine.set_transform(c)
    if args.continue_out:
        from genredream.engine.io.sinks import add_wav_output

        add_wav_output(c, args.continue_out, engine.sample_rate, writers)
    return c
