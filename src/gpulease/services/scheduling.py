"""The live scheduler: the simulator's core, driven by the system clock and the database.

One pass (:meth:`LiveScheduler.tick`) per site:

1. **Leases** move along the calendar (``leases.tick``); **admission** is read: which tenants
   are held and which end uses each may run (``compliance.admission``, a pure function),
   per site, under the packs in force there (``services.sites``: a tenant may be admitted
   in Jakarta and held in Johor Bahru).
2. **Completions**: runs the executor reports ended become succeeded / failed (set at a
   time). When admission changed, held tenants' work is held (and drained, if so set).
3. **State**: the leader keeps the core's state between passes (``services.live_state``)
   and applies what changed since the last pass from the change feed; it rebuilds from a
   full snapshot (``services.snapshot``) on taking leadership, when admission changed, and
   when a change cannot be taken as a delta. Every ``consistency_check_s`` a check builds a
   fresh state beside the passes (``services.consistency``: a thread that waits while a
   pass runs); the pass after it is built compares, logs any divergence and, if there is
   one, rebuilds (repair).
4. **Reconcile** the executor with the kept state: a run nobody wants is stopped; a run the
   state holds but the executor does not is adopted, or requeued if it cannot be.
5. **Decide** outside any transaction: ``Scheduler.step(state, now)``, the same call the
   simulator makes, on the same kept ``Scheduler`` (its indexes survive between passes).
6. **Apply** in one write transaction, set at a time, each decision only if its row is
   unchanged since the state it was taken on (``services.decision_apply``); then the same
   ``apply_decisions`` the simulator uses brings the kept state up to date.
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

import gc
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gpulease.activity import decisions_logged
from gpulease.compliance.admission import Admission, Standing
from gpulease.domain.clock import to_seconds
from gpulease.domain.errors import NotFound
from gpulease.domain.states import JobState
from gpulease.executors.base import Completion, Executor, Launch
from gpulease.persistence import bulk
from gpulease.persistence.change_feed import writing_as
from gpulease.persistence.change_reader import ChangeFeed, Row, read_rows
from gpulease.persistence.db import Tx, is_outage
from gpulease.persistence.leader import Leadership
from gpulease.persistence.tables import Job, Tenant
from gpulease.scheduler.engine import Decisions, Scheduler, SchedulerConfig, apply_decisions
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState
from gpulease.services import (
    attestation,
    collection,
    kyc,
    leases,
    metrics,
    node_sync,
    rescreening,
    reservation_sync,
    runs,
    sites,
)
from gpulease.services.consistency import Check, Gate
from gpulease.services.containment import Defect, describe, still_applies
from gpulease.services.containment import fail as fail_job
from gpulease.services.context import ServiceContext
from gpulease.services.decision_apply import (
    ACTOR,
    Applied,
    Applier,
    Basis,
    Explained,
    launch_of,
    log_decisions,
)
from gpulease.services.inventory import SiteTopology, cached_topology
from gpulease.services.live_state import NeedsRebuild, SiteState
from gpulease.services.runs import GpuRow
from gpulease.services.snapshot import Pause, Snapshot, rebuild, take_snapshot

__all__ = ["LiveScheduler", "LostLeadership", "PassReport"]

log = logging.getLogger("gpulease.scheduler")
# The scheduler process's cyclic-collector thresholds (Python's default: 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 20)


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
    rebuilt: str = ""  # why the kept state was rebuilt this pass ("" = kept, deltas applied)
    changes: int = 0  # rows reloaded from the change feed
    divergences: list[str] = field(default_factory=list)  # found by a consistency check
    checked: str = ""  # a consistency check: "started", "equal", "diverged", "failed: ..."


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
        self.divergences = 0  # consistency checks that found the kept state wrong
        self._sites: dict[str, SiteState] = {}  # kept state per site (this leader's)
        self._checks: dict[str, Check] = {}  # consistency checks under way, per site
        self._gate = Gate()  # shut while a pass runs: the checks' threads wait
        self._term: int | None = None
        self.node_sync = node_sync.NodeSync(ctx, executor)  # with Slurm, every node_sync_s
        # leases mirrored as Slurm reservations where a site opts in, every reservation_sync_s
        self.reservation_sync = reservation_sync.ReservationSync(ctx, executor)
        # location attestation: the executor's sweep and the check, every attestation_interval_s
        self.attestor = attestation.Attestor(ctx, executor)

    def reset_state(self) -> None:
        """Drop the kept state: the next pass rebuilds every site from the database."""
        self._sites.clear()
        self._checks.clear()  # their threads end on their own; nobody reads them

    def wait_for_checks(self, timeout: float | None = None) -> bool:
        """Wait until the consistency checks under way are built (True: all are)."""
        return all(check.wait(timeout) for check in list(self._checks.values()))

    # ------------------------------------------------------------------ one pass
    def tick(self) -> list[PassReport]:
        began = time.perf_counter()
        try:
            with self._gate.shut():
                return self._tick()
        finally:
            metrics.observe_pass(time.perf_counter() - began)

    def _tick(self) -> list[PassReport]:
        now = self.ctx.now()
        if self.leadership is not None and not self.leadership.still_held():
            log.warning("scheduler %s does not hold the leader lease: no pass", self.name)
            self.reset_state()
            return []
        term = self.leadership.term if self.leadership is not None else None
        if term != self._term:  # leadership (re)taken: nothing kept is trusted
            self.reset_state()
            self._term = term
        kyc.expire(self.ctx, now)
        kyc.screen_unscreened(self.ctx)
        rescreening.on_policy_change(self.ctx, now)  # rules in force changed: re-screen
        leases.tick(self.ctx, now)
        self.node_sync.tick(now)  # never raises; node changes reach the passes by the feed
        self.reservation_sync.tick(now)  # never raises
        self.attestor.tick(now)  # starts a sweep beside the pass when due; never raises
        completions = self._poll(now)
        with self.ctx.db.transaction(write=False) as tx:  # one read: sites and admission
            standings = self._standings(tx)
            where = sites.site_infos(tx)
        feed_rows = self._read_feed()
        self.ctx.cache["site_infos"] = tuple(where)  # fresh for the next pass's re-screening
        reports = []
        # a completion goes to the site whose kept state runs its job; one no kept state
        # runs (a first pass, a rebuild) to every site, whose pass keeps only its own jobs
        running_at = {
            job_id: kept_id
            for kept_id, kept in self._sites.items()
            for job_id in kept.state.running
        }
        for site in where:
            site_id = site.site_id
            try:
                began = time.perf_counter()
                admit = sites.admission_at(self.ctx, site, standings, now)  # its own packs
                mine = [c for c in completions if running_at.get(c.job_id, site_id) == site_id]
                report = self._site_pass(site_id, now, mine, admit, feed_rows)
                metrics.observe_site_pass(report, time.perf_counter() - began)
                reports.append(report)
            except LostLeadership as lost:
                log.warning("scheduler %s stops deciding: %s", self.name, lost)
                self.reset_state()
                break
            except Exception:  # one site's failure must not stop the others' passes
                self.failed_passes += 1
                metrics.FAILED_PASSES.inc()
                self._sites.pop(site_id, None)  # rebuilt by the next pass
                log.exception("scheduler pass failed for site %s", site_id)
        return reports

    def _read_feed(self) -> tuple[int, list[Row]] | None:
        """The change feed, once for every kept site's reader (each reads every site's rows
        for its position), from the lowest position among them. None: no kept site, or the
        read failed (each site's pass reads for itself, and fails alone)."""
        lows = [kept.feed.low for kept in self._sites.values()]
        if not lows:
            return None
        try:
            with self.ctx.db.transaction(write=False) as tx:
                return min(lows), read_rows(tx, min(lows))
        except Exception:
            log.exception("scheduler could not read the change feed for every site")
            return None

    def _site_pass(
        self,
        site_id: str,
        now: datetime,
        completions: list[Completion],
        admit: Admission,
        feed_rows: tuple[int, list[Row]] | None = None,
    ) -> PassReport:
        report = PassReport(site_id)
        topology = cached_topology(self.ctx, site_id)
        finished = self._finish(site_id, completions, report)
        kept = self._sites.get(site_id)
        if kept is None or kept.admission_key != admit.key:
            for job_id, reason in self._hold(site_id, now, admit, report):
                self._stop(job_id, reason)
        site = self._current(site_id, topology, now, admit, report, feed_rows)
        if not report.rebuilt:  # else the rebuild read them
            site.finished(finished, now)
        if self._reconcile(site, now, report):
            site = self._current(site_id, topology, now, admit, report)
        began = time.perf_counter()
        decisions = site.scheduler.step(site.state, to_seconds(now))
        metrics.observe_step(site_id, time.perf_counter() - began)
        applied = self._apply_to(site, decisions, report)
        metrics.observe_waits(  # every start: a restart's wait since its requeue
            metrics.start_waits(
                self.ctx.db,
                [row for job_id in applied.started if (row := applied.rows.get(job_id))],
            )
        )
        if decisions_logged():
            log_decisions(site_id, applied, finished)
        self._absorb(site, applied, admit)
        refused = list(applied.refused)
        for job_id, reason in applied.stops:
            self._stop(job_id, reason)
        for job_id, message in applied.warnings:
            self._warn(job_id, message)
        for launch in applied.launches:
            try:
                self.executor.launch(launch)
            except Exception as error:  # the executor's trouble with this run: fail the job
                log.exception("executor could not launch job %s run %d", launch.job_id, launch.run)
                why = f"the executor could not launch it: {describe(error)}"
                refused.append(Defect(launch.job_id, why, run=launch.run))
        if refused:
            self._fail(site_id, now, refused, report)
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

    # ---------------------------------------------------------------- admission
    def _admission(self, now: datetime, site_id: str | None = None) -> Admission:
        """Who may run work at a site (default: the first) and for what, as of now, under
        the packs in force there (``services.sites``)."""
        with self.ctx.db.transaction(write=False) as tx:
            standings = self._standings(tx)
            where = sites.site_infos(tx)
        site = next((s for s in where if s.site_id == site_id or site_id is None), None)
        if site is None:
            raise NotFound(f"no site {site_id!r}", site_id=site_id)
        return sites.admission_at(self.ctx, site, standings, now)

    @staticmethod
    def _standings(tx: Tx) -> list[Standing]:
        """Every tenant's standing (one read): what admission at each site starts from."""
        return [sites.standing_of(t) for t in tx.all(tx.select(Tenant))]

    def _hold(
        self, site_id: str, now: datetime, admit: Admission, report: PassReport
    ) -> list[tuple[str, str]]:
        """Say why held tenants' queued jobs wait. When set to drain, stop their running
        jobs, and running jobs whose end use the tenant's approval no longer covers (an
        officer narrowed it): both go back to the queue, held, saying why. Runs when
        admission changed (and on a leader's first pass)."""
        held = admit.held
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
            for job in rows:
                reason = admit.refusal(job.tenant_id, job.purpose)
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

    # ---------------------------------------------------------------- completions
    def _finish(self, site_id: str, completions: list[Completion], report: PassReport) -> list[Job]:
        """End the runs the executor reports ended; written as the leader's own (the feed
        skips them): the caller brings the kept state up to them (``SiteState.finished``)."""
        if not completions:
            return []
        with self.ctx.db.transaction() as tx, writing_as(self.name):
            self._fence(tx)
            finished = runs.finish_runs(tx, site_id, completions, actor=ACTOR)
        report.finished += [job.id for job in finished]
        return finished

    # ------------------------------------------------------------ the kept state
    def _current(
        self,
        site_id: str,
        topology: SiteTopology,
        now: datetime,
        admit: Admission,
        report: PassReport,
        feed_rows: tuple[int, list[Row]] | None = None,
    ) -> SiteState:
        """The site's kept state brought up to date: deltas, or a rebuild (module doc);
        ``feed_rows``: the change feed's rows above a position, read for every site this pass
        (None, or read from above this site's position: read here)."""
        site = self._sites.get(site_id)
        why = ""
        if site is None:
            why = "no kept state (leadership taken)"
        elif site.admission_key != admit.key:
            why = "admission changed"
        if site is not None and not why:
            check = self._check_of(site, now, admit, report)
            try:
                with self.ctx.db.transaction(write=False) as tx:
                    if feed_rows is not None and feed_rows[0] <= site.feed.low:
                        changes = site.feed.take(feed_rows[1])  # read from below its position
                    else:
                        changes = site.feed.read(tx)
                    report.changes += site.sync(tx, changes, now, self.name, admit)
                    site.follow_leases(tx, now)
                if check is not None:
                    check.saw(changes)
                if site.defects:
                    defects, site.defects = site.defects, []
                    self._fail(site_id, now, defects, report)
                if check is None or not check.done.is_set() or not self._diverged(check, report):
                    return site
                why = "consistency check"
            except NeedsRebuild as error:
                why = f"a change it cannot apply: {error}"
        report.rebuilt = why
        self._checks.pop(site_id, None)
        fresh = self._build(site_id, topology, now, admit, report)
        self._sites[site_id] = fresh
        return fresh

    def _build(
        self,
        site_id: str,
        topology: SiteTopology,
        now: datetime,
        admit: Admission,
        report: PassReport,
    ) -> SiteState:
        previous = self._sites.get(site_id)
        if previous is not None:  # the same leader: its reader's position holds
            feed = previous.feed.copy()
        else:  # first: a change committed during the snapshot is read again
            feed = ChangeFeed(site_id)
            with self.ctx.db.transaction(write=False) as tx:
                feed.reset(tx)
        held = frozenset(admit.held)
        snap = self._snapshot(site_id, now, held)
        state = self._rebuild(topology, snap)
        if snap.defects:  # fail them, then decide without them
            self._fail(site_id, now, snap.defects, report)
            snap = self._snapshot(site_id, now, held)
            state = self._rebuild(topology, snap)  # any left changed meanwhile: next pass
        scheduler = Scheduler(make_policy(self.ctx.settings.policy), self.scheduler_config)
        site = SiteState.built(site_id, topology, snap, state, scheduler, feed, admit.key)
        # The kept state lives for minutes: keep the cyclic collector from re-scanning it on
        # every full collection (its records are freed by reference counting when they end),
        # and collect less often: a pass allocates thousands of short-lived rows, and with
        # the default thresholds full collections (up to 140 ms each) made the passes' tail.
        collection.freeze_after_pass()  # once this pass's garbage is collected
        gc.set_threshold(*GC_THRESHOLDS)
        site.held_reasons.update(snap.purpose_held)
        site.unclaimed.extend(snap.unclaimed)
        return site

    # --------------------------------------------------------- consistency check
    def _check_of(
        self, site: SiteState, now: datetime, admit: Admission, report: PassReport
    ) -> Check | None:
        """The site's check under way, or one begun now if due (``services.consistency``)."""
        check = self._checks.get(site.site_id)
        if check is not None and check.kept is site:
            return check
        if site.age_s < self.ctx.settings.consistency_check_s:
            self._checks.pop(site.site_id, None)
            return None
        held = frozenset(admit.held)

        def build(pause: Pause) -> tuple[Snapshot, SchedulerState]:
            return self._build_beside(site.site_id, site.topology, now, held, pause)

        check = self._checks[site.site_id] = Check.begin(site, now, build, self._gate)
        report.checked = "started"
        return check

    def _build_beside(
        self,
        site_id: str,
        topology: SiteTopology,
        now: datetime,
        held: frozenset[str],
        pause: Pause,
    ) -> tuple[Snapshot, SchedulerState]:
        """A check's fresh state (in the check's thread: reads, never writes)."""
        snap = take_snapshot(self.ctx, site_id, now, held, pause)
        return snap, rebuild(topology, snap, pause)

    def _diverged(self, check: Check, report: PassReport) -> bool:
        """Read a built check (logged there); True if the kept state must be rebuilt."""
        del self._checks[check.kept.site_id]
        check.kept.built_at = time.monotonic()  # the next check is due a period from now
        # the records kept since the last freeze join the frozen state, without scanning it
        # again (a divergence rebuilds, and the rebuild asks for a full freeze)
        collection.refreeze_after_pass()
        report.checked, report.divergences = check.conclude()
        diverged = report.checked == "diverged"
        self.divergences += 1 if diverged else 0
        return diverged

    # ------------------------------------------------------------------ reconcile
    def _reconcile(self, site: SiteState, now: datetime, report: PassReport) -> bool:
        """Bring the executor in line with the kept state; True if rows were written (the
        caller syncs again)."""
        wanted = {
            (job_id, site.jobs[job_id].run) for job_id in site.state.running if job_id in site.jobs
        }
        elsewhere = {
            job_id
            for other in self._sites.values()
            if other is not site
            for job_id in other.state.running
        }
        active = self.executor.active()
        unknown = sorted({job_id for job_id, _ in active - wanted if job_id not in elsewhere})
        site_of: dict[str, str] = {}
        if unknown:  # one executor serves every site: leave other sites' runs alone
            with self.ctx.db.transaction(write=False) as tx:
                site_of = {j.id: j.site_id for j in bulk.load_jobs(tx, unknown)}
        self._check_leads()  # the executor is ours to command only while we lead
        for job_id, _run in sorted(active - wanted):
            if job_id in elsewhere:
                continue
            if site_of.get(job_id, site.site_id) == site.site_id:
                self._stop(job_id, "the job is no longer running")
        held = self.executor.active()
        lost = sorted(wanted - held)
        if not lost:
            return False
        with self.ctx.db.transaction(write=False) as tx:
            rows = {j.id: j for j in bulk.load_jobs(tx, [job_id for job_id, _ in lost])}
            allocations = bulk.open_allocations(tx, list(rows))
            launches = [
                self._launch_of(tx, rows[job_id], allocations.get(job_id, []))
                for job_id, run in lost
                if job_id in rows and rows[job_id].starts == run
            ]
        orphans: list[Launch] = []
        refused: list[Defect] = []
        for launch in launches:
            try:
                if not self.executor.adopt(launch):
                    orphans.append(launch)
            except Exception as error:  # not the executor's to run: fail the job
                log.exception("executor could not adopt job %s run %d", launch.job_id, launch.run)
                why = f"the executor could not adopt its run: {describe(error)}"
                refused.append(Defect(launch.job_id, why, run=launch.run))
        if refused:
            self._fail(site.site_id, now, refused, report)
        if orphans:
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
        return bool(refused or orphans)

    # ---------------------------------------------------------------- snapshot
    def _snapshot(
        self, site_id: str, now: datetime, held: frozenset[str] = frozenset()
    ) -> Snapshot:
        return take_snapshot(self.ctx, site_id, now, held)

    def _rebuild(self, topology: SiteTopology, snap: Snapshot) -> SchedulerState:
        return rebuild(topology, snap)

    # ------------------------------------------------------------------ apply
    def _apply(
        self,
        site_id: str,
        topology: SiteTopology,
        basis: Basis,
        decisions: Decisions,
        report: PassReport,
        *,
        extra_reasons: dict[str, str] | None = None,
        unclaimed: list[str] | None = None,
        also: Callable[[Tx], None] | None = None,
        explained: Explained | None = None,
    ) -> Applied:
        """Apply the decisions in one transaction (``services.decision_apply``); jobs whose
        decision could not be applied are failed after commit, saying why."""
        applier = Applier(
            self.ctx,
            site_id,
            topology,
            basis,
            decisions,
            fence=self._fence,
            launch_of=self._launch_of,
            extra_reasons=extra_reasons or {},
            unclaimed=unclaimed or [],
            also=also,
            explained=explained,
        )
        with writing_as(self.name):
            applied = applier.apply()
        report.stale += applied.stale
        report.started += applied.started
        report.requeued += applied.requeued
        report.timed_out += applied.timed_out
        report.notices += applied.notices
        if applied.refused:
            self._fail(site_id, basis.now, applied.refused, report)
            applied.refused = []
        return applied

    def _apply_to(self, site: SiteState, decisions: Decisions, report: PassReport) -> Applied:
        extra, site.held_reasons = site.held_reasons, {}
        unclaimed, site.unclaimed = site.unclaimed, []
        return self._apply(
            site.site_id,
            site.topology,
            site,
            decisions,
            report,
            extra_reasons=extra,
            unclaimed=unclaimed,
            also=lambda tx: self._heartbeat(tx, site, site.now),
            explained=site.explained,
        )

    def _absorb(self, site: SiteState, applied: Applied, admit: Admission) -> None:
        """Bring the kept state up to what was committed (the simulator's applier)."""
        for job_id, row in applied.rows.items():
            site.wrote(job_id, row)
        for job_id, text in applied.reasons.items():
            site.explained.forget(job_id)
            view = site.jobs.get(job_id)
            if view is not None:
                view.wait_reason = text
        for job_id, text in applied.explained:  # stored as its run's text: next pass skips it
            if job_id in site.jobs:
                site.explained.note(job_id, text)
        for job_id, since in applied.claims.items():
            site.set_claim(job_id, since)
        assert applied.decisions is not None
        check = self._checks.get(site.site_id)
        if check is not None:  # what the decisions moved is not compared
            check.decided(applied.decisions, [*applied.rows, *applied.claims])
        try:
            apply_decisions(site.state, applied.decisions)
            site.admit_requeued([p.job_id for p in applied.decisions.requeues], admit)
        except Exception:  # the kept state cannot follow: rebuild it next pass
            log.exception(
                "scheduler state for site %s could not follow its decisions", site.site_id
            )
            self._sites.pop(site.site_id, None)

    def _launch_of(self, tx: Tx, job: Job, rows: Sequence[GpuRow] | None = None) -> Launch:
        return launch_of(self.ctx, tx, job, rows)

    def _heartbeat(self, tx: Tx, site: SiteState, now: datetime) -> None:
        """In the apply's transaction (fenced): this pass happened; old feed rows go. The
        failed passes are this process's: /health reads them anywhere."""
        bulk.heartbeat(tx, site.site_id, self.name, now, self.failed_passes)
        site.feed.purge(tx)
