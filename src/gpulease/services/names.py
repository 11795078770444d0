"""Names beside ids in answers: the name of a tenant, for people reading a listing.

Design. Answers carry ids (what a person copies into the next command) and, beside them,
names (what a person recognises). A tenant is never renamed nor deleted, so its name is an
immutable fact: it is read once per process and kept in ``ctx.cache`` (the place for
immutable facts). The cache holds at most :data:`MAX_CACHED` names; past that it starts
over, so memory stays bounded whatever the number of tenants.

Invariants. A name is only ever given beside a record the caller was allowed to read (the
routes ask after the service checked access), so it discloses nothing more than the record
already does: its own tenant. An id without a tenant row answers ``""``.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpulease.persistence.tables import Tenant
from gpulease.services.context import ServiceContext

CACHE_KEY = "tenant_names"
MAX_CACHED = 100_000


def tenant_names(ctx: ServiceContext, ids: Iterable[str]) -> dict[str, str]:
    """Each tenant id's name (``""`` for an unknown id); one query for the ids not cached."""
    known: dict[str, str] = ctx.cache.setdefault(CACHE_KEY, {})
    wanted = set(ids)
    missing = sorted(wanted - known.keys())
    if missing:
        with ctx.db.transaction(write=False) as tx:
            rows = tx.all(tx.select(Tenant).where(Tenant.id.in_(missing)))
            found = {row.id: row.name for row in rows}
        if len(known) + len(found) > MAX_CACHED:
            known = ctx.cache[CACHE_KEY] = {}
        known.update(found)
    return {i: known.get(i, "") for i in wanted}


def tenant_name(ctx: ServiceContext, tenant_id: str) -> str:
    return tenant_names(ctx, (tenant_id,))[tenant_id]
