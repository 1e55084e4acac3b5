"""Every measured figure README quotes is one BENCHMARKS.md holds.

README is the performer's page; BENCHMARKS.md is written by `make bench`. A
figure is a number with a unit in README's prose (x real time, ms, us, s, MB,
MiB, dB, dBFS, %, Hz, kHz). Commands and option values (fenced code and
`code spans`) are settings, not measurements, and are not read. A figure
counts as held when BENCHMARKS.md shows the same number with the same unit
(`25.9 ms`, `4.6x`) or as a measured field named for that unit
(`latency_p50_ms = 24.19`, `times_real_time = 19.3`).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NUMBER = r"-?\d+(?:\.\d+)?"
# Longest first so "ms" is not read as "m" + "s", "dBFS" not as "dB".
UNITS = ["x real time", "dBFS", "MiB", "kHz", "MB", "dB", "Hz", "ms", "us", "s", "%", "x"]
FIGURE = re.compile(
    rf"(?<![\w.\-/])({NUMBER})\s?({'|'.join(re.escape(u) for u in UNITS)})(?![\w])"
)
# A target (">= 60x real time") is what a figure should reach, not what was measured.
TARGET = re.compile(rf"[<>]=\s?{NUMBER}")
# The field-name stem BENCHMARKS.md's "Measured figures" use for a unit.
FIELD_STEM = {"x real time": "times_real_time", "x": "times_real_time", "ms": "_ms",
              "us": "_us", "s": "_s", "MB": "_mb", "MiB": "_mib"}


def prose(markdown: str) -> str:
    """README without fenced code blocks and inline code spans."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def figures(markdown: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FIGURE.finditer(prose(markdown))]


def held(number: str, unit: str, benchmarks: str) -> bool:
    benchmarks = TARGET.sub("", benchmarks)
    n = re.escape(number)
    u = "x" if unit == "x real time" else re.escape(unit)
    if re.search(rf"(?<![\w.]){n}\s?{u}(?!\w)", benchmarks):
        return True
    stem = FIELD_STEM.get(unit)
    value = rf"(?:{n}(?![\d.])|\[[^\]\n]*(?<![\w.]){n}(?![\d.])[^\]\n]*\])"
    return bool(stem) and re.search(rf"\w*{stem}\w* = {value}", benchmarks) is not None


def test_extraction_reads_figures_and_skips_code():
    text = "runs at 19.3x real time, p99 25.9 ms, 4.6x, 547.4 MiB\n```sh\nrun --hop 0.7 s\n```\n`--lead 0.9 s`"
    assert figures(text) == [("19.3", "x real time"), ("25.9", "ms"), ("4.6", "x"), ("547.4", "MiB")]


def test_every_readme_figure_is_in_benchmarks():
    readme = (ROOT / "README.md").read_text()
    benchmarks = (ROOT / "BENCHMARKS.md").read_text()
    found = figures(readme)
    assert len(found) >= 5, f"README's figures were not found (extraction broken?): {found}"
    missing = [f"{n} {u}" for n, u in found if not held(n, u, benchmarks)]
    assert not missing, f"README quotes figures BENCHMARKS.md does not hold: {missing}"
