"""One run of the engine: build it, attach what it needs, run one source, drain, summarise.

:class:`Session` is the one run loop of ``genredream run`` and ``genredream
demo``, whatever the audio comes from (a :class:`~genredream.engine.io.source.Source`:
file, device, OSC). In order:

1. the engine is built at the source's rate with the models loaded
   (:func:`build_engine`);
2. the output transform (a dreamer or the continuation) is attached, and
   the engine keeps the source's channels;
3. the optional control (the OSC bridge, without audio in) is attached,
   after the transform so that it finds it;
4. the JSON lines sink joins the engine's sinks;
5. the source starts and runs, inside the live view if asked for;
6. always, even after a Ctrl-C at any moment: the source stops, the engine
   drains (scores what has arrived), the source and control close, the
   JSON lines and WAV files are closed; then the summary.

It neither parses arguments nor prints: messages go to ``notify`` (the
command line prints them on stderr), the summary comes back in a
:class:`SessionResult`. A Ctrl-C (or SIGTERM, engine/interrupt.py) is caught
here so that the clean-up and the summary happen; the result keeps the
interrupt for the exit code.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

__all__ = ["Session", "SessionResult", "build_engine", "fast_jit"]

log = logging.getLogger(__name__)


def fast_jit():
    """Run TorchScript models without the profiling executor's graph optimisation.

    With it, the first two calls of musicnn's step each spent 1-10 s
    compiling (measured here: 8.3 and 8.4 s on the loaded 2-core VM, against
    0.7 and 0.1 s without), at every start and at every hot load during a
    set, for a steady state within measurement noise of the unoptimised one
    (112-127 ms against 126-131 ms per musicnn step on the same loaded VM;
    conv layers are already one native op each). GENREDREAM_JIT_OPTIMIZE=1
    keeps torch's default.
    """
    if os.environ.get("GENREDREAM_JIT_OPTIMIZE") == "1":
        return
    import torch

    torch._C._set_graph_executor_optimize(False)


def build_engine(sample_rate, model_names, window, hop, threads=1):
    """An Engine with the requested models loaded (raises ModelLoadError with the reason)."""
    from genredream.engine.runtime import Engine
    from genredream.models.classify import default_model

    fast_jit()
    engine = Engine(sample_rate, window=window, hop=hop, torch_threads=threads)
    for m in model_names or [str(default_model())]:
        engine.load_model(m)
    return engine


@dataclass
class SessionResult:
    """What a session did: the engine (None if stopped while starting), why it stopped, the summary."""

    engine: object = None
    stopped_by: str | None = None  # a Source reason (END, DURATION, STREAM_LOST), or None when interrupted
    interrupted: BaseException | None = None  # the KeyboardInterrupt (Ctrl-C) or interrupt.Terminated (SIGTERM)
    summary: list[str] = field(default_factory=list)

    @property
    def model_errors(self):
        return 0 if self.engine is None else self.engine.counters["model_errors"]


class Session:
    """Run one source through an engine; see the module docstring for the order of things.

    Parameters
    ----------
    models : list of str or None
        Model names or paths (None: the default model).
    window, hop : float
        Seconds each model sees, and between results.
    threads : int
        Torch threads for inference.
    transform : callable, optional
        ``transform(engine, writers)`` attaches the output transform (a
        dreamer, the continuation) to the engine and returns it; WAV files it
        opens go into ``writers``, closed at the end.
    control : optional
        Attached after the transform: ``attach(session)``, ``close()``,
        ``summary_lines()`` (the OSC bridge without audio in, bridge/source.py).
    jsonl : str, optional
        Path for JSON lines ('-' for stdout).
    view : bool
        Show the live view (engine/io/view.py) while the source runs.
    duration : float, optional
        Seconds of stream time after which the source stops.
    notify : callable, optional
        ``notify(text, kind)`` with kind "info" or "warning": what a user
        should read while it runs (default: logging).
    """

    def __init__(self, models=None, window=5.0, hop=0.5, threads=1, transform=None, control=None, jsonl=None, view=False, duration=None, notify=None):
        self.models, self.window, self.hop, self.threads = models, window, hop, threads
        self.make_transform = transform
        self.control = control
        self.jsonl_path = jsonl
        self.view = view
        self.duration = duration
        self._notify = notify
        self.engine = None
        self.writers = []  # files the transform writes (--dream-out, --continue-out), closed at the end

    def notify(self, text, kind="info"):
        if self._notify is not None:
            self._notify(text, kind)
        else:
            (log.warning if kind == "warning" else log.info)("%s", text)

    @property
    def transform(self):
        """The engine's output transform (a dreamer or the continuation), or None."""
        return getattr(self.engine, "transform", None)

    def _finish_transform(self):
        """The stream is complete: the transform emits what it is still working on."""
        if self.transform is not None:
            self.transform.finish(self.engine)

    def run(self, source) -> SessionResult:
        """Run ``source`` to its end (or a Ctrl-C); returns a :class:`SessionResult`.

        Errors while starting (a model that does not load, a device that
        does not open, a dream option out of range) are raised, after the
        clean-up; a Ctrl-C is not.
        """
        from genredream.engine import startup
        from genredream.engine.io.sinks import JsonlSink
        from genredream.engine.interrupt import check
        from genredream.engine.io.source import END

        res = SessionResult()
        jsonl = None
        try:
            check()  # a Ctrl-C something swallowed while the command imported (engine/interrupt.py)
            self.engine = res.engine = build_engine(source.sample_rate, self.models, self.window, self.hop, self.threads)
            engine = self.engine
            check()
            if self.make_transform is not None:
                self.make_transform(engine, self.writers)
            if source.channels > 1:  # after the transform is laid out, as its output ring's clock starts then
                engine.set_channels(source.channels)  # a stereo input comes back stereo (engine/channels.py)
            if self.control is not None:
                self.control.attach(self)
            if self.jsonl_path:
                jsonl = JsonlSink(self.jsonl_path)
                engine.sinks.append(jsonl)
            check()
            startup.settle()  # the models are warm: the garbage collector back on (engine/startup.py)
            source.start(self)
            check()
            if self.view:
                from genredream.engine.io.view import LiveView

                with LiveView(engine):
                    res.stopped_by = source.run(self)
            else:
                res.stopped_by = source.run(self)
            if res.stopped_by == END:
                self._finish_transform()
            record = source.describe()
            if jsonl is not None and record is not None:
                jsonl.write(record)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM, at any moment
            from genredream.engine import interrupt

            interrupt.calm()  # a second Ctrl-C must not cut the clean-up below short
            res.interrupted = e
            res.stopped_by = None
            self.notify("stopped")
        finally:
            # A clean-up failure must not hide the error that stopped the run (if one is on its way out).
            self._stop(source, jsonl, raise_failure=sys.exc_info()[1] is None)
        if res.engine is None:
            res.summary = ["stopped during start-up (loading models): no audio was processed"]
        else:
            from genredream.engine.io.sinks import summary

            res.summary = summary(res.engine) + source.summary_lines()
            if self.control is not None:
                res.summary += self.control.summary_lines()
        return res

    def _stop(self, source, jsonl, raise_failure=True):
        """Stop in the one safe order; every step runs even if an earlier one failed."""
        steps = [lambda: source.stop(self)]
        if self.engine is not None:
            steps.append(lambda: self.engine.stop(drain=True))  # the last windows' scores and dreamed audio still go out
        steps.append(lambda: source.close(self))
        if self.control is not None:
            steps.append(self.control.close)
        if jsonl is not None:
            steps.append(jsonl.close)
        steps += [w.close for w in self.writers]
        first = None
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - finish the clean-up, then raise the first failure
                first = first or e
        if first is not None:
            if raise_failure:
                raise first
            log.warning("while stopping after an error: %s", first)
