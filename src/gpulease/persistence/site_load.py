"""What a dispatch decision reads of the candidate sites, as sums, in one statement.

A submission that names no site (or several) is dispatched (``services.sites``) on each
candidate site's row (its country and time zone: the packs in force there) and four sums:
the tenant's active leases there, the GPUs running jobs hold there, of those the tenant's
own (not borrowed), and the GPUs of nodes down or draining there. One ``SELECT`` over the
sites: the running jobs summed per site in one pass (``jobs.state`` is indexed), the
leases and the nodes down by a correlated sum each (their ``site_id`` indexes), never a
load of the rows themselves.

The same statement serves both paths: :func:`site_loads` on a session (the service's
transaction), and :data:`ALL_SITES_SQL`, the statement over every site compiled once with
PostgreSQL's ``$1`` placeholder (the tenant), which the event loop's submission path sends
through psycopg (``persistence.submission``) with the digest of its rows
(:data:`ALL_SITES_DIGEST_SQL`, :class:`KeptLoads`): a later submission decides on the rows
kept and inserts in one statement that reads them again and writes only if their digest
is unchanged. :func:`row_of` reads a row of either.

Invariants: reads only; a site with nothing running, leased or down has zeros, never an
absent entry; the site's row is read in the same snapshot as its sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, literal_column, not_, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from gpulease.domain.states import JobState, LeaseState, NodeState
from gpulease.persistence.tables import Job, Lease, Node, Site


@dataclass(frozen=True, slots=True)
class SiteRow:
    """A site's row as read with its load (what dispatch reads of the site itself)."""

    site_id: str
    name: str
    country: str
    city: str
    timezone: str
    hardware: str


@dataclass(frozen=True, slots=True)
class SiteLoad:
    """The sums dispatch reads of one site for one tenant."""

    lease_gpus: int  # GPUs of the tenant's active leases at the site
    running_gpus: int  # GPUs held by running jobs at the site (every tenant)
    own_running_gpus: int  # of those, the tenant's own jobs not running borrowed
    down_gpus: int  # GPUs of the site's nodes not up (down or draining)


def _text(value: str) -> ColumnElement[str]:
    return literal_column("'" + value.replace("'", "''") + "'")


def _query(tenant: ColumnElement[str]) -> Select[Any]:
    zero: ColumnElement[int] = literal_column("0")
    leased = (
        select(func.coalesce(func.sum(Lease.gpus), zero))
        .where(
            Lease.site_id == Site.id,
            Lease.tenant_id == tenant,
            Lease.state == _text(LeaseState.ACTIVE.value),
        )
        .scalar_subquery()
    )
    own = case((and_(Job.tenant_id == tenant, not_(Job.borrowed)), Job.gpus), else_=zero)
    running = (  # every running job read once (``jobs.state`` is indexed), both sums at once
        select(
            Job.site_id.label("site_id"),
            func.sum(Job.gpus).label("held"),
            func.sum(own).label("own"),
        )
        .where(Job.state == _text(JobState.RUNNING.value))
        .group_by(Job.site_id)
        .subquery("running")
    )
    down = (
        select(func.coalesce(func.sum(Node.gpus), zero))
        .where(Node.site_id == Site.id, Node.state != _text(NodeState.UP.value))
        .scalar_subquery()
    )
    return (
        select(
            Site.id,
            Site.name,
            Site.country,
            Site.city,
            Site.timezone,
            Site.hardware,
            leased,
            func.coalesce(running.c.held, zero),
            func.coalesce(running.c.own, zero),
            down,
        )
        .select_from(Site)
        .outerjoin(running, running.c.site_id == Site.id)
        .order_by(Site.id)
    )


def row_of(row: Sequence[Any]) -> tuple[SiteRow, SiteLoad]:
    """A row of the statement: the site and its sums."""
    site_id, name, country, city, timezone, hardware, leased, held, own, down = row
    return (
        SiteRow(site_id, name, country, city, timezone, hardware),
        SiteLoad(int(leased or 0), int(held or 0), int(own or 0), int(down or 0)),
    )


def site_loads(
    session: Session, site_ids: Sequence[str] | None, tenant_id: str
) -> dict[str, tuple[SiteRow, SiteLoad]]:
    """Site id -> its row and its sums for ``tenant_id``, for every site of ``site_ids``
    that exists (None: every site), by id (one statement)."""
    query = _query(bindparam("tenant_id"))
    if site_ids is not None:
        query = query.where(Site.id.in_(list(site_ids)))
    found = (row_of(r) for r in session.execute(query, {"tenant_id": tenant_id}))
    return {site.site_id: (site, load) for site, load in found}


def _all_sites_sql() -> str:
    dialect = make_url("postgresql+psycopg://").get_dialect()(paramstyle="numeric_dollar")  # type: ignore[call-arg]
    compiled = _query(bindparam("tenant_id")).compile(dialect=dialect)
    assert list(compiled.positiontup or []) == ["tenant_id"] * len(compiled.positiontup or [])
    return str(compiled)


# Every site with its sums, for the tenant ``$1`` (PostgreSQL).
ALL_SITES_SQL = _all_sites_sql()


def digest_sql(rows: str) -> str:
    """A scalar subquery: the ``md5`` of every row of ``rows`` (a ``WITH`` clause holding
    :data:`ALL_SITES_SQL`'s rows) as text, in id order: any change of a site's row or sums,
    a site added or removed, changes it."""
    return f"(SELECT md5(string_agg(CAST(one AS TEXT), ';' ORDER BY one.id)) FROM {rows} AS one)"


# Every site with its sums and the digest of them all, for the tenant ``$1`` (PostgreSQL).
ALL_SITES_DIGEST_SQL = (
    f"WITH loads AS ({ALL_SITES_SQL}) SELECT loads.*, {digest_sql('loads')} FROM loads "
    "ORDER BY loads.id"
)


@dataclass(frozen=True, slots=True)
class KeptLoads:
    """Every site's row and sums for one tenant as last read, and their digest
    (:func:`digest_sql`): what a statement that inserts only while they hold compares."""

    sites: tuple[tuple[SiteRow, SiteLoad], ...]
    digest: str
