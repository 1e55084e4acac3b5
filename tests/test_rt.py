"""Real-time scheduling and memory locking (engine/io/rt.py), on this machine's real kernel.

What the audio path relies on is checked against /proc, not against what
the module says it did: a thread made SCHED_FIFO shows as such, a thread it
starts does not inherit it (SCHED_RESET_ON_FORK), the audio thread is found
by its wakeups, locked memory shows in VmLck, and pre-touched pages take no
fault. Needs the right to use real-time scheduling (root, CAP_SYS_NICE or
an rtprio limit); CI has it, so there a missing right fails instead of
skipping.
"""

from __future__ import annotations

import mmap
import os
import threading
import time

import numpy as np
import pytest

from genredream.engine.io import rt
from tests.conftest import require_component

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux /proc only")


def _on_thread(fn):
    """Run fn() on a fresh thread; return its result (or raise its exception)."""
    box = {}

    def run():
        try:
            box["r"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
            box["e"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if "e" in box:
        raise box["e"]
    return box["r"]


def _me():
    tid = threading.get_native_id()
    return next(t for t in rt.threads() if t["tid"] == tid)


def test_a_realtime_thread_shows_in_proc_and_its_children_are_ordinary():
    def body():
        why = rt.realtime_this_thread(1)
        require_component("real-time scheduling", why is None, f"run as root or allow rtprio ({why})")
        me = _me()
        child = _on_thread(_me)  # a thread started by a real-time one
        rt.realtime_this_thread(None)
        return me, child, _me()

    me, child, after = _on_thread(body)
    assert (me["policy"], me["rt_priority"]) == ("SCHED_FIFO", 1)
    assert (child["policy"], child["rt_priority"]) == ("SCHED_OTHER", 0), "SCHED_RESET_ON_FORK did not hold: a pool started by the pump would be real-time"
    assert after["policy"] == "SCHED_OTHER"


def test_the_audio_thread_is_found_by_its_wakeups_and_raised():
    """A thread that wakes once per 'block' (here 2 ms) is told apart from the others, and made SCHED_FIFO."""
    count = [0]
    stop = threading.Event()
    noise_stop = threading.Event()

    def callback_thread():
        while not stop.wait(0.002):
            count[0] += 1

    def busy():  # another ordinary thread, waking less often
        while not noise_stop.wait(0.02):
            pass

    cb = threading.Thread(target=callback_thread)
    other = threading.Thread(target=busy)
    cb.start()
    other.start()
    try:
        time.sleep(0.05)
        found, how = rt.find_audio_thread(callbacks=lambda: count[0], window_s=0.3)
        assert found is not None and found["tid"] == cb.native_id, (found, how)
        assert found["policy"] == "SCHED_OTHER" and "wakeups" in how
        why = rt.make_realtime(found["tid"], rt.RAISE_PRIORITY)
        require_component("real-time scheduling", why is None, f"run as root or allow rtprio ({why})")
        now = next(t for t in rt.threads() if t["tid"] == cb.native_id)
        assert (now["policy"], now["rt_priority"]) == ("SCHED_FIFO", rt.RAISE_PRIORITY)
        # Now it is the real-time thread, found without counting.
        again, how = rt.find_audio_thread()
        assert again["tid"] == cb.native_id and "already" in how
    finally:
        stop.set()
        noise_stop.set()
        cb.join()
        other.join()


def _vmlck_kib():
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmLck:"))


def test_memory_is_locked_and_unlocked():
    before = _vmlck_kib()
    why = rt.lock_memory()
    require_component("memory locking", why is None, f"ulimit -l unlimited or CAP_IPC_LOCK ({why})")
    try:
        locked = _vmlck_kib()
        # MCL_FUTURE: mapped after the call, locked too. A fresh anonymous mapping, not np.empty:
        # after earlier tests free big arrays, glibc serves 8 MB from its heap, already locked.
        big = np.frombuffer(mmap.mmap(-1, 8 << 20), np.uint8)
        big[::4096] = 1
        later = _vmlck_kib()
    finally:
        rt.unlock_memory()
    assert before == 0 and locked > 10_000, (before, locked)  # at least the interpreter's ~10 MB
    assert later >= locked + 8 * 1024 - 64
    assert _vmlck_kib() == 0


def test_touched_pages_take_no_fault_on_first_write():
    n = 4 << 20

    def faults(buf):
        def write():
            f0 = _me()["minflt"]
            buf[::4096] = 7
            return _me()["minflt"] - f0

        return _on_thread(write)

    # The reference is a fresh anonymous mapping: np.zeros may reuse heap pages that earlier tests
    # already faulted in (glibc raises its mmap threshold after big frees), and then nothing faults.
    fresh = faults(np.frombuffer(mmap.mmap(-1, n), np.uint8))
    ready = faults(rt.touched(n))
    assert fresh >= 100, fresh  # the reference: hundreds of faults (a zero page is mapped on first write)
    assert ready <= 16, ready


def _preemption_from_the_kernel():
    """The preemption model read with the system's own tools (cat, zcat), in the order the kernel decides it."""
    import subprocess

    def cat(*cmd):
        r = subprocess.run(cmd, capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None

    if (cat("cat", "/sys/kernel/realtime") or "").strip() == "1":
        return "rt"
    dyn = cat("cat", "/sys/kernel/debug/sched/preempt")
    if dyn:
        return next(w.strip("()") for w in dyn.split() if w.startswith("("))
    for w in (cat("cat", "/proc/cmdline") or "").split():
        if w.startswith("preempt="):
            return w.split("=", 1)[1]
    config = cat("zcat", "/proc/config.gz")
    if config:
        for model in ("none", "voluntary", "lazy", "rt"):
            if f"CONFIG_PREEMPT_{model.upper()}=y" in config.splitlines():
                return model
        if "CONFIG_PREEMPT=y" in config.splitlines():
            return "full"
    return None


def test_kernel_preemption_is_read():
    expected = _preemption_from_the_kernel()
    assert rt.kernel_preemption() == expected
    # This VM says what it is (CONFIG_PREEMPT_NONE in /proc/config.gz); a machine that says nothing gives None.
    if os.path.exists("/proc/config.gz") or os.path.exists("/sys/kernel/debug/sched/preempt"):
        assert expected is not None


def test_kernel_preemption_prefers_the_boot_choice(monkeypatch):
    """preempt= on the command line (a PREEMPT_DYNAMIC kernel's choice) wins over the built-in default."""
    import io

    real_open = open

    def fake_open(path, *a, **k):
        if path == "/proc/cmdline":
            return io.StringIO("quiet preempt=full console=ttyS0")
        if path in ("/sys/kernel/realtime", "/sys/kernel/debug/sched/preempt"):
            raise FileNotFoundError(path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(rt, "open", fake_open, raising=False)
    assert rt.kernel_preemption() == "full"


def test_pump_priority_stays_below_the_audio_thread():
    assert rt.pump_priority(5) == 1 and rt.pump_priority(1) is None and rt.pump_priority(None) == 1
