"""The same job on Ray Data, for libraries too big for one machine.

The file listing becomes a Ray dataset; ``map_batches`` hands batches of
files to a pool of actors of :class:`TagActor`, each holding the models
(loaded once per actor) and a :class:`~genredream.models.tag.tagger.Tagger`; the rows
come back to the driver, which writes them with the same writers, journal
and progress bar as the embedded run. Rows travel as JSON text, so a
score's float is the one the worker computed, bit for bit, and since every
forward call has the same batch shape (see :mod:`genredream.models.tag.tagger`) the
rows equal the embedded run's whichever actor tagged which file.

Without an address, a local Ray starts with the local cores. With one
(``ray://head:10001`` or ``auto``), the job joins that cluster: every node
needs genredream installed and the files at the same paths (shared
storage); see docs/tagging.md.
"""

from __future__ import annotations

import json

__all__ = ["TagActor", "run_ray", "FILES_PER_BATCH"]

#: Files per map_batches call: a call ends with one padded forward batch, so
#: a few files per call keep that waste small while spreading work evenly.
FILES_PER_BATCH = 4


class TagActor:
    """A Ray Data callable class: models loaded once, then batches of files to rows."""

    def __init__(self, model_refs, overlap, per_window):
        import torch

        from genredream.models.registry import resolve_model
        from genredream.models.tag.tagger import Tagger

        torch.set_num_threads(1)
        self.tagger = Tagger([str(resolve_model(r)) for r in model_refs], overlap=overlap, per_window=per_window)

    def __call__(self, batch):
        import numpy as np

        from genredream.models.tag.files import FileEntry

        entries = [FileEntry(str(p), int(s), int(m)) for p, s, m in zip(batch["path"], batch["size"], batch["mtime_ns"])]
        data = {e.path: bytes(b) for e, b in zip(entries, batch["data"])} if "data" in batch else None
        rows, wins = [], []
        for row, w in self.tagger.tag(entries, data):
            rows.append(json.dumps(row))
            wins.append(json.dumps(w))
        return {"row": np.array(rows, dtype=object), "windows": np.array(wins, dtype=object)}


def run_ray(model_refs, entries, overlap, per_window, address, workers, on_row, upload=False):
    """Tag ``entries`` on Ray; ``on_row(row, window_rows)`` on the driver as rows arrive.

    ``upload``: read the files here and send their bytes through Ray's object
    store, for workers that cannot see this machine's files (the dataset then
    holds the whole listing's bytes: Ray spills what does not fit in memory).
    """
    import ray

    entries = list(entries)
    if not entries:
        return
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=False)
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=int(workers), **kw)
        started = True
    try:
        import logging

        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO lines would break our progress bar
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours is on stderr already
        ctx.print_on_execution_start = False
        actors = max(1, min(int(ray.cluster_resources().get("CPU", 1)), -(-len(entries) // FILES_PER_BATCH)))
        items = [{"path": e.path, "size": e.size, "mtime_ns": e.mtime_ns} for e in entries]
        if upload:
            for it in items:
                try:
                    it["data"] = open(it["path"], "rb").read()
                except OSError:  # the worker's decoder will report it in the file's error row
                    it["data"] = b""
        ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // FILES_PER_BATCH)))
        ds = ds.map_batches(
            TagActor,
            fn_constructor_args=(list(model_refs), float(overlap), bool(per_window)),
            batch_size=FILES_PER_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
            for r, w in zip(batch["row"], batch["windows"]):
                on_row(json.loads(r), json.loads(w))
    finally:
        if started:
            ray.shutdown()
