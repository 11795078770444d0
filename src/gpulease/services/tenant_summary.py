"""Tenants as people ask about them: name, standing and where their KYC case stands.

Design: a read-only view over the tenant rows and their latest KYC case, for ``gpulease
tenants list/show``. Scoped like every tenant read (``Action.TENANT_READ``): operator staff
see every tenant, a tenant's users their own; one not visible is *not found*.

Invariant (secrecy): the standing is given in the words a tenant may read
(:func:`~gpulease.compliance.disclosure.tenant_standing`), never the stored approval reason,
which may quote list entries or scores; the KYC state is the case's state, which the tenant's
view of its case shows anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulease.compliance.disclosure import tenant_standing
from gpulease.domain.access import Action, Principal, Scope
from gpulease.persistence.tables import KycCase, Tenant, User
from gpulease.services.context import ServiceContext
from gpulease.services.lookup import Kind, not_found


@dataclass(frozen=True, slots=True)
class TenantSummary:
    tenant: Tenant
    standing: str  # approved, or why the tenant may not run work, in the tenant's words
    kyc_case_id: str | None  # its latest case
    kyc_state: str | None
    users: int


def summaries(
    ctx: ServiceContext, actor: Principal, tenant_id: str | None = None
) -> list[TenantSummary]:
    """The tenants ``actor`` may see (or the one ``tenant_id``), by name."""
    scope = actor.scope(Action.TENANT_READ)
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(Tenant).order_by(Tenant.name, Tenant.id)
        if scope is not Scope.ALL:
            query = query.where(Tenant.id == actor.tenant_id)
        if tenant_id is not None:
            query = query.where(Tenant.id == tenant_id)
        tenants = tx.all(query)
        ids = [t.id for t in tenants]
        cases: dict[str, KycCase] = {}
        newest_last = (KycCase.submitted_at, KycCase.id)
        for case in tx.all(
            tx.select(KycCase).where(KycCase.tenant_id.in_(ids)).order_by(*newest_last)
        ):
            cases[case.tenant_id] = case  # the latest wins
        counts = tx.count_by(User.tenant_id, ids)
    if tenant_id is not None and not tenants:  # missing, or another tenant's: the same answer
        raise not_found(Kind.TENANT, tenant_id)
    return [
        TenantSummary(
            tenant=t,
            standing=tenant_standing(t.approval, t.approval_expires_at, now),
            kyc_case_id=cases[t.id].id if t.id in cases else None,
            kyc_state=cases[t.id].state if t.id in cases else None,
            users=int(counts.get(t.id, 0)),
        )
        for t in tenants
    ]
