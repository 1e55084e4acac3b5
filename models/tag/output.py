"""Rows of a tagging job and the files they go to.

A file row holds the file's ``--resume`` key (path, size, mtime), what was
decoded (duration, native sample rate, channels), the number of windows,
the top genre of the first model and its score (empty for a file of near
silence), its level (dBFS) and ``low_energy`` flag (as ``run`` marks
windows), ``damaged`` (why, for a file cut off: tagged up to the damage),
an ``error`` (empty when the file was tagged), and each model's mean score per label in a
``model:label`` column. Window rows (``--per-window``) hold one model's
scores of one window.

The format follows the output's extension: ``.csv``, ``.jsonl`` or
``.parquet`` (pyarrow). While a job runs, finished rows are appended to a
journal beside the output (``OUT.partial.jsonl``, flushed row by row), so
neither Ctrl-C nor a killed process loses them; at the end, or on Ctrl-C,
the output is written whole, sorted by path, and the journal removed.
``--resume`` reads both.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

__all__ = [
    "FORMATS",
    "file_columns",
    "window_columns",
    "file_row",
    "error_row",
    "window_rows",
    "read_rows",
    "write_rows",
    "Journal",
    "check_format",
]

FORMATS = (".csv", ".jsonl", ".parquet")

_FILE_BASE = [
    ("path", str),
    ("size", int),
    ("mtime_ns", int),
    ("duration_s", float),
    ("sample_rate", int),
    ("channels", int),
    ("windows", int),
    ("top_genre", str),
    ("top_score", float),
    ("level_db", float),
    ("low_energy", int),
    ("damaged", str),
    ("error", str),
]
_WINDOW_BASE = [("path", str), ("model", str), ("window", int), ("start_s", float), ("end_s", float)]


def check_format(path):
    """The output's format from its extension, or ValueError naming the choices."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: the output format follows the extension: one of {', '.join(FORMATS)}")
    return ext


def _score_columns(metas):
    return [(f"{m['name']}:{label}", float) for m in metas for label in m["labels"]]


def file_columns(metas):
    """``[(name, type)]`` of a file row for models with these metadata."""
    return _FILE_BASE + _score_columns(metas)


def window_columns(metas):
    return _WINDOW_BASE + _score_columns(metas)


def _top(meta, mean):
    labels = list(meta["labels"])
    genres = [g for g in (meta.get("genre_labels") or labels) if g in labels]
    j = max(genres, key=lambda g: mean[labels.index(g)])
    return j, float(mean[labels.index(j)])


def file_row(entry, fw, models, probs):
    """The row of a tagged file; ``probs[i]``: model ``i``'s window activations, float64 [windows, labels]."""
    row = {
        "path": entry.path,
        "size": entry.size,
        "mtime_ns": entry.mtime_ns,
        "duration_s": round(fw.duration_s, 3),
        "sample_rate": fw.sample_rate,
        "channels": fw.channels,
        "windows": len(probs[0]),
        "error": None,
    }
    from genredream.models.data import LOW_ENERGY_DB, file_damage

    row["level_db"] = round(fw.level_db(), 2)
    row["low_energy"] = int(row["level_db"] < LOW_ENERGY_DB)
    # a cut-off file is tagged up to the damage: the row says why (as `run` and `classify` warn)
    damage = None if fw.data is not None else file_damage(entry.path, fw.duration_s)
    row["damaged"] = None if damage is None else damage["reason"]
    # near silence has no genre: its scores are kept, its top genre is not claimed
    row["top_genre"], row["top_score"] = (None, None) if row["low_energy"] else _top(models[0].meta, probs[0].mean(axis=0))
    for m, p in zip(models, probs):
        for label, v in zip(m.meta["labels"], p.mean(axis=0).tolist()):
            row[f"{m.meta['name']}:{label}"] = v
    return row


def error_row(entry, message, fw=None):
    """The row of a file that could not be tagged: the key, what is known, and why."""
    return {
        "path": entry.path,
        "size": entry.size,
        "mtime_ns": entry.mtime_ns,
        "sample_rate": getattr(fw, "sample_rate", None),
        "channels": getattr(fw, "channels", None),
        "error": message,
    }


def window_rows(entry, fw, models, probs):
    """One row per model and window, times as ``classify`` reports them."""
    out = []
    for i, (m, p) in enumerate(zip(models, probs)):
        spec, ws = fw.specs[i], float(m.meta["window_seconds"])
        for w, (start, scores) in enumerate(zip(fw.starts[i], p)):
            s = spec.seconds(start)
            row = {
                "path": entry.path,
                "model": m.meta["name"],
                "window": w,
                "start_s": round(s, 3),
                "end_s": round(min(s + ws, max(fw.model_seconds[i], ws)), 3),
            }
            for label, v in zip(m.meta["labels"], scores.tolist()):
                row[f"{m.meta['name']}:{label}"] = v
            out.append(row)
    return out


def _typed(row, columns):
    out = {}
    for name, typ in columns:
        v = row.get(name)
        if v is None or v == "" or (isinstance(v, float) and np.isnan(v) and typ is not float):
            out[name] = None
        else:
            out[name] = typ(v)
    return out


def read_rows(path, columns):
    """Rows of an existing output or journal (``[]`` if it does not exist), typed by ``columns``."""
    path = Path(path)
    if not path.exists():
        return []
    ext = ".jsonl" if path.name.endswith(".partial.jsonl") else check_format(path)
    if ext == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif ext == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill: that file is tagged again
                    pass
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    return [_typed(r, columns) for r in rows]


def write_rows(path, rows, columns):
    """Write ``rows`` whole to ``path`` (format by extension), atomically: a temporary file, then a rename."""
    path = Path(path)
    ext = check_format(path)
    tmp = path.with_name(path.name + ".tmp")
    names = [n for n, _ in columns]
    rows = [_typed(r, columns) for r in rows]
    if ext == ".csv":
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(names)
            for r in rows:
                w.writerow(["" if r[n] is None else repr(r[n]) if isinstance(r[n], float) else r[n] for n in names])
    elif ext == ".jsonl":
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {str: pa.string(), int: pa.int64(), float: pa.float64()}
        schema = pa.schema([(n, types[t]) for n, t in columns])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    os.replace(tmp, path)


class Journal:
    """Rows appended as they finish (JSON lines, flushed each): what survives an interrupt."""

    def __init__(self, out_path):
        self.path = Path(str(out_path) + ".partial.jsonl")
        self._f = None

    def append(self, rows):
        if self._f is None:
            self._f = open(self.path, "a", encoding="utf-8")
        for r in rows:
            self._f.write(json.dumps(r) + "\n")
        self._f.flush()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def remove(self):
        self.close()
        self.path.unlink(missing_ok=True)
