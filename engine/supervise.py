"""Supervised workers: no thread of the engine or the OSC bridge dies silently.

A :class:`Supervisor` runs each worker loop (front end, inference, OSC
receive, OSC audio, control, audio out) in a thread of its own, and guards
steps that run inside another worker (the dream step in the inference
worker). When a loop or step raises an exception it did not handle:

* the traceback is logged once, through :mod:`logging` (stderr by default);
  the same failure again (same exception type and place) is logged as one
  line, so a loop failing fast cannot flood the log;
* it is counted (:attr:`Supervisor.errors`, ``worker_errors`` in status);
* every listener is told (the OSC bridge sends ``/genredream/error
  internal ...`` to its subscribers);
* the worker's ``reset`` callback rebuilds its state (e.g. the front ends,
  on the engine's unchanged sample clock) and the loop starts again after a
  short pause;
* a worker failing ``max_failures`` times within ``period`` seconds is
  disabled instead: the listeners hear ``worker_disabled``, the log says it
  at CRITICAL level, and status shows the worker as ``disabled``.

A loop returns normally when it is asked to stop; that is not a failure.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import traceback

__all__ = ["Supervisor", "Worker", "Guard"]

log = logging.getLogger("genredream.supervise")


class _Supervised:
    """What a thread and a guarded step share: failure accounting and state."""

    def __init__(self, sup, name, reset=None):
        self.sup = sup
        self.name = name
        self.reset = reset
        self.state = "idle"  # idle, running, restarting, disabled, stopped
        self.failures = 0
        self.restarts = 0
        self.last_error = None
        self._times = collections.deque()
        self._seen = set()

    @property
    def disabled(self):
        return self.state == "disabled"

    def _failed(self, exc):
        """Account for one failure; returns True when the worker is now disabled."""
        sup = self.sup
        now = time.monotonic()
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        with sup._lock:
            sup.errors += 1
        tb = traceback.extract_tb(exc.__traceback__)
        where = (type(exc).__name__,) + ((tb[-1].filename, tb[-1].lineno) if tb else ())
        if where in self._seen:
            log.error("worker %s failed again (%d times): %s", self.name, self.failures, self.last_error)
        else:
            self._seen.add(where)
            log.error("worker %s failed: %s", self.name, self.last_error, exc_info=(type(exc), exc, exc.__traceback__))
        self._times.append(now)
        while self._times and now - self._times[0] > sup.period:
            self._times.popleft()
        if len(self._times) >= sup.max_failures:
            self.state = "disabled"
            msg = (f"worker {self.name} disabled after {len(self._times)} failures in {sup.period:g} s; "
                   f"last: {self.last_error}")
            log.critical("%s", msg)
            sup._notify("worker_disabled", msg)
            return True
        sup._notify("internal", f"worker {self.name} restarted after {self.last_error}")
        return False


class Worker(_Supervised):
    """A loop run in a thread, restarted on failure (see the module doc)."""

    def __init__(self, sup, name, loop, reset=None, thread_name=None):
        super().__init__(sup, name, reset)
        self.loop = loop
        self.thread = threading.Thread(target=self._main, name=thread_name or f"genredream-{name}", daemon=True)

    @property
    def alive(self):
        return self.thread.is_alive() and self.state in ("running", "restarting")

    def start(self):
        self.state = "running"
        self.thread.start()
        return self

    def join(self, timeout=None):
        self.thread.join(timeout)

    def _main(self):
        while True:
            try:
                self.loop()
            except Exception as e:
                if self._failed(e):
                    return
                self.state = "restarting"
                time.sleep(self.sup.pause)
                if self.reset is not None:
                    try:
                        self.reset()
                    except Exception as e2:  # a reset that fails counts as a failure too
                        if self._failed(e2):
                            return
                self.restarts += 1
                self.state = "running"
            else:
                self.state = "stopped"
                return


class Guard(_Supervised):
    """A step run inside another worker: ``guard.run(fn, *args)``.

    Returns ``fn``'s value, or None when it raised (accounted as above) or
    when the guard is disabled (then ``fn`` is not called).
    """

    def __init__(self, sup, name, reset=None):
        super().__init__(sup, name, reset)
        self.state = "running"

    @property
    def alive(self):
        return self.state == "running"

    def run(self, fn, *args, **kw):
        if self.state == "disabled":
            return None
        try:
            return fn(*args, **kw)
        except Exception as e:
            if not self._failed(e) and self.reset is not None:
                try:
                    self.reset()
                except Exception as e2:
                    self._failed(e2)
            return None


class Supervisor:
    """The workers of one engine (and its bridge), and their health.

    Parameters
    ----------
    max_failures, period : int, float
        A worker failing this many times within ``period`` seconds is disabled.
    pause : float
        Seconds between a failure and the restart.
    """

    def __init__(self, max_failures=5, period=10.0, pause=0.05):
        self.max_failures = int(max_failures)
        self.period = float(period)
        self.pause = float(pause)
        self.workers: dict[str, _Supervised] = {}
        self.listeners = []  # fn(code, message): "internal" or "worker_disabled"
        self.errors = 0
        self._lock = threading.Lock()

    def spawn(self, name, loop, reset=None, thread_name=None):
        """Start ``loop`` in a supervised thread (replaces a stopped worker of that name)."""
        w = Worker(self, name, loop, reset, thread_name)
        self.workers[name] = w
        return w.start()

    def guard(self, name, reset=None):
        g = self.workers.get(name)
        if not isinstance(g, Guard):
            g = self.workers[name] = Guard(self, name, reset)
        return g

    def _notify(self, code, message):
        for fn in list(self.listeners):
            try:
                fn(code, message)
            except Exception:  # a listener (a closed socket) must not hide the failure it reports
                log.exception("supervisor listener failed")

    def status(self):
        """{name: state} for every worker: running, restarting, disabled or stopped."""
        return {n: w.state for n, w in self.workers.items()}

    def disabled(self):
        return [n for n, w in self.workers.items() if w.state == "disabled"]
