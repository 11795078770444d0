"""Find a record by what a person types: its whole id, a unique prefix of it, or its name.

Design. Every route that takes an id passes it through :func:`resolve` with the record's
:class:`Kind` first; the service then gets the record's whole id and behaves exactly as it
did for one typed in full. What may be typed, tried in this order:

1. the whole id (``job-3f9a1c2b7d4e``). A reference shaped like a generated id
   (:data:`FULL_ID`) is returned unread: the service reads the record anyway and answers a
   missing or invisible one as it always has;
2. a name, where the kind has one (:data:`KINDS`: a tenant's or a job's name, a user's name
   or email, a node's serial): exact first, then case-insensitively;
3. a unique prefix of the id, with or without the kind's prefix (``job-3f9a1c`` or
   ``3f9a1c``), of at least :data:`MIN_PREFIX` characters after the kind's prefix.

Names and prefixes are matched together: a reference is resolved only when every record
it names (by name or by id prefix) is one record, so a name chosen to look like another
record's id prefix (a tenant's job named ``job-3f9a1c``) makes it ambiguous, never wins.

Invariants (security):

* Resolution is scoped to what the caller may see (:meth:`Principal.sees`): the queries
  themselves are filtered to the caller's tenant, so another tenant's record is never a
  match, never a candidate, and a reference that would only match it is answered exactly
  like one that matches nothing (404 ``not_found``, same message and details).
* A prefix shorter than :data:`MIN_PREFIX` is refused (422 ``invalid_request``) before any
  read, whatever exists: guessing ids a few characters at a time is not a search.
* Several visible matches answer 409 ``ambiguous`` listing at most :data:`MAX_CANDIDATES`
  of them (visible ones only) and asking for more characters.
* Resolution never authorizes: it only turns a reference into an id; the service still
  decides whether the caller may read or act on the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Ambiguous, InvalidRequest, NotFound
from gpulease.persistence import record_search
from gpulease.persistence.db import Tx
from gpulease.persistence.record_search import Match, Searchable
from gpulease.persistence.tables import Tenant, User
from gpulease.services.context import ServiceContext

MIN_PREFIX = 6  # characters after the kind's prefix (16^6 ids per guess at least)
MAX_CANDIDATES = 10  # listed in an ambiguity (visible records only)
FULL_ID = re.compile(r"^[a-z]+-[0-9a-f]{12}$")  # services.context.new_id
_HEX = re.compile(r"^[0-9a-f]+$")


class Kind(StrEnum):
    """A kind of record a reference may name (its value is the word used in messages)."""

    TENANT = "tenant"
    USER = "user"
    TOKEN = "token"
    LEASE = "lease"
    JOB = "job"
    KYC_CASE = "kyc case"
    LIST = "list"
    NODE = "node"


@dataclass(frozen=True, slots=True)
class KindSpec:
    table: Searchable  # where the records are and how they are named
    id_prefix: str  # "job" for job-3f9a1c2b7d4e; "" for ids that are not generated


KINDS: dict[Kind, KindSpec] = {
    Kind.TENANT: KindSpec(record_search.TENANTS, "tenant"),
    Kind.USER: KindSpec(record_search.USERS, "user"),
    Kind.TOKEN: KindSpec(record_search.TOKENS, "token"),
    Kind.LEASE: KindSpec(record_search.LEASES, "lease"),
    Kind.JOB: KindSpec(record_search.JOBS, "job"),
    Kind.KYC_CASE: KindSpec(record_search.KYC_CASES, "kyc"),
    Kind.LIST: KindSpec(record_search.LISTS, "list"),
    Kind.NODE: KindSpec(record_search.NODES, ""),
}
KIND_OF_PREFIX: dict[str, Kind] = {
    spec.id_prefix: kind for kind, spec in KINDS.items() if spec.id_prefix
}


def resolve(
    ctx: ServiceContext, actor: Principal, kind: Kind, ref: str, action: Action | None = None
) -> str:
    """The whole id of the one record of ``kind`` visible to ``actor`` that ``ref`` names.

    ``action``: what the caller means to do with it; a role that may never do it is refused
    (403, as the service would) before anything is looked up."""
    text = ref.strip()
    if FULL_ID.match(text) or not text:
        return text
    if action is not None:
        actor.scope(action)
    with ctx.db.transaction(write=False) as tx:
        return resolve_in(tx, actor, kind, text)


def resolve_optional(
    ctx: ServiceContext, actor: Principal, kind: Kind, ref: str | None, action: Action | None = None
) -> str | None:
    return None if ref is None else resolve(ctx, actor, kind, ref, action)


def resolve_in(tx: Tx, actor: Principal, kind: Kind, ref: str) -> str:
    """:func:`resolve` inside a transaction the caller holds."""
    spec = KINDS[kind]
    if FULL_ID.match(ref):
        return ref
    table, scope, limit = spec.table, actor.tenant_id, MAX_CANDIDATES + 1
    exact = record_search.by_id(tx, table, scope, ref, limit)
    if exact:
        return exact[0].id
    named: list[Match] = []
    for column in table.names:
        named = record_search.by_name(tx, table, scope, column, ref, limit)
        if not named:
            named = record_search.by_name(tx, table, scope, column, ref, limit, ignore_case=True)
        if named:
            break
    try:
        prefix = _id_prefix(kind, spec, ref)
    except InvalidRequest:
        if not named:
            raise
        prefix = None  # a short name that looks like hex ("cafe") is a name
    prefixed: list[Match] = []
    if prefix is not None:
        prefixed = record_search.by_id_prefix(tx, table, scope, prefix, limit)
    # A name never shadows an id: a record named like another's id prefix (a job named
    # "job-3f9a1c") makes the reference ambiguous, so nobody acts on the wrong record.
    found = list({m.id: m for m in named + prefixed}.values())
    if len(found) == 1:
        return found[0].id
    if found:
        raise _ambiguous(kind, ref, found, by="name" if named else "prefix")
    raise not_found(kind, ref)


def not_found(kind: Kind, ref: str) -> NotFound:
    """The answer for a reference that names nothing the caller may see (the same words as
    a service's ``no job 'job-...'`` for an id typed in full)."""
    return NotFound(f"no {kind.value} {ref!r}", **{f"{kind.value.replace(' ', '_')}_id": ref})


def audit_subject(ctx: ServiceContext, actor: Principal, ref: str) -> str:
    """An audit filter's record: an id, or a prefix or name of a kind its prefix says
    (``job-3f9a1c``); anything else is taken as typed (a site, a GPU serial)."""
    text = ref.strip()
    kind = KIND_OF_PREFIX.get(text.split("-", 1)[0]) if "-" in text else None
    if kind is None or FULL_ID.match(text):
        return text
    with ctx.db.transaction(write=False) as tx:
        if record_search.audit_subject_exists(tx, text):
            return text
        return resolve_in(tx, actor, kind, text)


def display_names(ctx: ServiceContext, user_id: str, tenant_id: str | None) -> tuple[str, str]:
    """The names of a user and its tenant ("" where there is none), for ``/me``."""
    with ctx.db.transaction(write=False) as tx:
        user = tx.get(User, user_id)
        tenant = tx.get(Tenant, tenant_id) if tenant_id is not None else None
    return (user.name if user else "", tenant.name if tenant else "")


# --------------------------------------------------------------------- internals
def _id_prefix(kind: Kind, spec: KindSpec, ref: str) -> str | None:
    """The id prefix ``ref`` stands for, or None when it cannot be one; refuses one that is
    too short (before any read, so the answer says nothing about what exists)."""
    if not spec.id_prefix:
        return None
    head = f"{spec.id_prefix}-"
    ref = ref.lower()  # generated ids are lower case: JOB-3F9A1C is job-3f9a1c
    body = ref[len(head) :] if ref.startswith(head) else ref
    if not _HEX.match(body):
        if ref.startswith(head):
            return None if body else _too_short(kind, head)
        return None
    if len(body) < MIN_PREFIX:
        _too_short(kind, head)
    return head + body


def _too_short(kind: Kind, head: str) -> str:
    raise InvalidRequest(
        f"type at least {MIN_PREFIX} characters of the {kind.value}'s id after {head!r} "
        "(or its whole id)",
        field=f"{kind.value.replace(' ', '_')}_id",
        min_prefix=MIN_PREFIX,
    )


def _ambiguous(kind: Kind, ref: str, found: list[Match], *, by: str) -> Ambiguous:
    shown = found[:MAX_CANDIDATES]
    more = " and more" if len(found) > MAX_CANDIDATES else ""
    listed = ", ".join(m.id if m.name in ("", m.id) else f"{m.id} ({m.name})" for m in shown)
    advice = "type more characters of the id" if by == "prefix" else "use the id instead"
    return Ambiguous(
        f"{ref!r} matches several {kind.value}s you can see: {listed}{more}; {advice}",
        candidates=[{"id": m.id, "name": m.name} for m in shown],
    )
