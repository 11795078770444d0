"""Applying a step's decisions to the database: set at a time, each row guarded by its version.

Design. One write transaction per pass. The fast path (:func:`apply`) reads every row it needs
in one statement per kind (``persistence.bulk``): the decided jobs locked (``FOR UPDATE``:
a concurrent cancel waits for the commit), the tenants of the starts under a share lock (an
officer's suspension waits; a tenant's new job does not), the nodes, the open allocations
and the free GPU slots. A decision whose job row changed since the state it was decided on
(its version differs) is dropped and counted stale; a start whose nodes are no longer up or
whose tenant is no longer admitted likewise. Everything else is applied in memory: the job
rows through the session (flushed once: batched statements, each change announced on the
feed), the allocation rows, closed runs and audit records in a ``bulk.RowBatch`` written
set at a time after that flush. Bookkeeping (why jobs wait, guarantee claims) is written
only where it changed, in one statement without a version bump. The jobs the walk set
aside together share one reason per run; :class:`Explained` remembers, between passes,
which jobs already store which run's text, so a pass compares only the jobs new to a run
instead of every queued job's stored reason.

If any decision raises (anything but a database outage), the transaction is rolled back and
redone one decision at a time, each in its own savepoint (:func:`apply_each`): the one that
fails is undone alone and its job failed after commit, saying why; the others are applied.

Invariants: nothing is committed unless the leader still holds its lease (``fence`` is the
transaction's first statement); node state changes wait for an apply that starts jobs (the
placement lock);
:class:`Applied` lists exactly what was committed, which the caller then applies to its kept
state with the core's ``apply_decisions``.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gpulease.activity import log_decision
from gpulease.compliance.admission import is_approved, purpose_refused
from gpulease.domain.clock import from_seconds
from gpulease.domain.states import JobState, NodeState
from gpulease.executors.base import Launch, NodeSlice
from gpulease.persistence import bulk
from gpulease.persistence.db import StaleRow, Tx, is_outage
from gpulease.persistence.tables import Job, Tenant
from gpulease.scheduler.engine import Decisions, Preempt, Start
from gpulease.services import audit, kyc, runs
from gpulease.services.containment import Defect, describe
from gpulease.services.context import ServiceContext
from gpulease.services.inventory import SiteTopology, placement_lock
from gpulease.services.jobs import log_path
from gpulease.services.runs import GpuRow

log = logging.getLogger("gpulease.scheduler")
ACTOR = "scheduler"


class StoredJob(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def wait_reason(self) -> str: ...
    @property
    def guaranteed_since(self) -> datetime | None: ...


class Basis(Protocol):
    """What the decisions were taken on: a snapshot, or the leader's kept state."""

    @property
    def now(self) -> datetime: ...
    @property
    def versions(self) -> Mapping[str, int]: ...
    @property
    def jobs(self) -> Mapping[str, StoredJob]: ...
    @property
    def node_states(self) -> Mapping[str, str]: ...

    def claimed_ids(self) -> Iterable[str]:
        """Jobs whose stored row records a guarantee claim."""
        ...


class Explained:
    """Which jobs' stored wait reason is which set-aside run's text, kept between passes by
    the leader (``SiteState.explained``).

    Invariant: a job is listed under a text only while its stored reason is that text as the
    leader last read or wrote it. The kept state calls :meth:`forget` whenever it re-reads
    or re-writes a job (its stored reason may have changed); the applier lists what it
    wrote or found already stored, and :meth:`note` records it once committed."""

    __slots__ = ("by_text", "text_of")

    def __init__(self) -> None:
        self.by_text: dict[str, set[str]] = {}
        self.text_of: dict[str, str] = {}

    def new_to(self, text: str, job_ids: Iterable[str]) -> set[str]:
        """The jobs of a run not known to store ``text`` (set operations, no call per job;
        a set given is taken over and changed)."""
        ids = job_ids if isinstance(job_ids, set) else set(job_ids)
        known = self.by_text.get(text)
        if known:
            ids.difference_update(known)
        return ids

    def note(self, job_id: str, text: str) -> None:
        self.forget(job_id)
        self.text_of[job_id] = text
        self.by_text.setdefault(text, set()).add(job_id)

    def forget(self, job_id: str) -> None:
        text = self.text_of.pop(job_id, None)
        if text is not None:
            members = self.by_text[text]
            members.discard(job_id)
            if not members:
                del self.by_text[text]


@dataclass
class Applied:
    launches: list[Launch] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    stops: list[tuple[str, str]] = field(default_factory=list)
    refused: list[Defect] = field(default_factory=list)  # to fail after commit
    decisions: Decisions | None = None  # exactly what was committed
    rows: dict[str, Job] = field(default_factory=dict)  # committed job rows, by id
    reasons: dict[str, str] = field(default_factory=dict)  # wait reasons written
    claims: dict[str, datetime | None] = field(default_factory=dict)  # claims written
    explained: list[tuple[str, str]] = field(default_factory=list)  # (job, run text) stored
    started: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    stale: int = 0


Done = Callable[[], None] | None  # records a decision's outcome once it holds


class _Redo(Exception):
    """A decision raised on the fast path: redo the pass's apply one decision at a time."""


@dataclass
class Applier:
    ctx: ServiceContext
    site_id: str
    topology: SiteTopology
    basis: Basis
    decisions: Decisions
    fence: Callable[[Tx], None]
    launch_of: Callable[[Tx, Job, Sequence[GpuRow] | None], Launch]
    extra_reasons: Mapping[str, str] = field(default_factory=dict)  # held jobs' reasons
    unclaimed: list[str] = field(default_factory=list)  # held jobs whose claim ends
    also: Callable[[Tx], None] | None = None  # more writes of the pass, in this transaction
    explained: Explained | None = None  # the leader's memory of run texts stored (or none)

    def apply(self) -> Applied:
        try:
            return self._run(each=False)
        except _Redo:
            return self._run(each=True)

    # ------------------------------------------------------------------ one pass
    def _run(self, *, each: bool) -> Applied:
        out = Applied()
        d = self.decisions
        now = self.basis.now
        committed = Decisions(d.now, guaranteed_waiting=list(d.guaranteed_waiting))
        out.decisions = committed
        with self.ctx.db.transaction() as tx:
            self.fence(tx)
            if d.starts:  # only starts take GPUs a node state change must not race
                tx.lock(placement_lock(self.site_id))
            if self.also is not None:
                self.also(tx)
            ids = [*d.timeouts, *(p.job_id for p in d.requeues), *(p.job_id for p in d.notices)]
            ids += [s.job_id for s in d.starts]
            rows = bulk.lock_jobs(tx, ids)
            stopping = [*d.timeouts, *(p.job_id for p in d.requeues)]
            # the fast path leaves allocation and audit rows to one batch, written set at a
            # time after the flush; one by one, each decision's rows go through the session
            batch = None if each else bulk.RowBatch()
            allocations = bulk.open_allocations(tx, stopping) if each and stopping else {}
            held = bulk.open_slots(tx, stopping) if not each and stopping else {}
            starts = [s for s in d.starts if s.job_id in rows]
            node_ids = sorted({self.topology.node_ids[n] for s in starts for n, _ in s.placement})
            nodes = bulk.nodes_by_id(tx, node_ids)
            free = bulk.free_gpus(tx, node_ids) if node_ids else {}
            tenants = bulk.share_tenants(tx, {rows[s.job_id].tenant_id for s in starts})
            checked: set[str] = set()
            refused: dict[str, Defect] = {}

            def fresh(job_id: str) -> Job | None:
                row = rows.get(job_id)
                if job_id in refused or row is None:
                    return None
                if job_id not in checked:
                    checked.add(job_id)
                    if row.version != self.basis.versions.get(job_id):
                        out.stale += 1
                        rows.pop(job_id)
                        return None
                return row

            def act(job_id: str, what: str, do: Callable[[Job], Done]) -> None:
                job = fresh(job_id)
                if job is None:
                    return
                try:
                    if each:
                        with tx.session.begin_nested():
                            done = do(job)
                            tx.flush()
                    else:
                        done = do(job)
                except StaleRow:
                    raise
                except Exception as error:
                    if is_outage(error):
                        raise
                    if not each:
                        log.warning("scheduler could not %s job %s: one by one", what, job_id)
                        raise _Redo from error
                    log.exception("scheduler could not %s job %s", what, job_id)
                    why = f"the scheduler could not {what} it: {describe(error)}"
                    refused[job_id] = Defect(job_id, why, version=self.basis.versions.get(job_id))
                    rows.pop(job_id, None)
                    return
                if done is not None:
                    done()
                    out.rows[job_id] = job

            def give_back(job: Job) -> None:
                """A stopped run's GPUs are free for the starts of this same apply."""
                slots = held.get(job.id) or allocations.get(job.id, [])
                for row in slots:
                    if row.node_id in free:
                        bisect.insort(free[row.node_id], (row.slot, row.gpu_serial))

            def time_out(job: Job) -> Done:
                runs.stop_run(
                    tx, job, now, JobState.FAILED, reason="walltime exceeded", actor=ACTOR,
                    allocations=allocations.get(job.id, []), batch=batch,
                )  # fmt: skip
                give_back(job)

                def done() -> None:
                    committed.timeouts.append(job.id)
                    out.stops.append((job.id, "walltime exceeded"))
                    out.timed_out.append(job.id)

                return done

            def requeue(preempt: Preempt) -> Callable[[Job], Done]:
                def do(job: Job) -> Done:
                    runs.stop_run(
                        tx, job, now, JobState.QUEUED, reason=preempt.reason, actor=ACTOR,
                        allocations=allocations.get(job.id, []), batch=batch,
                    )  # fmt: skip
                    give_back(job)

                    def done() -> None:
                        committed.requeues.append(preempt)
                        out.stops.append((job.id, f"preempted: {preempt.reason}"))
                        out.requeued.append(job.id)

                    return done

                return do

            def notify(preempt: Preempt) -> Callable[[Job], Done]:
                def do(job: Job) -> Done:
                    at = from_seconds(preempt.at)
                    job.preempt_at = at
                    job.preempt_reason = audit.clip(preempt.reason)
                    trail = audit.values(
                        at=now, actor=ACTOR, action="job.preempt_notice",
                        subject_type="job", subject_id=job.id,
                        after={"preempt_at": at.isoformat(), "for_job": preempt.by},
                        reason=preempt.reason,
                    )  # fmt: skip
                    if batch is None:
                        tx.add(audit.entry(**trail))
                    else:
                        batch.audit.append(trail)

                    def done() -> None:
                        committed.notices.append(preempt)
                        out.warnings.append(
                            (job.id, f"preemption at {at.isoformat()}: {preempt.reason}")
                        )
                        out.notices.append(job.id)

                    return done

                return do

            policy = kyc.policy_on(self.ctx, now)
            verdicts: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str | None] = {}

            def refused_use(purpose: str, end_uses: list[str], cleared: list[str]) -> str | None:
                """``purpose_refused``, once per purpose and approval in this apply (the same
                inputs under one policy give the same verdict)."""
                key = (purpose, tuple(end_uses), tuple(cleared))
                if key not in verdicts:
                    verdicts[key] = purpose_refused(purpose, end_uses, policy, cleared)
                return verdicts[key]

            def begin(start: Start) -> Callable[[Job], Done]:
                def do(job: Job) -> Done:
                    placement = [(self.topology.node_ids[n], c) for n, c in start.placement]
                    known = self.basis.node_states
                    if any(
                        (node := nodes.get(node_id)) is None
                        or node.state != NodeState.UP
                        or node.state != known.get(node_id)
                        for node_id, _ in placement
                    ):
                        out.stale += 1
                        return None
                    # the tenant's standing may have changed since the state was read
                    tenant: Tenant | None = tenants.get(job.tenant_id)
                    if (
                        tenant is None
                        or not is_approved(tenant.approval, tenant.approval_expires_at, now)
                        or refused_use(
                            job.purpose, tenant.approved_end_uses, tenant.cleared_purposes
                        )
                    ):
                        out.stale += 1
                        return None
                    taken = runs.start_run(
                        tx, job, placement, now, borrowed=start.borrowed, actor=ACTOR,
                        free=free, batch=batch, shares=start.shares,
                    )  # fmt: skip
                    launch = self.launch_of(tx, job, taken)

                    def done() -> None:
                        out.launches.append(launch)
                        committed.starts.append(start)
                        out.started.append(job.id)

                    return done

                return do

            for job_id in d.timeouts:
                act(job_id, "time out", time_out)
            for preempt in d.requeues:
                act(preempt.job_id, "requeue", requeue(preempt))
            for preempt in d.notices:
                act(preempt.job_id, "warn", notify(preempt))
            for start in d.starts:
                act(start.job_id, "start", begin(start))
            try:  # the fast path's writes: a row the database refuses -> one by one
                if batch is not None:
                    bulk.update_jobs(tx, out.rows.values())  # one statement, not one per job
                tx.flush()
                if batch is not None:
                    batch.write(tx)
            except Exception as error:
                if each or is_outage(error) or isinstance(error, StaleRow):
                    raise
                log.warning("scheduler could not write this pass's decisions: one by one")
                raise _Redo from error
            try:  # bookkeeping of waiting jobs: never worth failing a job or the pass for
                with tx.session.begin_nested():
                    self._keep_waiting(tx, out, set(rows) | set(refused))
            except Exception as error:
                if is_outage(error):
                    raise
                log.exception("scheduler could not record why jobs wait at %s", self.site_id)
                out.reasons.clear()
                out.claims.clear()
                out.explained.clear()
        out.refused = list(refused.values())
        return out

    def _keep_waiting(self, tx: Tx, out: Applied, decided: set[str]) -> None:
        """Guarantee claims and wait reasons of the jobs that still wait, where they change.
        A set-aside run's jobs are compared only where the run is new to them
        (:class:`Explained`); without that memory, every queued job's stored reason is."""
        d, basis = self.decisions, self.basis
        jobs = basis.jobs
        waiting = set(d.guaranteed_waiting)
        claims: dict[str, datetime | None] = {}
        for job_id in waiting:
            job = jobs.get(job_id)
            if job is not None and job.guaranteed_since is None and job_id not in decided:
                claims[job_id] = basis.now
        for job_id in basis.claimed_ids():
            job = jobs.get(job_id)
            if (
                job is not None
                and job_id not in waiting
                and job_id not in decided
                and job.state == JobState.QUEUED
            ):
                claims[job_id] = None
        for job_id in self.unclaimed:
            claims[job_id] = None
        reasons: dict[str, str] = dict(self.extra_reasons)
        get = jobs.get
        memo = self.explained
        stored: list[tuple[str, str]] = []  # (job, run text) its row holds after this pass
        # one text per run of jobs the walk set aside together, then those it explained
        for reason, job_ids in d.waiting.run_id_sets():
            text = audit.clip(reason.message)
            for job_id in job_ids if memo is None else memo.new_to(text, job_ids):
                job = get(job_id)
                if job is None or job_id in decided:
                    continue
                if job.wait_reason != text:
                    reasons[job_id] = text
                stored.append((job_id, text))
        for job_id, reason in d.waiting.explicit.items():
            job = get(job_id)
            text = audit.clip(reason.message)
            if job is not None and job.wait_reason != text:
                reasons[job_id] = text
        for job_id in decided.intersection(reasons):
            del reasons[job_id]
        bulk.set_claims(tx, claims)
        bulk.set_wait_reasons(tx, reasons)
        out.claims, out.reasons = claims, reasons
        if memo is not None:  # an explicit reason or a held one replaces a run's text
            out.explained = [(j, text) for j, text in stored if reasons.get(j, text) == text]


def launch_of(
    ctx: ServiceContext, tx: Tx, job: Job, rows: Sequence[GpuRow] | None = None
) -> Launch:
    """What the executor needs to run (or adopt) the job's current run; ``rows``: its open
    allocations, when already read."""
    if rows is None:
        rows = runs.open_allocations(tx, job.id)
    by_node: dict[str, list[GpuRow]] = defaultdict(list)
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
        log_path=log_path(ctx, job.id),
    )


def log_decisions(site_id: str, applied: Applied, finished: Sequence[Job]) -> None:
    """A JSON line per decision committed this pass (``activity.log_decision``)."""
    for job in finished:
        reason = job.end_reason or f"{job.state} (exit code {job.exit_code})"
        log_decision("finish", site_id, job.id, job.tenant_id, job.gpus, reason)
    decided = applied.decisions
    if decided is None:
        return

    def of(job_id: str) -> tuple[str | None, int | None]:
        row = applied.rows.get(job_id)
        return (row.tenant_id, row.gpus) if row is not None else (None, None)

    for start in decided.starts:
        why = "borrowed capacity" if start.borrowed else "own capacity"
        log_decision("start", site_id, start.job_id, *of(start.job_id), why)
    for notice in decided.notices:
        log_decision("notice", site_id, notice.job_id, *of(notice.job_id), notice.reason)
    for requeue in decided.requeues:
        log_decision("preempt", site_id, requeue.job_id, *of(requeue.job_id), requeue.reason)
    for job_id in decided.timeouts:
        log_decision("timeout", site_id, job_id, *of(job_id), "walltime exceeded")
