"""Containing one bad job: the scheduler fails it, saying why, and the pass goes on.

Design. A job row may hold values the scheduler cannot act on, whoever wrote them (an older
version, a direct SQL fix, a bug at the edge): a duration or walltime that is not a finite
number of seconds or ends beyond the calendar, a shape or class the core refuses, a run whose
rows contradict each other. And a decision may fail to apply, or the executor to launch or
adopt a run, for reasons of that job alone. Each such failure is attributed to its job, which
is failed (``end_reason`` says what was wrong; audited; its GPUs released), while the rest of
the pass is applied. A database outage is not a job's fault: it fails the pass, which the
loop retries.

Invariants: :func:`defect_of` is pure (a row and ``now`` in, a reason or None out);
:func:`fail` is used inside a write transaction and never leaves a job running without GPUs
or holding GPUs while not running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpulease.domain.errors import DomainError
from gpulease.domain.states import JobState
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Job
from gpulease.services import audit, runs
from gpulease.services.job_fields import JobFields, spec_of


@dataclass(frozen=True, slots=True)
class Defect:
    """A job to fail, why, and the row it was judged on (changed since: left alone)."""

    job_id: str
    reason: str
    version: int | None = None  # fail only while the row is at this version
    run: int | None = None  # fail only while the row still runs this run


def describe(error: BaseException) -> str:
    """One line naming the error, for an ``end_reason`` (no stack trace)."""
    text = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _seconds_defect(
    name: str, value: float | None, start: datetime, *, zero_ok: bool
) -> str | None:
    if value is None:
        return None
    if not math.isfinite(value):
        return f"{name} is {value}, not a finite number of seconds"
    if value < 0 or (value == 0 and not zero_ok):
        return f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value:g}"
    try:
        start + timedelta(seconds=value)
    except OverflowError:
        return f"{name} of {value:g} s ends beyond the calendar (year 9999)"
    return None


def defect_of(job: JobFields, now: datetime) -> str | None:
    """Why the scheduler cannot act on this job's row, or None."""
    start = job.started_at or now
    for name, value, zero_ok in (
        ("duration_s", job.duration_s, True),
        ("walltime_s", job.walltime_s, False),
    ):
        why = _seconds_defect(name, value, start, zero_ok=zero_ok)
        if why is not None:
            return why
    if job.state == JobState.RUNNING and job.started_at is None:
        return "running without a start time"
    try:
        spec_of(job)
    except (DomainError, ValueError, TypeError, OverflowError) as error:
        return str(error) or describe(error)
    return None


def reason_of(why: str) -> str:
    return audit.clip(f"failed by the scheduler: {why}")


def still_applies(job: Job, defect: Defect) -> bool:
    """Whether the row is still the one the defect was found on."""
    if job.state not in (JobState.QUEUED, JobState.RUNNING):
        return False
    if defect.version is not None and job.version != defect.version:
        return False
    return defect.run is None or (job.state == JobState.RUNNING and job.starts == defect.run)


def fail(tx: Tx, job: Job, now: datetime, why: str, *, actor: str) -> bool:
    """Fail a queued or running job (a run's GPUs are released); True if it ran."""
    was_running = job.state == JobState.RUNNING
    if was_running and job.started_at is None:
        job.started_at = now  # a run without a start counts as none
    runs.stop_run(tx, job, now, JobState.FAILED, reason=reason_of(why), actor=actor)
    return was_running
