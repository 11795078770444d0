"""The leader's kept state of one site: the core's state and scheduler, fed by deltas.

Design (Kueue's cache): the leader builds a :class:`SiteState` once, from a full snapshot
(``services.snapshot``), on taking leadership; afterwards every pass applies only what
changed (:meth:`SiteState.sync`): the change feed (``persistence.change_feed``) names the
jobs and nodes changed since the last pass, their rows are reloaded in one statement each,
and each row is reconciled with the kept record (a new queued job is submitted, a finished
one stopped, a requeued one put back...). The leader's own decisions are applied to the kept
state by the same ``apply_decisions`` the simulator uses, once committed, and its own
change rows are skipped. The core's ``Scheduler`` (with its queue and running indexes) lives
as long as the state, so a step costs what changed.

Anything :meth:`sync` cannot explain as a delta (a job started by someone else, a node the
topology does not know, an impossible transition) raises :class:`NeedsRebuild`: the pass
rebuilds from the database instead. A periodic consistency check (``services.consistency``)
builds a fresh state beside the passes, compares (:func:`divergences`), logs what differed
and, if anything did, rebuilds (repair).

Invariants: ``versions`` holds the row version of every job the state holds (queued or
running) as last read or written by the leader; ``jobs`` holds the same jobs' stored wait
reason and claim, so bookkeeping writes happen only when they change; ``explained`` lists a
job under a set-aside run's text only while ``jobs`` holds that text as its stored reason
(every re-read or re-write of the job forgets it there); ended jobs are dropped from the
core's state after their ending was applied (memory stays flat).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gpulease.compliance.admission import Admission
from gpulease.domain.clock import to_seconds
from gpulease.domain.errors import DomainError
from gpulease.domain.models import LeaseGuarantee
from gpulease.domain.states import JobState, NodeState
from gpulease.persistence import bulk
from gpulease.persistence.change_reader import Change, ChangeFeed
from gpulease.persistence.db import Tx
from gpulease.scheduler.engine import Scheduler
from gpulease.scheduler.state import SchedulerState
from gpulease.services import job_fields, leases
from gpulease.services.containment import Defect, defect_of, describe
from gpulease.services.decision_apply import Explained
from gpulease.services.inventory import SiteTopology
from gpulease.services.job_fields import JobFields, spec_of
from gpulease.services.snapshot import Snapshot

log = logging.getLogger("gpulease.scheduler")


class NeedsRebuild(Exception):
    """The kept state cannot take a change as a delta: rebuild it from the database."""


@dataclass(slots=True)
class JobView:
    """What a pass needs of a job row between passes (the stored bookkeeping)."""

    state: str
    wait_reason: str
    guaranteed_since: datetime | None
    tenant_id: str
    run: int  # the row's ``starts``: the executor knows a run by it


def view_of(job: JobFields) -> JobView:
    return JobView(job.state, job.wait_reason, job.guaranteed_since, job.tenant_id, job.starts)


@dataclass
class SiteState:
    site_id: str
    topology: SiteTopology
    state: SchedulerState
    scheduler: Scheduler
    feed: ChangeFeed
    admission_key: tuple[object, ...]
    now: datetime
    jobs: dict[str, JobView] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    node_states: dict[str, str] = field(default_factory=dict)
    built_at: float = field(default_factory=time.monotonic)  # or last checked
    lease_changes: int = 0  # times ``follow_leases`` replaced the guarantees
    ended: list[str] = field(default_factory=list)  # to drop once a step has seen them
    defects: list[Defect] = field(default_factory=list)  # rows to fail (read in sync)
    held_reasons: dict[str, str] = field(default_factory=dict)  # new jobs held by admission
    unclaimed: list[str] = field(default_factory=list)  # held jobs whose stored claim ends
    claimed: set[str] = field(default_factory=set)  # jobs whose stored row has a claim
    # which jobs store which set-aside run's wait reason (the applier compares only the rest)
    explained: Explained = field(default_factory=Explained)

    @classmethod
    def built(
        cls,
        site_id: str,
        topology: SiteTopology,
        snap: Snapshot,
        state: SchedulerState,
        scheduler: Scheduler,
        feed: ChangeFeed,
        admission_key: tuple[object, ...],
    ) -> SiteState:
        kept = cls(site_id, topology, state, scheduler, feed, admission_key, snap.now)
        left_out = {d.job_id for d in snap.defects}
        for job_id, job in snap.jobs.items():
            if job_id in left_out:
                continue
            kept.jobs[job_id] = view_of(job)
            kept.versions[job_id] = snap.versions[job_id]
            if job.guaranteed_since is not None:
                kept.claimed.add(job_id)
        kept.node_states = dict(snap.node_states)
        return kept

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.built_at

    # ------------------------------------------------------------------ deltas
    def sync(
        self, tx: Tx, changes: Iterable[Change], now: datetime, me: str, admit: Admission
    ) -> int:
        """Apply the changes others made (rows reloaded); returns how many rows were read."""
        self.now = now
        self.state.forget(self.ended)
        self.ended.clear()
        job_ids: set[str] = set()
        node_ids: set[str] = set()
        for change in changes:
            if change.origin == me:
                continue
            (job_ids if change.kind == "job" else node_ids).add(change.ref)
        if node_ids:
            self._sync_nodes(tx, node_ids, now)
        if not job_ids:
            return len(node_ids)
        rows = job_fields.load(tx, job_ids)  # plain rows: no ORM objects
        rows.sort(key=lambda j: (j.submitted_at, j.id))
        for row in rows:
            if row.site_id == self.site_id:
                self._sync_job(row, now, admit)
        return len(rows) + len(node_ids)

    def _sync_nodes(self, tx: Tx, node_ids: set[str], now: datetime) -> None:
        for node in bulk.nodes_by_id(tx, node_ids).values():
            if node.site_id != self.site_id or node.state == self.node_states.get(node.id):
                continue
            index = self.topology.node_index.get(node.id)
            if index is None:
                raise NeedsRebuild(f"node {node.id} is new to the site")
            try:
                self.state.set_node_state(index, NodeState(node.state), to_seconds(now))
            except DomainError as error:
                raise NeedsRebuild(f"node {node.id}: {error}") from error
            self.node_states[node.id] = node.state

    def _sync_job(self, row: JobFields, now: datetime, admit: Admission) -> None:
        record = self.state.jobs.get(row.id)
        known = self.versions.get(row.id)
        if record is not None and known == row.version:
            return  # as the leader last read or wrote it
        try:
            target = JobState(row.state)
        except ValueError:  # not a state the scheduler acts on: out of its view
            target = JobState.FAILED
        held = record.status if record is not None else None
        if target is JobState.QUEUED:
            if held is None:
                self._admit(row, now, admit)
                return
            if held is JobState.RUNNING and record is not None:
                self.state.stop(row.id, to_seconds(now), JobState.QUEUED, row.wait_reason)
                record.attained, record.run_time = row.attained_gpu_s, row.run_s
                self._remember(row)
                self.admit_requeued([row.id], admit)
                return
            elif held is not JobState.QUEUED or record is None:
                raise NeedsRebuild(f"job {row.id} came back to the queue")
            elif spec_of(row) != record.spec:
                raise NeedsRebuild(f"job {row.id} changed its request while queued")
            self._remember(row)
        elif target is JobState.RUNNING:
            if held is not JobState.RUNNING or record is None:
                raise NeedsRebuild(f"job {row.id} was started by another process")
            assert row.started_at is not None
            if record.run_start != to_seconds(row.started_at):
                raise NeedsRebuild(f"job {row.id} runs a run the leader did not start")
            if row.preempt_at is not None and record.preempt_at is None:
                self.state.begin_preemption(row.id, to_seconds(row.preempt_at), row.preempt_reason)
            self._remember(row)
        else:  # ended: succeeded, failed, cancelled
            self._end(row, target, now)

    def _end(self, row: JobFields, target: JobState, now: datetime) -> None:
        record = self.state.jobs.get(row.id)
        if record is not None and record.status in (JobState.QUEUED, JobState.RUNNING):
            self.state.stop(row.id, to_seconds(row.ended_at or now), target, row.end_reason)
            self.ended.append(row.id)
        self._drop(row.id)

    def finished(self, rows: Iterable[JobFields], now: datetime) -> None:
        """Runs the leader itself ended (completions it wrote under its name, which the feed
        skips), as their reload would have ended them, after this pass's :meth:`sync`."""
        for row in rows:
            if row.site_id == self.site_id:
                self._end(row, JobState(row.state), now)

    def _admit(self, row: JobFields, now: datetime, admit: Admission) -> None:
        """A queued job new to the state: held, defective, or submitted to the core."""
        why = admit.refusal(row.tenant_id, row.purpose)
        if why is not None:
            if row.wait_reason != why:
                self.held_reasons[row.id] = why
            return
        defect = defect_of(row, now)
        if defect is not None:
            self.defects.append(Defect(row.id, defect, version=row.version))
            return
        try:
            record = self.state.submit(spec_of(row), domain="NVLink domain")
        except Exception as error:  # the core refuses its shape: fail it, saying why
            self.defects.append(Defect(row.id, describe(error), version=row.version))
            return
        record.attained, record.run_time = row.attained_gpu_s, row.run_s
        if row.guaranteed_since is not None:
            self.state.claim_since(row.id, to_seconds(row.guaranteed_since))
        self._remember(row)

    def _remember(self, row: JobFields) -> None:
        self.explained.forget(row.id)  # its stored reason is the row's, read or written now
        self.jobs[row.id] = view_of(row)
        self.versions[row.id] = row.version
        self.set_claim(row.id, row.guaranteed_since)

    def _drop(self, job_id: str) -> None:
        self.explained.forget(job_id)
        self.jobs.pop(job_id, None)
        self.versions.pop(job_id, None)
        self.claimed.discard(job_id)

    def claimed_ids(self) -> set[str]:
        return self.claimed

    def set_claim(self, job_id: str, since: datetime | None) -> None:
        """The stored claim of a job the state holds (read or written by the leader)."""
        view = self.jobs.get(job_id)
        if view is None:
            return
        view.guaranteed_since = since
        if since is None:
            self.claimed.discard(job_id)
        else:
            self.claimed.add(job_id)

    def admit_requeued(self, job_ids: Iterable[str], admit: Admission) -> None:
        """Jobs back in the queue (requeued by a node failure, a lost run, a preemption)
        pass admission again: a held tenant's job leaves the scheduler's view, as a rebuilt
        state would leave it out, and its stored reason says why."""
        for job_id in job_ids:
            record = self.state.queued.get(job_id)
            if record is None:
                continue
            why = admit.refusal(record.spec.tenant, record.spec.purpose or "")
            if why is None:
                continue
            self.state.withdraw(job_id)
            self._drop(job_id)
            self.held_reasons[job_id] = why
            self.unclaimed.append(job_id)

    def follow_leases(self, tx: Tx, now: datetime) -> None:
        """The active lease guarantees as of now (replaced only when they changed)."""
        guarantees = [
            LeaseGuarantee(
                lease.id,
                lease.tenant_id,
                lease.gpus,
                to_seconds(lease.start),
                to_seconds(lease.end),
            )
            for lease in leases.active_guarantees(tx, self.site_id, now)
        ]
        if set(guarantees) != set(self.state.leases):
            self.state.leases = guarantees
            self.lease_changes += 1

    # ------------------------------------------------------- the leader's own writes
    def wrote(self, job_id: str, row: JobFields | None) -> None:
        """The leader committed a change to this job: keep its new version and fields."""
        if row is None or row.state not in (JobState.QUEUED, JobState.RUNNING):
            self._drop(job_id)
            if job_id in self.state.jobs:
                self.ended.append(job_id)
            return
        self._remember(row)


def divergences(
    kept: SchedulerState,
    fresh: SchedulerState,
    *,
    skip: Collection[str] = frozenset(),
    skip_nodes: Collection[str] = frozenset(),
    leases: bool = True,
    limit: int = 20,
) -> list[str]:
    """How a kept state differs from one rebuilt from the database (empty: the same);
    jobs in ``skip`` and nodes in ``skip_nodes`` (changed while the two were read) are not
    compared, nor the lease guarantees unless ``leases``."""
    found: list[str] = []

    def note(text: str) -> None:
        if len(found) < limit:
            found.append(text)

    for name, mine, theirs in (
        ("queued", set(kept.queued) - set(skip), set(fresh.queued) - set(skip)),
        ("running", set(kept.running) - set(skip), set(fresh.running) - set(skip)),
    ):
        for job_id in sorted(mine - theirs):
            note(f"job {job_id} is {name} in memory only")
        for job_id in sorted(theirs - mine):
            note(f"job {job_id} is {name} in the database only")
    for job_id in sorted((set(kept.running) & set(fresh.running)) - set(skip)):
        a, b = kept.running[job_id], fresh.running[job_id]
        if sorted(a.placement) != sorted(b.placement):
            note(f"job {job_id} holds {a.placement} in memory, {b.placement} in the database")
        if a.preempt_at != b.preempt_at:
            note(f"job {job_id} preemption at {a.preempt_at} in memory, {b.preempt_at} stored")
    if kept.node_state != fresh.node_state:
        pairs = zip(kept.node_state, fresh.node_state, strict=True)
        for index, (in_memory, stored) in enumerate(pairs):
            node = kept.cluster.nodes[index].id
            if in_memory != stored and node not in skip_nodes:
                note(f"node {node} is {in_memory.value} in memory, {stored.value} stored")
    if {k: v for k, v in kept.claims.items() if k not in skip} != {
        k: v for k, v in fresh.claims.items() if k not in skip
    }:
        note(f"guarantee claims differ: {len(kept.claims)} in memory, {len(fresh.claims)} stored")
    if leases and set(kept.leases) != set(fresh.leases):
        note("active lease guarantees differ")
    return found
