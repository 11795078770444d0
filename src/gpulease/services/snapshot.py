"""The scheduler's view of one site (steps 4 and 5 of a pass, ``services.scheduling``).

:func:`take_snapshot` reads, in one read transaction, what the core needs: queued and
running jobs with their versions, nodes, running placements, active lease guarantees and each
tenant's recent usage. It leaves out what may not or cannot be scheduled, saying why: a held
tenant's queued jobs, a queued job whose end use its tenant's approval no longer covers, and a
job whose row the scheduler cannot act on (``containment.defect_of``: recorded in
``Snapshot.defects``, to be failed). :func:`rebuild` builds the core's
:class:`~gpulease.scheduler.state.SchedulerState` from it; a job the core refuses (a shape it
cannot take, a run whose rows contradict another's) is left out and added to the defects, so
one bad row never stops the pass.

Both take a ``pause``: called between slices of rows (``SLICE``), it lets the consistency
check (``services.consistency``) build beside the passes in a thread that waits while a pass
runs. The snapshot stays one read transaction (one database snapshot) however long it pauses.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gpulease.compliance.admission import purpose_refused
from gpulease.compliance.policy import EffectivePolicy
from gpulease.domain.clock import to_seconds
from gpulease.domain.models import LeaseGuarantee
from gpulease.domain.states import JobState, NodeState
from gpulease.persistence.db import Tx, is_outage
from gpulease.persistence.tables import GpuAllocation, Job, Node, Tenant
from gpulease.scheduler.lease_book import Share
from gpulease.scheduler.state import SchedulerState
from gpulease.services import kyc, leases
from gpulease.services.containment import Defect, defect_of, describe
from gpulease.services.context import ServiceContext
from gpulease.services.inventory import SiteTopology
from gpulease.services.job_fields import spec_of
from gpulease.services.runs import shares_of

log = logging.getLogger("gpulease.scheduler")
USAGE_HALF_LIFE_S = 7 * 24 * 3600.0
USAGE_HORIZON = timedelta(seconds=4 * USAGE_HALF_LIFE_S)  # older usage weighs < 1/16
SLICE = 500  # rows read or jobs built between two calls of a ``pause``
Pause = Callable[[], None]


def _no_pause() -> None:
    return None


@dataclass
class Snapshot:
    now: datetime
    jobs: dict[str, Job]  # queued and running, by id
    versions: dict[str, int]
    node_states: dict[str, str]
    placements: dict[str, list[tuple[str, int]]]  # running job -> [(node, GPUs)]
    guarantees: list[LeaseGuarantee]
    usage: list[tuple[str, float, float]]  # (tenant, GPU-seconds, ended at) oldest first
    # queued jobs held back because their purpose is outside the tenant's approval
    purpose_held: dict[str, str] = field(default_factory=dict)
    # queued jobs held back (tenant or purpose) that still record a guarantee claim: a held
    # job is not waiting within its guarantee, so the claim ends (as ``note_guarantees``)
    unclaimed: list[str] = field(default_factory=list)
    # queued and running jobs whose rows the scheduler cannot act on, left out: to fail
    defects: list[Defect] = field(default_factory=list)
    # running job -> whose capacity its GPUs are (``scheduler.capacity``), from its rows
    shares: dict[str, tuple[Share, ...]] = field(default_factory=dict)

    def claimed_ids(self) -> list[str]:
        return [job_id for job_id, job in self.jobs.items() if job.guaranteed_since is not None]


def _sliced(tx: Tx, query: Any, pause: Pause | None) -> list[Any]:
    """All rows of ``query``; with a ``pause``, fetched ``SLICE`` at a time, pausing between."""
    if pause is None:
        return tx.all(query)
    rows: list[Any] = []
    result = tx.session.execute(query.execution_options(yield_per=SLICE)).scalars()
    for part in result.partitions():
        rows.extend(part)
        pause()
    return rows


def take_snapshot(
    ctx: ServiceContext,
    site_id: str,
    now: datetime,
    held: frozenset[str] = frozenset(),
    pause: Pause | None = None,
) -> Snapshot:
    with ctx.db.transaction(write=False) as tx:
        jobs = _sliced(
            tx,
            tx.select(Job)
            .where(
                Job.site_id == site_id,
                Job.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
            )
            .order_by(Job.submitted_at, Job.id),
            pause,
        )
        # A held tenant's queued jobs are not offered to the core; its running jobs,
        # when kept, still hold their GPUs.
        unclaimed = [
            j.id
            for j in jobs
            if j.tenant_id in held and j.state == JobState.QUEUED and j.guaranteed_since
        ]
        jobs = [j for j in jobs if j.tenant_id not in held or j.state == JobState.RUNNING]
        # Nor is a queued job whose end use the tenant's approval no longer covers (an
        # officer narrowed it): it would be refused if submitted now.
        refused = PurposeCheck(tx, kyc.policy_on(ctx, now))
        excluded: set[str] = set()
        purpose_held: dict[str, str] = {}  # those whose wait reason must change
        for j in jobs:
            if j.state != JobState.QUEUED:
                continue
            why = refused(j)
            if why is not None:
                excluded.add(j.id)
                if j.wait_reason != why:
                    purpose_held[j.id] = why
                if j.guaranteed_since is not None:
                    unclaimed.append(j.id)
        # Nor is a job whose row the scheduler cannot act on: it is failed, saying why.
        defects = []
        for j in jobs:
            why = defect_of(j, now)
            if why is not None:
                excluded.add(j.id)
                defects.append(Defect(j.id, why, version=j.version))
        jobs = [j for j in jobs if j.id not in excluded]
        nodes = tx.all(tx.select(Node).where(Node.site_id == site_id))
        running_ids = [j.id for j in jobs if j.state == JobState.RUNNING]
        placements: dict[str, dict[str, int]] = defaultdict(dict)
        sources: dict[str, list[GpuAllocation]] = defaultdict(list)
        if running_ids:
            for row in tx.all(
                tx.select(GpuAllocation).where(
                    GpuAllocation.job_id.in_(running_ids), GpuAllocation.end.is_(None)
                )
            ):
                per_node = placements[row.job_id]
                per_node[row.node_id] = per_node.get(row.node_id, 0) + 1
                sources[row.job_id].append(row)
        guarantees = [
            LeaseGuarantee(
                lease.id,
                lease.tenant_id,
                lease.gpus,
                to_seconds(lease.start),
                to_seconds(lease.end),
            )
            for lease in leases.active_guarantees(tx, site_id, now)
        ]
        closed = _sliced(
            tx,
            tx.select(GpuAllocation)
            .where(
                GpuAllocation.node_id.in_([n.id for n in nodes]),  # this site's usage
                GpuAllocation.end.is_not(None),
                GpuAllocation.end > now - USAGE_HORIZON,
            )
            .order_by(GpuAllocation.end),
            pause,
        )
    usage = []
    for row in closed:
        assert row.end is not None
        usage.append((row.tenant_id, (row.end - row.start).total_seconds(), to_seconds(row.end)))
    return Snapshot(
        now=now,
        jobs={j.id: j for j in jobs},
        versions={j.id: j.version for j in jobs},
        node_states={n.id: n.state for n in nodes},
        placements={job: sorted(p.items()) for job, p in placements.items()},
        shares={job: shares_of(rows) for job, rows in sources.items()},
        guarantees=guarantees,
        usage=usage,
        purpose_held=purpose_held,
        unclaimed=unclaimed,
        defects=defects,
    )


def rebuild(topology: SiteTopology, snap: Snapshot, pause: Pause | None = None) -> SchedulerState:
    """The core's state from the snapshot; a job the core refuses is left out of it and
    added to ``snap.defects``. ``pause`` is called every ``SLICE`` jobs."""
    pause = pause or _no_pause

    def refused(job: Job, error: Exception) -> None:
        if is_outage(error):
            raise error
        log.error("scheduler leaves job %s out of the pass: %s", job.id, describe(error))
        snap.defects.append(Defect(job.id, describe(error), version=snap.versions[job.id]))

    state = SchedulerState(
        topology.cluster,
        leases=snap.guarantees,
        usage_half_life=USAGE_HALF_LIFE_S,
        keep_history=False,
    )
    for tenant, gpu_seconds, ended in snap.usage:
        state.credit_usage(tenant, gpu_seconds, ended)
    submitted: list[Job] = []
    for count, job in enumerate(snap.jobs.values(), 1):
        if count % SLICE == 0:
            pause()
        try:
            record = state.submit(spec_of(job), domain="NVLink domain")
        except Exception as error:  # checks come before changes: nothing to undo
            refused(job, error)
            continue
        submitted.append(job)
        record.attained = job.attained_gpu_s
        record.run_time = job.run_s
        if job.guaranteed_since is not None and job.state == JobState.QUEUED:
            state.claim_since(job.id, to_seconds(job.guaranteed_since))
    running = sorted(
        (j for j in submitted if j.state == JobState.RUNNING),
        key=lambda j: (j.started_at or snap.now, j.id),
    )
    for job in running:
        try:
            assert job.started_at is not None
            placement = tuple(
                (topology.node_index[node], count)
                for node, count in snap.placements.get(job.id, [])
            )
            state.start(
                job.id,
                placement,
                to_seconds(job.started_at),
                borrowed=job.borrowed,
                shares=snap.shares.get(job.id, ()),
            )
        except Exception as error:  # its rows contradict the others: not started here
            refused(job, error)
            state.stop(job.id, to_seconds(snap.now), JobState.FAILED, "refused")
            continue
        if job.preempt_at is not None:
            state.begin_preemption(job.id, to_seconds(job.preempt_at), job.preempt_reason)
    for node_id, node_state in snap.node_states.items():
        if node_state != NodeState.UP:
            state.set_node_state(
                topology.node_index[node_id], NodeState(node_state), to_seconds(snap.now)
            )
    return state


class PurposeCheck:
    """Why a job's purpose may not run under its tenant's approval now, or None: one
    verdict per tenant and purpose, the tenants' approvals read once, on first use."""

    def __init__(self, tx: Tx, policy: EffectivePolicy) -> None:
        self._tx = tx
        self._policy = policy
        self._end_uses: dict[str, list[str]] | None = None
        self._cleared: dict[str, list[str]] = {}
        self._verdicts: dict[tuple[str, str], str | None] = {}

    def __call__(self, job: Job) -> str | None:
        key = (job.tenant_id, job.purpose)
        if key not in self._verdicts:
            if self._end_uses is None:
                tenants = self._tx.all(self._tx.select(Tenant))
                self._end_uses = {t.id: t.approved_end_uses for t in tenants}
                self._cleared = {t.id: t.cleared_purposes for t in tenants}
            end_uses = self._end_uses[job.tenant_id]
            cleared = self._cleared.get(job.tenant_id, [])
            self._verdicts[key] = purpose_refused(job.purpose, end_uses, self._policy, cleared)
        return self._verdicts[key]
