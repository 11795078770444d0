"""A job's runs in the database: start one on GPUs, stop it. Used inside a transaction.

Invariants:
* a running job has exactly one open allocation row per GPU it holds (``end`` is NULL), and a
  job that is not running has none;
* stopping a run closes its allocation rows at ``now`` and adds the run's GPU-seconds and
  wall seconds to the job's totals (what LAS and fair share are computed from);
* the job's state changes through ``JOB_TRANSITIONS`` only, and every change is audited.

Given a ``batch`` (``persistence.bulk.RowBatch``), :func:`start_run` and :func:`stop_run`
change the job row through the session as always, and leave the allocation rows and the
audit record in the batch, which the caller writes set at a time in the same transaction
(the scheduler's pass); without one, everything goes through the session.
:func:`finish_runs` ends the runs an executor reports ended that way, set at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from gpulease.domain.states import JOB_TRANSITIONS, JobState, transition
from gpulease.executors.base import Completion
from gpulease.metering.usage import CapacityClass
from gpulease.persistence import bulk
from gpulease.persistence.bulk import HeldGpu, RowBatch
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Gpu, GpuAllocation, Job, JobLog
from gpulease.scheduler.lease_book import Share
from gpulease.services import audit

JOB_AUDIT_FIELDS = ("state", "wait_reason", "end_reason", "exit_code", "preemptions", "starts")


class GpuRow(Protocol):
    """What a run's launch needs of each GPU it holds (an allocation row, or its values)."""

    @property
    def node_id(self) -> str: ...
    @property
    def slot(self) -> int: ...
    @property
    def gpu_serial(self) -> str: ...


def _audit(tx: Tx, batch: RowBatch | None, **fields: Any) -> None:
    if batch is None:
        audit.record(tx, **fields)
    else:
        batch.audit.append(audit.values(**fields))


def open_allocations(tx: Tx, job_id: str) -> list[GpuAllocation]:
    return tx.all(
        tx.select(GpuAllocation)
        .where(GpuAllocation.job_id == job_id, GpuAllocation.end.is_(None))
        .order_by(GpuAllocation.node_id, GpuAllocation.slot)
    )


def held_slots(tx: Tx, node_ids: Sequence[str]) -> dict[str, set[int]]:
    """GPU slots held by open allocations on the given nodes."""
    held: dict[str, set[int]] = {n: set() for n in node_ids}
    rows = tx.all(
        tx.select(GpuAllocation).where(
            GpuAllocation.node_id.in_(list(node_ids)), GpuAllocation.end.is_(None)
        )
    )
    for row in rows:
        held[row.node_id].add(row.slot)
    return held


def start_run(
    tx: Tx,
    job: Job,
    placement: Sequence[tuple[str, int]],
    now: datetime,
    *,
    borrowed: bool,
    actor: str,
    free: dict[str, list[tuple[int, str]]] | None = None,
    batch: RowBatch | None = None,
    shares: Sequence[Share] = (),
) -> list[GpuRow]:
    """Give ``job`` the lowest free GPU slots of each (node, count) and mark it running.

    ``free``: each node's free GPUs as (slot, serial), lowest first, read once for many
    starts (``persistence.bulk.free_gpus``); the slots taken are removed from it.
    ``batch``: the allocation rows and the audit record go there (module doc).
    ``shares``: whose capacity the GPUs are (``scheduler.capacity``), given to the
    allocation rows in the order they are taken; with the guarantee claim the run ends,
    written on each row (the SLA's evidence)."""
    before = audit.fields_of(job, JOB_AUDIT_FIELDS)
    sources = _sources(shares, sum(count for _, count in placement))
    claimed_at = job.guaranteed_since if not borrowed else None
    job.state = transition(JOB_TRANSITIONS, JobState(job.state), JobState.RUNNING, subject=job.id)
    if free is None:
        free = _free_gpus(tx, [node for node, _ in placement])
    rows: list[GpuRow] = []
    for node_id, count in placement:
        available = free.get(node_id, [])
        if len(available) < count:
            raise AssertionError(f"node {node_id} has {len(available)} free GPUs, not {count}")
        for slot, serial in available[:count]:
            values = {
                "job_id": job.id,
                "tenant_id": job.tenant_id,
                "node_id": node_id,
                "gpu_serial": serial,
                "slot": slot,
                "purpose": job.purpose,
                "start": now,
                "end": None,
                "claimed_at": claimed_at,
                **sources[len(rows)],
            }
            if batch is None:
                row = GpuAllocation(**values)
                tx.add(row)
                rows.append(row)
            else:
                batch.allocations.append(values)
                rows.append(HeldGpu(node_id, slot, serial))
        del available[:count]
    job.started_at = now
    job.starts += 1
    job.borrowed = borrowed
    job.wait_reason = ""
    job.preempt_at = None
    job.preempt_reason = ""
    job.guaranteed_since = None
    _audit(
        tx,
        batch,
        at=now,
        actor=actor,
        action="job.start",
        subject_type="job",
        subject_id=job.id,
        before=before,
        after=audit.fields_of(job, JOB_AUDIT_FIELDS),
        reason=", ".join(f"{n}:{c}" for n, c in placement) + (" (borrowed)" if borrowed else ""),
    )
    return rows


_NO_SOURCE: dict[str, str | None] = {
    "capacity": None,
    "lease_id": None,
    "lender_lease_id": None,
    "lender_tenant": None,
}


def _sources(shares: Sequence[Share], gpus: int) -> list[dict[str, str | None]]:
    """Each GPU's capacity columns, in the order the GPUs are taken (none given: NULL)."""
    out: list[dict[str, str | None]] = []
    for share in shares:
        source = {
            "capacity": share.capacity.value,
            "lease_id": share.lease_id,
            "lender_lease_id": share.lender_lease_id,
            "lender_tenant": share.lender_tenant,
        }
        out += [source] * share.gpus
    if len(out) < gpus:
        out += [_NO_SOURCE] * (gpus - len(out))
    return out


class _Sourced(Protocol):
    @property
    def capacity(self) -> str | None: ...
    @property
    def lease_id(self) -> str | None: ...
    @property
    def lender_lease_id(self) -> str | None: ...
    @property
    def lender_tenant(self) -> str | None: ...


def shares_of(rows: Sequence[_Sourced]) -> tuple[Share, ...]:
    """A run's shares read back from its allocation rows (rows without a capacity, written
    before metering, give none: the kept state's book leaves them out)."""
    counts: dict[tuple[str, str | None, str | None, str | None], int] = {}
    for row in rows:
        if row.capacity is None:
            continue
        key = (row.capacity, row.lease_id, row.lender_lease_id, row.lender_tenant)
        counts[key] = counts.get(key, 0) + 1
    return tuple(
        Share(n, CapacityClass(cap), lease_id=lease, lender_lease_id=lender, lender_tenant=who)
        for (cap, lease, lender, who), n in counts.items()
    )


def stop_run(
    tx: Tx,
    job: Job,
    now: datetime,
    outcome: JobState,
    *,
    reason: str,
    actor: str,
    exit_code: int | None = None,
    allocations: Sequence[GpuAllocation] | None = None,
    batch: RowBatch | None = None,
) -> None:
    """End the job's current state: a run goes back to the queue or finishes; a queued job
    may be cancelled or failed. ``allocations``: the run's open allocation rows, when read
    already for many jobs at once; ``batch``: the run's allocations are closed and the
    audit record written there instead (module doc)."""
    before = audit.fields_of(job, JOB_AUDIT_FIELDS)
    was_running = job.state == JobState.RUNNING
    job.state = transition(JOB_TRANSITIONS, JobState(job.state), outcome, subject=job.id)
    if was_running:
        assert job.started_at is not None
        elapsed = max(0.0, (now - job.started_at).total_seconds())
        job.attained_gpu_s += elapsed * job.gpus
        job.run_s += elapsed
        if batch is not None:
            batch.closes[job.id] = now
        else:
            for row in open_allocations(tx, job.id) if allocations is None else allocations:
                row.end = now
    job.preempt_at = None
    job.preempt_reason = ""
    if outcome is JobState.QUEUED:
        job.preemptions += 1
        job.wait_reason = audit.clip(f"requeued: {reason}")
    else:
        job.ended_at = now
        job.end_reason = audit.clip(reason)
        job.exit_code = exit_code
        job.wait_reason = ""
    _audit(
        tx,
        batch,
        at=now,
        actor=actor,
        action=f"job.{outcome.value}" if outcome is not JobState.QUEUED else "job.requeue",
        subject_type="job",
        subject_id=job.id,
        before=before,
        after=audit.fields_of(job, JOB_AUDIT_FIELDS),
        reason=reason,
    )


def _free_gpus(tx: Tx, nodes: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
    held = held_slots(tx, nodes)
    free: dict[str, list[tuple[int, str]]] = {n: [] for n in nodes}
    for gpu in tx.all(tx.select(Gpu).where(Gpu.node_id.in_(nodes)).order_by(Gpu.slot)):
        if gpu.slot not in held[gpu.node_id]:
            free[gpu.node_id].append((gpu.slot, gpu.serial))
    return free


def requeue_or_fail(tx: Tx, job: Job, now: datetime, *, reason: str, actor: str) -> JobState:
    """A run lost through no fault of the job (node failure, executor lost)."""
    outcome = JobState.QUEUED if job.requeueable else JobState.FAILED
    stop_run(tx, job, now, outcome, reason=reason, actor=actor)
    return outcome


def finish_runs(
    tx: Tx, site_id: str, completions: Sequence[Completion], *, actor: str
) -> list[Job]:
    """The runs the executor reports ended become succeeded / failed, set at a time (the
    scheduler's pass); a report of another site's job or of an old run is ignored. Returns
    the job rows finished, as written."""
    # locked: a concurrent cancel must wait, not make this whole batch stale
    jobs = bulk.lock_jobs(tx, [done.job_id for done in completions])
    ending = [
        done
        for done in completions
        if (job := jobs.get(done.job_id)) is not None
        and job.site_id == site_id
        and job.state == JobState.RUNNING
        and job.starts == done.run  # else an old run's late news
    ]
    if not ending:
        return []
    batch = RowBatch()  # allocations closed and audit rows written set at a time
    ids = [done.job_id for done in ending]
    logs = {row.job_id: row for row in tx.all(tx.select(JobLog).where(JobLog.job_id.in_(ids)))}
    new_logs: list[dict[str, str]] = []
    for done in ending:
        job = jobs[done.job_id]
        outcome = JobState.SUCCEEDED if done.exit_code == 0 else JobState.FAILED
        stop_run(
            tx,
            job,
            done.ended_at,
            outcome,
            actor=actor,
            exit_code=done.exit_code,
            reason="exit 0" if done.exit_code == 0 else f"exit {done.exit_code}",
            batch=batch,
        )
        stored = logs.get(job.id)
        if stored is None:
            new_logs.append({"job_id": job.id, "text": done.log})
        else:
            stored.text = (stored.text + "\n" + done.log)[-(1 << 20) :]
    finished = [jobs[done.job_id] for done in ending]
    bulk.update_jobs(tx, finished)
    tx.flush()
    batch.write(tx)
    bulk.insert_rows(tx, JobLog, new_logs)  # after the flush: a log row needs its job's
    return finished
