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
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Terminated", "handling", "install", "calm", "exit_code"]


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM."""


def _on_term(signum, frame):
    raise Terminated()


def install():
    """Make SIGTERM raise :class:`Terminated` (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_term)


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
    """From now on SIGINT and SIGTERM are ignored (called once the stop has begun)."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


def exit_code(exc) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
