"""Pictures of a run: utilisation and queue length over time (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

from gpulease.sim.loop import SimResult

_MAX_POINTS = 4000


def _downsample(
    timeline: list[tuple[float, int, int]],
) -> list[tuple[float, int, int]]:
    if len(timeline) <= _MAX_POINTS:
        return timeline
    stride = len(timeline) / _MAX_POINTS
    return [timeline[int(i * stride)] for i in range(_MAX_POINTS)] + [timeline[-1]]


def plot_run(result: SimResult, path: Path, *, title: str) -> None:
    """Write a PNG with utilisation (top) and queued jobs (bottom) against time in days."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = _downsample(result.timeline)
    days = [t / 86400.0 for t, _, _ in points]
    utilisation = [100.0 * busy / result.cluster_gpus for _, busy, _ in points]
    queued = [q for _, _, q in points]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    top.step(days, utilisation, where="post", color="tab:blue", linewidth=0.8)
    top.set_ylabel("GPUs busy (%)")
    top.set_ylim(0, 105)
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.step(days, queued, where="post", color="tab:orange", linewidth=0.8)
    bottom.set_ylabel("queued jobs")
    bottom.set_xlabel("time (days)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
