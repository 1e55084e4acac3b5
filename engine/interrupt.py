"""Ctrl-C and SIGTERM: stop cleanly, at any moment, with the exit code that names the signal.

SIGINT already raises ``KeyboardInterrupt`` in the main thread; :func:`install`
makes SIGTERM (a service manager, ``kill``) raise :class:`Terminated`, a
``KeyboardInterrupt`` too, so one ``except KeyboardInterrupt`` path stops a
run either way: it closes the JSON lines and WAV files written so far,
prints the summary, and the command exits with :func:`exit_code` (130 for
SIGINT, 143 for SIGTERM: 128 + the signal's number, as shells report it).

While that path cleans up, :func:`calm` makes a second signal only be
remembered: an impatient second Ctrl-C must not tear the clean-up itself
apart with a traceback.

A signal is also *recorded* until a clean stop takes it (:func:`calm`), and
:func:`check` raises it again. Start-up runs code that can swallow the
``KeyboardInterrupt`` the handler raised: a C extension that calls back into
Python and clears the error, or a library's bare ``except:`` while it
imports. A fresh clone lost a Ctrl-C 0.5 s into a device run's start-up
that way and went on to open the stream. The session checks between its
start-up steps and in its wait, so a swallowed signal still stops the run.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Terminated", "handling", "install", "calm", "check", "exit_code"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM."""


_pending = None  # the signal a handler raised and no clean stop has taken yet (calm)


def _raise(signum):
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame):
    global _pending
    _pending = signum
    _raise(signum)


def install():
    """Make SIGTERM raise :class:`Terminated` and record both signals for :func:`check` (main thread only; a no-op elsewhere).

    SIGINT keeps an ignore the process was started with (a background job's).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_signal)


def check():
    """Raise the signal again if one arrived and no clean stop has taken it: something swallowed it."""
    if _pending is not None:
        _raise(_pending)


@contextlib.contextmanager
def handling():
    """:func:`install` for the duration of a command; the process's own handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    install()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def calm():
    """From now on SIGINT and SIGTERM are ignored (called once the stop has begun): the stop has taken the signal."""
    global _pending
    _pending = None
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


def exit_code(exc) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
