"""The embedded executor's start-up: what the fork server does once for every worker.

Real processes: `run_local` forks its workers from multiprocessing's fork
server, as `genredream tag` does. The workers here run a probe instead of a
Tagger (it reports what the worker inherited and who forked it), so the
tests need no model and check the executor, not the network.
"""

import os
import sys
from pathlib import Path

import pytest

from genredream.models.tag.local import run_local, start_fork_server


class _Probe:
    """A stand-in Tagger: one row per entry saying what its worker had before tagging anything."""

    def __init__(self):
        import torch

        import genredream.engine.mel as mel

        self.torch = torch
        # Numba fills a dispatcher's signatures when it compiles or loads a
        # kernel from its cache: non-empty here means the worker inherited the
        # mel kernel instead of loading it (about a CPU second) on its first file.
        self.warm = len(mel._frames_serial.signatures)

    def tag(self, entries):
        for e in entries:
            yield {"entry": e, "warm": self.warm, "ppid": os.getppid(), "pid": os.getpid()}, []


def _run(entries, workers=2):
    rows = []
    run_local(_Probe, entries, workers, lambda row, wins: rows.append(row))
    return rows


def _fork_servers():
    """This process's children that are multiprocessing fork servers (pid list), from /proc."""
    me, found = os.getpid(), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"multiprocessing.forkserver" in cmd:
            found.append(int(d.name))
    return found


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork server and /proc: Linux")


def test_workers_inherit_the_warmed_mel_kernel():
    rows = _run(["a", "b", "c", "d"])
    assert sorted(r["entry"] for r in rows) == ["a", "b", "c", "d"]
    assert all(r["warm"] >= 1 for r in rows), rows


def test_fork_server_started_early_is_the_one_that_forks_the_workers():
    assert start_fork_server() is True
    servers = _fork_servers()
    assert len(servers) == 1, servers
    rows = _run(["a", "b", "c"])
    assert {r["ppid"] for r in rows} == set(servers)
    assert start_fork_server() is True  # idempotent: the same server
    assert _fork_servers() == servers
