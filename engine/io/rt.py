"""Real-time scheduling and memory locking for the audio path, and why.

The C callback (engine/io/cring.py) has no Python in it, but it still meets
a 1.3 ms deadline (64 frames at 48 kHz) only if the OS runs it the moment
it is due and nothing stops it halfway. Three things decide that, and this
module handles each, then says what it found (never silently: a performer
must know when the sound is at risk).

1. **Scheduling.** The thread the host API calls back on must be
   real-time (``SCHED_FIFO``): an ordinary thread waits behind every busy
   thread on the machine (the old Python callback, at load average 13-26 on
   two cores, missed 1881 deadlines in 15 s). JACK does this itself when
   the server runs with ``-R``: jack2 gives its clients' process threads the
   server's priority minus 5 (``jackd -R`` defaults to 10, so 5).
   PortAudio's ALSA host does not, by default. :func:`find_audio_thread`
   finds the callback's thread (the real-time one the stream brought, else
   the thread that wakes once per block) and :func:`make_realtime` raises
   it when nobody did.

   Our own helper threads must stay *below* it. The pump (a Python thread
   that moves samples between the C rings and the engine) used to run at
   ``SCHED_FIFO`` 5: the same priority as every JACK client thread (jack2,
   common/JackEngineControl.h: client priority = server priority - 5),
   which ``ps`` showed for our JACK thread, the pump and ``jack_metro``
   alike. Threads of equal ``SCHED_FIFO`` priority never preempt each
   other, so a pump busy in Python (a garbage collection, a dry fallback)
   could keep a JACK client waiting for its core. The pump now runs at
   priority 1, the lowest (:func:`pump_priority`): below the audio thread,
   still above every ordinary thread so it wakes on time on a loaded
   machine, and with ``SCHED_RESET_ON_FORK``, so a thread it happens to
   start (a lazily created OpenMP/Numba/torch pool) is ordinary, not
   real-time. Every other thread (workers, torch, the model loader) stays
   ``SCHED_OTHER``; :func:`threads` lists them so tests can check that.

2. **Page faults.** The first touch of a page of a fresh allocation traps
   into the kernel, which may then wait for a lock another thread of this
   process holds (``torch.jit.load`` and model unloads map and unmap
   hundreds of megabytes). :func:`lock_memory` calls
   ``mlockall(MCL_CURRENT | MCL_FUTURE)``: every page mapped now or later is
   resident and stays so. It is called before the stream starts: faulting
   in every mapped page (about 0.5 s for a 600 MB process) while the stream
   ran made jackd's own driver late in the hot-swap test. Measured there:
   0 page faults on the audio thread over 30 s of hot loads. Where the memory-lock limit is finite (an ordinary user
   without ``ulimit -l unlimited``), ``MCL_FUTURE`` would make later large
   allocations fail, so nothing is locked and the reason is reported; the
   C rings are pre-touched (:func:`touched`) either way.

3. **Kernel preemption.** A kernel built or booted with preemption model
   "none" (server kernels; this CI VM) does not interrupt another thread's
   system call for a real-time thread until that call reaches a
   rescheduling point: up to milliseconds. :func:`kernel_preemption` reads
   the model so the summary can say so; the remedy is the kernel command
   line (``preempt=full`` on ``PREEMPT_DYNAMIC`` kernels) or a low-latency
   or ``PREEMPT_RT`` kernel, outside genredream.

Linux only (``/proc``, ``sched_setscheduler``, ``mlockall``). On macOS
(CoreAudio's time-constraint thread) and Windows (WASAPI/ASIO, MMCSS) the
host API schedules its own audio thread; the functions here then report
"not checked" instead of guessing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import os
import platform
import sys
import threading
import time

import numpy as np

__all__ = [
    "RAISE_PRIORITY",
    "threads",
    "find_audio_thread",
    "make_realtime",
    "make_ordinary",
    "pump_priority",
    "realtime_this_thread",
    "lock_memory",
    "unlock_memory",
    "touched",
    "kernel_preemption",
]

#: SCHED_FIFO priority we give an audio thread the host API left ordinary:
#: JACK's default server priority (jackd -R -P 10), below the kernel's
#: interrupt threads (50).
RAISE_PRIORITY = 10

_POLICIES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE", 6: "SCHED_DEADLINE"}
_RT_POLICIES = ("SCHED_FIFO", "SCHED_RR", "SCHED_DEADLINE")
_LINUX = sys.platform.startswith("linux")


def _task_dir(pid):
    return f"/proc/{pid}/task"


def _read_thread(pid, tid):
    """One thread's scheduling and fault counters from /proc (None when it has gone)."""
    base = f"{_task_dir(pid)}/{tid}"
    try:
        with open(f"{base}/stat") as f:
            stat = f.read()
        with open(f"{base}/status") as f:
            status = f.read()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2 :].split()  # rest[k - 3] is proc(5)'s field k
    tick = os.sysconf("SC_CLK_TCK")
    ctx = {}
    for line in status.splitlines():
        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
            k, v = line.split(":")
            ctx[k] = int(v)
    return {
        "tid": int(tid),
        "name": name,
        "policy": _POLICIES.get(int(rest[38]), rest[38]),
        "rt_priority": int(rest[37]),
        "nice": int(rest[16]),
        "minflt": int(rest[7]),
        "majflt": int(rest[9]),
        "cpu_s": (int(rest[11]) + int(rest[12])) / tick,
        "wakeups": ctx.get("voluntary_ctxt_switches", 0),
        "preempted": ctx.get("nonvoluntary_ctxt_switches", 0),
    }


def threads(pid="self"):
    """Every thread of ``pid`` (this process by default): policy, priority, faults, wakeups.

    A list of dicts with ``tid``, ``name``, ``policy`` ("SCHED_FIFO", ...),
    ``rt_priority``, ``nice``, ``minflt``/``majflt`` (page faults so far),
    ``cpu_s``, ``wakeups`` (voluntary context switches) and ``preempted``
    (involuntary ones). Empty where there is no /proc (not Linux).
    """
    try:
        tids = os.listdir(_task_dir(pid))
    except OSError:
        return []
    out = [_read_thread(pid, t) for t in sorted(tids, key=int)]
    return [t for t in out if t is not None]


def is_realtime(t):
    return t is not None and t["policy"] in _RT_POLICIES


def find_audio_thread(exclude=(), callbacks=None, window_s=0.25):
    """The thread of this process that runs the audio callback, and how it was found.

    Returns ``(thread_dict_or_None, how)``. The audio thread is the one
    that wakes once per block: over ``window_s``, the thread (not in
    ``exclude``: our pump) with the most wakeups, preferring real-time
    threads (JACK's process thread is real-time; its other thread, for
    notifications, may be too but sleeps). Without real-time threads, the
    count must match ``callbacks()`` (the callback count) within a factor
    of two, so the match is by number, not by name (thread names differ per
    host API and platform).
    """
    if not _LINUX:
        return None, "not checked (not Linux: the host API schedules its own audio thread)"
    exclude = set(exclude)
    before = {t["tid"]: t for t in threads() if t["tid"] not in exclude}
    c0 = callbacks() if callbacks is not None else None
    time.sleep(window_s)
    c1 = callbacks() if callbacks is not None else None
    woke = []
    for t in threads():
        if t["tid"] in before:
            woke.append((is_realtime(t), t["wakeups"] - before[t["tid"]]["wakeups"], t))
    rts = [w for w in woke if w[0]]
    if rts:
        return max(rts, key=lambda w: w[1])[2], "real-time already (set by the host API)"
    if callbacks is None:
        return None, "no real-time thread found"
    blocks = c1 - c0
    _, best_d, best = max(woke, key=lambda w: w[1], default=(False, 0, None))
    if best is None or blocks <= 0 or not (0.5 * blocks <= best_d <= 2 * blocks + 2):
        return None, f"no thread woke once per block ({blocks} blocks in {window_s:g} s; busiest thread woke {best_d} times)"
    return best, "found by its wakeups (once per block)"


def _schedule(tid, priority, reset_on_fork=False):
    """Thread ``tid`` (0: the calling one) SCHED_FIFO at ``priority``, or ordinary (None); returns None or why not."""
    try:
        if priority is None:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        else:
            flags = os.SCHED_FIFO | (os.SCHED_RESET_ON_FORK if reset_on_fork else 0)
            os.sched_setscheduler(tid, flags, os.sched_param(priority))
        return None
    except (AttributeError, OSError) as e:
        return _no_rt_reason(e)


def make_realtime(tid, priority=RAISE_PRIORITY):
    """Make thread ``tid`` SCHED_FIFO at ``priority``; returns None, or why it could not."""
    return _schedule(tid, priority)


def make_ordinary(tid):
    """Make thread ``tid`` ordinary (SCHED_OTHER); returns None, or why it could not."""
    return _schedule(tid, None)


def _no_rt_reason(e):
    if isinstance(e, AttributeError):
        return "this OS has no sched_setscheduler"
    return (f"{e.strerror or e}: not allowed to use real-time scheduling (run as a member of the 'audio' group with "
            "'@audio - rtprio 95' in /etc/security/limits.d/audio.conf, or grant CAP_SYS_NICE)")


def pump_priority(audio_priority):
    """The pump's SCHED_FIFO priority: 1, the lowest, below the audio thread (None: stay ordinary).

    1 is below every JACK client (jack2 runs them at the server's priority
    minus 5, and ``jackd -P`` under 6 makes them ordinary) and above every
    ordinary thread, which is all the pump needs: its ring lead absorbs
    the rest. Only an audio thread at 1 itself leaves the pump ordinary.
    """
    if audio_priority is not None and audio_priority <= 1:
        return None
    return 1


def realtime_this_thread(priority):
    """Make the calling thread SCHED_FIFO ``priority``, reset on fork; returns None or why not.

    ``SCHED_RESET_ON_FORK``: threads this one starts are ordinary.
    ``priority`` None makes it ordinary (``SCHED_OTHER``).
    """
    return _schedule(0, priority, reset_on_fork=True)  # 0: this thread


# -- memory --------------------------------------------------------------------------------------

# <sys/mman.h> on Linux (the generic values; alpha, powerpc and sparc use others).
_MCL_CURRENT, _MCL_FUTURE = 1, 2
_MCL_ARCHES = ("x86_64", "i386", "i686", "aarch64", "arm64", "armv7l", "riscv64", "s390x")
_lock = threading.Lock()
_locks = 0  # nested lock_memory() calls (two runners in one process)


def _cap_ipc_lock():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 14 & 1)  # CAP_IPC_LOCK is bit 14
    except OSError:
        pass
    return False


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def lock_memory():
    """``mlockall(MCL_CURRENT | MCL_FUTURE)``: no page faults on the audio thread. Returns None or why not.

    Only where locking is unlimited (``CAP_IPC_LOCK``, or ``ulimit -l
    unlimited``): under a finite limit ``MCL_FUTURE`` turns later large
    allocations (a model load) into failures, which is worse than a fault.
    Counted: :func:`unlock_memory` unlocks when the last user lets go.
    ``GENREDREAM_MLOCK=0`` in the environment turns it off.
    """
    global _locks
    if os.environ.get("GENREDREAM_MLOCK", "1") == "0":
        return "not locked (GENREDREAM_MLOCK=0)"
    if not _LINUX:
        return "not locked (memory locking is done here on Linux only)"
    if platform.machine() not in _MCL_ARCHES:
        return f"not locked (mlockall's flags on {platform.machine()} are not known here)"
    import resource

    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    if soft != resource.RLIM_INFINITY and not _cap_ipc_lock():
        return (f"not locked: the memory-lock limit is {soft // 1024} KiB (ulimit -l); allow 'unlimited' "
                "(e.g. '@audio - memlock unlimited' in /etc/security/limits.d/audio.conf) to keep the audio path free of page faults")
    with _lock:
        if _locks == 0:
            libc = _libc()
            if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
                e = ctypes.get_errno()
                return f"not locked: mlockall failed ({os.strerror(e)})"
        _locks += 1
    return None


def unlock_memory():
    """Undo one :func:`lock_memory` that succeeded (``munlockall`` after the last one)."""
    global _locks
    with _lock:
        if _locks == 0:
            return
        _locks -= 1
        if _locks == 0:
            _libc().munlockall()


def touched(nbytes):
    """A uint8 buffer of ``nbytes`` whose every page has been written (no first-touch fault later).

    ``np.zeros`` maps untouched zero pages; the audio thread's first write
    to each would fault. Filling it here, off the audio thread, does not.
    """
    buf = np.empty(int(nbytes), np.uint8)
    buf.fill(0)
    return buf


# -- the kernel -------------------------------------------------------------------------------------


def kernel_preemption():
    """The kernel's preemption model: "full", "voluntary", "none", "lazy", "rt", or None (unknown)."""
    if not _LINUX:
        return None
    try:
        with open("/sys/kernel/realtime") as f:
            if f.read().strip() == "1":
                return "rt"
    except OSError:
        pass
    try:  # PREEMPT_DYNAMIC kernels with debugfs mounted: "none voluntary (full) lazy"
        with open("/sys/kernel/debug/sched/preempt") as f:
            for w in f.read().split():
                if w.startswith("("):
                    return w.strip("()")
    except OSError:
        pass
    try:
        with open("/proc/cmdline") as f:
            for w in f.read().split():
                if w.startswith("preempt="):
                    return w.split("=", 1)[1]
    except OSError:
        pass
    version = platform.version()
    if "PREEMPT_RT" in version:
        return "rt"
    try:  # the built-in default
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                for model in ("NONE", "VOLUNTARY", "LAZY", "RT"):
                    if line.strip() == f"CONFIG_PREEMPT_{model}=y":
                        return model.lower()
                if line.strip() == "CONFIG_PREEMPT=y":
                    return "full"
    except OSError:
        pass
    if "PREEMPT_DYNAMIC" in version:
        return None  # chosen at boot, and not readable here
    return "full" if "PREEMPT" in version.split() else None
