"""Pictures of a run: utilisation and queue length over time (matplotlib, no display).

The days jobs arrive are shaded on both panels: an offered load describes that span, and a
trace's longest jobs run on long after it (the idle tail the whole-run utilisation
includes). The title is wrapped to the figure's width, never cut.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from gpulease.sim.loop import SimResult

_MAX_POINTS = 4000
DPI = 110
_TITLE_CHARS = 95  # characters per title line at the figure's width and font size


def _downsample(
    timeline: list[tuple[float, int, int]],
) -> list[tuple[float, int, int]]:
    if len(timeline) <= _MAX_POINTS:
        return timeline
    stride = len(timeline) / _MAX_POINTS
    return [timeline[int(i * stride)] for i in range(_MAX_POINTS)] + [timeline[-1]]


def wrap_title(title: str, width: int = _TITLE_CHARS) -> str:
    """The title in lines of at most ``width`` characters (a longer word stays whole)."""
    return "\n".join(textwrap.wrap(title, width, break_long_words=False)) or title


def plot_run(result: SimResult, path: Path, *, title: str) -> None:
    """Write a PNG with utilisation (top) and queued jobs (bottom) against time in days."""
    import matplotlib.pyplot as plt

    fig = figure_of(result, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def figure_of(result: SimResult, *, title: str) -> Any:
    """The figure ``plot_run`` writes (a matplotlib Figure; the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _downsample(result.timeline)
    days = [t / 86400.0 for t, _, _ in points]
    utilisation = [100.0 * busy / result.cluster_gpus for _, busy, _ in points]
    queued = [q for _, _, q in points]
    submits = [o.submit / 86400.0 for o in result.outcomes.values()]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    if submits:
        for axes in (top, bottom):
            axes.axvspan(min(submits), max(submits), color="tab:green", alpha=0.08, lw=0)
        top.text(
            max(submits),
            102,
            " jobs arrive until here",
            color="tab:green",
            fontsize=8,
            va="bottom",
        )
    top.step(days, utilisation, where="post", color="tab:blue", linewidth=0.8)
    top.set_ylabel("GPUs busy (%)")
    top.set_ylim(0, 110)
    fig.suptitle(wrap_title(title), fontsize=10)
    top.grid(alpha=0.3)
    bottom.step(days, queued, where="post", color="tab:orange", linewidth=0.8)
    bottom.set_ylabel("queued jobs")
    bottom.set_xlabel("time (days)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return fig
