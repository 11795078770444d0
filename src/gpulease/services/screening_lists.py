"""Screening lists in the database: import a snapshot whole, keep versions, diff them, and
serve the current entries (as a ready :class:`ScreeningIndex`) to the KYC screening.

An import parses the whole file first (a malformed file is refused with its line and reason
before anything is written), then writes the snapshot row and all its entries in one
transaction and makes it the source's current snapshot: never half-loaded. After an import
the caller re-screens every tenant (``rescreening.rescreen_all``).

Reverts. Importing content identical to the source's *current* snapshot changes nothing: it
is refused as a conflict that says so and names that snapshot (no row, no re-screening).
Importing content identical to an *earlier* snapshot is how an officer undoes a bad import:
it makes a new snapshot (new id, new import time, the same checksum and entries) recorded
as a revert (``reverts`` names the snapshot it repeats, in the row and its audit record), so
the history keeps the bad import and its undoing, in the order they happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpulease.compliance.lists import snapshot as snapshots
from gpulease.compliance.matching import ScreeningIndex
from gpulease.compliance.model import Address, ListEntry, PartyKind
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import ListEntryRow, ListSnapshotRow
from gpulease.services import audit
from gpulease.services.context import ServiceContext, new_id

OFAC_FILES = ("sdn.csv", "alt.csv", "add.csv")


@dataclass(frozen=True, slots=True)
class ImportReport:
    snapshot: ListSnapshotRow
    previous: str | None
    added: int
    removed: int
    changed: int
    reverts: str | None = None  # the earlier snapshot this import repeats


def entry_to_json(entry: ListEntry) -> dict[str, Any]:
    """The entry as JSON values (what ``dataclasses.asdict`` gives, built directly: an import
    writes one per entry, and the generic deep copy cost seconds on the full SDN list)."""
    return {
        "source": entry.source,
        "entry_id": entry.entry_id,
        "kind": entry.kind.value,
        "name": entry.name,
        "aliases": list(entry.aliases),
        "countries": list(entry.countries),
        "identifiers": [[k, v] for k, v in entry.identifiers],
        "addresses": [
            {
                "street": a.street,
                "city": a.city,
                "region": a.region,
                "postal_code": a.postal_code,
                "country": a.country,
            }
            for a in entry.addresses
        ],
        "programs": list(entry.programs),
        "list_name": entry.list_name,
        "remarks": entry.remarks,
        "start_date": entry.start_date,
    }


def entry_from_json(data: dict[str, Any]) -> ListEntry:
    return ListEntry(
        source=data["source"],
        entry_id=data["entry_id"],
        kind=PartyKind(data["kind"]),
        name=data["name"],
        aliases=tuple(data.get("aliases", ())),
        countries=tuple(data.get("countries", ())),
        identifiers=tuple((k, v) for k, v in data.get("identifiers", ())),
        addresses=tuple(Address(**a) for a in data.get("addresses", ())),
        programs=tuple(data.get("programs", ())),
        list_name=data.get("list_name", ""),
        remarks=data.get("remarks", ""),
        start_date=data.get("start_date", ""),
    )


def import_list(
    ctx: ServiceContext,
    actor: Principal,
    path: Path,
    fmt: str,
    *,
    label: str = "",
    published: str = "",
) -> ImportReport:
    """Import a list file (a folder of sdn.csv, alt.csv, add.csv for ``ofac-sdn``); the files
    may be compressed (``.xz``, ``.gz``), see :func:`snapshots.read_files`."""
    if not path.exists():
        raise InvalidRequest(f"no such file or folder: {path}", field="path")
    files = snapshots.read_files(path, fmt)
    return import_files(ctx, actor, files, fmt, label=label, published=published)


def import_files(
    ctx: ServiceContext,
    actor: Principal,
    files: dict[str, bytes],
    fmt: str,
    *,
    label: str = "",
    published: str = "",
) -> ImportReport:
    """Import a list from its files' bytes (an upload); see the module docstring."""
    actor.scope(Action.LIST_IMPORT)
    parsed = snapshots.snapshot_from_bytes(fmt, files, version_label=label, published=published)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        tx.lock(f"list-import:{parsed.source}")
        previous = tx.first(
            tx.select(ListSnapshotRow).where(
                ListSnapshotRow.source == parsed.source, ListSnapshotRow.current.is_(True)
            )
        )
        if previous is not None and previous.checksum == parsed.checksum:
            raise Conflict(
                f"this {parsed.source} list is already the current one, snapshot "
                f"{previous.id} ({previous.label}, imported {previous.imported_at:%Y-%m-%d}): "
                "nothing to do",
                snapshot_id=previous.id,
            )
        repeated = tx.first(
            tx.select(ListSnapshotRow)
            .where(
                ListSnapshotRow.source == parsed.source,
                ListSnapshotRow.checksum == parsed.checksum,
            )
            .order_by(ListSnapshotRow.imported_at, ListSnapshotRow.id)
        )
        # the first import of this content (a revert of a revert names the original)
        reverts = None if repeated is None else (repeated.reverts or repeated.id)
        old_entries = _entries_of(tx, previous.id) if previous is not None else ()
        change = snapshots.diff(
            snapshots.ListSnapshot(parsed.source, "", "", "", old_entries), parsed
        )
        if previous is not None:
            previous.current = False
        row = ListSnapshotRow(
            id=new_id("list"),
            source=parsed.source,
            format=fmt,
            label=parsed.version_label,
            checksum=parsed.checksum,
            entries=len(parsed.entries),
            counts=dict(parsed.counts),
            current=True,
            imported_at=now,
            imported_by=actor.user_id,
            reverts=reverts,
        )
        tx.add(row)
        tx.flush()
        tx.add_all(
            [
                ListEntryRow(
                    snapshot_id=row.id,
                    source=e.source,
                    entry_id=e.entry_id,
                    kind=e.kind.value,
                    name=e.name,
                    data=entry_to_json(e),
                )
                for e in parsed.entries
            ]
        )
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="list.import",
            subject_type="list",
            subject_id=row.id,
            after={
                "source": row.source,
                "label": row.label,
                "checksum": row.checksum,
                "entries": row.entries,
                "added": len(change.added),
                "removed": len(change.removed),
                "changed": len(change.changed),
                "replaces": previous.id if previous else None,
                "reverts": reverts,
            },
            reason=f"imported from {', '.join(sorted(files))}"
            + (f"; reverts to the content of snapshot {reverts}" if reverts else ""),
        )
    return ImportReport(
        row,
        previous.id if previous else None,
        len(change.added),
        len(change.removed),
        len(change.changed),
        reverts,
    )


def list_snapshots(ctx: ServiceContext, actor: Principal) -> list[ListSnapshotRow]:
    actor.scope(Action.LIST_READ)
    with ctx.db.transaction(write=False) as tx:
        return tx.all(tx.select(ListSnapshotRow).order_by(ListSnapshotRow.imported_at.desc()))


def diff_snapshots(
    ctx: ServiceContext, actor: Principal, old_id: str, new_id_: str
) -> snapshots.ListDiff:
    actor.scope(Action.LIST_READ)
    with ctx.db.transaction(write=False) as tx:
        old = tx.require(ListSnapshotRow, old_id, "list")
        new = tx.require(ListSnapshotRow, new_id_, "list")
        if old.source != new.source:
            raise Conflict(f"{old_id} is {old.source}, {new_id_} is {new.source}")
        return snapshots.diff(
            snapshots.ListSnapshot(
                old.source, old.label, "", old.checksum, _entries_of(tx, old.id)
            ),
            snapshots.ListSnapshot(
                new.source, new.label, "", new.checksum, _entries_of(tx, new.id)
            ),
        )


@dataclass(frozen=True, slots=True)
class CurrentLists:
    snapshot_ids: tuple[str, ...]
    labels: tuple[str, ...]  # "source label" of each snapshot
    index: ScreeningIndex


def in_force(ctx: ServiceContext) -> list[str]:
    """The current snapshot of every source, as ``"source label"`` (no entry is read)."""
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            tx.select(ListSnapshotRow)
            .where(ListSnapshotRow.current.is_(True))
            .order_by(ListSnapshotRow.source)
        )
        return [f"{r.source} {r.label}" for r in rows]


def current_lists(ctx: ServiceContext, sources: frozenset[str] | None = None) -> CurrentLists:
    """The current snapshot of every source (limited to ``sources`` when given), indexed for
    screening. The index is built once per set of snapshots and kept in the process."""
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            tx.select(ListSnapshotRow)
            .where(ListSnapshotRow.current.is_(True))
            .order_by(ListSnapshotRow.source)
        )
        rows = [r for r in rows if sources is None or r.source in sources]
        key = "lists:" + ",".join(r.id for r in rows)
        cached = ctx.cache.get(key)
        if isinstance(cached, CurrentLists):
            return cached
        entries = [e for r in rows for e in _entries_of(tx, r.id)]
    found = CurrentLists(
        tuple(r.id for r in rows),
        tuple(f"{r.source} {r.label}" for r in rows),
        ScreeningIndex(entries),
    )
    ctx.cache[key] = found
    return found


def _entries_of(tx: Tx, snapshot_id: str) -> tuple[ListEntry, ...]:
    rows = tx.all(
        tx.select(ListEntryRow)
        .where(ListEntryRow.snapshot_id == snapshot_id)
        .order_by(ListEntryRow.id)
    )
    return tuple(entry_from_json(r.data) for r in rows)
