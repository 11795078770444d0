"""The simulated executor never overflows: a duration the calendar cannot hold runs until
stopped, and every other run still ends on time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gpulease.executors.base import Launch, NodeSlice
from gpulease.executors.simulated import SimulatedExecutor

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def launch(job_id: str, duration_s: float | None, tmp_path: Path) -> Launch:
    return Launch(
        job_id=job_id,
        run=1,
        tenant_id="t",
        purpose="p",
        command="train",
        image=None,
        gpus=4,
        slices=(NodeSlice("n1", (0, 1, 2, 3), ("a", "b", "c", "d")),),
        started_at=START,
        duration_s=duration_s,
        log_path=tmp_path / f"{job_id}.log",
    )


@pytest.mark.parametrize("duration", [1e12, 1e308, math.inf, math.nan])
def test_a_duration_beyond_the_calendar_runs_until_stopped(tmp_path: Path, duration: float) -> None:
    executor = SimulatedExecutor()
    executor.launch(launch("huge", duration, tmp_path))
    executor.launch(launch("short", 30, tmp_path))
    assert executor.adopt(launch("huge", duration, tmp_path))  # after a failover, too
    [done] = executor.poll(START + timedelta(days=365 * 100))
    assert done.job_id == "short"
    assert done.ended_at == START + timedelta(seconds=30)
    assert executor.active() == {("huge", 1)}
    executor.stop("huge", "cancelled")
    assert executor.active() == set()


def test_a_negative_duration_ends_at_once(tmp_path: Path) -> None:
    executor = SimulatedExecutor()
    executor.launch(launch("neg", -5.0, tmp_path))
    [done] = executor.poll(START)
    assert (done.job_id, done.exit_code, done.ended_at) == ("neg", 0, START)
