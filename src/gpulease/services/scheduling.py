"""The live scheduler: the simulator's core, driven by the system clock and the database.

One pass (:meth:`LiveScheduler.tick`) per site:

1. **Leases** move along the calendar (``leases.tick``).
2. **Completions**: runs the executor reports ended become succeeded / failed.
3. **Reconcile** the executor with the database: a run the database no longer wants
   (cancelled, requeued elsewhere) is stopped; a run the database thinks is running but the
   executor does not hold is adopted, or requeued if the executor cannot adopt it.
4. **Snapshot** (a read transaction, ``services.snapshot``): nodes, queued and running jobs
   with their versions, active lease guarantees, each tenant's decayed usage. The core's
   :class:`~gpulease.scheduler.state.SchedulerState` is rebuilt from it, so the database is
   the only truth and a new leader needs no hand-over.
5. **Decide** outside any transaction: ``Scheduler.step(state, now)``, the same call the
   simulator makes.
6. **Apply** in one write transaction, each decision only if its rows are unchanged since
   the snapshot (job ``version``; for starts, every node still ``up``); a decision on a
   stale row is dropped and the next pass decides again.
7. **Side effects after commit**: launch, warn, stop.

Only the leader runs passes (``persistence.leader``: a lease renewed every pass); several API
processes may serve. Every write transaction of a pass first renews the lease on its term
(``fence``): a process that lost leadership (stalled past the TTL, taken over) commits
nothing more and ends the pass.

One bad job never stops the site (``services.containment``): a row the scheduler cannot act
on, a decision that fails to apply (each runs in its own savepoint), a launch or adoption the
executor refuses: that job is failed with the reason and the pass goes on. A database outage
fails the pass; the loop logs it, counts it and retries, and its thread never dies.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from gpulease.domain.clock import from_seconds, to_seconds
from gpulease.domain.states import JobState, NodeState
from gpulease.executors.base import Completion, Executor, Launch, NodeSlice
from gpulease.persistence.db import StaleRow, Tx, is_outage
from gpulease.persistence.leader import Leadership
from gpulease.persistence.tables import (
    GpuAllocation,
    Job,
    JobLog,
    Node,
    SchedulerStatus,
    Site,
    Tenant,
)
from gpulease.scheduler.engine import Decisions, Preempt, Scheduler, SchedulerConfig, Start
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState
from gpulease.services import audit, kyc, leases, runs
from gpulease.services.containment import Defect, defect_of, describe, still_applies
from gpulease.services.containment import fail as fail_job
from gpulease.services.context import ServiceContext
from gpulease.services.inventory import SiteTopology, cached_topology, placement_lock
from gpulease.services.jobs import log_path
from gpulease.services.snapshot import (
    PurposeCheck,
    Snapshot,
    purpose_refused,
    rebuild,
    take_snapshot,
)
from gpulease.services.standing import is_approved, why_not

__all__ = ["LiveScheduler", "LostLeadership", "PassReport"]

log = logging.getLogger("gpulease.scheduler")
ACTOR = "scheduler"


class LostLeadership(Exception):
    """This process no longer leads: the pass ends and commits nothing more."""


@dataclass
class PassReport:
    site_id: str
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # bad jobs failed so the pass goes on
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
        # set by SchedulerLoop: every write transaction of a pass renews it (None: tests
        # that drive passes directly, without leader election)
        self.leadership: Leadership | None = None
        self.failed_passes = 0  # site passes (or whole passes) that failed; retried

    # ------------------------------------------------------------------ one pass
    def tick(self) -> list[PassReport]:
        now = self.ctx.now()
        if self.leadership is not None and not self.leadership.still_held():
            log.warning("scheduler %s does not hold the leader lease: no pass", self.name)
            return []
        kyc.expire(self.ctx, now)
        kyc.screen_unscreened(self.ctx)
        leases.tick(self.ctx, now)
        completions = self._poll(now)
        reports = []
        with self.ctx.db.transaction(write=False) as tx:
            sites = [s.id for s in tx.all(tx.select(Site).order_by(Site.id))]
        for site_id in sites:
            try:
                reports.append(self._site_pass(site_id, now, completions))
            except LostLeadership as lost:
                log.warning("scheduler %s stops deciding: %s", self.name, lost)
                break
            except Exception:  # one site's failure must not stop the others' passes
                self.failed_passes += 1
                log.exception("scheduler pass failed for site %s", site_id)
        return reports

    def _site_pass(self, site_id: str, now: datetime, completions: list[Completion]) -> PassReport:
        report = PassReport(site_id)
        topology = cached_topology(self.ctx, site_id)
        self._finish(site_id, completions, report)
        held = self._held_tenants(now)
        for job_id, reason in self._hold(site_id, now, held, report):
            self._stop(job_id, reason)
        self._reconcile(site_id, now, report)
        snap = self._snapshot(site_id, now, frozenset(held))
        state = self._rebuild(topology, snap)
        if snap.defects:  # fail them, then decide without them
            self._fail(site_id, now, snap.defects, report)
            snap = self._snapshot(site_id, now, frozenset(held))
            state = self._rebuild(topology, snap)  # any left changed meanwhile: next pass
        policy = make_policy(self.ctx.settings.policy)
        decisions = Scheduler(policy, self.scheduler_config).step(state, to_seconds(now))
        launches, warnings, stops = self._apply(site_id, topology, snap, decisions, report)
        refused: list[Defect] = []
        for job_id, reason in stops:
            self._stop(job_id, reason)
        for job_id, message in warnings:
            self._warn(job_id, message)
        for launch in launches:
            try:
                self.executor.launch(launch)
            except Exception as error:  # the executor's trouble with this run: fail the job
                log.exception("executor could not launch job %s run %d", launch.job_id, launch.run)
                why = f"the executor could not launch it: {describe(error)}"
                refused.append(Defect(launch.job_id, why, run=launch.run))
        if refused:
            self._fail(site_id, now, refused, report)
        self._heartbeat(site_id, now)
        return report

    # ---------------------------------------------------------- leadership, executor
    def _check_leads(self) -> None:
        if self.leadership is not None and not self.leadership.still_held():
            raise LostLeadership("the leader lease is not held")

    def _fence(self, tx: Tx) -> None:
        """First move of every write transaction of a pass: renew the lease on our term."""
        if self.leadership is not None and not self.leadership.fence(tx):
            raise LostLeadership("the leader lease was lost (expired or taken over)")

    def _poll(self, now: datetime) -> list[Completion]:
        try:
            return self.executor.poll(now)
        except Exception:  # completions wait for the next poll; scheduling goes on
            log.exception("executor poll failed")
            return []

    def _stop(self, job_id: str, reason: str) -> None:
        try:
            self.executor.stop(job_id, reason)
        except Exception:  # the next pass's reconcile stops it again
            log.exception("executor could not stop job %s", job_id)

    def _warn(self, job_id: str, message: str) -> None:
        try:
            self.executor.warn(job_id, message)
        except Exception:
            log.exception("executor could not warn job %s", job_id)

    def _fail(self, site_id: str, now: datetime, defects: list[Defect], report: PassReport) -> None:
        """Fail each defective job still as it was judged, each in its own savepoint; stop
        the runs of those that ran."""
        stopped: list[tuple[str, str]] = []
        with self.ctx.db.transaction() as tx:
            self._fence(tx)
            for defect in defects:
                try:
                    with tx.session.begin_nested():
                        job = tx.get(Job, defect.job_id, for_update=True)
                        if job is None or job.site_id != site_id:
                            continue
                        if not still_applies(job, defect):
                            continue
                        log.error("scheduler fails job %s: %s", job.id, defect.reason)
                        ran = fail_job(tx, job, now, defect.reason, actor=ACTOR)
                        tx.flush()
                except Exception as error:
                    if is_outage(error):
                        raise
                    log.exception("scheduler could not fail job %s", defect.job_id)
                    continue
                report.failed.append(defect.job_id)
                if ran:
                    stopped.append((defect.job_id, defect.reason))
        for job_id, reason in stopped:
            self._stop(job_id, reason)

    # ---------------------------------------------------------------- steps 2-3
    def _finish(self, site_id: str, completions: list[Completion], report: PassReport) -> None:
        if not completions:
            return
        with self.ctx.db.transaction() as tx:
            self._fence(tx)
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
            launches: dict[str, Launch] = {}
            broken: list[Defect] = []
            for j in running:
                why = defect_of(j, now)
                if why is not None:  # failed before the snapshot is taken, never adopted
                    broken.append(Defect(j.id, why, version=j.version))
                    continue
                try:
                    launches[j.id] = self._launch_of(tx, j)
                except Exception as error:
                    if is_outage(error):
                        raise
                    why = f"its run cannot be described to the executor: {describe(error)}"
                    broken.append(Defect(j.id, why, version=j.version))
            # one executor serves every site: leave other sites' runs to their own pass
            active = self.executor.active()
            ids = sorted({job_id for job_id, _run in active})
            site_of = {j.id: j.site_id for j in tx.all(tx.select(Job).where(Job.id.in_(ids)))}
        if broken:
            self._fail(site_id, now, broken, report)
        self._check_leads()  # the executor is ours to command only while we lead
        for job_id, _run in sorted(active - wanted):
            if site_of.get(job_id, site_id) == site_id:
                self._stop(job_id, "the job is no longer running")
        held = self.executor.active()
        lost = [launches[job_id] for job_id, run in sorted(wanted - held) if job_id in launches]
        orphans: list[Launch] = []
        refused: list[Defect] = []
        for launch in lost:
            try:
                if not self.executor.adopt(launch):
                    orphans.append(launch)
            except Exception as error:  # not the executor's to run: fail the job
                log.exception("executor could not adopt job %s run %d", launch.job_id, launch.run)
                why = f"the executor could not adopt its run: {describe(error)}"
                refused.append(Defect(launch.job_id, why, run=launch.run))
        if refused:
            self._fail(site_id, now, refused, report)
        if not orphans:
            return
        with self.ctx.db.transaction() as tx:
            self._fence(tx)
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
            self._fence(tx)
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
            refused = PurposeCheck(tx, kyc.policy_on(self.ctx, now))
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
        return take_snapshot(self.ctx, site_id, now, held)

    def _rebuild(self, topology: SiteTopology, snap: Snapshot) -> SchedulerState:
        return rebuild(topology, snap)

    # ------------------------------------------------------------------ step 6
    def _apply(
        self,
        site_id: str,
        topology: SiteTopology,
        snap: Snapshot,
        decisions: Decisions,
        report: PassReport,
    ) -> tuple[list[Launch], list[tuple[str, str]], list[tuple[str, str]]]:
        """Apply the decisions in one transaction, each in its own savepoint: a decision
        that raises (anything but a database outage) is undone alone and its job failed
        after commit, saying why; the others are applied."""
        now = snap.now
        launches: list[Launch] = []
        warnings: list[tuple[str, str]] = []
        stops: list[tuple[str, str]] = []
        refused: dict[str, Defect] = {}
        with self.ctx.db.transaction() as tx:
            self._fence(tx)
            # Node state changes wait for this apply (and it for them): a node cannot go
            # down between our check that it is up and the commit of a start on it.
            tx.lock(placement_lock(site_id))

            checked: dict[str, Job | None] = {}  # row if unchanged since the snapshot

            def fresh(job_id: str) -> Job | None:
                """The job's row, locked, if nobody changed it since the snapshot (this
                apply's own earlier changes to it do not count; a stale row counts once)."""
                if job_id in refused:
                    return None
                if job_id in checked:
                    return checked[job_id]
                row = tx.require(Job, job_id, "job", for_update=True)
                unchanged = row.version == snap.versions.get(job_id)
                report.stale += not unchanged
                checked[job_id] = row if unchanged else None
                return checked[job_id]

            def guarded(job_id: str, what: str, act: Callable[[Job], Callable[[], None]]) -> None:
                """``act`` on the fresh row in a savepoint; what it returns records the
                outcome (launches, stops, the report) once the savepoint holds."""
                try:
                    with tx.session.begin_nested():
                        job = fresh(job_id)
                        if job is None:
                            return
                        outcome = act(job)
                        tx.flush()
                except StaleRow:
                    raise  # a concurrent writer, not this job: the pass is retried
                except Exception as error:
                    if is_outage(error):
                        raise
                    log.exception("scheduler could not %s job %s", what, job_id)
                    why = f"the scheduler could not {what} it: {describe(error)}"
                    refused[job_id] = Defect(job_id, why, version=snap.versions.get(job_id))
                    checked.pop(job_id, None)
                    return
                outcome()

            def time_out(job: Job) -> Callable[[], None]:
                runs.stop_run(
                    tx, job, now, JobState.FAILED, reason="walltime exceeded", actor=ACTOR
                )

                def done() -> None:
                    stops.append((job.id, "walltime exceeded"))
                    report.timed_out.append(job.id)

                return done

            def requeue(job: Job, preempt: Preempt) -> Callable[[], None]:
                runs.stop_run(tx, job, now, JobState.QUEUED, reason=preempt.reason, actor=ACTOR)

                def done() -> None:
                    stops.append((job.id, f"preempted: {preempt.reason}"))
                    report.requeued.append(job.id)

                return done

            def notify(job: Job, preempt: Preempt) -> Callable[[], None]:
                at = from_seconds(preempt.at)
                job.preempt_at = at
                job.preempt_reason = audit.clip(preempt.reason)
                audit.record(
                    tx,
                    at=now,
                    actor=ACTOR,
                    action="job.preempt_notice",
                    subject_type="job",
                    subject_id=job.id,
                    after={"preempt_at": at.isoformat(), "for_job": preempt.by},
                    reason=preempt.reason,
                )

                def done() -> None:
                    warnings.append((job.id, f"preemption at {at.isoformat()}: {preempt.reason}"))
                    report.notices.append(job.id)

                return done

            def begin(job: Job, start: Start) -> Callable[[], None]:
                placement = [(topology.node_ids[n], count) for n, count in start.placement]
                nodes = [tx.require(Node, node_id, "node") for node_id, _ in placement]
                if any(n.state != NodeState.UP or n.state != snap.node_states[n.id] for n in nodes):
                    return self._count_stale(report)
                # the tenant's standing may have changed since the snapshot (a re-screen hit,
                # an officer's decision): read it again, locked until commit
                tenant = tx.require(Tenant, job.tenant_id, "tenant", for_update=True)
                if not is_approved(tenant, now) or purpose_refused(
                    job.purpose, tenant.approved_end_uses, kyc.policy_on(self.ctx, now)
                ):
                    return self._count_stale(report)
                runs.start_run(tx, job, placement, now, borrowed=start.borrowed, actor=ACTOR)
                tx.flush()
                launch = self._launch_of(tx, job)

                def done() -> None:
                    launches.append(launch)
                    report.started.append(job.id)

                return done

            for job_id in decisions.timeouts:
                guarded(job_id, "time out", time_out)
            for preempt in decisions.requeues:
                guarded(preempt.job_id, "requeue", partial(requeue, preempt=preempt))
            for preempt in decisions.notices:
                guarded(preempt.job_id, "warn", partial(notify, preempt=preempt))
            for start in decisions.starts:
                guarded(start.job_id, "start", partial(begin, start=start))
            try:  # bookkeeping of waiting jobs: never worth failing a job or the pass for
                with tx.session.begin_nested():
                    self._keep_waiting(tx, snap, decisions, fresh)
            except Exception as error:
                if is_outage(error):
                    raise
                log.exception("scheduler could not record why jobs wait at site %s", site_id)
        if refused:
            self._fail(site_id, now, list(refused.values()), report)
        return launches, warnings, stops

    @staticmethod
    def _count_stale(report: PassReport) -> Callable[[], None]:
        def done() -> None:
            report.stale += 1

        return done

    def _keep_waiting(
        self, tx: Tx, snap: Snapshot, decisions: Decisions, fresh: Callable[[str], Job | None]
    ) -> None:
        """Guarantee claims and wait reasons of the jobs that still wait."""
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
            self._fence(tx)
            row = tx.get(SchedulerStatus, site_id)
            if row is None:
                tx.add(
                    SchedulerStatus(site_id=site_id, leader=self.name, last_tick_at=now, ticks=1)
                )
            else:
                row.leader = self.name
                row.last_tick_at = now
                row.ticks += 1
