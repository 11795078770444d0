"""The end-user disclosure report: who a tenant is, why it uses the compute, owned by whom.

Design. :func:`end_user_disclosure` reads, for one tenant, everything a regulator asks of
an end user and returns it as one JSON-ready ``dict`` (see :mod:`gpulease.services.reports`
for the conventions and the other two reports): the parties and their identifiers, the
declared and approved end uses, the parties the latest case declared (every one, linked to
the tenant's chain or not; a case from before ``declared_parties``: its chain), the owners
up the chain with their shares in force at the report's moment and the officers, the
declared stakes and roles outside the chain, the links to restricted parties (the latest
screening's hits, ownership assessment and red flags), every KYC case and officer decision
(with the policy packs and list snapshots used), the standing, the lists and policy packs
in force, the GPU-hours used by declared purpose, and the IP addresses the tenant reached
the API from.

Point in time. A report ``as_of`` a past moment shows what was true then, never today's
state: cases, decisions and standing are rebuilt from the audit trail
(:mod:`gpulease.services.disclosure_history`); parties and ownership edges declared later
are left out; the lists in force are the last imported per source by then (not today's
``current`` flag), the packs those in force on that day; compute is clipped at the moment;
an address used again after it shows no running figures (its count and last use are
today's).

Invariants: operator staff only (it spans a tenant's owners and officers, who are other
parties); it reads, never writes; the same database and moment give the same report.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import NotFound
from gpulease.persistence.tables import (
    AccessRecord,
    AuditRecord,
    ControlRow,
    GpuAllocation,
    KycCase,
    KycDecision,
    ListSnapshotRow,
    OwnershipRow,
    PartyRow,
    Tenant,
    User,
)
from gpulease.services import disclosure_history, kyc, kyc_screening, ledger_proofs, reports
from gpulease.services.context import ServiceContext


def end_user_disclosure(
    ctx: ServiceContext, actor: Principal, tenant_id: str, as_of: datetime | None = None
) -> dict[str, Any]:
    """Everything a regulator asks about the end user behind a tenant account (see module
    docstring), as it stood at ``as_of`` (default now): cases, decisions, standing,
    parties, ownership, compute, access, and the lists and policy packs in force, each
    from what was recorded at or before that moment (``services.disclosure_history``)."""
    actor.scope(Action.REPORT_READ)
    now = ctx.now()
    moment = as_of or now
    if moment.tzinfo is None:  # a bare date-time is UTC, like every time gpulease keeps
        moment = moment.replace(tzinfo=UTC)
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id!r}", tenant_id=tenant_id)
        cases = tx.all(
            tx.select(KycCase)
            .where(KycCase.tenant_id == tenant_id, KycCase.submitted_at <= moment)
            .order_by(KycCase.submitted_at, KycCase.id)
        )
        case_ids = [c.id for c in cases]
        decisions = (
            tx.all(
                tx.select(KycDecision)
                .where(KycDecision.case_id.in_(case_ids), KycDecision.at <= moment)
                .order_by(KycDecision.at, KycDecision.id)
            )
            if case_ids
            else []
        )
        history = tx.all(
            tx.select(AuditRecord)
            .where(
                AuditRecord.subject_type == "tenant",
                AuditRecord.subject_id == tenant_id,
                AuditRecord.action.like("kyc.%") | AuditRecord.action.like("tenant.%"),
                AuditRecord.at <= moment,
            )
            .order_by(AuditRecord.id)
        )
        trail = [r for r in history if r.action.startswith("kyc.")]
        past = {c.id: disclosure_history.case_as_of(c, trail, moment) for c in cases}
        snapshot_ids = sorted({s for c in past.values() for s in c.lists_screened})
        for record in trail:
            snapshot_ids += [str(s) for s in (record.after or {}).get("lists", [])]
        snapshots = {
            s.id: s
            for s in tx.all(
                tx.select(ListSnapshotRow).where(ListSnapshotRow.id.in_(sorted(set(snapshot_ids))))
            )
        }
        lists_then = _lists_in_force(
            tx.all(
                tx.select(ListSnapshotRow)
                .where(ListSnapshotRow.imported_at <= moment)
                .order_by(ListSnapshotRow.imported_at, ListSnapshotRow.id)
            )
        )
        # parties declared after the moment, and edges touching them, were not known then
        known = {p.id: p for p in tx.all(tx.select(PartyRow).where(PartyRow.created_at <= moment))}
        edges = [
            e
            for e in tx.all(tx.select(OwnershipRow))
            if e.owner_id in known and e.owned_id in known
        ]
        controls = [
            c for c in tx.all(tx.select(ControlRow)) if c.person_id in known and c.org_id in known
        ]
        latest_row = cases[-1] if cases else None
        root = latest_row.party_id if latest_row is not None else None
        # the latest case's parties: every one it declared, linked to the chain or not
        members = (
            kyc_screening.case_parties(latest_row, edges, controls) & known.keys()
            if latest_row is not None
            else set()
        )
        edges = [e for e in edges if e.owner_id in members and e.owned_id in members]
        controls = [c for c in controls if c.person_id in members and c.org_id in members]
        parties = {pid: p for pid, p in known.items() if p.tenant_id == tenant_id or pid in members}
        users = {u.id: u for u in tx.all(tx.select(User))}
        allocations = tx.all(
            tx.select(GpuAllocation)
            .where(GpuAllocation.tenant_id == tenant_id, GpuAllocation.start < moment)
            .order_by(GpuAllocation.id)
        )
        access = tx.all(
            tx.select(AccessRecord)
            .where(AccessRecord.tenant_id == tenant_id, AccessRecord.first_seen <= moment)
            .order_by(AccessRecord.first_seen, AccessRecord.id)
        )
    latest = past[latest_row.id] if latest_row is not None else None
    screening = (latest.screening or {}) if latest is not None else {}
    identification = dict(latest_row.identification) if latest_row is not None else {}
    standing = disclosure_history.standing_as_of(history, moment)
    return {
        "kind": "disclosure",
        "generated_at": now.isoformat(),
        "as_of": moment.isoformat(),
        "tenant": {
            "id": tenant.id,
            "name": tenant.name,
            "country": tenant.country,
            "kind": tenant.kind,
            "created_at": tenant.created_at.isoformat(),
        },
        "who": {
            "parties": [
                _party_out(p, is_tenant=p.tenant_id == tenant_id)
                for p in sorted(
                    parties.values(),
                    key=lambda p: (p.id != root, p.tenant_id != tenant_id, p.name, p.id),
                )
                if p.id in members or p.id == root
            ],
            "identification": identification,
        },
        "why": _why(standing["approved_end_uses"], latest, latest_row),
        "ownership": _ownership(root, edges, controls, parties, moment),
        "restricted_links": _restricted_links(screening, parties),
        "decisions": _decisions(cases, past, decisions, trail, snapshots, users),
        "standing": standing,
        "in_force": {
            "lists": [_snapshot(s.id, {s.id: s}) for s in lists_then],
            "policy_packs": list(kyc.policy_on(ctx, moment).packs),
        },
        "compute": reports.compute_used(allocations, moment),
        "access": [_access_out(a, users, moment) for a in access],
        # the KYC decisions' audit records: ledger positions and inclusion proofs
        "ledger": ledger_proofs.cite_audit_ids(ctx, [record.id for record in trail]),
    }


def _lists_in_force(imported: list[ListSnapshotRow]) -> list[ListSnapshotRow]:
    """The snapshot of each source in force after these imports (the last one imported):
    the ``current`` flag is today's, not the moment's."""
    last: dict[str, ListSnapshotRow] = {}
    for row in imported:
        last[row.source] = row
    return [last[source] for source in sorted(last)]


def _access_out(a: AccessRecord, users: dict[str, User], moment: datetime) -> dict[str, Any]:
    """An address the tenant used. Its request count and last use are kept as running
    figures: when it was used after the moment they are today's, so they are not shown."""
    later = a.last_seen > moment
    return {
        "ip": a.ip,
        "user_id": a.user_id,
        "user": users[a.user_id].email if a.user_id in users else "",
        "first_seen": a.first_seen.isoformat(),
        "last_seen": None if later else a.last_seen.isoformat(),
        "requests": None if later else int(a.requests),
        "used_after_as_of": later,
    }


def _party_out(p: PartyRow, *, is_tenant: bool) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "kind": p.kind,
        "is_tenant": is_tenant,
        "aliases": list(p.aliases),
        "countries": list(p.countries),
        "identifiers": [{"type": k, "value": v} for k, v in p.identifiers],
        "addresses": [
            ", ".join(v for v in (a.get("street"), a.get("city"), a.get("country")) if v)
            for a in p.addresses
        ],
    }


def _why(
    approved: list[str], latest: disclosure_history.CaseAsOf | None, row: KycCase | None
) -> dict[str, Any]:
    declared = list(row.end_uses) if row is not None else []
    if latest is not None:
        declared = list(latest.end_uses) or declared
        if latest.screening:
            declared = [
                str(r.get("code")) for r in latest.screening.get("end_uses", []) if r.get("code")
            ] or declared
    return {
        "declared_end_uses": [{"code": c, "label": reports.end_use_label(c)} for c in declared],
        "approved_end_uses": [{"code": c, "label": reports.end_use_label(c)} for c in approved],
        "statement": row.end_use_statement if row is not None else "",
    }


def _in_force(edge: OwnershipRow, moment: datetime) -> bool:
    return (edge.since is None or edge.since <= moment) and (
        edge.until is None or edge.until > moment
    )


def _ownership(
    root: str | None,
    edges: list[OwnershipRow],
    controls: list[ControlRow],
    parties: dict[str, PartyRow],
    moment: datetime,
) -> dict[str, Any]:
    """The chain up from the tenant's party, as a tree: each node's owners nest under it,
    with the direct share, the effective (multiplied) share in the tenant and officers; and
    the case's declared stakes and roles the chain does not reach (``outside_chain``)."""
    if root is None:
        return {"tree": None, "officers": [], "owners": [], "outside_chain": []}
    by_owned: dict[str, list[OwnershipRow]] = defaultdict(list)
    for edge in edges:
        if _in_force(edge, moment):
            by_owned[edge.owned_id].append(edge)
    officers_of: dict[str, list[ControlRow]] = defaultdict(list)
    for control in controls:
        officers_of[control.org_id].append(control)
    flat: list[dict[str, Any]] = []

    def name(pid: str) -> str:
        return parties[pid].name if pid in parties else pid

    def node(pid: str, effective: Decimal, seen: frozenset[str], depth: int) -> dict[str, Any]:
        owners: list[dict[str, Any]] = []
        for edge in sorted(by_owned.get(pid, []), key=lambda e: (-e.percent, e.owner_id)):
            share = effective * edge.percent / Decimal(100)
            flat.append(
                {
                    "owner_id": edge.owner_id,
                    "owner": name(edge.owner_id),
                    "owns": name(pid),
                    "percent": _pct(edge.percent),
                    "effective_percent": _pct(share),
                    "since": reports.iso(edge.since),
                    "depth": depth + 1,
                }
            )
            if edge.owner_id in seen:  # a cycle: name it, do not follow it
                owners.append(
                    {
                        "party_id": edge.owner_id,
                        "name": name(edge.owner_id),
                        "kind": "cycle",
                        "percent": _pct(edge.percent),
                        "effective_percent": _pct(share),
                        "since": reports.iso(edge.since),
                        "evidence": edge.evidence,
                        "officers": [],
                        "owners": [],
                    }
                )
                continue
            child = node(edge.owner_id, share, seen | {edge.owner_id}, depth + 1)
            child |= {
                "percent": _pct(edge.percent),
                "since": reports.iso(edge.since),
                "until": reports.iso(edge.until),
                "evidence": edge.evidence,
            }
            owners.append(child)
        party = parties.get(pid)
        return {
            "party_id": pid,
            "name": name(pid),
            "kind": party.kind if party else "",
            "countries": list(party.countries) if party else [],
            "percent": None,
            "effective_percent": _pct(effective),
            "since": None,
            "officers": [
                {"party_id": c.person_id, "name": name(c.person_id), "role": c.role}
                for c in sorted(officers_of.get(pid, []), key=lambda c: (c.role, c.person_id))
            ],
            "owners": owners,
        }

    tree = node(root, Decimal(100), frozenset({root}), 0)
    reached = {root, *(f["owner_id"] for f in flat)}
    officers = [
        {"party_id": c.person_id, "name": name(c.person_id), "role": c.role, "of": name(c.org_id)}
        for c in controls
        if c.org_id in reached
    ]
    # declared edges the walk up from the tenant does not reach: they were screened too
    outside = [
        {
            "kind": "stake",
            "party_id": e.owner_id,
            "name": name(e.owner_id),
            "of_id": e.owned_id,
            "of": name(e.owned_id),
            "percent": _pct(e.percent),
            "role": "",
            "since": reports.iso(e.since),
            "until": reports.iso(e.until),
        }
        for e in sorted(edges, key=lambda e: (e.owned_id, -e.percent, e.owner_id))
        if _in_force(e, moment) and e.owned_id not in reached
    ] + [
        {
            "kind": "role",
            "party_id": c.person_id,
            "name": name(c.person_id),
            "of_id": c.org_id,
            "of": name(c.org_id),
            "percent": None,
            "role": c.role,
            "since": None,
            "until": None,
        }
        for c in sorted(controls, key=lambda c: (c.org_id, c.role, c.person_id))
        if c.org_id not in reached
    ]
    return {"tree": tree, "owners": flat, "officers": officers, "outside_chain": outside}


def _pct(value: Decimal) -> str:
    text = f"{value.quantize(Decimal('0.01')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _restricted_links(screening: dict[str, Any], parties: dict[str, PartyRow]) -> dict[str, Any]:
    ownership = dict(screening.get("ownership") or {})

    def name(pid: Any) -> str:
        return parties[pid].name if isinstance(pid, str) and pid in parties else str(pid)

    return {
        "verdict": screening.get("verdict", ""),
        "reasons": list(screening.get("reasons", [])),
        "screened_parties": len(screening.get("parties", [])),
        "hits": [
            {"party_id": p.get("party_id"), "party": p.get("name"), "outcome": p.get("outcome")}
            | {k: h.get(k) for k in ("source", "entry_id", "listed_name", "score", "list_name")}
            | {"programs": list(h.get("programs", []))}
            for p in screening.get("parties", [])
            for h in p.get("hits", [])
        ],
        "ownership": {
            "verdict": ownership.get("verdict", ""),
            "restriction": ownership.get("restriction", ""),
            "inherited": [
                {
                    "rule": i.get("rule"),
                    "restriction": i.get("restriction"),
                    "total": i.get("total"),
                    "stakes": [
                        {**s, "owner_name": name(s.get("owner"))} for s in i.get("stakes", [])
                    ],
                }
                for i in ownership.get("inherited", [])
            ],
            "explanation": list(ownership.get("explanation", [])),
        },
        "red_flags": [
            {
                "kind": f.get("kind"),
                "parties": [name(p) for p in f.get("parties", [])],
                "reason": f.get("reason"),
            }
            for f in ownership.get("flags", [])
        ],
        "country_tier": screening.get("country_tier"),
        "missing_fields": list(screening.get("missing_fields", [])),
        "policy": screening.get("policy"),
        "as_of": screening.get("as_of"),
    }


def _decisions(
    cases: list[KycCase],
    past: dict[str, disclosure_history.CaseAsOf],
    decisions: list[KycDecision],
    trail: list[AuditRecord],
    snapshots: dict[str, ListSnapshotRow],
    users: dict[str, User],
) -> list[dict[str, Any]]:
    """Each case as it stood (``past``) with its screening rounds (packs in force and lists
    used, from the audit trail) and its officers' decisions, each tied to the round it
    decided, with who created the officer's account and who could act as it then."""
    rounds: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    steps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    needed: dict[str, int] = {}
    for record in trail:
        after = record.after or {}
        case_id = after.get("case_id")
        if not isinstance(case_id, str):
            continue
        steps[case_id].append(
            {
                "at": record.at.isoformat(),
                "action": record.action,
                "actor": record.actor,
                "reason": record.reason,
            }
        )
        if isinstance(after.get("approvals_needed"), int):
            needed[case_id] = after["approvals_needed"]
        if record.action == "kyc.needs_review" and isinstance(after.get("round"), int):
            rounds[case_id][after["round"]] = {
                "round": after["round"],
                "at": record.at.isoformat(),
                "verdict": after.get("verdict", ""),
                "policy_packs": [str(p) for p in after.get("policy", [])],
                "lists": [_snapshot(str(s), snapshots) for s in after.get("lists", [])],
                "reason": record.reason,
            }
    by_case: dict[str, list[KycDecision]] = defaultdict(list)
    for d in decisions:
        by_case[d.case_id].append(d)
    out = []
    for row in cases:
        case = past[row.id]
        case_rounds = rounds.get(case.id, {})
        if case.round and case.round not in case_rounds:  # no trail: the case's own record
            case_rounds[case.round] = {
                "round": case.round,
                "at": reports.iso(case.screened_at),
                "verdict": case.verdict,
                "policy_packs": list(case.policy_versions),
                "lists": [_snapshot(s, snapshots) for s in case.lists_screened],
                "reason": case.state_reason,
            }
        out.append(
            {
                "case_id": case.id,
                "state": case.state,
                "state_reason": case.state_reason,
                "verdict": case.verdict,
                "submitted_by": row.submitted_by,
                "submitted_at": row.submitted_at.isoformat(),
                "screened_at": reports.iso(case.screened_at),
                "decided_at": reports.iso(case.decided_at),
                "expires_at": reports.iso(case.expires_at),
                "approvals_needed": needed.get(case.id, row.approvals_needed),
                "policy_packs": list(case.policy_versions),
                "lists": [_snapshot(s, snapshots) for s in case.lists_screened],
                "rounds": [case_rounds[r] for r in sorted(case_rounds)],
                "decisions": [
                    {
                        "officer_id": d.officer_id,
                        "officer": users[d.officer_id].name if d.officer_id in users else "",
                        "officer_created_by": users[d.officer_id].created_by
                        if d.officer_id in users
                        else "",
                        "controllers": list(d.controllers),
                        "decision": d.decision,
                        "reason": d.reason,
                        "at": d.at.isoformat(),
                        "round": d.screening_round,
                        "policy_packs": case_rounds.get(d.screening_round, {}).get(
                            "policy_packs", list(case.policy_versions)
                        ),
                        "lists": case_rounds.get(d.screening_round, {}).get(
                            "lists", [_snapshot(s, snapshots) for s in case.lists_screened]
                        ),
                    }
                    for d in by_case.get(case.id, [])
                ],
                "steps": steps.get(case.id, []),
            }
        )
    return out


def _snapshot(snapshot_id: str, snapshots: dict[str, ListSnapshotRow]) -> dict[str, Any]:
    row = snapshots.get(snapshot_id)
    if row is None:
        return {"id": snapshot_id, "source": "", "label": "", "imported_at": None, "entries": 0}
    return {
        "id": row.id,
        "source": row.source,
        "label": row.label,
        "imported_at": row.imported_at.isoformat(),
        "entries": row.entries,
        "checksum": row.checksum,
    }
