"""The embedded executor's start-up: what the fork server does once for every worker.

Real processes: `run_local` forks its workers from multiprocessing's fork
server, as `genredream tag` does. The workers here run a probe instead of a
Tagger (it reports what the worker inherited and who forked it), so the
tests need no model and check the executor, not the network.
"""

import os
import sys
from dataclasses import dataclass
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
        import gc

        self.gc = (gc.isenabled(), gc.get_freeze_count())

    def tag(self, entries):
        for e in entries:
            yield {"entry": e, "warm": self.warm, "gc": self.gc, "ppid": os.getppid(), "pid": os.getpid()}, []


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


def test_workers_inherit_the_servers_objects_frozen_and_collect_their_own():
    """The server imports without garbage collection and freezes what it holds before forking:
    a worker's collections never walk torch's objects, and the worker still collects its own garbage."""
    rows = _run(["a", "b"])
    for r in rows:
        enabled, frozen = r["gc"]
        assert enabled, r
        assert frozen > 100_000, r  # torch and the tagging code: about 380 000 objects


def test_fork_server_started_early_is_the_one_that_forks_the_workers():
    assert start_fork_server() is True
    servers = _fork_servers()
    assert len(servers) == 1, servers
    rows = _run(["a", "b", "c"])
    assert {r["ppid"] for r in rows} == set(servers)
    assert start_fork_server() is True  # idempotent: the same server
    assert _fork_servers() == servers


@dataclass(frozen=True)
class _Sized:
    path: str
    size: int


def test_largest_files_are_handed_out_first():
    """Each worker takes the largest file left, so the last files handed out are the short ones."""
    sizes = [3, 50, 7, 900, 20, 1, 400, 60]
    rows = _run([_Sized(f"f{i}", n) for i, n in enumerate(sizes)])
    assert sorted(r["entry"].size for r in rows) == sorted(sizes)
    for pid in {r["pid"] for r in rows}:
        mine = [r["entry"].size for r in rows if r["pid"] == pid]
        assert mine == sorted(mine, reverse=True), (pid, mine)


_EXIT_MARK = """
import atexit, os, sys

def _mark():
    with open(os.path.join(os.environ["GENREDREAM_TEST_EXIT_MARKS"], str(os.getpid())), "w") as f:
        f.write(" ".join(sys.argv))

atexit.register(_mark)
"""

_COMMAND = """
from multiprocessing import forkserver
from genredream.models.tag.local import run_local, start_fork_server
from tests.test_tag_local import _Probe

start_fork_server()
rows = []
run_local(_Probe, ["a", "b"], 2, lambda row, wins: rows.append(row))
assert len(rows) == 2, rows
print(forkserver._forkserver._forkserver_pid, flush=True)
"""


def test_fork_server_ends_without_interpreter_teardown(tmp_path):
    """When the command ends, its fork server ends at once, skipping Python's exit teardown.

    With torch loaded that teardown took 0.7-1.4 s, during which the server
    still held the command's stdout and stderr: a pipe reading them (a
    benchmark, `genredream tag ... | tee log`) waited that long after the
    last row. Seen here through an exit handler every Python process of
    the test registers at start-up (a ``sitecustomize`` on the path): it
    runs in the command, which exits normally, and must not run in the
    fork server.
    """
    import subprocess
    import time

    site, marks = tmp_path / "site", tmp_path / "marks"
    site.mkdir()
    marks.mkdir()
    (site / "sitecustomize.py").write_text(_EXIT_MARK)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(root)]), GENREDREAM_TEST_EXIT_MARKS=str(marks))
    r = subprocess.run([sys.executable, "-c", _COMMAND], capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    server = int(r.stdout.split()[-1])
    for _ in range(300):  # the server ends once it sees the command's end of its pipe close
        if not Path(f"/proc/{server}").exists():
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{server}").exists(), "the fork server outlived the command by 30 s"
    ended = {int(p.name) for p in marks.iterdir()}
    assert r.stdout and len(ended) >= 1, "the exit handler did not run in the command: the test sees nothing"
    assert server not in ended, (marks / str(server)).read_text()
