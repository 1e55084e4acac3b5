"""Laying out the streaming dream for an engine: its window, latency and clocks, and its default steps, timed.

The part of :class:`genredream.engine.dream.stream.Dreamer` that runs once,
in ``Engine.set_transform`` before the dreamer is attached (a mixin: it sets
the dreamer's layout attributes). The window and steps come from the
model's architecture (:mod:`genredream.engine.dream.defaults`), or are found
by running the model: whether it takes a shorter input, and how long one
step takes.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from genredream.engine.dream.defaults import MAX_DEFAULT_STEPS, RTF_TARGET, VARIABLE_CONTEXT_S, stream_defaults, takes_any_length
from genredream.engine.dream.depth import depth_settings
from genredream.engine.dream.eq import StreamingEq
from genredream.engine.dream.objective import DreamError, model_input
from genredream.engine.dream.output import BACK_EDGE, forward_lag
from genredream.engine.dream.wave import ascent_step
from genredream.engine.transform import FADE_S, output_latency
from genredream.models.rng import generator

__all__ = ["StreamLayout"]


class StreamLayout:
    """``prepare(engine)``: the dreamer's layout for the engine's hop and rates, warm-up and default steps."""

    def _accepts_any_length(self):
        """Known from the architecture (musicnn), or found by running the model on a 3 s input (any other)."""
        if takes_any_length(self.model):
            return True
        n = int(round(3.0 * self.sample_rate))
        if n >= self.model.n_samples:
            return False
        try:
            with torch.no_grad():  # both: layer and target objectives must work on the shorter window
                x = model_input(self.model, torch.zeros(1, n))
                self.model.module.features(x)
                self.model.module(x)
        except RuntimeError:  # a shape the model cannot take (TorchScript raises torch.jit.Error, a RuntimeError)
            return False
        return True

    def prepare(self, engine):
        """Lay out the windows for the engine's hop and rates, warm up and time a step.

        Called by :meth:`genredream.engine.runtime.Engine.set_transform` outside the
        engine's lock (it runs the model: up to a second or two for musicnn).

        Raises
        ------
        DreamError
            A dream latency outside [hop, dream window].
        """
        if abs(float(self.model.window_seconds) - engine.window) > 1e-9:
            raise DreamError(f"{self.name}: model window {self.model.window_seconds} s differs from the engine's {engine.window} s")
        sr, hop_s = self.sample_rate, engine.hop
        full = self.model.n_samples
        depth = self.params()["depth"]
        lat = hop_s if self.latency_s is None else self.latency_s
        entry = stream_defaults(self.model)
        lat_from_depth = self.latency_s is None and depth is not None
        if lat_from_depth:  # the depth's latency (engine/dream/depth.py), kept within the dream window below
            lat = depth_settings(depth, 1).latency_hops * hop_s
        win_s = self._window_opt if self._window_opt is not None else entry.get("window")
        if win_s is None and self._accepts_any_length():
            win_s = lat + VARIABLE_CONTEXT_S
        win = full if win_s is None else min(full, int(round(win_s * sr)))
        if lat_from_depth:
            lat = max(hop_s, min(lat, win / sr))
        if win != full and not self._accepts_any_length():
            raise DreamError(f"{self.name} takes only its own {self.model.window_seconds} s window; drop the dream window option")
        if not (hop_s - 1e-9 <= lat <= win / sr + 1e-9):
            raise DreamError(
                f"dream latency {lat:g} s must be between the hop ({hop_s:g} s) and the dream window ({win / sr:g} s)"
            )
        self.latency_s = lat
        self._win_m = win
        self._hop_m = int(round(hop_s * sr))
        self._d_m = max(self._hop_m, int(round(lat * sr)))
        self._keep_m = self._d_m - self._hop_m
        self._fade_m = max(1, min(int(round(FADE_S * sr)), self._hop_m // 4))
        self._buf_n = win + int(math.ceil((engine.window + 2.0) * sr)) + self._hop_m
        sr_in = engine.sample_rate
        g = math.gcd(int(sr), int(sr_in))
        self._p, self._q = int(sr) // g, int(sr_in) // g  # model samples / input samples of one alignment period
        self._ratio = sr / sr_in
        # Resampling margin (model samples): what the engine's streaming
        # resampler may still owe at a boundary, plus the edge the one-shot
        # resampling back to the input rate needs (see _dream_at_input).
        self._passthrough = sr == sr_in
        self._resample_margin = 0 if self._passthrough else forward_lag(sr_in, sr, engine.hop_samples) + BACK_EDGE + 64
        self.lag_samples = int(math.ceil((self._keep_m + self._resample_margin) / self._ratio))
        self.latency_samples = output_latency(self.lag_samples, engine.hop_samples, self.headroom)
        self._warm_up(engine)
        self._prepared_for = id(engine)

    def _warm_up(self, engine):
        """Run a few steps (TorchScript specialises its graph on the first calls) and time one."""
        before = torch.get_num_threads()
        torch.set_num_threads(max(1, engine.torch_threads))
        try:
            w = self._win_m
            gen = generator(0)
            dry = 0.1 * torch.randn(w, generator=gen)
            delta = torch.zeros(w)
            dith = torch.zeros(w)
            live = w - self._d_m
            weights = torch.from_numpy(self._weights(self._d_m))
            mask_from = max(0, live - self.mask.n_fft)
            times = []
            scratch = StreamingEq(self.sample_rate)  # the EQ dream's state stays untouched
            for _ in range(4):
                t0 = time.perf_counter()
                if self._eq_mode(self._params):
                    scratch.step(self.model, self.objective.index, dry, dith, 0, live, 1)
                else:
                    mw = self.mask.weights(dry[mask_from:])
                    ascent_step(self.model, self.objective, dry, delta, dith, live, weights, 1e-3, self.mask, mw, mask_from)
                times.append(time.perf_counter() - t0)
            self.step_seconds = float(np.median(times[1:]))
        finally:
            torch.set_num_threads(before)
        if not self._steps_given:
            entry = stream_defaults(self.model)
            if entry:
                k, self.steps_source = entry["steps"], "table"
            else:
                k = int(RTF_TARGET * engine.hop / max(self.step_seconds, 1e-6))
                k, self.steps_source = max(1, min(MAX_DEFAULT_STEPS, k)), "timed"
            with self._plock:
                self._params["steps"] = k
                if self._pending:
                    self._pending["steps"] = k
        self._base_steps = self.params()["steps"]
