"""Benchmark conventions (read by benchmarks/report.py).

Every timed function sets ``benchmark.extra_info``:

* ``pair``: benchmarks compared with each other share a pair name;
* ``role``: ``"ours"`` or ``"reference"`` (the reference is measured in the
  same run, on the same machine, so the ratio survives a noisy neighbour);
* ``target``: optional text of the issue's target, e.g. ``">= 50x"``;
* ``budget_s``: optional real-time budget the median is compared with.

Absolute times are printed but never asserted: machines are shared.
"""
