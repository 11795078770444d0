"""The end-user disclosure report: who a tenant is, why it uses the compute, owned by whom.

Design. :func:`end_user_disclosure` reads, for one tenant, everything a regulator asks of
an end user and returns it as one JSON-ready ``dict`` (see :mod:`gpulease.services.reports`
for the conventions and the other two reports): the parties and their identifiers, the
declared and approved end uses, the owners up the chain with their shares in force at the
report's moment and the officers, the links to restricted parties (the latest screening's
hits, ownership assessment and red flags), every KYC case and officer decision (with the
policy packs and list snapshots used), the current standing, the GPU-hours used by declared
purpose, and the IP addresses the tenant reached the API from.

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
from gpulease.services import kyc_screening, ledger_proofs, reports
from gpulease.services.context import ServiceContext


def end_user_disclosure(
    ctx: ServiceContext, actor: Principal, tenant_id: str, as_of: datetime | None = None
) -> dict[str, Any]:
    """Everything a regulator asks about the end user behind a tenant account (see module
    docstring). ``as_of`` (default now) bounds the decisions, ownership, compute and access
    shown; the standing is the tenant's current one."""
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
        trail = tx.all(
            tx.select(AuditRecord)
            .where(
                AuditRecord.subject_type == "tenant",
                AuditRecord.subject_id == tenant_id,
                AuditRecord.action.like("kyc.%"),
                AuditRecord.at <= moment,
            )
            .order_by(AuditRecord.id)
        )
        snapshot_ids = sorted({s for c in cases for s in c.lists_screened})
        for record in trail:
            snapshot_ids += [str(s) for s in (record.after or {}).get("lists", [])]
        snapshots = {
            s.id: s
            for s in tx.all(
                tx.select(ListSnapshotRow).where(ListSnapshotRow.id.in_(sorted(set(snapshot_ids))))
            )
        }
        edges = tx.all(tx.select(OwnershipRow))
        controls = tx.all(tx.select(ControlRow))
        latest = cases[-1] if cases else None
        root = latest.party_id if latest is not None else None
        members = kyc_screening.chain_members(root, edges, controls) if root else set()
        parties = {
            p.id: p
            for p in tx.all(
                tx.select(PartyRow).where(
                    (PartyRow.tenant_id == tenant_id) | PartyRow.id.in_(sorted(members))
                )
            )
        }
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
    screening = (latest.screening or {}) if latest is not None else {}
    identification = dict(latest.identification) if latest is not None else {}
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
        "why": _why(tenant, latest),
        "ownership": _ownership(root, edges, controls, parties, moment),
        "restricted_links": _restricted_links(screening, parties),
        "decisions": _decisions(cases, decisions, trail, snapshots, users),
        "standing": {
            "approval": tenant.approval,
            "reason": tenant.approval_reason,
            "approved_end_uses": list(tenant.approved_end_uses),
            "case_id": tenant.approval_case_id,
            "expires_at": reports.iso(tenant.approval_expires_at),
            "expired": tenant.approval_expires_at is not None and tenant.approval_expires_at <= now,
        },
        "compute": reports.compute_used(allocations, moment),
        "access": [
            {
                "ip": a.ip,
                "user_id": a.user_id,
                "user": users[a.user_id].email if a.user_id in users else "",
                "first_seen": a.first_seen.isoformat(),
                "last_seen": a.last_seen.isoformat(),
                "requests": int(a.requests),
            }
            for a in access
        ],
        # the KYC decisions' audit records: ledger positions and inclusion proofs
        "ledger": ledger_proofs.cite_audit_ids(ctx, [record.id for record in trail]),
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


def _why(tenant: Tenant, latest: KycCase | None) -> dict[str, Any]:
    declared = list(latest.end_uses) if latest is not None else []
    approved = list(tenant.approved_end_uses)
    if latest is not None and latest.screening:
        declared = [
            str(r.get("code")) for r in latest.screening.get("end_uses", []) if r.get("code")
        ] or declared
    return {
        "declared_end_uses": [{"code": c, "label": reports.end_use_label(c)} for c in declared],
        "approved_end_uses": [{"code": c, "label": reports.end_use_label(c)} for c in approved],
        "statement": latest.end_use_statement if latest is not None else "",
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
    with the direct share, the effective (multiplied) share in the tenant and officers."""
    if root is None:
        return {"tree": None, "officers": [], "owners": []}
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
    officers = [
        {"party_id": c.person_id, "name": name(c.person_id), "role": c.role, "of": name(c.org_id)}
        for c in controls
        if c.org_id in {root, *(f["owner_id"] for f in flat)}
    ]
    return {"tree": tree, "owners": flat, "officers": officers}


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
    decisions: list[KycDecision],
    trail: list[AuditRecord],
    snapshots: dict[str, ListSnapshotRow],
    users: dict[str, User],
) -> list[dict[str, Any]]:
    """Each case with its screening rounds (packs in force and lists used, from the audit
    trail) and its officers' decisions, each tied to the round it decided."""
    rounds: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    steps: dict[str, list[dict[str, Any]]] = defaultdict(list)
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
    for case in cases:
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
                "submitted_by": case.submitted_by,
                "submitted_at": case.submitted_at.isoformat(),
                "screened_at": reports.iso(case.screened_at),
                "decided_at": reports.iso(case.decided_at),
                "expires_at": reports.iso(case.expires_at),
                "approvals_needed": case.approvals_needed,
                "policy_packs": list(case.policy_versions),
                "lists": [_snapshot(s, snapshots) for s in case.lists_screened],
                "rounds": [case_rounds[r] for r in sorted(case_rounds)],
                "decisions": [
                    {
                        "officer_id": d.officer_id,
                        "officer": users[d.officer_id].name if d.officer_id in users else "",
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
