"""The live scheduler: the simulator's core, driven by the system clock and the database.

One pass (:meth:`LiveScheduler.tick`) per site:

1. **Leases** move along the calendar (``leases.tick``).
2. **Completions**: runs the executor reports ended become succeeded / failed.
3. **Reconcile** the executor with the database: a run the database no longer wants
   (cancelled, requeued elsewhere) is stopped; a run the database thinks is running but the
   executor does not hold is adopted, or requeued if the executor cannot adopt it.
4. **Snapshot** (a read transaction): nodes, queued and running jobs with their versions,
   active lease guarantees, each tenant's decayed usage. The core's
   :class:`~gpulease.scheduler.state.SchedulerState` is rebuilt from it, so the database is
   the only truth and a new leader needs no hand-over.
5. **Decide** outside any transaction: ``Scheduler.step(state, now)``, the same call the
   simulator makes.
6. **Apply** in one write transaction, each decision only if its rows are unchanged since
   the snapshot (job ``version``; for starts, every node still ``up``); a decision on a
   stale row is dropped and the next pass decides again.
7. **Side effects after commit**: launch, warn, stop.

Only the leader runs passes (``persistence.leader``); several API processes may serve.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gpulease.compliance.end_uses import PurposeOutcome, check_purpose
from gpulease.compliance.policy import EffectivePolicy
from gpulease.domain.clock import from_seconds, to_seconds
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import LeaseGuarantee
from gpulease.domain.states import JobState, NodeState
from gpulease.executors.base import Completion, Executor, Launch, NodeSlice
from gpulease.persistence.db import Tx
from gpulease.persistence.leader import LeaderLock, leader_lock
from gpulease.persistence.tables import (
    GpuAllocation,
    Job,
    JobLog,
    Node,
    SchedulerStatus,
    Site,
    Tenant,
)
from gpulease.scheduler.engine import Decisions, Scheduler, SchedulerConfig
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState
from gpulease.services import audit, kyc, leases, runs
from gpulease.services.context import ServiceContext
from gpulease.services.inventory import SiteTopology, cached_topology, placement_lock
from gpulease.services.jobs import log_path, spec_of
from gpulease.services.standing import is_approved, why_not

log = logging.getLogger("gpulease.scheduler")
ACTOR = "scheduler"
USAGE_HALF_LIFE_S = 7 * 24 * 3600.0
USAGE_HORIZON = timedelta(seconds=4 * USAGE_HALF_LIFE_S)  # older usage weighs < 1/16


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


@dataclass
class PassReport:
    site_id: str
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    stale: int = 0  # decisions dropped because their rows changed


class LiveScheduler:
    def __init__(self, ctx: ServiceContext, executor: Executor, *, name: str | None = None):
        self.ctx = ctx
        self.executor = executor
        self.name = name or f"{socket.gethostname()}:{threading.get_native_id()}"
        self.scheduler_config = SchedulerConfig(
            preemption_grace_s=ctx.settings.preemption_grace_s,
            keep_blocks=ctx.settings.keep_blocks,
        )

    # ------------------------------------------------------------------ one pass
    def tick(self) -> list[PassReport]:
        now = self.ctx.now()
        kyc.expire(self.ctx, now)
        kyc.screen_unscreened(self.ctx)
        leases.tick(self.ctx, now)
        completions = self.executor.poll(now)
        reports = []
        with self.ctx.db.transaction(write=False) as tx:
            sites = [s.id for s in tx.all(tx.select(Site).order_by(Site.id))]
        for site_id in sites:
            try:
                reports.append(self._site_pass(site_id, now, completions))
            except Exception:  # one site's failure must not stop the others' passes
                log.exception("scheduler pass failed for site %s", site_id)
        return reports

    def _site_pass(self, site_id: str, now: datetime, completions: list[Completion]) -> PassReport:
        report = PassReport(site_id)
        topology = cached_topology(self.ctx, site_id)
        self._finish(site_id, completions, report)
        held = self._held_tenants(now)
        for job_id, reason in self._hold(site_id, now, held, report):
            self.executor.stop(job_id, reason)
        self._reconcile(site_id, now, report)
        snap = self._snapshot(site_id, now, frozenset(held))
        state = self._rebuild(topology, snap)
        policy = make_policy(self.ctx.settings.policy)
        decisions = Scheduler(policy, self.scheduler_config).step(state, to_seconds(now))
        launches, warnings, stops = self._apply(site_id, topology, snap, decisions, report)
        for job_id, reason in stops:
            self.executor.stop(job_id, reason)
        for job_id, message in warnings:
            self.executor.warn(job_id, message)
        for launch in launches:
            self.executor.launch(launch)
        self._heartbeat(site_id, now)
        return report

    # ---------------------------------------------------------------- steps 2-3
    def _finish(self, site_id: str, completions: list[Completion], report: PassReport) -> None:
        if not completions:
            return
        with self.ctx.db.transaction() as tx:
            for done in completions:
                # locked: a concurrent cancel must wait, not make this whole batch stale
                job = tx.get(Job, done.job_id, for_update=True)
                if job is None or job.site_id != site_id:
                    continue
                if job.state != JobState.RUNNING or job.starts != done.run:
                    continue  # an old run's late news
                outcome = JobState.SUCCEEDED if done.exit_code == 0 else JobState.FAILED
                runs.stop_run(
                    tx,
                    job,
                    done.ended_at,
                    outcome,
                    actor=ACTOR,
                    exit_code=done.exit_code,
                    reason="exit 0" if done.exit_code == 0 else f"exit {done.exit_code}",
                )
                stored = tx.get(JobLog, job.id)
                if stored is None:
                    tx.add(JobLog(job_id=job.id, text=done.log))
                else:
                    stored.text = (stored.text + "\n" + done.log)[-(1 << 20) :]
                report.finished.append(job.id)

    def _reconcile(self, site_id: str, now: datetime, report: PassReport) -> None:
        with self.ctx.db.transaction(write=False) as tx:
            running = tx.all(
                tx.select(Job).where(Job.site_id == site_id, Job.state == JobState.RUNNING.value)
            )
            wanted = {(j.id, j.starts) for j in running}
            launches = {j.id: self._launch_of(tx, j) for j in running}
            # one executor serves every site: leave other sites' runs to their own pass
            active = self.executor.active()
            ids = sorted({job_id for job_id, _run in active})
            site_of = {j.id: j.site_id for j in tx.all(tx.select(Job).where(Job.id.in_(ids)))}
        for job_id, _run in sorted(active - wanted):
            if site_of.get(job_id, site_id) == site_id:
                self.executor.stop(job_id, "the job is no longer running")
        held = self.executor.active()
        lost = [launches[job_id] for job_id, run in sorted(wanted - held)]
        orphans = [launch for launch in lost if not self.executor.adopt(launch)]
        if not orphans:
            return
        with self.ctx.db.transaction() as tx:
            for launch in orphans:
                job = tx.require(Job, launch.job_id, "job", for_update=True)
                if job.state == JobState.RUNNING and job.starts == launch.run:
                    runs.requeue_or_fail(
                        tx,
                        job,
                        now,
                        actor=ACTOR,
                        reason="its run was lost with the executor that ran it",
                    )
                    report.requeued.append(job.id)

    @staticmethod
    def _keep_claims(
        snap: Snapshot, decisions: Decisions, fresh: Callable[[str], Job | None]
    ) -> None:
        """Record since when queued jobs wait within their guarantee (the core's
        ``note_guarantees``, kept in ``jobs.guaranteed_since`` between passes)."""
        waiting = set(decisions.guaranteed_waiting)
        started = {start.job_id for start in decisions.starts}
        for job_id, job in snap.jobs.items():
            if job.state != JobState.QUEUED or job_id in started:
                continue
            claimed = job.guaranteed_since is not None
            if (job_id in waiting) == claimed:
                continue  # a claim that goes on, or none
            row = fresh(job_id)
            if row is not None and row.state == JobState.QUEUED:
                row.guaranteed_since = snap.now if job_id in waiting else None

    # ------------------------------------------------------- admission (compliance)
    def _held_tenants(self, now: datetime) -> dict[str, str]:
        """Tenants whose work may not start (not approved, suspended, expired), with why."""
        with self.ctx.db.transaction(write=False) as tx:
            return {
                t.id: f"held: the tenant is not approved ({why_not(t, now)})"
                for t in tx.all(tx.select(Tenant))
                if not is_approved(t, now)
            }

    def _hold(
        self, site_id: str, now: datetime, held: dict[str, str], report: PassReport
    ) -> list[tuple[str, str]]:
        """Say why held tenants' queued jobs wait. When set to drain, stop their running
        jobs, and running jobs whose end use the tenant's approval no longer covers (an
        officer narrowed it): both go back to the queue, held, saying why."""
        drain = self.ctx.settings.suspended_running == "drain"
        if not held and not drain:
            return []
        stops: list[tuple[str, str]] = []
        with self.ctx.db.transaction() as tx:
            rows = tx.all(
                tx.select(Job).where(
                    Job.site_id == site_id,
                    Job.state == JobState.QUEUED.value,
                    Job.tenant_id.in_(list(held)),
                )
            )
            if drain:  # every running job: its tenant held, or its end use withdrawn
                rows += tx.all(
                    tx.select(Job).where(
                        Job.site_id == site_id, Job.state == JobState.RUNNING.value
                    )
                )
            refused = _PurposeCheck(tx, kyc.policy_on(self.ctx, now))
            for job in rows:
                # an approved tenant's running job: is its end use still covered?
                reason = held.get(job.tenant_id) or refused(job)
                if reason is None:
                    continue
                if job.state == JobState.QUEUED:
                    if job.wait_reason != reason:
                        job.wait_reason = reason
                elif drain:
                    runs.stop_run(tx, job, now, JobState.QUEUED, reason=reason, actor=ACTOR)
                    job.wait_reason = reason
                    stops.append((job.id, reason))
                    report.requeued.append(job.id)
        return stops

    # ---------------------------------------------------------------- steps 4-5
    def _snapshot(
        self, site_id: str, now: datetime, held: frozenset[str] = frozenset()
    ) -> Snapshot:
        with self.ctx.db.transaction(write=False) as tx:
            jobs = tx.all(
                tx.select(Job)
                .where(
                    Job.site_id == site_id,
                    Job.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
                )
                .order_by(Job.submitted_at, Job.id)
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
            refused = _PurposeCheck(tx, kyc.policy_on(self.ctx, now))
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
            jobs = [j for j in jobs if j.id not in excluded]
            nodes = tx.all(tx.select(Node).where(Node.site_id == site_id))
            running_ids = [j.id for j in jobs if j.state == JobState.RUNNING]
            placements: dict[str, dict[str, int]] = defaultdict(dict)
            if running_ids:
                for row in tx.all(
                    tx.select(GpuAllocation).where(
                        GpuAllocation.job_id.in_(running_ids), GpuAllocation.end.is_(None)
                    )
                ):
                    per_node = placements[row.job_id]
                    per_node[row.node_id] = per_node.get(row.node_id, 0) + 1
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
            closed = tx.all(
                tx.select(GpuAllocation)
                .where(
                    GpuAllocation.node_id.in_([n.id for n in nodes]),  # this site's usage
                    GpuAllocation.end.is_not(None),
                    GpuAllocation.end > now - USAGE_HORIZON,
                )
                .order_by(GpuAllocation.end)
            )
        usage = []
        for row in closed:
            assert row.end is not None
            usage.append(
                (row.tenant_id, (row.end - row.start).total_seconds(), to_seconds(row.end))
            )
        return Snapshot(
            now=now,
            jobs={j.id: j for j in jobs},
            versions={j.id: j.version for j in jobs},
            node_states={n.id: n.state for n in nodes},
            placements={job: sorted(p.items()) for job, p in placements.items()},
            guarantees=guarantees,
            usage=usage,
            purpose_held=purpose_held,
            unclaimed=unclaimed,
        )

    def _rebuild(self, topology: SiteTopology, snap: Snapshot) -> SchedulerState:
        state = SchedulerState(
            topology.cluster,
            leases=snap.guarantees,
            usage_half_life=USAGE_HALF_LIFE_S,
            keep_history=False,
        )
        for tenant, gpu_seconds, ended in snap.usage:
            state.credit_usage(tenant, gpu_seconds, ended)
        for job in snap.jobs.values():
            record = state.submit(spec_of(job), domain="NVLink domain")
            record.attained = job.attained_gpu_s
            record.run_time = job.run_s
            if job.guaranteed_since is not None and job.state == JobState.QUEUED:
                state.claim_since(job.id, to_seconds(job.guaranteed_since))
        running = sorted(
            (j for j in snap.jobs.values() if j.state == JobState.RUNNING),
            key=lambda j: (j.started_at or snap.now, j.id),
        )
        for job in running:
            assert job.started_at is not None
            placement = tuple(
                (topology.node_index[node], count) for node, count in snap.placements[job.id]
            )
            state.start(job.id, placement, to_seconds(job.started_at), borrowed=job.borrowed)
            if job.preempt_at is not None:
                state.begin_preemption(job.id, to_seconds(job.preempt_at), job.preempt_reason)
        for node_id, node_state in snap.node_states.items():
            if node_state != NodeState.UP:
                state.set_node_state(
                    topology.node_index[node_id], NodeState(node_state), to_seconds(snap.now)
                )
        return state

    # ------------------------------------------------------------------ step 6
    def _apply(
        self,
        site_id: str,
        topology: SiteTopology,
        snap: Snapshot,
        decisions: Decisions,
        report: PassReport,
    ) -> tuple[list[Launch], list[tuple[str, str]], list[tuple[str, str]]]:
        now = snap.now
        launches: list[Launch] = []
        warnings: list[tuple[str, str]] = []
        stops: list[tuple[str, str]] = []
        with self.ctx.db.transaction() as tx:
            # Node state changes wait for this apply (and it for them): a node cannot go
            # down between our check that it is up and the commit of a start on it.
            tx.lock(placement_lock(site_id))

            checked: dict[str, Job | None] = {}  # row if unchanged since the snapshot

            def fresh(job_id: str) -> Job | None:
                """The job's row, locked, if nobody changed it since the snapshot (this
                apply's own earlier changes to it do not count; a stale row counts once)."""
                if job_id in checked:
                    return checked[job_id]
                row = tx.require(Job, job_id, "job", for_update=True)
                unchanged = row.version == snap.versions.get(job_id)
                report.stale += not unchanged
                checked[job_id] = row if unchanged else None
                return checked[job_id]

            for job_id in decisions.timeouts:
                job = fresh(job_id)
                if job is not None:
                    runs.stop_run(
                        tx, job, now, JobState.FAILED, reason="walltime exceeded", actor=ACTOR
                    )
                    stops.append((job_id, "walltime exceeded"))
                    report.timed_out.append(job_id)
            for preempt in decisions.requeues:
                job = fresh(preempt.job_id)
                if job is not None:
                    runs.stop_run(tx, job, now, JobState.QUEUED, reason=preempt.reason, actor=ACTOR)
                    stops.append((job.id, f"preempted: {preempt.reason}"))
                    report.requeued.append(job.id)
            for preempt in decisions.notices:
                job = fresh(preempt.job_id)
                if job is not None:
                    job.preempt_at = from_seconds(preempt.at)
                    job.preempt_reason = audit.clip(preempt.reason)
                    audit.record(
                        tx,
                        at=now,
                        actor=ACTOR,
                        action="job.preempt_notice",
                        subject_type="job",
                        subject_id=job.id,
                        after={"preempt_at": job.preempt_at.isoformat()},
                        reason=preempt.reason,
                    )
                    warnings.append(
                        (job.id, f"preemption at {job.preempt_at.isoformat()}: {preempt.reason}")
                    )
                    report.notices.append(job.id)
            for start in decisions.starts:
                job = fresh(start.job_id)
                if job is None:
                    continue
                placement = [(topology.node_ids[n], count) for n, count in start.placement]
                nodes = [tx.require(Node, node_id, "node") for node_id, _ in placement]
                if any(n.state != NodeState.UP or n.state != snap.node_states[n.id] for n in nodes):
                    report.stale += 1
                    continue
                # the tenant's standing may have changed since the snapshot (a re-screen hit,
                # an officer's decision): read it again, locked until commit
                tenant = tx.require(Tenant, job.tenant_id, "tenant", for_update=True)
                if not is_approved(tenant, now) or _purpose_refused(
                    job.purpose, tenant.approved_end_uses, kyc.policy_on(self.ctx, now)
                ):
                    report.stale += 1
                    continue
                runs.start_run(tx, job, placement, now, borrowed=start.borrowed, actor=ACTOR)
                tx.flush()
                launches.append(self._launch_of(tx, job))
                report.started.append(job.id)
            self._keep_claims(snap, decisions, fresh)
            for job_id in snap.unclaimed:  # not in the snapshot's versions: no stale check
                held_row = tx.require(Job, job_id, "job", for_update=True)
                if held_row.state == JobState.QUEUED:
                    held_row.guaranteed_since = None
            for job_id, why in snap.purpose_held.items():
                held_row = tx.require(Job, job_id, "job", for_update=True)
                if held_row.state == JobState.QUEUED:
                    held_row.wait_reason = why
            for job_id, reason in decisions.waiting.items():
                job = snap.jobs.get(job_id)
                if job is None or job.wait_reason == audit.clip(reason.message):
                    continue
                row = fresh(job_id)
                if row is not None and row.state == JobState.QUEUED:
                    row.wait_reason = audit.clip(reason.message)
        return launches, warnings, stops

    def _launch_of(self, tx: Tx, job: Job) -> Launch:
        rows = runs.open_allocations(tx, job.id)
        by_node: dict[str, list[GpuAllocation]] = defaultdict(list)
        for row in rows:
            by_node[row.node_id].append(row)
        slices = tuple(
            NodeSlice(node, tuple(r.slot for r in group), tuple(r.gpu_serial for r in group))
            for node, group in sorted(by_node.items())
        )
        assert job.started_at is not None
        return Launch(
            job_id=job.id,
            run=job.starts,
            tenant_id=job.tenant_id,
            purpose=job.purpose,
            command=job.command,
            image=job.image,
            gpus=job.gpus,
            slices=slices,
            started_at=job.started_at,
            duration_s=job.duration_s,
            log_path=log_path(self.ctx, job.id),
        )

    def _heartbeat(self, site_id: str, now: datetime) -> None:
        with self.ctx.db.transaction() as tx:
            row = tx.get(SchedulerStatus, site_id)
            if row is None:
                tx.add(
                    SchedulerStatus(site_id=site_id, leader=self.name, last_tick_at=now, ticks=1)
                )
            else:
                row.leader = self.name
                row.last_tick_at = now
                row.ticks += 1


class _PurposeCheck:
    """Why a job's purpose may not run under its tenant's approval now, or None: one
    verdict per tenant and purpose, the tenants' approvals read once, on first use."""

    def __init__(self, tx: Tx, policy: EffectivePolicy) -> None:
        self._tx = tx
        self._policy = policy
        self._end_uses: dict[str, list[str]] | None = None
        self._verdicts: dict[tuple[str, str], str | None] = {}

    def __call__(self, job: Job) -> str | None:
        key = (job.tenant_id, job.purpose)
        if key not in self._verdicts:
            if self._end_uses is None:
                tenants = self._tx.all(self._tx.select(Tenant))
                self._end_uses = {t.id: t.approved_end_uses for t in tenants}
            end_uses = self._end_uses[job.tenant_id]
            self._verdicts[key] = _purpose_refused(job.purpose, end_uses, self._policy)
        return self._verdicts[key]


def _purpose_refused(purpose: str, end_uses: list[str], policy: EffectivePolicy) -> str | None:
    """Why a job's purpose may not run under the tenant's approval now, or None."""
    try:
        decision = check_purpose(purpose, end_uses, policy)
    except InvalidRequest as error:  # an approval naming unknown codes holds work, not passes
        return audit.clip(f"held: {error}")
    if decision.outcome is PurposeOutcome.ALLOW:
        return None
    return audit.clip(f"held: {decision.reason}")


class SchedulerLoop:
    """Runs passes every ``interval`` seconds in a thread while this process leads."""

    def __init__(
        self,
        scheduler: LiveScheduler,
        lock: LeaderLock | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.lock = lock or leader_lock(scheduler.ctx.db)
        self.interval_s = interval_s or scheduler.ctx.settings.scheduler_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released = False
        self._release_guard = threading.Lock()
        self.leading = False
        self.stop_timeout_s = 30.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpulease-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.stop_timeout_s)
            if self._thread.is_alive():
                # a pass still runs: the lock goes when it ends (``_run``), not now, or a new
                # leader would decide beside it
                return
        self._release()

    def _release(self) -> None:
        with self._release_guard:
            if self._released:
                return
            self._released = True
            self.lock.release()
            self.scheduler.executor.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.leading = self.lock.acquire() and self.lock.still_held()
                if self.leading:
                    self.scheduler.tick()
            except Exception:  # a pass must never kill the loop; the next pass retries
                log.exception("scheduler pass failed")
            self._stop.wait(self.interval_s)
        self.leading = False
        self._release()
