"""The live terminal view (rich): a bar per genre for each model, the top
genre, latency p50/p99, xruns, skipped windows and the input level; the
seconds since the last result (red when results stop), each worker's health
(a worker restarting or disabled shows in red) and the input repairs.

The view reads the engine's last results and counters a few times a second
on the main thread; it never blocks the workers.
"""

from __future__ import annotations

import math

__all__ = ["LiveView", "render"]

_BAR = 24


def _bar(v):
    n = max(0, min(_BAR, int(round(v * _BAR))))
    return "█" * n + "·" * (_BAR - n)


def _what(r):
    """What the bars' percentages are: renormalised genre shares for tag (sigmoid) models."""
    if r is None or r.error:
        return ""
    if r.activation == "sigmoid":
        return "genre tags as shares of 100 % (renormalised; the summary and JSON give each tag's own probability)"
    return "probabilities (softmax)"


def render(engine, extra=None, top_n=10):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    from genredream.models.classify import display_scores

    st = engine.status()
    lat = st["latency_ms"]
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"stream [bold]{st['stream_s']:7.1f} s[/]",
        f"latency p50 [bold]{lat['p50']:.1f}[/] ms  p99 [bold]{lat['p99']:.1f}[/] ms",
        f"skipped {st['skipped_windows']}",
        f"xruns {(extra or {}).get('xruns', st.get('xruns', 0))}",  # a device source publishes them on the engine
    )
    age = st.get("last_result_age_s")
    workers = st.get("workers") or {}
    down = [f"{n} {w}" for n, w in workers.items() if w not in ("running", "idle", "stopped")]
    health = Table.grid(padding=(0, 2))
    health.add_row(
        f"last result [bold]{age:5.1f} s[/] ago" if age is not None and age < 2 * st["hop_s"] + 1 else
        f"[bold red]last result {age:.1f} s ago[/]" if age is not None else "",
        f"workers: [bold red]{', '.join(down)}[/]" if down else f"workers: {len(workers)} alive",
        f"[yellow]worker failures {st['worker_errors']}[/]" if st.get("worker_errors") else "",
        f"[yellow]repaired {st['nonfinite_repaired'] + st['out_of_range_repaired']} samples[/]"
        if st.get("nonfinite_repaired") or st.get("out_of_range_repaired") else "",
    )
    panels = [head, health]
    for name, slot in engine.models.items():
        r = engine.last_results.get(name)
        t = Table(show_header=False, box=None, pad_edge=False)
        if r is None:
            t.add_row("waiting for the first window…")
        elif r.error:
            t.add_row(f"[red]{r.error}[/]")
        else:
            level = f"input {r.level_db:6.1f} dBFS" + (" [yellow](low energy)[/]" if r.low_energy else "")
            if getattr(r, "partial", False):
                # the window reaches back before the stream's start: scores of less than a window of music
                level += f" [yellow](partial window: {max(r.end_s, 0):.1f} of {engine.window:g} s)[/]"
            shown = display_scores(dict(zip(r.labels, r.scores)), r.genre_labels, False, r.activation)
            for label, v in sorted(shown.items(), key=lambda kv: -kv[1])[:top_n]:
                t.add_row(f"{label:>14}", f"[green]{_bar(v)}[/]", f"{v:5.1%}")
            t.add_row("", level, "")
        top = r.top[0] if r is not None and not r.error else "—"
        what = _what(r)
        title = f"{name} — top: [bold]{top}[/]" + (f" — {what}" if what else "") + (f" — {r.end_s:.1f} s" if r is not None and math.isfinite(r.end_s) else "")
        panels.append(Panel(t, title=title, title_align="left"))
    return Group(*panels)


class LiveView:
    """Context manager: ``with LiveView(engine): ...`` refreshes until exit."""

    def __init__(self, engine, extra=None, refresh_per_second=8):
        from rich.live import Live

        self.engine = engine
        self.extra = extra if extra is not None else {}
        self._live = Live(render(engine, self.extra), refresh_per_second=refresh_per_second, get_renderable=lambda: render(engine, self.extra))

    def __enter__(self):
        self._live.__enter__()
        return self

    def __exit__(self, *exc):
        self._live.update(render(self.engine, self.extra))
        return self._live.__exit__(*exc)
