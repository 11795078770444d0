"""Chain of custody of racks, trays and GPUs: recording events, and the story of one chip.

Design. Operators record provenance events (``inventory.custody``: manufactured, sold by ->
to with its papers, shipped, received, installed, moved, repaired, decommissioned) for a
rack, a tray or a GPU. Each event is checked against its unit's chain by the pure core
(:func:`~gpulease.inventory.custody.check_next`: an event out of order is a 422 naming why),
written in one transaction with an audit record (``audit.record``), so the tamper-evident
ledger holds it. A batch (:func:`record_batch`: the same event for many units, e.g. a
shipment of racks or the chips of a rack) writes one audit record naming every unit.

A GPU inherits its tray's and rack's events: :func:`story` merges the three chains, and
adds where the chip is, its node's last attestation and open alerts, and every job that ran
on it (tenant, purpose, when) from the allocation records.

Who: recording is for operator-admins (``CUSTODY_RECORD``); reading is for operator staff
(``CUSTODY_READ``); tenants are refused. A unit that does not exist is 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest, NotFound
from gpulease.inventory import custody as core
from gpulease.inventory.attestation import AlertState
from gpulease.inventory.custody import CustodyEntry, CustodyKind, Documents, UnitKind
from gpulease.persistence import bulk
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import (
    AttestationAlert,
    AuditRecord,
    CustodyEvent,
    Gpu,
    GpuAllocation,
    Job,
    Node,
    NodeAttestation,
    Rack,
    Site,
    Tenant,
)
from gpulease.services import audit
from gpulease.services.context import ServiceContext

BATCH_MAX = 10_000  # units one batch may name


@dataclass(frozen=True, slots=True)
class EventRequest:
    """An event as an operator gives it: the unit by kind and id (a rack or tray by its id
    or serial, a GPU by its serial)."""

    unit_kind: str
    unit: str
    event: str
    at: datetime
    holder: str = ""
    location: str = ""
    from_party: str = ""
    to_party: str = ""
    invoice: str = ""
    export_authorization: str = ""
    end_user_statement: str = ""
    note: str = ""

    def entry(self, kind: UnitKind, unit_id: str) -> CustodyEntry:
        event = core.parse_kind(self.event)
        holder = self.holder or (self.to_party if event is CustodyKind.SOLD else "")
        return CustodyEntry(
            unit_kind=kind,
            unit_id=unit_id,
            at=self.at,
            kind=event,
            holder=holder,
            location=self.location,
            from_party=self.from_party,
            to_party=self.to_party,
            documents=Documents(self.invoice, self.export_authorization, self.end_user_statement),
            note=self.note,
        )


def entry_of(row: CustodyEvent) -> CustodyEntry:
    """A stored event as the core sees it (its kinds known: see :func:`_known`)."""
    return CustodyEntry(
        unit_kind=UnitKind(row.unit_kind),
        unit_id=row.unit_id,
        at=row.at,
        kind=CustodyKind(row.event),
        holder=row.holder,
        location=row.location,
        from_party=row.from_party,
        to_party=row.to_party,
        documents=Documents(row.invoice, row.export_authorization, row.end_user_statement),
        note=row.note,
    )


def resolve_unit(tx: Tx, kind: UnitKind, ref: str) -> str:
    """The id of the unit ``ref`` names (rack or tray: id or serial; GPU: serial), or 404."""
    ref = ref.strip()
    if kind is UnitKind.GPU:
        if tx.get(Gpu, ref) is None:
            raise NotFound(f"no GPU with serial {ref!r}", serial=ref)
        return ref
    model: type[Rack] | type[Node] = Rack if kind is UnitKind.RACK else Node
    if tx.get(model, ref) is not None:
        return ref
    found = tx.first(tx.select(model).where(model.serial == ref))
    if found is None:
        raise NotFound(f"no {kind.value} {ref!r}", unit=ref)
    return found.id


def _chain(tx: Tx, kind: UnitKind, unit_id: str) -> list[CustodyEvent]:
    return tx.all(
        tx.select(CustodyEvent)
        .where(CustodyEvent.unit_kind == kind.value, CustodyEvent.unit_id == unit_id)
        .order_by(CustodyEvent.at, CustodyEvent.id)
    )


def _facts(entry: CustodyEntry) -> dict[str, Any]:
    """What an event says of its unit: who holds it where, who sold it to whom, its papers."""
    docs = entry.documents
    return {
        "holder": entry.holder,
        "location": entry.location,
        "from_party": entry.from_party,
        "to_party": entry.to_party,
        "invoice": docs.invoice,
        "export_authorization": docs.export_authorization,
        "end_user_statement": docs.end_user_statement,
        "note": entry.note,
    }


def _row(entry: CustodyEntry, actor: str, now: datetime) -> dict[str, Any]:
    return {
        "unit_kind": entry.unit_kind.value,
        "unit_id": entry.unit_id,
        "at": entry.at,
        "event": entry.kind.value,
        # the one-line reference the GPU report shows: the invoice of a sale, else the note
        "document": (entry.documents.invoice or entry.note)[:200],
        **_facts(entry),
        "recorded_by": actor,
        "recorded_at": now,
    }


def _audited(entry: CustodyEntry) -> dict[str, Any]:
    return {
        "event": entry.kind.value,
        "at": entry.at.astimezone(UTC).isoformat(),
        **_facts(entry),
    }


def record_event(ctx: ServiceContext, actor: Principal, request: EventRequest) -> CustodyEvent:
    """Record one event of one unit, checked against its chain (module doc)."""
    actor.scope(Action.CUSTODY_RECORD)
    kind = core.parse_unit(request.unit_kind)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        unit_id = resolve_unit(tx, kind, request.unit)
        # one writer per unit's chain at a time: the check and the insert see one chain
        tx.lock(f"custody:{kind.value}:{unit_id}")
        chain = [entry_of(row) for row in _chain(tx, kind, unit_id) if _known(row)]
        entry = core.check_next(chain, request.entry(kind, unit_id), now=now)
        row = CustodyEvent(**_row(entry, actor.user_id, now))
        tx.add(row)
        tx.flush()
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="custody.record",
            subject_type=kind.value,
            subject_id=unit_id,
            after=_audited(entry),
            reason=entry.note,
        )
    return row


def record_batch(
    ctx: ServiceContext,
    actor: Principal,
    kind: UnitKind,
    unit_ids: Sequence[str],
    entries: Sequence[EventRequest],
) -> int:
    """Record the same events, in order, for many units of one kind (existing ids) in one
    transaction: each unit's chain is checked; one audit record per event names every unit.
    Returns the number of rows written."""
    actor.scope(Action.CUSTODY_RECORD)
    if not 1 <= len(unit_ids) <= BATCH_MAX:
        raise InvalidRequest(f"a batch names 1 to {BATCH_MAX} units", field="units")
    now = ctx.now()
    ids = list(dict.fromkeys(unit_ids))
    with ctx.db.transaction() as tx:
        chains: dict[str, list[CustodyEntry]] = {unit_id: [] for unit_id in ids}
        for part in bulk.chunks(ids):
            for row in tx.all(
                tx.select(CustodyEvent)
                .where(CustodyEvent.unit_kind == kind.value, CustodyEvent.unit_id.in_(part))
                .order_by(CustodyEvent.at, CustodyEvent.id)
            ):
                if _known(row):
                    chains[row.unit_id].append(entry_of(row))
        # units whose chains are alike (most often: all empty) are checked once together
        alike: dict[tuple[CustodyEntry, ...], list[str]] = {}
        for unit_id in ids:
            shape = tuple(replace(e, unit_id="") for e in chains[unit_id])
            alike.setdefault(shape, []).append(unit_id)
        rows: list[dict[str, Any]] = []
        for request in entries:
            checked: CustodyEntry | None = None
            for group in list(alike):
                members = alike.pop(group)
                chain = list(group)
                checked = core.check_next(chain, request.entry(kind, ""), now=now)
                alike[(*group, checked)] = members
                template = _row(checked, actor.user_id, now)
                rows.extend({**template, "unit_id": unit_id} for unit_id in members)
            assert checked is not None
            audit.record(
                tx,
                at=now,
                actor=actor.user_id,
                action="custody.record",
                subject_type=kind.value,
                subject_id=ids[0] if len(ids) == 1 else f"{len(ids)} {kind.value}s",
                after={**_audited(checked), "units": ids},
                reason=checked.note,
            )
        bulk.insert_rows(tx, CustodyEvent, rows)
    return len(rows)


def _known(row: CustodyEvent) -> bool:
    return (
        row.event in CustodyKind.__members__.values()
        and row.unit_kind in UnitKind.__members__.values()
    )


def problems_of(rows: Sequence[CustodyEvent]) -> list[str]:
    """What is wrong with a stored chain: unknown event kinds, then the core's findings."""
    unknown = [
        f"unknown event {row.event!r} at {row.at.isoformat()}" for row in rows if not _known(row)
    ]
    return unknown + core.problems(entry_of(row) for row in rows if _known(row))


# ----------------------------------------------------------------------- the story
def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _event_out(row: CustodyEvent, serial: str) -> dict[str, Any]:
    return {
        "at": row.at.isoformat(),
        "event": row.event,
        "unit_kind": row.unit_kind,
        "unit_id": row.unit_id,
        "unit_serial": serial,
        "holder": row.holder,
        "location": row.location,
        "from_party": row.from_party,
        "to_party": row.to_party,
        "documents": {
            "invoice": row.invoice,
            "export_authorization": row.export_authorization,
            "end_user_statement": row.end_user_statement,
        },
        "document": row.document,
        "note": row.note,
        "recorded_by": row.recorded_by,
    }


@dataclass(frozen=True, slots=True)
class Chains:
    """A GPU's own, tray's and rack's stored events, merged by time, each with the id of
    the audit record that recorded it (None: none says so: the row was added or changed
    outside gpulease)."""

    rows: list[tuple[CustodyEvent, str, int | None]]  # (event, its unit's serial, audit id)
    problems: list[str]


def _fields_key(fields: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(fields.get(name, "")) for name in _AUDITED_FIELDS)


_AUDITED_FIELDS = (
    "event",
    "at",
    "holder",
    "location",
    "from_party",
    "to_party",
    "invoice",
    "export_authorization",
    "end_user_statement",
    "note",
)


def audit_matches(tx: Tx, rows: Sequence[CustodyEvent]) -> dict[int, int]:
    """Custody row id -> the id of the audit record that recorded exactly it. The audit
    trail is what the tamper-evident ledger covers: a row edited or inserted in SQL has no
    match, so the story names it."""
    units = sorted({row.unit_id for row in rows})
    if not units:
        return {}
    records = tx.all(
        tx.select(AuditRecord)
        .where(
            AuditRecord.action == "custody.record",
            AuditRecord.subject_type.in_(sorted({row.unit_kind for row in rows})),
            AuditRecord.subject_id.in_(units) | AuditRecord.subject_id.like("% %"),
        )
        .order_by(AuditRecord.id)
    )
    wanted = set(units)
    recorded: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for record in records:
        after = record.after or {}
        named = after.get("units") or [record.subject_id]
        fields = _fields_key(after)
        for unit_id in wanted.intersection(named if isinstance(named, list) else []):
            recorded.setdefault((record.subject_type, unit_id, fields), record.id)
    found = {}
    for row in rows:
        if not _known(row):
            continue
        key = (row.unit_kind, row.unit_id, _fields_key(_audited(entry_of(row))))
        if key in recorded:
            found[row.id] = recorded[key]
    return found


def gpu_chains(tx: Tx, gpu: Gpu, node: Node, rack: Rack) -> Chains:
    own = _chain(tx, UnitKind.GPU, gpu.serial)
    tray = _chain(tx, UnitKind.TRAY, node.id)
    racked = _chain(tx, UnitKind.RACK, rack.id)
    serials = {UnitKind.GPU.value: gpu.serial, UnitKind.TRAY.value: node.serial}
    serials[UnitKind.RACK.value] = rack.serial
    merged = sorted(
        [
            (row.at, core.UNIT_ORDER.get(UnitKind(row.unit_kind), 3), row.id, row)
            for row in own + tray + racked
        ],
        key=lambda t: t[:3],
    )
    problems = []
    for label, rows in (("rack", racked), ("tray", tray), ("GPU", own)):
        problems += [f"{label}: {p}" for p in problems_of(rows)]
    audited = audit_matches(tx, own + tray + racked)
    for *_k, row in merged:
        if row.id not in audited:
            problems.append(
                f"{row.unit_kind} {serials[row.unit_kind]}: {row.event} of "
                f"{row.at.isoformat()} matches no audit record: added or changed outside "
                "gpulease"
            )
    return Chains(
        [(row, serials[row.unit_kind], audited.get(row.id)) for *_k, row in merged], problems
    )


@dataclass(frozen=True, slots=True)
class GpuPlace:
    """Where a chip is: its row and those of its node, rack and site."""

    gpu: Gpu
    node: Node
    rack: Rack
    site: Site

    def where(self) -> dict[str, Any]:
        """The place as the custody story and the GPU report both give it."""
        site, rack, node = self.site, self.rack, self.node
        return {
            "site_id": site.id,
            "site": site.name,
            "city": site.city,
            "country": site.country,
            "rack_id": rack.id,
            "rack_serial": rack.serial,
            "rack_model": rack.model,
            "node_id": node.id,
            "node_serial": node.serial,
            "node_state": node.state,
            "node_state_reason": node.state_reason,
            "slot": self.gpu.slot,
        }


def locate_gpu(tx: Tx, serial: str) -> GpuPlace:
    """The chip ``serial`` and its node, rack and site; :class:`NotFound` if there is none."""
    gpu = tx.get(Gpu, serial.strip())
    if gpu is None:
        raise NotFound(f"no GPU with serial {serial!r}", serial=serial)
    node = tx.require(Node, gpu.node_id, "node")
    rack = tx.require(Rack, node.rack_id, "rack")
    return GpuPlace(gpu, node, rack, tx.require(Site, rack.site_id, "site"))


def story(ctx: ServiceContext, actor: Principal, serial: str) -> dict[str, Any]:
    """The full story of one chip (module doc), JSON-ready."""
    actor.scope(Action.CUSTODY_READ)
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        place = locate_gpu(tx, serial)
        gpu, node, rack, site = place.gpu, place.node, place.rack, place.site
        chains = gpu_chains(tx, gpu, node, rack)
        seen = tx.get(NodeAttestation, node.id)
        alerts = tx.all(
            tx.select(AttestationAlert)
            .where(AttestationAlert.node_id == node.id)
            .order_by(AttestationAlert.opened_at.desc(), AttestationAlert.id)
            .limit(20)
        )
        allocations = tx.all(
            tx.select(GpuAllocation)
            .where(GpuAllocation.gpu_serial == gpu.serial)
            .order_by(GpuAllocation.start, GpuAllocation.id)
        )
        tenants = {
            t.id: t
            for t in tx.all(
                tx.select(Tenant).where(Tenant.id.in_(sorted({a.tenant_id for a in allocations})))
            )
        }
        names = {
            j.id: j.name
            for j in tx.all(
                tx.select(Job).where(Job.id.in_(sorted({a.job_id for a in allocations})))
            )
        }
    chain = [
        {**_event_out(row, unit_serial), "audit_id": audit_id}
        for row, unit_serial, audit_id in chains.rows
    ]
    jobs = []
    for a in allocations:
        end = a.end if a.end is not None and a.end <= now else now
        tenant = tenants.get(a.tenant_id)
        jobs.append(
            {
                "job_id": a.job_id,
                "job": names.get(a.job_id, ""),
                "tenant_id": a.tenant_id,
                "tenant": tenant.name if tenant else a.tenant_id,
                "tenant_country": tenant.country if tenant else "",
                "purpose": a.purpose,
                "node_id": a.node_id,
                "slot": a.slot,
                "start": a.start.isoformat(),
                "end": _iso(a.end),
                "running": a.end is None,
                "gpu_hours": round(max(0.0, (end - a.start).total_seconds()) / 3600.0, 4),
            }
        )
    return {
        "kind": "custody",
        "generated_at": now.isoformat(),
        "gpu": {"serial": gpu.serial, "model": gpu.model},
        "where": place.where(),
        "holder": chain[-1]["holder"] if chain else "",
        "chain": chain,
        "chain_problems": chains.problems,
        "attestation": None
        if seen is None
        else {
            "at": seen.at.isoformat(),
            "site_id": seen.site_id,
            "agrees": seen.site_id == site.id,
            "source": seen.source,
            "key_id": seen.key_id,
            "received_at": seen.received_at.isoformat(),
            "attested_since": seen.first_at.isoformat(),
        },
        "alerts": [
            {
                "id": alert.id,
                "kind": alert.kind,
                "state": alert.state,
                "detail": alert.detail,
                "opened_at": alert.opened_at.isoformat(),
                "cleared_at": _iso(alert.cleared_at),
                "clear_reason": alert.clear_reason,
            }
            for alert in alerts
        ],
        "open_alerts": sum(1 for alert in alerts if alert.state == AlertState.OPEN.value),
        "jobs": jobs,
    }
