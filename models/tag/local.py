"""The embedded executor: worker processes on this machine, one torch thread each.

Tagging is a map over files with no communication between them, so it
scales with processes, not threads: one torch thread per process avoids
the threads of several processes fighting for the same cores. Each worker
loads the models once. Workers start from a fork server (a clean process
that has imported torch and the tagging code, and run nothing: the workers
share those pages and skip a second of import each), never by forking the caller: a
process that has already run OpenMP threads (torch's or Numba's parallel
kernels) must not fork, and GNU OpenMP kills such a child ("fork() called
from a process already using GNU OpenMP"). Workers draw files from a queue
one at a time, so a long file does not hold up a worker's share of short
ones, and send each row back as soon as it is finished; the largest files
go first, so that the last ones handed out are short.

Workers ignore SIGINT: Ctrl-C reaches the parent, which stops them and
keeps every row already received.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal

__all__ = ["local_cores", "run_local", "start_fork_server"]


def local_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _worker(make_tagger, tasks, results):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent stops a worker with SIGTERM: just end
    try:
        tagger = make_tagger()
        tagger.torch.set_num_threads(1)
        for row, wins in tagger.tag(iter(tasks.get, None)):
            results.put(("row", row, wins))
    except Exception as e:  # reported by the parent, which keeps the rows it has
        results.put(("fatal", f"{type(e).__name__}: {e}", None))
    results.put(("done", None, None))


def _context():
    """forkserver where the platform has it (Linux, macOS), else spawn (Windows)."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # torch, the tagging code and the mel kernel's first call done once,
        # in the server, and shared by the workers it forks (models.tag.preload:
        # none of it runs an OpenMP thread, so the server may fork).
        ctx.set_forkserver_preload(["genredream.models.tag.preload", "genredream.models.incremental.runner"])
        return ctx
    return mp.get_context("spawn")


def start_fork_server() -> bool:
    """Start the workers' fork server now, in the background; True if there is one to start.

    The server's preload (torch, 2 s of one core) is the longest step of a
    run's start-up, and nothing overlaps it if it starts when the first
    worker is wanted: the command's own start-up (its imports, the models'
    metadata, the folder walk, about a second) runs on the other core
    meanwhile when it starts first. ``run_local`` uses the running server;
    one left unused (a usage error, a single file) ends with the command.
    """
    ctx = _context()
    if ctx.get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return True


def run_local(make_tagger, entries, workers, on_row):
    """Tag ``entries`` with ``workers`` processes; ``on_row(row, window_rows)`` in this process as rows arrive.

    ``make_tagger``: a picklable callable returning a :class:`Tagger` (e.g.
    ``functools.partial(Tagger, paths, ...)``), called once in each worker.
    With one worker (or one file) the job runs in this process, with the
    same rows.
    """
    entries = list(entries)
    workers = max(1, min(int(workers), len(entries)))
    if workers == 1:
        tagger = make_tagger()
        tagger.torch.set_num_threads(1)
        for row, wins in tagger.tag(entries):
            on_row(row, wins)
        return
    ctx = _context()
    tasks, results = ctx.Queue(), ctx.Queue()
    # Largest files first (by bytes, a stand-in for duration): the last
    # files handed out are then the short ones, so the workers finish close
    # together instead of one decoding a long file while the other cores
    # idle. Rows do not depend on the order; the writers sort them.
    for e in sorted(entries, key=lambda e: -getattr(e, "size", 0)):
        tasks.put(e)
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(make_tagger, tasks, results), daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    done, fatal = 0, None
    try:
        while done < workers:
            try:
                kind, a, b = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a tagging worker died (exit code {dead[0].exitcode}); the rows finished so far are kept") from None
                continue
            if kind == "row":
                on_row(a, b)
            elif kind == "fatal":
                fatal = a
            else:
                done += 1
        if fatal:
            raise RuntimeError(f"a tagging worker failed: {fatal}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
