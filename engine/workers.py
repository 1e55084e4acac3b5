"""The engine's two worker threads, and the front end's rebuild after a failure.

Both run under the engine's supervisor (engine/supervise.py, started by
:meth:`genredream.engine.runtime.Engine.start`): the **front-end worker** pumps
what arrived through the front ends and queues a window job at every hop
boundary; the **inference worker** takes the jobs and runs the models
(:meth:`~genredream.engine.runtime.Engine.infer`). The queue is bounded: when
inference falls behind, the stalest job is dropped and counted in
``skipped_windows``.
"""

from __future__ import annotations

import time

import numpy as np

from genredream.engine.frontend import FrontEnds

__all__ = ["frontend_loop", "inference_loop", "reset_frontends"]


def frontend_loop(engine):
    """The front-end worker: pump what arrived, queue a job per hop boundary crossed."""
    # Polling, not an event: the audio callback must not touch a lock.
    # A 2 ms poll is well under a hop and costs nothing measurable.
    while engine._running:
        engine._cutting = True  # before the cursor moves: Engine.stop(drain=True) waits on it
        try:
            jobs = engine.pump()
            if jobs:
                with engine._cv:
                    for job in jobs:
                        if len(engine._queue) >= engine._queue_size:
                            engine._queue.popleft()
                            engine.counters["skipped_windows"] += 1
                        engine._queue.append(job)
                    engine._cv.notify()
        finally:
            engine._cutting = False
        if not jobs:
            time.sleep(0.002)


def inference_loop(engine):
    """The inference worker: run the models on each queued job until the engine stops and the queue is empty."""
    import torch

    torch.set_num_threads(max(1, engine.torch_threads))
    while True:
        with engine._cv:
            while engine._running and not engine._queue:
                engine._cv.wait(0.1)
            if not engine._queue:
                if not engine._running:
                    return
                continue
            job = engine._queue.popleft()
            engine._scoring = True  # with the pop, under the lock: a drain never sees the job in neither place
        try:
            engine.infer(job)
        finally:
            engine._scoring = False


def reset_frontends(engine):
    """A clean front end after a failure, on the unchanged sample clock.

    Every stream is rebuilt and fed the input ring's last window, so the
    next windows are full and their indices continue where they were.
    """
    with engine._lock:
        start = max(engine.ring.oldest_available, engine._cursor - engine.window_samples)
        fe = FrontEnds(engine.sample_rate, engine.window, origin=start)
        for slot in engine.models.values():
            slot.rate, slot.mel = fe.attach(slot.spec.sample_rate, slot.spec.mel)
        if engine.transform is not None:
            fe.attach(engine.transform.sample_rate, None)
        hist, got = engine.ring.read_since(start, max_n=engine._cursor - start)
        if got > start:  # cannot happen under the lock, but keep the clock exact if it did
            fe.push(np.zeros(got - start, np.float32))
        fe.push(hist)
        engine.frontends = fe
        if engine.transform is not None:  # the transform re-anchors on the new stream
            engine.transform.reattach(engine)
