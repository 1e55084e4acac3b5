"""Incremental dreaming: the audio deep dream of Geng et al. (2017), streamed.

The engine calls a :class:`Dreamer` once per hop (after the classifiers, on
the inference worker). The dreamer keeps, at the model's sample rate, a
window whose end is the newest audio:

::

    |<------------------- dream window (the model's input) ------------------->|
    |   frozen: already emitted, dreamed audio (context)   |  live: being dreamed |
                                                           ^ emitted        newest ^

Each hop it appends the new samples to the live part (as the dry signal;
the older live samples keep their dream: a warm start), runs ``K``
gradient steps on the live part only, and then emits the oldest hop. Toward
a target (by default) a step ascends the target's logit through a
time-varying EQ of the window (:class:`genredream.engine.dream.eq.StreamingEq`,
the offline dream's parametrisation: audible, and heard by other networks);
for a layer objective, ``away`` or ``param="wave"`` it is Geng et al.'s
waveform step (:func:`genredream.engine.dream.wave.ascent_step`: normalised steps,
clipped to [-1, 1], spectrally masked by the original). The live part is ``dream latency`` seconds
long (from one hop to the window): every sample stays live for
``latency / hop`` hops, so it gets ``K * latency / hop`` steps. More latency,
more dream per sample, for the same cost per hop.

No clicks: the gradient is multiplied by raised-cosine fades (30 ms) that
fall to zero at the frozen boundary and at the newest sample, so the emitted
audio joins the frozen audio continuously and the dry samples appended next
hop join the live ones continuously.

Output, sample-exact: see :mod:`genredream.engine.dream.output`.

Channels and depth
------------------
The dream runs on the mid (the engine's mono ring: the mean of the input's
channels). When the engine keeps the channels (:meth:`Engine.set_channels`,
:mod:`genredream.engine.channels`), every hop's change is also added to each channel
of the input, into ``engine.output_ch`` (same clock as ``engine.output``),
and the output sinks get those frames. ``depth`` (0..1,
:mod:`genredream.engine.dream.depth`) sets steps per hop and the share of the change
heard from the next hop, and the dream latency when the dreamer is laid out;
at an effective mix of 0 (depth 0, mix 0, or disabled) the output is the dry
input, sample for sample, unclipped.

Default steps per hop
---------------------
Picked so that one hop's steps take at most half the hop (real-time factor
0.5) on the 2-core machines, one torch thread:
:data:`genredream.engine.dream.defaults.STREAM_DEFAULTS` holds the figures
measured with ``benchmarks/bench_dream.py`` for the shipped architectures
(keyed by what the model is, so a musicnn head dreams as musicnn); any
other model is timed at load (a few warm-up steps) and gets
``floor(0.5 * hop / seconds_per_step)``, between 1 and ``MAX_DEFAULT_STEPS``.
musicnn accepts any input length, and one step in its 5 s window costs
0.35-1 s, more than the whole budget (0.6 s in 3 s): it dreams in a 2 s
window (1.5 s of frozen context before the live hop, which covers the
63 frames, 1 s, that its widest temporal filter reaches back from a live
frame) with one step per hop, unless ``window`` says otherwise; a longer
dream latency gives each sample more steps.

The Dreamer is an output transform (:mod:`genredream.engine.transform`: the
engine's ``transform`` slot). Threads: :meth:`Dreamer.process` and :meth:`Dreamer.finish` run on the
engine's inference worker (or inline for files); :meth:`Dreamer.snapshot`
on its front-end worker; :meth:`Dreamer.set_params` on any thread (the OSC
bridge): parameters apply at the start of the next hop.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
import torch

from genredream.engine.dream.depth import depth_settings
from genredream.engine.dream.eq import DEFAULT_LIVE_LR, DEFAULT_MAX_DB, StreamingEq
from genredream.engine.dream.objective import DreamError, load_dream_model, make_objective
from genredream.engine.dream.layout import StreamLayout
from genredream.engine.dream.output import InputRateOutput
from genredream.engine.dream.params import PARAMS, checked_params
from genredream.engine.dream.wave import DEFAULT_DITHER, DEFAULT_MASK_RANGE_DB, DEFAULT_STEP_SIZE, SpectralMask, ascent_step
from genredream.engine.transform import OutputTransform, fade

__all__ = ["Dreamer", "DreamError", "PARAMS"]


class Dreamer(StreamLayout, InputRateOutput, OutputTransform):
    """Streams the deep dream of one model over the engine's input.

    Parameters
    ----------
    model : str, path or models.contract.LoadedModel
        The model to dream with (``--dream-model``); it needs ``features()``
        (and ``frontend()`` for mel models), checked here, at load.
    layer : str or int
        Layer name (or index) whose mean activation is ascended, or ``"all"``.
    target : str, optional
        A label to push toward (or ``away`` from) instead of a layer.
    steps : int, optional
        Gradient steps per hop (``K``); default: the architecture's (:mod:`genredream.engine.dream.defaults`) or timed.
    step_size : float
        RMS change of the live samples per step (full scale 1).
    mix : float
        0 = dry, 1 = the full dream (``dry + mix * dream``).
    latency : float, optional
        Dream latency in seconds: how long a sample stays live, from the
        engine's hop (default) to the dream window.
    window : float, optional
        Dream window in seconds (models that take any length only); default
        the model's window, or its architecture's, or ``latency + 1.5``.
    mask_range : float
        Spectral mask range in dB (0 disables it; waveform dream only).
    max_db : float
        Toward a target (the EQ dream, the default there): the strength, how
        far the EQ may boost or cut (dB; 0: no change).
    param : {"eq", "wave"}
        Toward a target: ``"eq"`` (default) dreams a time-varying EQ of the
        live part (:class:`genredream.engine.dream.eq.StreamingEq`, the offline
        dream's parametrisation: it transfers to other networks and is
        audible); ``"wave"`` the waveform ascent of Geng et al. Layer
        objectives and ``away`` always dream the waveform.
    eq_lr : float
        EQ dream: change of its tanh parameters per step (normalised gradient).
    dither : float
        RMS of the fixed noise in the model's input (never in the output).
    seed : int
        Seeds the dither.
    headroom : float
        Share of a hop a job may take to finish, in the reported latency
        (1: the engine's own deadline).
    depth : float, optional
        0..1, the performer's control (:mod:`genredream.engine.dream.depth`): sets the
        steps per hop (overriding ``steps``), the share of the change heard
        (times ``mix``) and, unless ``latency`` is given, the dream latency.
        None: ``steps``, ``mix`` and ``latency`` as given.

    Attributes
    ----------
    latency_samples : int
        After :meth:`attach`: play ``engine.output[k - latency_samples]`` at
        output sample ``k`` (input rate).
    lag_samples : int
        ``engine.ring.total_written - engine.output.total_written`` right
        after each hop's job (exact).
    output_sinks : list of callable(block, start_index)
        Called with every block written to ``engine.output`` (float32 [n],
        input rate; ``[n, channels]`` frames when the engine keeps the
        input's channels) and its absolute index: the wav writer.
    history : deque of dict
        One entry per hop: seq, boundary, objective, steps, the objective
        before the first and last step, seconds, rtf, live samples.
    counters : collections.Counter
        ``hops``, ``steps``, ``late_samples`` (output written before the
        dream reached it: dry), ``samples_lost`` (the model-rate ring overran).
    """

    kind = "dream"

    def __init__(
        self,
        model,
        layer="all",
        target=None,
        away=False,
        steps=None,
        step_size=DEFAULT_STEP_SIZE,
        mix=1.0,
        latency=None,
        window=None,
        mask_range=DEFAULT_MASK_RANGE_DB,
        dither=DEFAULT_DITHER,
        seed=0,
        headroom=1.0,
        depth=None,
        max_db=DEFAULT_MAX_DB,
        param="eq",
        eq_lr=DEFAULT_LIVE_LR,
    ):
        self.model = load_dream_model(model)
        self.name = self.model.name
        self.sample_rate = self.model.sample_rate
        self.latency_s = None if latency is None else float(latency)
        self._window_opt = None if window is None else float(window)
        self.mask = SpectralMask(self.sample_rate, mask_range)
        self.dither = float(dither)
        self.seed = int(seed)
        self.headroom = float(headroom)
        self._plock = threading.Lock()
        self._pending = {}
        self._params = {
            "enabled": True, "layer": "all", "target": None, "away": False, "steps": 1, "step_size": DEFAULT_STEP_SIZE, "mix": 1.0,
            "depth": None, "max_db": DEFAULT_MAX_DB, "param": "eq",
        }
        self._steps_given = steps is not None
        self._params = self._checked(
            {"layer": layer, "target": target, "away": away, "step_size": step_size, "mix": mix, "steps": 1 if steps is None else steps,
             "depth": depth, "max_db": max_db, "param": param}
        )
        self._base_steps = self._params["steps"]  # the budget depth scales (the table's or timed default when not given)
        self.eq = StreamingEq(self.sample_rate, max_db=self._params["max_db"], lr=eq_lr, seed=seed)
        self.objective = self._objective_of(self._params)
        self.output_sinks = []
        self.history = collections.deque(maxlen=2000)
        self.counters = collections.Counter()
        self.step_seconds = None
        self.steps_source = "given" if self._steps_given else None
        self.latency_samples = None
        self.lag_samples = None
        self._engine_id = None
        self._finished = False
        self._prepared_for = None

    # -- parameters (any thread) ------------------------------------------------

    def _objective_of(self, p):
        return make_objective(self.model, layer=None if p["target"] is not None else p["layer"], target=p["target"], away=p["away"])

    def _checked(self, kw, base=None):
        return checked_params(kw, self._params if base is None else base, self._objective_of)

    def set_params(self, **kw):
        """Change dream parameters while running; they apply at the start of the next hop.

        Keys: ``enabled`` (bool; off: no steps, dry output), ``layer`` (name,
        index or ``"all"``; leaves target mode), ``target`` (label or None),
        ``away`` (bool), ``steps`` (0-256), ``step_size`` (0-1), ``mix`` (0-1),
        ``depth`` (0-1 or None; :mod:`genredream.engine.dream.depth`: steps and the
        share heard from the next hop; the latency stays as laid out).
        Thread-safe. Checked at once: a bad value raises :class:`DreamError`
        (listing the layers or labels) and changes nothing.

        Returns
        -------
        dict
            The parameters that will apply from the next hop.
        """
        with self._plock:
            base = dict(self._params)
            base.update(self._pending)
            p = self._checked(kw, base)
            self._pending = p
            if "steps" in kw:
                self._steps_given = True
                self._base_steps = p["steps"]
        return dict(p)

    def params(self):
        """The parameters in force (or pending for the next hop), as a dict."""
        with self._plock:
            p = dict(self._params)
            p.update(self._pending)
        return p

    def _apply_pending(self):
        with self._plock:
            if self._pending:
                self._params = self._pending
                self._pending = {}
                self.objective = self._objective_of(self._params)

    def attach(self, engine):
        """Attach to ``engine`` (called by ``Engine.set_transform`` under the engine's lock).

        Attaches a front end at the model rate (``engine.frontends.attach(sr,
        None)``) and fixes the clocks: model sample ``m`` is input sample
        ``offset + m / ratio``; the dream starts at the newest model sample on
        a common grid of both rates, so output indices stay integers.
        """
        if self._prepared_for != id(engine):
            raise DreamError("Dreamer.prepare(engine) must run before attach (Engine.set_transform does both)")
        if self._engine_id is not None and self._engine_id != id(engine):
            raise DreamError("this Dreamer is attached to another engine; make a new one")
        self._engine_id = id(engine)
        rs, _ = engine.frontends.attach(self.sample_rate, None)
        self._rate = rs
        in_off = engine._cursor - rs.resampler.samples_in  # input index of model sample 0
        m0 = (rs.ring.total_written // self._p) * self._p
        self._m0 = m0
        self._m_read = m0
        self._emitted = m0
        self._avail = m0
        self._out_start = in_off + (m0 // self._p) * self._q  # input index of model sample m0
        n = self._buf_n
        self._dry = np.zeros(n, np.float32)
        self._delta = np.zeros(n, np.float32)
        self._dith = np.zeros(n, np.float32)
        self._rng = np.random.default_rng(self.seed)
        if m0 > 0:  # context: what the stream already holds, frozen and undreamed
            lo = max(rs.ring.oldest_available, m0 - n)
            hist, _ = rs.ring.read_since(lo, max_n=m0 - lo)
            self._dry[n - hist.size :] = hist
        self._in_off = in_off
        self._in_rate = engine.sample_rate
        self._hist = np.zeros(0, np.float32)  # emitted dream at the model rate, [h_start, emitted)
        self._h_start = m0
        self._final = False
        self._finished = False

    # -- the engine's workers -------------------------------------------------------

    def snapshot(self):
        """At a hop boundary (front-end worker): the model-rate index the hop's audio reaches."""
        return (self, self._rate.ring.total_written)

    def process(self, engine, job):
        """One hop (inference worker): take the new audio, K steps, emit, write ``engine.output``."""
        tag, end_m = job.dream
        if tag is not self or self._finished:
            return None
        self._apply_pending()
        t0 = time.perf_counter()
        p = self._params
        self._ingest(end_m)
        k, mix = self._effective(p)
        objs, live = self._steps(k)
        self._emit(max(self._emitted, self._avail - self._keep_m))
        self._write(engine, job.boundary - self.lag_samples, mix)
        dt = time.perf_counter() - t0
        entry = {
            "seq": job.seq,
            "boundary": job.boundary,
            "objective": self._describe(),
            "mode": self.objective.kind,
            "name": self.objective.name,
            "steps": k,
            "objective_first": objs[0] if objs else float("nan"),
            "objective_last": objs[-1] if objs else float("nan"),
            "seconds": dt,
            "rtf": dt / engine.hop,
            "live_samples": live,
            "mix": mix,  # in effect: --mix times the depth's gain
            "depth": p["depth"],
            "emitted_to": self._emitted,  # model-rate index: the frozen boundary after this hop
            "emitted_to_input": self._in_off + self._emitted * self._q / self._p,  # the same, in input samples
            "output_to": engine.output.total_written,
        }
        self.history.append(entry)
        self.counters["hops"] += 1
        self.counters["steps"] += k
        return entry

    def finish(self, engine):
        """End of a file: dream the newest samples once more, emit everything, fill ``engine.output`` to the input's end.

        Afterwards ``engine.output.total_written == engine.ring.total_written``
        (the few input samples the forward resampler still held pass dry).
        """
        if self._finished or self._engine_id != id(engine):
            return
        self._apply_pending()
        p = self._params
        self._ingest(self._rate.ring.total_written)
        k, mix = self._effective(p)
        self._steps(k)
        self._emit(self._avail)
        self._final = True
        self._write(engine, engine.ring.total_written, mix, final=True)
        self._finished = True

    # -- inside a hop ------------------------------------------------------------------

    def _effective(self, p):
        """Steps this hop and the share of the change heard: ``steps``/``mix``, or what ``depth`` makes of them."""
        if not p["enabled"]:
            return 0, 0.0
        if p["depth"] is None:
            return p["steps"], p["mix"]
        d = depth_settings(p["depth"], self._base_steps)
        return d.steps, p["mix"] * d.gain

    def _ingest(self, end_m):
        n = end_m - self._m_read
        if n <= 0:
            return
        new, start = self._rate.ring.read_since(self._m_read, max_n=n)
        if start > self._m_read:  # fell behind the model-rate ring: silence for what was lost
            gap = start - self._m_read
            self.counters["samples_lost"] += gap
            new = np.concatenate([np.zeros(gap, np.float32), new])
        self._m_read += new.size
        for i in range(0, new.size, self._buf_n // 2):
            self._append(new[i : i + self._buf_n // 2])

    def _append(self, new):
        n, size = new.size, self._buf_n
        leaving = self._avail + n - size  # model samples before this index leave the buffer
        if leaving > self._emitted:
            self._emit(leaving)  # never happens at steady state: live stays within the window
        for buf in (self._dry, self._delta, self._dith):
            buf[: size - n] = buf[n:]
        self._dry[size - n :] = new
        self._delta[size - n :] = 0.0
        if self.dither > 0:
            self._dith[size - n :] = self.dither * self._rng.standard_normal(n).astype(np.float32)
        self._avail += n

    def _weights(self, n_live):
        w = np.ones(n_live, np.float32)
        f = min(self._fade_m, n_live // 2)
        if f:
            ramp = fade(f)
            w[:f] *= ramp
            w[n_live - f :] *= ramp[::-1]
        return w

    def _steps(self, k):
        live_n = min(self._avail - self._emitted, self._win_m)
        if k <= 0 or live_n <= 1:
            return [], max(0, live_n)
        w = self._win_m
        s = self._buf_n - w
        dry = torch.from_numpy(self._dry[s:])
        delta = torch.from_numpy(self._delta[s:])  # shares memory: steps update the buffer
        dith = torch.from_numpy(self._dith[s:])
        live = w - live_n
        weights = torch.from_numpy(self._weights(live_n))
        if self._eq_mode(self._params):
            change, objs = self.eq.step(self.model, self.objective.index, dry, dith, self._avail - w, live, k, self._params["max_db"])
            # Join the frozen audio continuously (fade from the change the live samples had to the new one)
            # and fade to zero at the newest sample (the next hop's dry samples join there).
            ramp = torch.from_numpy(self._weights_in(live_n))
            new = change * torch.from_numpy(self._weights_out(live_n))
            prev = delta[live:].clone()
            delta[live:] = prev + ramp * (new - prev)
            return objs, live_n
        mask_from = max(0, live - self.mask.n_fft)
        mw = self.mask.weights(dry[mask_from:])
        step = self._params["step_size"]
        objs = [ascent_step(self.model, self.objective, dry, delta, dith, live, weights, step, self.mask, mw, mask_from) for _ in range(k)]
        return objs, live_n

    def _describe(self):
        p = self._params
        if self._eq_mode(p):
            return f"toward {self.objective.name!r} (logit), time-varying EQ +-{p['max_db']:g} dB"
        return self.objective.describe()

    def _eq_mode(self, p):
        return p["param"] == "eq" and self.objective.kind == "target" and not self.objective.away

    def _weights_in(self, n_live):
        w = np.ones(n_live, np.float32)
        f = min(self._fade_m, n_live // 2)
        if f:
            w[:f] = fade(f)
        return w

    def _weights_out(self, n_live):
        return self._weights_in(n_live)[::-1].copy()

    def _emit(self, end):
        n = end - self._emitted
        if n <= 0:
            return
        pos = self._buf_n - (self._avail - self._emitted)
        chunk = self._delta[pos : pos + n].copy()
        self._emitted = end
        self._hist = np.concatenate([self._hist, chunk])

    # -- reporting ------------------------------------------------------------------------

    def status(self):
        """What a view or an OSC status reply shows."""
        h = self.history[-1] if self.history else None
        rtfs = [e["rtf"] for e in self.history]
        return {
            "model": self.name,
            "params": self.params(),
            "objective": self._describe(),
            "latency_s": self.latency_s,
            "latency_samples": self.latency_samples,
            "lag_samples": self.lag_samples,
            "steps_per_sample": None if self.latency_s is None else self._effective(self.params())[0] * round(self._d_m / self._hop_m, 3),
            "steps_source": self.steps_source,
            "step_seconds_at_load": self.step_seconds,
            "dream_window_s": None if self._prepared_for is None else self._win_m / self.sample_rate,
            "rtf_p50": float(np.median(rtfs)) if rtfs else float("nan"),
            "rtf_max": float(np.max(rtfs)) if rtfs else float("nan"),
            "last": h,
            "counters": dict(self.counters),
        }

    def summary(self):
        """One line for the end-of-run summary."""
        st = self.status()
        p = st["params"]
        return (
            f"dream ({self.name}, {st['objective']}, {p['steps']} steps/hop [{st['steps_source']}], step {p['step_size']:g}, mix {p['mix']:g}"
            + ("" if p["depth"] is None else f", depth {p['depth']:g}: {self._effective(p)[0]} steps/hop, gain {self._effective(p)[1]:g}")
            + "): "
            f"latency {st['latency_samples']} samples ({st['latency_samples'] / self._out_rate:.3f} s; dream {self.latency_s:g} s), "
            f"hops {self.counters['hops']}, RTF p50 {st['rtf_p50']:.2f} max {st['rtf_max']:.2f}, late samples {self.counters['late_samples']}"
        )

    @property
    def _out_rate(self):
        return self.sample_rate / self._ratio
