"""A job submission on the event loop: :func:`submit_lean`, the API's path on PostgreSQL.

Design. ``services.jobs.submit`` decides a submission in one transaction through the
session, in a worker thread. The API's common submission (a valid body, a token the
process keeps, a new ``Idempotency-Key``, no named lease) is decided here from memory and
written with the statements of ``persistence.submission`` sent by psycopg on the server's
event loop, no session and no thread:

* a job naming its site: the tenant's row read once, then kept; later submissions are one
  statement that reads the facts again (the credential's epoch, the row's digest, no
  record of the key) and inserts only if they are the ones decided on;
* a job to dispatch among several sites (naming none, or a set): the same, with every
  site's row and the sums dispatch reads (``persistence.site_load``) read once and kept
  for the tenant, the decision taken by ``services.sites.decide`` (as ``jobs.submit``
  takes it), and the insert made only while the sites' rows and sums read as kept (their
  digest): one statement while no scheduler pass changed them, two after one did.

Invariants: the same checks and the same rows as ``jobs.submit``, which the caller takes
whenever this returns None (nothing written): a refusal of any kind, a credential to read
again, a replayed or mismatched key, a named lease, a key taken by a racing request, a
site added or changed by another process. A refusal is never decided on a kept row: only
``jobs.submit`` refuses, once it has confirmed the credential.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gpulease.compliance.admission import REVIEW_HOLD
from gpulease.domain.errors import DomainError
from gpulease.persistence.submission import Kept, LeanSubmissions, RowsRefused
from gpulease.persistence.tables import Tenant
from gpulease.services import audit, auth_cache, jobs, sites
from gpulease.services.auth_cache import Credential
from gpulease.services.context import ServiceContext
from gpulease.services.idempotency import Idempotent, record_values


async def submit_lean(
    ctx: ServiceContext,
    store: LeanSubmissions,
    credential: Credential,
    sub: jobs.JobSubmission,
    idem: Idempotent | None = None,
) -> tuple[dict[str, Any], str] | None:
    """``jobs.submit`` on the event loop, for the common case: the credential still holds,
    the key is new, no lease is named, the submission is valid and admitted. The same
    checks (``persistence.submission``): the facts read, then the rows inserted; or, when
    the tenant's row was read before and admits the job, one statement that reads the facts
    and inserts only if they are the ones decided on (else the job is decided again on what
    it read). A job to dispatch among several sites is decided on the sites' rows and sums
    kept for the tenant by the same ``sites.decide`` as ``jobs.submit``'s
    (:func:`_submit_dispatched`).
    Returns the queued job's column values and its tenant's name, or None when nothing was
    written and the caller must take ``jobs.submit``, which decides every other case as it
    always has (a revoked or re-read credential, an invalid or refused submission -- which
    ``jobs.submit`` refuses only once the credential is confirmed --, an unknown tenant, a
    replayed or mismatched key, a named lease, a site changed since it was cached, a key
    taken by a racing request)."""
    principal = credential.principal
    try:
        checked = jobs._checked(ctx, principal, sub)
    except DomainError:
        return None  # submit() confirms the credential, then refuses it
    if sub.lease_id is not None:  # a named lease: read in submit()'s transaction
        return None
    kept = store.kept(checked.tenant_id)
    try:
        if not checked.site_id:  # dispatched among several sites
            return await _submit_dispatched(ctx, store, credential, sub, checked, idem, kept)
        job, said = jobs._values(principal, sub, checked)
        trail = audit.values(**said)
        key = (
            None if idem is None else record_values(principal.user_id, idem, job["id"], checked.now)
        )
        if kept is not None and _admitted(ctx, credential, kept.tenant, sub.purpose):
            # decided on the tenant's row as last read: inserted only if it still reads so,
            # with the credential's epoch and no record of the key (one round trip)
            inserted, facts = await store.insert_if(
                job, trail, key, user_id=principal.user_id, epoch=credential.epoch, kept=kept
            )
            if inserted:
                return job, kept.tenant.name
            if checked.dispatch is not None:
                return None  # the site was chosen on the row as kept: submit() decides again
        else:
            facts = await store.facts(
                checked.tenant_id, principal.user_id, idem.key if idem else None
            )
        # decided on what was read now (nothing was written)
        if facts is None or facts.replay_fingerprint is not None:
            return None
        if not auth_cache.of(ctx).valid(credential, facts.epoch, ctx.now()):
            return None  # the epoch moved: submit() reads the token again
        try:
            held = jobs._admit(ctx, facts.tenant, sub.purpose)
        except DomainError:
            return None  # submit() refuses it again (and audits a refused purpose)
        if held is not None:
            return None  # submit() holds it and opens its review
        await store.insert(job, trail, key)
    except RowsRefused:
        return None
    return job, facts.tenant.name


async def _submit_dispatched(
    ctx: ServiceContext,
    store: LeanSubmissions,
    credential: Credential,
    sub: jobs.JobSubmission,
    checked: jobs._Checked,
    idem: Idempotent | None,
    kept: Kept | None,
) -> tuple[dict[str, Any], str] | None:
    """:func:`submit_lean` for a job to dispatch among several sites: :func:`_dispatched`
    on the tenant's row as kept and every site's row and sums as kept for the tenant (read
    now if none are), and the rows inserted in one statement only if the tenant's row, the
    credential's epoch and the sites' rows and sums all still read so: the decision is
    the one a fresh read would give. If only the sites changed (a scheduler pass started or
    ended jobs), they are read again and the job decided once more. None (the caller takes
    ``jobs.submit``): no site takes the job (``submit`` refuses it with every site's
    reason), something else changed, or the sites read now are not the ones this process
    keeps (a site added or changed elsewhere: its lists are dropped and read again)."""
    principal = credential.principal
    tenant_id = checked.tenant_id
    if kept is None:  # the tenant's row read once, then kept
        await store.facts(tenant_id, principal.user_id, None)
        kept = store.kept(tenant_id)
    if kept is None or not _admitted(ctx, credential, kept.tenant, sub.purpose):
        return None
    spec = jobs._spec(sub, checked)

    def fits(site_id: str) -> str | None:
        return jobs._never_fits(ctx, site_id, spec)

    loads = store.kept_loads(tenant_id)
    for _attempt in range(2):
        fresh = loads is None
        if loads is None:
            loads = await store.site_loads(tenant_id)
        found = {row.site_id: (sites.info_of(row), load) for row, load in loads.sites}
        if tuple(info for info, _load in found.values()) != sites.cached_infos(ctx):
            if not fresh:
                loads = None  # kept before a site changed: read them now
                continue
            sites.forget(ctx)
            return None
        decision = sites.decide(
            ctx,
            sites.standing_of(kept.tenant),
            sub.purpose.strip(),
            sub.gpus,
            checked.candidates,
            found,
            fits,
            checked.now,
            ignore=REVIEW_HOLD,
        )
        if decision.site_id is None:
            return None
        chosen = replace(checked, site_id=decision.site_id, dispatch=decision.record())
        job, said = jobs._values(principal, sub, chosen)
        trail = audit.values(**said)
        key = (
            None if idem is None else record_values(principal.user_id, idem, job["id"], chosen.now)
        )
        inserted, facts = await store.insert_if(
            job,
            trail,
            key,
            user_id=principal.user_id,
            epoch=credential.epoch,
            kept=kept,
            loads=loads,
        )
        if inserted:
            return job, kept.tenant.name
        if (
            facts is None
            or facts.replay_fingerprint is not None
            or facts.epoch != credential.epoch
            or store.kept(tenant_id) is not kept
        ):
            return None  # not the sites alone: submit() decides again
        loads = None  # the sites' rows or sums changed: read them and decide again
    return None


def _admitted(ctx: ServiceContext, credential: Credential, tenant: Tenant, purpose: str) -> bool:
    """Whether the submission is admitted on a kept tenant row and the credential as kept
    (False: decide on a fresh read; a refusal is never raised on a kept row)."""
    if credential.expired(ctx.now()):
        return False
    try:
        return jobs._admit(ctx, tenant, purpose) is None
    except DomainError:
        return False
