"""Training compute: what one job will have used, and what a tenant's jobs add up to.

Vocabulary. A job's **estimate** is GPUs x seconds x peak FLOP/s per GPU x utilisation. Its
**seconds** (:func:`job_seconds`): a finished job's actual run seconds; a running job's
*projected* total, the larger of what it has run so far and its walltime limit (else its
declared duration) for the current run, plus its earlier runs: a job does not drop out of
the report because it started; a job requeued after running (preempted, a node lost), its
earlier runs plus its limit for the next; a job not yet run, its walltime limit (else its
declared duration). A **campaign** is a tenant's jobs that declare the same purpose (compared
without case and extra blanks): one training run split across jobs, resubmitted after a
failure, or run as stages. A **window** is the last ``window_days`` days: a job counts in it
unless it ended before the window opened.

The rule (:func:`aggregate`). Each threshold in force (``training_compute`` rules of the
policy packs, or one the caller gives) is passed by a single job whose estimate reaches it,
and by the sum over a window of a tenant's jobs, or of one campaign's jobs, that reaches it:
splitting a run into many jobs below the threshold does not hide it. Jobs count wherever
they ran: a tenant's or a campaign's total is over every site. Given ``groups`` (tenants under
common ownership or control, :mod:`gpulease.compliance.ownership_groups`), the sum of a
group's jobs is a total too (kind ``group``): shell tenants do not hide a run either.

Pure: the clock is an argument; the same jobs and thresholds give the same result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Threshold:
    ref: str  # the rule's ref (``pack@version/rule``) or "given by the caller"
    ops: Decimal
    window_days: int


@dataclass(frozen=True, slots=True)
class JobCompute:
    job_id: str
    tenant_id: str
    purpose: str
    ended_at: datetime | None
    ops: Decimal


@dataclass(frozen=True, slots=True)
class Aggregate:
    kind: str  # "tenant", "campaign" or "group"
    tenant_id: str  # a group's: the identity that controls its tenants
    campaign: str  # the normalised purpose ("" for a tenant's or a group's total)
    window_days: int
    window_start: datetime
    job_ids: tuple[str, ...]
    ops: Decimal
    passes: tuple[str, ...]  # refs of the thresholds reached
    tenants: tuple[str, ...] = ()  # a group's tenants


def job_seconds(
    *,
    running: bool,
    finished: bool,
    starts: int,
    run_s: float,
    current_run_s: float,
    walltime_s: float | None,
    duration_s: float | None,
) -> tuple[float, str] | None:
    """The seconds a job's estimate uses and their basis (see the module docstring);
    None when nothing says how long it will run."""
    planned = walltime_s if walltime_s is not None else duration_s
    if running:
        if planned is not None and planned > current_run_s:
            limit = "walltime limit" if walltime_s is not None else "declared duration"
            return run_s + planned, f"{limit} (running, {current_run_s:,.0f} s so far)"
        return run_s + current_run_s, "actual run time (running)"
    if finished:
        return (run_s, "actual run time") if starts > 0 else (0.0, "never ran")
    if run_s > 0:  # requeued (preempted, a node lost): what it ran, and the next run
        if planned is not None:
            limit = "walltime limit" if walltime_s is not None else "declared duration"
            return run_s + planned, f"{limit} (requeued, {run_s:,.0f} s run before)"
        return run_s, "actual run time (requeued)"
    if walltime_s is not None:
        return walltime_s, "walltime limit (not yet run)"
    if duration_s is not None:
        return duration_s, "declared duration (not yet run)"
    return None


def campaign_key(purpose: str) -> str:
    return " ".join(purpose.lower().split())


def aggregate(
    jobs: Iterable[JobCompute],
    thresholds: Iterable[Threshold],
    now: datetime,
    groups: Mapping[str, tuple[str, ...]] | None = None,
) -> list[Aggregate]:
    """The tenant, campaign and (with ``groups``: controller -> tenants) group totals that
    reach a threshold, largest first."""
    jobs = list(jobs)
    group_of = {t: g for g, members in (groups or {}).items() for t in members}
    by_window: dict[int, list[Threshold]] = defaultdict(list)
    for threshold in thresholds:
        by_window[threshold.window_days].append(threshold)
    found: list[Aggregate] = []
    for days, limits in sorted(by_window.items()):
        start = now - timedelta(days=days)
        totals: dict[tuple[str, str, str], list[JobCompute]] = defaultdict(list)
        for job in jobs:
            if job.ended_at is not None and job.ended_at < start:
                continue
            totals[("tenant", job.tenant_id, "")].append(job)
            totals[("campaign", job.tenant_id, campaign_key(job.purpose))].append(job)
            if job.tenant_id in group_of:
                totals[("group", group_of[job.tenant_id], "")].append(job)
        for (kind, tenant, campaign), members in totals.items():
            total = sum((j.ops for j in members), Decimal(0))
            passes = tuple(t.ref for t in limits if total >= t.ops)
            if passes:
                found.append(
                    Aggregate(
                        kind,
                        tenant,
                        campaign,
                        days,
                        start,
                        tuple(sorted(j.job_id for j in members)),
                        total,
                        passes,
                        (groups or {}).get(tenant, ()) if kind == "group" else (),
                    )
                )
    found.sort(key=lambda a: (-a.ops, a.kind != "tenant", a.tenant_id, a.campaign))
    return found
