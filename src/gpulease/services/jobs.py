"""Jobs: submit, list, show, cancel, logs. The scheduler (``services.scheduling``) runs them.

A submission is validated whole before anything is written: the core's ``JobSpec`` checks
shapes (gang size, GPUs per node, segments), and the site's topology says whether the job
could ever be placed (a ``required`` job larger than an NVLink domain is refused now, with
the reason, instead of waiting forever; decided once per job shape). A queued job always
carries, in words, why it waits; the scheduler rewrites that reason when it changes.

A submission is two statements on PostgreSQL: one read (the authentication epoch, the
tenant's standing and the ``Idempotency-Key`` record, ``persistence.auth``), then one insert
of the job, its audit record, its idempotency record and its change-feed row
(``Tx.insert_new``; three inserts on SQLite). Everything else is decided before it from
memory: the token checked recently (``services.auth_cache``, confirmed against the epoch the
read returns), the site's topology, ``never_fits`` per shape. :func:`submit` runs them in one
transaction through the session (a worker thread); ``services.lean_submit.submit_lean``,
the API's path, runs the same on the event loop without a session
(``persistence.submission``) when nothing but a fresh insert is to be decided, and
otherwise leaves the request to :func:`submit`. A submission refused before its
transaction (invalid, denied, placed nowhere) confirms its credential first: a revoked
token is answered 401, never anything else.

Sites. A job names one site (``site_id``), a set of sites (``sites``) or none (every site).
With one candidate nothing changes; with several, :func:`submit` first reads what the
dispatch core needs (``services.sites.choose``: the tenant's row and one statement of the
sites' rows and sums; admission at each site under its packs, the shape's fit, the
tenant's leases, idle GPUs) and the job goes to the site chosen, its
``dispatch`` column keeping the decision with a reason for every site not chosen. A job no
candidate site admits is refused with those reasons. The event loop's path decides such a
submission with the same ``sites.decide`` on the sites' rows and sums it keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from gpulease.compliance.admission import REVIEW_HOLD
from gpulease.compliance.end_uses import PurposeDecision, PurposeOutcome
from gpulease.domain.access import Action, Principal, Scope
from gpulease.domain.clock import to_seconds
from gpulease.domain.errors import AlreadyEnded, Denied, DomainError, InvalidRequest, NotFound
from gpulease.domain.models import JobSpec, PriorityClass, TopologyMode, TopologyRequest
from gpulease.domain.states import TERMINAL_JOB_STATES, JobState, LeaseState
from gpulease.persistence import auth as auth_store
from gpulease.persistence.db import DuplicateRecord, Tx
from gpulease.persistence.tables import AuditRecord, Base, GpuAllocation, Job, Lease, Tenant
from gpulease.scheduler.placement import never_fits
from gpulease.services import (
    audit,
    auth_cache,
    identity,
    job_fields,
    kyc,
    purpose_reviews,
    runs,
    sites,
    standing,
)
from gpulease.services.auth_cache import Credential
from gpulease.services.context import ServiceContext, new_id
from gpulease.services.idempotency import Idempotent, record_of, replayed
from gpulease.services.inventory import cached_topology

TEXT_LIMIT = 200  # the purpose and name columns
MAX_OFFSET = 100_000  # a listing's deepest page (deeper: filter instead)
DEAD_LEASE_STATES = frozenset(
    {LeaseState.ENDED, LeaseState.REJECTED, LeaseState.CANCELLED, LeaseState.EXPIRED}
)


@dataclass(frozen=True, slots=True)
class JobSubmission:
    gpus: int
    purpose: str
    name: str = ""
    command: str | None = None
    image: str | None = None
    gpus_per_node: int | None = None
    topology: str = "preferred"
    segment: int | None = None
    walltime_s: float | None = None
    duration_s: float | None = None  # the simulated executor's run time
    priority: str = "normal"
    preemptible: bool = True
    requeueable: bool = True
    lease_id: str | None = None
    site_id: str | None = None
    tenant_id: str | None = None
    sites: tuple[str, ...] | None = None  # dispatch among these (None: every site)


def spec_of(job: Job) -> JobSpec:
    """The core's view of a job row (submit time in epoch seconds): ``job_fields.spec_of``."""
    return job_fields.spec_of(job)


def submit(
    ctx: ServiceContext,
    actor: Principal | Credential,
    sub: JobSubmission,
    idem: Idempotent | None = None,
) -> Job:
    """Queue a job in one short transaction (the module docstring lists its statements).

    ``actor`` is a principal the caller has authenticated, or a :class:`Credential` recalled
    from the authentication cache, which is confirmed inside the transaction (a token revoked
    since is refused here)."""
    credential = actor if isinstance(actor, Credential) else None
    principal = credential.principal if credential is not None else actor
    assert isinstance(principal, Principal)
    try:
        checked = _dispatched(ctx, sub, _checked(ctx, principal, sub))
    except DomainError:
        if credential is None:
            raise
        confirmed = _confirmed(ctx, credential)  # a revoked token: 401 before any other answer
        if confirmed.principal == principal:
            raise
        return submit(ctx, confirmed.principal, sub, idem)  # its role changed: decide again
    try:
        return _submit(ctx, credential, principal, sub, checked, idem)
    except purpose_reviews.PurposeRefused as refused:  # audited once the request rolled back
        purpose_reviews.audit_refusal(ctx, principal.user_id, refused, "job.submit")
        raise


def _confirmed(ctx: ServiceContext, credential: Credential) -> Credential:
    """``credential`` confirmed against the authentication epoch read now, or its token read
    again (Unauthenticated: revoked, expired or its user disabled since). A submission about
    to be refused confirms its credential first, so a revoked token learns nothing but 401."""
    epoch = auth_store.current_epoch(ctx.db)
    if auth_cache.of(ctx).valid(credential, epoch, ctx.now()):
        return credential
    with ctx.db.transaction(write=False) as tx:
        return identity.confirm(ctx, tx, credential, epoch)


def _submit(
    ctx: ServiceContext,
    credential: Credential | None,
    principal: Principal,
    sub: JobSubmission,
    checked: _Checked,
    idem: Idempotent | None,
) -> Job:
    for attempt in range(2):
        try:
            with ctx.db.transaction() as tx:
                facts = auth_store.submission_facts(
                    tx, checked.tenant_id, principal.user_id, idem.key if idem else None
                )
                if credential is not None:
                    epoch = facts.epoch if facts is not None else auth_store.UNKNOWN_EPOCH
                    confirmed = identity.confirm(ctx, tx, credential, epoch).principal
                    if confirmed != principal:  # its role changed since it was cached
                        principal = confirmed
                        checked = _dispatched(ctx, sub, _checked(ctx, confirmed, sub))
                if facts is None:
                    raise NotFound(f"no tenant {checked.tenant_id!r}", tenant_id=checked.tenant_id)
                earlier = (
                    replayed(idem, facts.replay_fingerprint, facts.replay_response)
                    if idem is not None
                    else None
                )
                if earlier is not None:
                    return tx.require(Job, earlier, "job")
                held = _admit(ctx, facts.tenant, sub.purpose)  # a review: the job is held
                job, trail = _create(tx, principal, sub, checked)
                rows: list[Base] = [job, trail]
                if held is not None:
                    rows += purpose_reviews.open_review(principal.user_id, job, held, checked.now)
                if idem is not None:
                    rows.append(record_of(principal.user_id, idem, job.id, checked.now))
                tx.insert_new(rows)  # PostgreSQL: one statement for the three rows
                return job
        except DuplicateRecord:
            if attempt or idem is None:  # a racing request with the key won: replay it
                raise
    raise AssertionError("unreachable")


ADMITTED_PURPOSES = 4096  # end-use decisions remembered per process; more empties the memo


def _admit(ctx: ServiceContext, tenant: Tenant, purpose: str) -> PurposeDecision | None:
    """``purpose_reviews.decide``, an allowed decision remembered: that decision
    (``check_purpose``) depends only on the declared purpose, the tenant's approved end uses
    and cleared purposes and the policy in force on the day, so an allowed one is recalled
    for the same four while the tenant's standing (checked every time) is approved. None:
    allowed; a decision: the purpose goes to an officer's review (the job is held). A
    refusal is never remembered: it is decided and raised each time."""
    now = ctx.now()
    policies = kyc.policy_set(ctx).version  # kyc.policy_on's packs (a new set: a new version)
    key = (
        purpose,
        tuple(tenant.approved_end_uses),
        tuple(tenant.cleared_purposes),
        now.date(),
        policies,
    )
    memo: dict[tuple[object, ...], bool] = ctx.cache.setdefault("admitted_purposes", {})
    if memo.get(key) and standing.is_approved(tenant, now):
        return None
    decision = purpose_reviews.decide(ctx, tenant, purpose)
    if decision.outcome is PurposeOutcome.REVIEW:
        return decision
    if len(memo) >= ADMITTED_PURPOSES:
        memo.clear()
    memo[key] = True
    return None


@dataclass(frozen=True, slots=True)
class _Checked:
    """A submission validated before any database work."""

    tenant_id: str
    site_id: str  # "" while several candidate sites wait for dispatch
    job_id: str
    now: datetime
    mode: TopologyMode
    priority: PriorityClass
    candidates: tuple[str, ...] = ()
    dispatch: dict[str, Any] | None = None  # the dispatch decision's record


def _checked(ctx: ServiceContext, actor: Principal, sub: JobSubmission) -> _Checked:
    """Authorize and validate ``sub`` whole, reading no database (the default site and the
    site's topology are cached in the process, ``never_fits`` per job shape)."""
    tenant_id = actor.acting_tenant(sub.tenant_id)
    actor.authorize(Action.JOB_SUBMIT, tenant_id=tenant_id)
    asked = sites.candidates(ctx, sub.site_id, sub.sites)
    if not sub.purpose.strip():
        raise InvalidRequest("declare the job's purpose (its end use)", field="purpose")
    for field, value in (("purpose", sub.purpose), ("name", sub.name)):
        if len(value) > TEXT_LIMIT:
            raise InvalidRequest(f"{field} is longer than {TEXT_LIMIT} characters", field=field)
    if sub.command is None and sub.image is None:
        raise InvalidRequest("give a command or an image to run", field="command")
    if sub.duration_s is not None and sub.duration_s < 0:
        raise InvalidRequest("duration_s must be >= 0", field="duration_s")
    try:
        mode = TopologyMode(sub.topology)
    except ValueError:
        raise InvalidRequest(
            f"topology must be one of {', '.join(m.value for m in TopologyMode)}",
            field="topology",
        ) from None
    priority = PriorityClass.parse(sub.priority)
    _check_priority(ctx, actor, priority)
    now = ctx.now()
    job_id = new_id("job")
    spec = JobSpec(  # validates the shape before anything is written
        id=job_id,
        tenant=tenant_id,
        gpus=sub.gpus,
        submit_time=to_seconds(now),
        gpus_per_node=sub.gpus_per_node,
        priority=priority,
        walltime=sub.walltime_s,
        preemptible=sub.preemptible,
        requeueable=sub.requeueable,
        topology=TopologyRequest(mode, sub.segment),
        purpose=sub.purpose,
    )
    if len(asked) > 1:  # decided by _dispatched, which says why a site cannot place it
        return _Checked(tenant_id, "", job_id, now, mode, priority, asked)
    impossible = _never_fits(ctx, asked[0], spec)
    if impossible is not None:
        raise InvalidRequest(impossible, field="gpus")
    return _Checked(tenant_id, asked[0], job_id, now, mode, priority, asked)


def _dispatched(ctx: ServiceContext, sub: JobSubmission, checked: _Checked) -> _Checked:
    """``checked`` with its site chosen among its candidates (``services.sites.choose``);
    unchanged when it names one site. Refused (with every site's reason) when no candidate
    admits the job and could place it."""
    if checked.site_id:
        return checked
    spec = _spec(sub, checked)
    if sub.lease_id is not None:  # a named lease: its site, if it is a candidate
        home = sites.lease_site(ctx, sub.lease_id, checked.tenant_id)
        if home is not None and home in checked.candidates:
            impossible = _never_fits(ctx, home, spec)
            if impossible is not None:
                raise InvalidRequest(impossible, field="gpus")
            return replace(checked, site_id=home)
    every = sub.site_id is None and not sub.sites  # every site, as read now
    decision = sites.choose(
        ctx,
        checked.tenant_id,
        sub.purpose.strip(),
        sub.gpus,
        None if every else checked.candidates,
        lambda site_id: _never_fits(ctx, site_id, spec),
        checked.now,
        ignore=REVIEW_HOLD,
    )
    if decision.site_id is None:
        words = "; ".join(f"{site}: {why}" for site, why in decision.passed)
        details = {"sites": dict(decision.passed)}
        if any(not why.startswith("never fits") for _, why in decision.passed):
            raise kyc.NotApproved(f"no site can take this job: {words}", **details)
        raise InvalidRequest(f"no site can take this job: {words}", field="gpus", **details)
    return replace(checked, site_id=decision.site_id, dispatch=decision.record())


def _spec(sub: JobSubmission, checked: _Checked) -> JobSpec:
    """The core's view of the submission (validated by :func:`_checked`)."""
    return JobSpec(
        id=checked.job_id,
        tenant=checked.tenant_id,
        gpus=sub.gpus,
        submit_time=to_seconds(checked.now),
        gpus_per_node=sub.gpus_per_node,
        priority=checked.priority,
        walltime=sub.walltime_s,
        preemptible=sub.preemptible,
        requeueable=sub.requeueable,
        topology=TopologyRequest(checked.mode, sub.segment),
        purpose=sub.purpose,
    )


NEVER_FITS_SHAPES = 4096  # shapes remembered per process; more empties the memo
_UNDECIDED = object()


def _never_fits(ctx: ServiceContext, site_id: str, spec: JobSpec) -> str | None:
    """Why a job of this shape could never be placed at the site (None: it could), decided
    once per shape: placement on an empty site depends on the shape and the (fixed) topology
    only."""
    memo: dict[tuple[object, ...], str | None] = ctx.cache.setdefault("never_fits", {})
    key = (site_id, spec.gpus, spec.gpus_per_node, spec.topology)
    found = memo.get(key, _UNDECIDED)  # one lookup: another thread may empty the memo
    if isinstance(found, str) or found is None:
        return found
    reason = never_fits(spec, cached_topology(ctx, site_id).cluster, domain="NVLink domain")
    decided = None if reason is None else reason.message
    if len(memo) >= NEVER_FITS_SHAPES:
        memo.clear()
    memo[key] = decided
    return decided


def _create(
    tx: Tx, actor: Principal, sub: JobSubmission, checked: _Checked
) -> tuple[Job, AuditRecord]:
    """The new job and its audit record, for the caller to insert (admission checked by the
    caller; a named lease is read in ``tx``)."""
    tenant_id, site_id = checked.tenant_id, checked.site_id
    if sub.lease_id is not None:
        lease = tx.get(Lease, sub.lease_id)
        if lease is None or lease.tenant_id != tenant_id:
            raise InvalidRequest(f"no lease {sub.lease_id!r} of yours", field="lease_id")
        if lease.site_id != site_id:
            raise InvalidRequest(f"lease {lease.id} is at site {lease.site_id}", field="lease_id")
        if LeaseState(lease.state) in DEAD_LEASE_STATES:
            raise InvalidRequest(f"lease {lease.id} is {lease.state}", field="lease_id")
    return _rows(actor, sub, checked)


def _rows(actor: Principal, sub: JobSubmission, checked: _Checked) -> tuple[Job, AuditRecord]:
    """The new job and its audit record (its lease, if any, checked by the caller)."""
    job, trail = _values(actor, sub, checked)
    return Job(**job), audit.entry(**trail)


_SUBMISSION_FIELDS = tuple(f.name for f in fields(JobSubmission))


def _values(
    actor: Principal, sub: JobSubmission, checked: _Checked
) -> tuple[dict[str, Any], audit.AuditFields]:
    """The column values of the new job and what its audit record says."""
    tenant_id, site_id, job_id, now = (
        checked.tenant_id,
        checked.site_id,
        checked.job_id,
        checked.now,
    )
    purpose = sub.purpose.strip()
    job: dict[str, Any] = {
        "id": job_id,
        "tenant_id": tenant_id,
        "site_id": site_id,
        "lease_id": sub.lease_id,
        "name": sub.name or job_id,
        "image": sub.image,
        "command": sub.command,
        "gpus": sub.gpus,
        "gpus_per_node": sub.gpus_per_node,
        "topology": checked.mode.value,
        "segment": sub.segment,
        "walltime_s": sub.walltime_s,
        "duration_s": sub.duration_s,
        "priority": checked.priority.name.lower(),
        "purpose": purpose,
        "preemptible": sub.preemptible,
        "requeueable": sub.requeueable,
        "state": JobState.QUEUED.value,
        "wait_reason": "waiting for the scheduler's next pass",
        "end_reason": "",
        "submitted_at": now,
        "attained_gpu_s": 0.0,
        "run_s": 0.0,
        "starts": 0,
        "preemptions": 0,
        "borrowed": False,
        "preempt_reason": "",
        "created_by": actor.user_id,
    }
    if checked.dispatch is not None:
        job["dispatch"] = checked.dispatch
    given = ((name, getattr(sub, name)) for name in _SUBMISSION_FIELDS)
    trail: audit.AuditFields = {
        "at": now,
        "actor": actor.user_id,
        "action": "job.submit",
        "subject_type": "job",
        "subject_id": job_id,
        "after": {k: v for k, v in given if v is not None}
        | {"tenant_id": tenant_id, "site_id": site_id}
        | ({"dispatch": checked.dispatch} if checked.dispatch is not None else {}),
        "reason": f"declared purpose: {purpose}",
    }
    return job, trail


def _check_priority(ctx: ServiceContext, actor: Principal, priority: PriorityClass) -> None:
    """Who may submit at which class is the operator's setting (``priority_roles``): a class
    preempts the classes below it, so a tenant must not name itself the most urgent."""
    name = priority.name.lower()
    allowed = ctx.settings.priority_roles.get(name)
    if allowed is not None and actor.role.value not in allowed:
        raise Denied(
            f"priority {name!r} is for {', '.join(allowed)}; submit at a lower class "
            "or ask the operator",
            field="priority",
        )


def get_job(
    ctx: ServiceContext, actor: Principal, job_id: str, action: Action = Action.JOB_READ
) -> Job:
    with ctx.db.transaction(write=False) as tx:
        job = tx.require(Job, job_id, "job")
    actor.authorize(action, tenant_id=job.tenant_id, record_id=job_id)
    return job


def list_jobs(
    ctx: ServiceContext,
    actor: Principal,
    *,
    state: str | None = None,
    tenant_id: str | None = None,
    limit: int = 200,
    states: Sequence[str] = (),
    offset: int = 0,
) -> list[Job]:
    """Jobs ``actor`` may read, newest first: of one ``state`` or any of ``states`` (none
    given: every state), ``limit`` of them from ``offset`` (0 .. :data:`MAX_OFFSET`)."""
    if not 1 <= limit <= 5000:
        raise InvalidRequest("limit must be between 1 and 5000", field="limit")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequest(f"offset must be between 0 and {MAX_OFFSET}", field="offset")
    wanted = [*states, *([state] if state is not None else [])]
    try:
        values = sorted({JobState(s).value for s in wanted})
    except ValueError:
        raise InvalidRequest(
            f"state must be one of {', '.join(s.value for s in JobState)}", field="state"
        ) from None
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(Job).order_by(Job.submitted_at.desc(), Job.id)
        query = query.offset(offset).limit(limit)
        if actor.scope(Action.JOB_READ) is not Scope.ALL:
            query = query.where(Job.tenant_id == actor.tenant_id)
        elif tenant_id is not None:
            query = query.where(Job.tenant_id == tenant_id)
        if values:
            query = query.where(Job.state.in_(values))
        return tx.all(query)


def cancel(ctx: ServiceContext, actor: Principal, job_id: str, reason: str = "") -> Job:
    """Cancel a queued or running job; a running job's process is stopped by the executor
    at the scheduler's next pass (it sees the job is no longer running).

    Idempotent: a job already cancelled is returned as it is (nothing changes, nothing is
    audited), so a retried cancel is harmless; one that ended otherwise is AlreadyEnded."""
    actor.scope(Action.JOB_CANCEL)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        job = tx.require(Job, job_id, "job", for_update=True)
        actor.authorize(
            Action.JOB_CANCEL, tenant_id=job.tenant_id, owner_id=job.created_by, record_id=job_id
        )
        if job.state == JobState.CANCELLED:
            return job
        if job.state in TERMINAL_JOB_STATES:
            ended = f" at {job.ended_at:%Y-%m-%d %H:%M:%S} UTC" if job.ended_at else ""
            raise AlreadyEnded(
                f"job {job.id} already ended ({job.state}{ended}); nothing to do",
                job_id=job.id,
                state=job.state,
            )
        runs.stop_run(
            tx,
            job,
            now,
            JobState.CANCELLED,
            reason=reason or f"cancelled by {actor.label}",
            actor=actor.user_id,
        )
    return job


def allocation(ctx: ServiceContext, job: Job) -> list[tuple[str, list[int], list[str]]]:
    """The GPUs of the job's current (or last) run: [(node, slots, serials)]."""
    if job.started_at is None:
        return []
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            tx.select(GpuAllocation)
            .where(GpuAllocation.job_id == job.id, GpuAllocation.start == job.started_at)
            .order_by(GpuAllocation.node_id, GpuAllocation.slot)
        )
    grouped: dict[str, tuple[list[int], list[str]]] = {}
    for row in rows:
        slots, serials = grouped.setdefault(row.node_id, ([], []))
        slots.append(row.slot)
        serials.append(row.gpu_serial)
    return [(node, slots, serials) for node, (slots, serials) in grouped.items()]


def log_path(ctx: ServiceContext, job_id: str) -> Path:
    return ctx.settings.data_dir / "logs" / f"{job_id}.log"
