"""The queries behind finding a record by what a person types (an id, a prefix, a name).

Design. :mod:`gpulease.services.lookup` decides what a reference may mean, in which order,
who may see what and how to answer; this module only asks the database. A
:class:`Searchable` says, for one table, the columns a person may name a record by and how
a record belongs to a tenant. Each search returns at most ``limit`` :class:`Match` rows
ordered by id, so an ambiguity is listed the same way on SQLite and PostgreSQL.

Invariants:

* Every search is filtered to ``tenant_id`` in the query itself (``None`` means every
  tenant, the operator's view): a record of another tenant is never read, never counted.
* A table of no tenant that only operator staff may read (``staff_only``) returns nothing
  to a tenant's search, without a query.
* An id prefix is matched with its ``%`` and ``_`` escaped: it is a prefix, not a pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute

from gpulease.persistence.db import Tx
from gpulease.persistence.tables import (
    ApiToken,
    AuditRecord,
    Base,
    Job,
    KycCase,
    Lease,
    ListSnapshotRow,
    Node,
    Tenant,
    User,
)


@dataclass(frozen=True, slots=True)
class Searchable:
    """One table a reference may name a record of."""

    model: type[Base]
    names: tuple[str, ...]  # columns a person may name the record by, in order
    tenant_column: str | None  # the column holding the record's tenant (None: see below)
    staff_only: bool = False  # records of no tenant (visible to operator staff only)
    via_user: bool = False  # the record's tenant is its user's (API tokens)


TENANTS = Searchable(Tenant, ("name",), "id")
USERS = Searchable(User, ("name", "email"), "tenant_id")
TOKENS = Searchable(ApiToken, (), None, via_user=True)
LEASES = Searchable(Lease, (), "tenant_id")
JOBS = Searchable(Job, ("name",), "tenant_id")
KYC_CASES = Searchable(KycCase, (), "tenant_id")
LISTS = Searchable(ListSnapshotRow, ("label",), None, staff_only=True)
NODES = Searchable(Node, ("serial",), None)  # every role reads the inventory


@dataclass(frozen=True, slots=True)
class Match:
    id: str
    name: str  # the record's first name column ("" where it has none or it is empty)


def by_id(tx: Tx, table: Searchable, tenant_id: str | None, value: str, limit: int) -> list[Match]:
    return _find(tx, table, tenant_id, _column(table, "id") == value, limit)


def by_name(
    tx: Tx,
    table: Searchable,
    tenant_id: str | None,
    column: str,
    value: str,
    limit: int,
    *,
    ignore_case: bool = False,
) -> list[Match]:
    if column not in table.names:
        raise ValueError(f"{table.model.__name__} is not named by {column!r}")
    named = _column(table, column)
    where = func.lower(named) == value.lower() if ignore_case else named == value
    return _find(tx, table, tenant_id, where, limit)


def by_id_prefix(
    tx: Tx, table: Searchable, tenant_id: str | None, prefix: str, limit: int
) -> list[Match]:
    where = _column(table, "id").startswith(prefix, autoescape=True)
    return _find(tx, table, tenant_id, where, limit)


def audit_subject_exists(tx: Tx, subject_id: str) -> bool:
    """Whether some audit record is about exactly ``subject_id``."""
    query = select(AuditRecord.id).where(AuditRecord.subject_id == subject_id).limit(1)
    return tx.session.scalar(query) is not None


# --------------------------------------------------------------------- internals
def _column(table: Searchable, name: str) -> InstrumentedAttribute[Any]:
    column: InstrumentedAttribute[Any] = getattr(table.model, name)
    return column


def _visible(table: Searchable, tenant_id: str | None) -> ColumnElement[bool]:
    if tenant_id is None:
        return literal(True)
    if table.via_user:
        return ApiToken.user_id.in_(select(User.id).where(User.tenant_id == tenant_id))
    if table.tenant_column is None:
        return literal(True)
    return _column(table, table.tenant_column) == tenant_id


def _find(
    tx: Tx, table: Searchable, tenant_id: str | None, where: ColumnElement[bool], limit: int
) -> list[Match]:
    if table.staff_only and tenant_id is not None:
        return []
    label = _column(table, table.names[0]) if table.names else _column(table, "id")
    query = (
        select(_column(table, "id"), label)
        .where(where, _visible(table, tenant_id))
        .order_by(_column(table, "id"))
        .limit(limit)
    )
    return [Match(str(row[0]), str(row[1] or "")) for row in tx.session.execute(query)]
