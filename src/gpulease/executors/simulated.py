"""The simulated executor: a run succeeds after its declared duration (default 60 s).

Used by the demo and the tests. It holds no process, so it can adopt any run after a
failover: the end time is recomputed from the run's start and the job's duration.

A duration the calendar cannot hold (infinite, NaN, or ending after ``datetime.max``) means
the run goes on until it is stopped: it never completes by itself, and nothing overflows.
A negative duration ends at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gpulease.executors.base import Completion, Launch, SeenWhereRecorded

DEFAULT_DURATION_S = 60.0


def end_of(started_at: datetime, duration_s: float) -> datetime | None:
    """When a run of ``duration_s`` seconds started at ``started_at`` ends; None: never."""
    if math.isnan(duration_s):
        return None
    try:
        return started_at + timedelta(seconds=max(duration_s, 0.0))
    except OverflowError:  # beyond timedelta's or datetime's range (inf included)
        return None


@dataclass
class _Run:
    launch: Launch
    ends_at: datetime | None  # None: runs until stopped
    lines: list[str] = field(default_factory=list)


class SimulatedExecutor(SeenWhereRecorded):
    name = "simulated"

    def __init__(self, default_duration_s: float = DEFAULT_DURATION_S) -> None:
        self.default_duration_s = default_duration_s
        self.relocated: dict[str, str] = {}  # location attestation drills (base.py)
        self.unseen: set[str] = set()
        self._runs: dict[str, _Run] = {}

    def launch(self, launch: Launch) -> None:
        duration = launch.duration_s if launch.duration_s is not None else self.default_duration_s
        run = _Run(launch, end_of(launch.started_at, duration))
        env = launch.environment()
        run.lines.append(
            f"[gpulease simulated] run {launch.run} of {launch.job_id} started at "
            f"{launch.started_at.isoformat()} on {env['GPULEASE_ALLOCATION']}"
        )
        run.lines.append(f"[gpulease simulated] command: {launch.command or launch.image}")
        if run.ends_at is None:
            run.lines.append(f"[gpulease simulated] duration {duration:g} s: runs until stopped")
        else:
            run.lines.append(f"[gpulease simulated] will finish after {duration:g} s")
        self._runs[launch.job_id] = run

    def adopt(self, launch: Launch) -> bool:
        self.launch(launch)
        self._runs[launch.job_id].lines.append("[gpulease simulated] adopted after failover")
        return True

    def warn(self, job_id: str, message: str) -> None:
        run = self._runs.get(job_id)
        if run is not None:
            run.lines.append(f"[gpulease] {message}")

    def stop(self, job_id: str, reason: str) -> None:
        self._runs.pop(job_id, None)

    def poll(self, now: datetime) -> list[Completion]:
        done = [
            (run.ends_at, run)
            for run in self._runs.values()
            if run.ends_at is not None and run.ends_at <= now
        ]
        completions = []
        for ends_at, run in sorted(done, key=lambda d: (d[0], d[1].launch.job_id)):
            del self._runs[run.launch.job_id]
            run.lines.append(f"[gpulease simulated] finished at {ends_at.isoformat()}, exit 0")
            completions.append(
                Completion(run.launch.job_id, run.launch.run, 0, ends_at, "\n".join(run.lines))
            )
        return completions

    def active(self) -> set[tuple[str, int]]:
        return {(job_id, run.launch.run) for job_id, run in self._runs.items()}

    def close(self) -> None:
        self._runs.clear()
