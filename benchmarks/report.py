"""Write BENCHMARKS.md (and figures) from a pytest-benchmark JSON file.

Usage: python benchmarks/report.py benchmarks/results.json [--out BENCHMARKS.md]

Benchmarks that share ``extra_info["pair"]`` are compared: the ratio is the
reference's median over ours, both measured in the same run. A benchmark may
give its own figure (``figure_s`` with ``figure_label``, e.g. a p99) instead
of the median (with ``figure_unit`` when it is not a time). A benchmark
with ``budget_s`` is also shown as a share of its real-time budget. Other ``extra_info`` keys (measured figures such as
compile times, latencies) are listed under the table.

Verdicts ("met" / "NOT met") are given only on what was measured in the
same run (:func:`target_met`):

* ``target_min_ratio``: the pair's ratio (reference / ours) at least this;
* ``target_max_ratio`` with ``ratio_key``: a ratio the benchmark measured
  between two of its own runs (``extra_info[ratio_key]``) at most this;
* ``target_counts_key``: ours counted no more of it than the reference
  (xruns of the C callback against the Python one).

An absolute bound (``target_abs_s``, or ``target_max_fraction`` of the
real-time budget) is shown beside the figure as information, never as a
verdict: the machines are shared and noisy. A ``target`` that none of
these checks is an error, so every target a benchmark names is checked.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import OrderedDict
from pathlib import Path


def load(path):
    data = json.loads(Path(path).read_text())
    rows = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        rows.append(
            dict(
                name=b["name"],
                file=b.get("fullname", "").split("::")[0],
                median=b["stats"]["median"],
                p_iqr=b["stats"].get("iqr", 0.0),
                rounds=b["stats"]["rounds"],
                info=info,
            )
        )
    return data, rows


def fmt_time(s):
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= f:
            return f"{s / f:.3g} {unit}"
    return f"{s:.3g} s"


_SKIP_INFO = {"pair", "role", "target", "budget_s", "label", "target_abs_s", "figure_s", "figure_label", "figure_unit", "target_max_fraction", "figure_png",
              "target_min_ratio", "target_max_ratio", "ratio_key", "target_counts_key"}

def fmt_figure(r):
    """A row's figure as text: a time, or a number in the row's own ``figure_unit`` (memory in MiB, say)."""
    unit = r["info"].get("figure_unit")
    return f"{figure(r):.4g} {unit}" if unit else fmt_time(figure(r))


def figure(r):
    """The time a row stands for: a benchmark's own measured figure (a p99 of
    callback durations, say) when it gives one, else pytest-benchmark's median."""
    return r["info"].get("figure_s", r["median"])


def build(rows):
    pairs = OrderedDict()
    for r in rows:
        pairs.setdefault(r["info"].get("pair", r["name"]), []).append(r)
    out = []
    for pair, rs in pairs.items():
        ours = [r for r in rs if r["info"].get("role") == "ours"]
        refs = [r for r in rs if r["info"].get("role") == "reference"]
        if not ours and not refs:  # a measurement with no reference (a role of its own): report it as ours
            ours = rs
        out.append((pair, ours, refs))
    return out


class UncheckedTarget(ValueError):
    """A benchmark named a target that no same-run check covers."""


def target_met(target, ratio, median, info, ref_info=None):
    """The verdict on a named target: "met", "NOT met", or an absolute bound as information; "" without a target."""
    if not target:
        return ""
    verdicts = []
    if "target_min_ratio" in info:
        verdicts.append(ratio is not None and ratio >= info["target_min_ratio"])
    if "target_max_ratio" in info:
        verdicts.append(info[info["ratio_key"]] <= info["target_max_ratio"])
    if "target_counts_key" in info:
        k = info["target_counts_key"]
        verdicts.append(ref_info is not None and info[k] <= ref_info[k])
    absolute = []
    if "target_abs_s" in info and median is not None:
        absolute.append(f"{fmt_time(median)} against {fmt_time(info['target_abs_s'])}")
    if "target_max_fraction" in info and info.get("budget_s") and median is not None:
        absolute.append(f"{median / info['budget_s']:.3g} of the budget against {info['target_max_fraction']:.3g}")
    if not verdicts and not absolute:
        raise UncheckedTarget(f"target {target!r} ({info.get('pair')}) is checked by nothing: give target_min_ratio, "
                              "target_max_ratio with ratio_key, target_counts_key, target_abs_s or target_max_fraction")
    out = ("met" if all(verdicts) else "NOT met") if verdicts else ""
    if absolute:
        out += ("; " if out else "") + "absolute, information only: " + ", ".join(absolute)
    return out


def plot(groups, fig_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(p, o[0], r) for p, o, r in groups if o and r and "target_counts_key" not in o[0]["info"]]  # counts are not times
    if not items:
        return False
    fig, axes = plt.subplots(len(items), 1, figsize=(8, 1.6 + 1.3 * len(items) + 0.4 * sum(len(r) for *_, r in items)), squeeze=False)
    for ax, (pair, ours, refs) in zip(axes[:, 0], items):
        names = ["genredream"] + [r["info"].get("label", r["name"]) for r in refs]
        vals = [ours["median"] * 1e6] + [r["median"] * 1e6 for r in refs]
        colors = ["tab:green"] + ["tab:gray"] * len(refs)
        ax.barh(names[::-1], vals[::-1], color=colors[::-1])
        ax.set_xscale("log")
        ax.set_title(pair, fontsize=9)
        ax.set_xlabel("median time (us, log scale)")
        for i, v in enumerate(vals[::-1]):
            ax.text(v, i, f" {fmt_time(v / 1e6)}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_path, dpi=110)
    plt.close(fig)
    return True


def render(data, rows, fig_rel):
    groups = build(rows)
    m = data.get("machine_info", {})
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/report.py`); do not edit by hand.",
        "Every ratio compares two things measured in the same run on the same machine;",
        "absolute times are shown for orientation only (the machines are shared and noisy).",
        "",
        f"Machine: {m.get('cpu', {}).get('brand_raw', platform.processor() or 'unknown CPU')}, "
        f"{m.get('cpu', {}).get('count', '?')} cores, Python {m.get('python_version', platform.python_version())}; "
        f"run {data.get('datetime', '')[:19]}.",
        "",
        "| what | genredream (median) | reference (median) | ratio (reference / ours) | target | share of real-time budget |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for pair, ours, refs in groups:
        for o in ours or [None]:
            ref = refs[0] if refs else None
            info = (o or ref)["info"]
            counts = info.get("target_counts_key")
            ratio = (figure(ref) / figure(o)) if (o and ref and not counts) else None  # counts: no ratio of run lengths
            budget = info.get("budget_s")
            share = f"{figure(o) / budget:.3%} of {fmt_time(budget)}" if (o and budget) else ""
            tgt = info.get("target", "")
            met = target_met(tgt, ratio, figure(o) if o else None, info, ref["info"] if ref else None)
            shown = (lambda r: f"{r['info'][counts]} {counts}") if counts else fmt_figure
            cells = [
                pair,
                (shown(o) + (f" ({info['figure_label']})" if "figure_label" in info else "")) if o else "",
                (shown(ref) + " (" + ref["info"].get("label", ref["name"]) + ")") if ref else "",
                f"{ratio:.1f}x" if ratio else "",
                tgt + (" — " + met if met else ""),
                share,
            ]
            # A "|" inside a label would split the Markdown cell.
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            for r in ([o] if o else []) + refs[1:]:
                extra = {k: v for k, v in r["info"].items() if k not in _SKIP_INFO}
                if extra:
                    notes.append(f"- **{pair}** (`{r['name']}`): " + ", ".join(f"{k} = {v}" for k, v in extra.items()))
    if notes:
        lines += ["", "## Measured figures", ""] + notes
    pngs = [(r["info"].get("pair", r["name"]), r["info"]["figure_png"]) for r in rows if "figure_png" in r["info"]]
    if fig_rel or pngs:
        lines += ["", "## Figures", ""]
    if fig_rel:
        lines += [f"![medians, genredream against its references]({fig_rel})", ""]
    for title, png in pngs:
        lines += [f"**{title}**", "", f"![{title}]({png})", ""]
    lines += soak_section()
    lines.append("")
    return "\n".join(lines)


def soak_section(path=Path(__file__).with_name("figures") / "soak_jack.json"):
    """`make soak`'s last figures (tests/test_soak.py), if it has run: it is not a pytest-benchmark."""
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    skip = ("rss_series_mb", "loads", "jackd_xrun_lines", "patch_errors")
    return ["", f"## Soak: {r['minutes']:g} minutes under JACK, dream on (`make soak`)", "",
            "RSS growth is the last minute's mean over minute 1-2's (target <= 5 %); dream_late_blocks: output blocks "
            "that fell back to dry after the dream's first (target 0); jackd_blames_us: jackd's cycles blaming our client "
            "(target 0; ours_alone: those in which neither jackd's driver nor jack_metro was late too; judged by tests/jack_rule.py).", "",
            "- " + ", ".join(f"{k} = {v}" for k, v in r.items() if k not in skip)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="pytest-benchmark JSON (from --benchmark-json)")
    ap.add_argument("--out", default="BENCHMARKS.md", help="Markdown file to write (default BENCHMARKS.md)")
    args = ap.parse_args(argv)
    data, rows = load(args.results)
    out = Path(args.out)
    fig_dir = out.parent / "benchmarks" / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig = fig_dir / "medians.png"
    has_fig = plot(build(rows), fig)
    out.write_text(render(data, rows, str(fig.relative_to(out.parent)) if has_fig else None))
    print(f"wrote {out} ({len(rows)} benchmarks){' and ' + str(fig) if has_fig else ''}")


if __name__ == "__main__":
    main()
