"""Disclosure reports for regulators and auditors: who, why, owned by whom, decided how.

Three reports, each a JSON-ready ``dict`` (strings, numbers, lists, dicts; times as ISO 8601
UTC, percentages and FLOP counts as decimal strings) that :func:`render_html` turns into a
self-contained page:

* :func:`end_user_disclosure`: the end user of a tenant account: who it is (parties and their
  identifiers), why it uses the compute (declared and approved end uses), its owners up the
  chain with their shares and its officers, its links to restricted parties (the latest
  screening's hits, ownership assessment and red flags), every KYC case and officer decision
  (with the policy packs in force and the list snapshots used), its current standing, the
  GPU-hours it used by declared purpose, and the IP addresses it reached the API from;
* :func:`gpu_provenance`: for one GPU serial: where it is, its chain of custody (maker ->
  builder -> operator -> installed) and which tenants used it, when, for which purpose;
* :func:`large_training_runs`: jobs whose estimated training compute passes a threshold
  (10^26 operations by default), with every term of the estimate shown.

All three span tenants, so they are for operator staff only (operator-admin,
compliance-officer). They read, never write.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gpulease.compliance.end_uses import END_USES, parse_purpose
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest, NotFound
from gpulease.domain.states import JobState
from gpulease.persistence.tables import (
    AccessRecord,
    AuditRecord,
    ControlRow,
    CustodyEvent,
    Gpu,
    GpuAllocation,
    Job,
    KycCase,
    KycDecision,
    ListSnapshotRow,
    Node,
    OwnershipRow,
    PartyRow,
    Rack,
    Site,
    Tenant,
    User,
)
from gpulease.services import kyc_screening
from gpulease.services.context import ServiceContext

REPORT_KINDS = ("disclosure", "gpu", "large-runs")

# Per-GPU peak of a B200-class GPU, dense BF16: 180 PFLOP/s per 72-GPU rack, 2.5 PFLOP/s each.
DEFAULT_PEAK_FLOPS_PER_GPU = Decimal("2.5e15")
PEAK_SOURCE = (
    "NVIDIA GB200 NVL72 product brief: dense BF16 Tensor Core, 180 PFLOP/s per 72-GPU rack "
    "= 2.5e15 FLOP/s per Blackwell GPU (a configurable parameter)"
)
DEFAULT_UTILISATION = Decimal("0.4")
THRESHOLD_1E26 = Decimal("1e26")
THRESHOLD_1E25 = Decimal("1e25")
THRESHOLD_NOTES = {
    "1e26": "10^26 operations: the training-compute threshold of the 2025 AI diffusion rule's "
    "model-weights control and of the former US reporting requirement for dual-use "
    "foundation models",
    "1e25": "10^25 operations: the EU AI Act's presumption of a general-purpose model with "
    "systemic risk",
}
FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
_LABELS = {e.code: e.label for e in END_USES}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 4)


def _label(code: str | None) -> str:
    return _LABELS.get(code or "", code or "")


# --------------------------------------------------------------------- disclosure
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
            "expires_at": _iso(tenant.approval_expires_at),
            "expired": tenant.approval_expires_at is not None and tenant.approval_expires_at <= now,
        },
        "compute": _compute(allocations, moment),
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
        "declared_end_uses": [{"code": c, "label": _label(c)} for c in declared],
        "approved_end_uses": [{"code": c, "label": _label(c)} for c in approved],
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
                    "since": _iso(edge.since),
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
                        "since": _iso(edge.since),
                        "evidence": edge.evidence,
                        "officers": [],
                        "owners": [],
                    }
                )
                continue
            child = node(edge.owner_id, share, seen | {edge.owner_id}, depth + 1)
            child |= {
                "percent": _pct(edge.percent),
                "since": _iso(edge.since),
                "until": _iso(edge.until),
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
                "at": _iso(case.screened_at),
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
                "screened_at": _iso(case.screened_at),
                "decided_at": _iso(case.decided_at),
                "expires_at": _iso(case.expires_at),
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


def _seconds(row: GpuAllocation, moment: datetime) -> float:
    end = row.end if row.end is not None and row.end <= moment else moment
    return max(0.0, (end - row.start).total_seconds())


def _compute(allocations: Iterable[GpuAllocation], moment: datetime) -> dict[str, Any]:
    """GPU-hours by declared purpose (and the end-use code the purpose declares)."""
    seconds: dict[str, float] = defaultdict(float)
    jobs: dict[str, set[str]] = defaultdict(set)
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for row in allocations:
        seconds[row.purpose] += _seconds(row, moment)
        jobs[row.purpose].add(row.job_id)
        first[row.purpose] = min(first.get(row.purpose, row.start), row.start)
        end = row.end if row.end is not None and row.end <= moment else moment
        last[row.purpose] = max(last.get(row.purpose, end), end)
    purposes = []
    for purpose in sorted(seconds, key=lambda p: (-seconds[p], p)):
        code, _free = parse_purpose(purpose)
        purposes.append(
            {
                "purpose": purpose,
                "end_use": code,
                "end_use_label": _label(code),
                "gpu_hours": _hours(seconds[purpose]),
                "jobs": len(jobs[purpose]),
                "first_use": first[purpose].isoformat(),
                "last_use": last[purpose].isoformat(),
            }
        )
    return {
        "gpu_hours": _hours(sum(seconds.values())),
        "jobs": len({job for ids in jobs.values() for job in ids}),
        "by_purpose": purposes,
    }


# ------------------------------------------------------------------ GPU provenance
def gpu_provenance(ctx: ServiceContext, actor: Principal, serial: str) -> dict[str, Any]:
    """Where a GPU is, how it got there, and who used it when for what."""
    actor.scope(Action.REPORT_READ)
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        gpu = tx.get(Gpu, serial)
        if gpu is None:
            raise NotFound(f"no GPU with serial {serial!r}", serial=serial)
        node = tx.require(Node, gpu.node_id, "node")
        rack = tx.require(Rack, node.rack_id, "rack")
        site = tx.require(Site, rack.site_id, "site")
        custody = tx.all(
            tx.select(CustodyEvent)
            .where(CustodyEvent.unit_kind == "rack", CustodyEvent.unit_id == rack.id)
            .order_by(CustodyEvent.at, CustodyEvent.id)
        )
        rows = tx.all(
            tx.select(GpuAllocation)
            .where(GpuAllocation.gpu_serial == serial)
            .order_by(GpuAllocation.start, GpuAllocation.id)
        )
        tenant_ids = sorted({r.tenant_id for r in rows})
        tenants = {t.id: t for t in tx.all(tx.select(Tenant).where(Tenant.id.in_(tenant_ids)))}
        job_ids = sorted({r.job_id for r in rows})
        job_rows = {j.id: j for j in tx.all(tx.select(Job).where(Job.id.in_(job_ids)))}
    usage = []
    by_tenant: dict[tuple[str, str], float] = defaultdict(float)
    for r in rows:
        seconds = _seconds(r, now)
        by_tenant[(r.tenant_id, r.purpose)] += seconds
        code, _free = parse_purpose(r.purpose)
        tenant = tenants.get(r.tenant_id)
        usage.append(
            {
                "tenant_id": r.tenant_id,
                "tenant": tenant.name if tenant else r.tenant_id,
                "tenant_country": tenant.country if tenant else "",
                "job_id": r.job_id,
                "job": job_rows[r.job_id].name if r.job_id in job_rows else "",
                "purpose": r.purpose,
                "end_use": code,
                "start": r.start.isoformat(),
                "end": _iso(r.end),
                "running": r.end is None,
                "gpu_hours": _hours(seconds),
            }
        )
    holder = custody[-1].holder if custody else ""
    return {
        "kind": "gpu",
        "generated_at": now.isoformat(),
        "gpu": {"serial": gpu.serial, "model": gpu.model},
        "location": {
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
            "slot": gpu.slot,
        },
        "owner": holder,
        "custody": [
            {
                "at": e.at.isoformat(),
                "event": e.event,
                "holder": e.holder,
                "location": e.location,
                "document": e.document,
                "unit": f"{e.unit_kind} {rack.serial}",
            }
            for e in custody
        ],
        "usage": usage,
        "by_tenant": [
            {
                "tenant_id": tid,
                "tenant": tenants[tid].name if tid in tenants else tid,
                "purpose": purpose,
                "gpu_hours": _hours(seconds),
            }
            for (tid, purpose), seconds in sorted(by_tenant.items(), key=lambda kv: -kv[1])
        ],
    }


# -------------------------------------------------------------- large training runs
def _decimal(value: Decimal | float | str, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"{field} must be a number, not {value!r}", field=field) from None
    if not number.is_finite() or number <= 0:
        raise InvalidRequest(f"{field} must be a positive number", field=field)
    return number


def _sci(value: Decimal) -> str:
    return f"{value:.3e}"


def large_training_runs(
    ctx: ServiceContext,
    actor: Principal,
    threshold_ops: Decimal | float | str = THRESHOLD_1E26,
    peak_flops_per_gpu: Decimal | float | str = DEFAULT_PEAK_FLOPS_PER_GPU,
    utilisation: Decimal | float | str = DEFAULT_UTILISATION,
) -> dict[str, Any]:
    """Jobs whose estimated compute passes ``threshold_ops``.

    estimate = GPUs x seconds x peak FLOP/s per GPU x utilisation, where seconds are the
    job's actual run seconds once it has run (finished or running: past runs plus the
    current one), else its walltime limit, else its declared (simulated) duration; a job
    with none of these cannot be estimated and is counted apart."""
    actor.scope(Action.REPORT_READ)
    threshold = _decimal(threshold_ops, "threshold")
    peak = _decimal(peak_flops_per_gpu, "peak_flops_per_gpu")
    util = _decimal(utilisation, "utilisation")
    if util > 1:
        raise InvalidRequest("utilisation is a fraction in (0, 1]", field="utilisation")
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        jobs = tx.all(tx.select(Job).order_by(Job.submitted_at, Job.id))
        tenants = {t.id: t for t in tx.all(tx.select(Tenant))}
    runs: list[dict[str, Any]] = []
    unestimated = 0
    for job in jobs:
        state = JobState(job.state)
        if state is JobState.RUNNING and job.started_at is not None:
            seconds = job.run_s + max(0.0, (now - job.started_at).total_seconds())
            basis = "actual run time (running)"
        elif state in FINISHED and job.starts > 0:
            seconds, basis = job.run_s, "actual run time"
        elif state in FINISHED:
            seconds, basis = 0.0, "never ran"
        elif job.walltime_s is not None:
            seconds, basis = job.walltime_s, "walltime limit (not yet run)"
        elif job.duration_s is not None:
            seconds, basis = job.duration_s, "declared duration (not yet run)"
        else:
            unestimated += 1
            continue
        secs = Decimal(repr(float(seconds)))
        estimate = Decimal(job.gpus) * secs * peak * util
        if estimate < threshold:
            continue
        code, _free = parse_purpose(job.purpose)
        tenant = tenants.get(job.tenant_id)
        runs.append(
            {
                "job_id": job.id,
                "name": job.name,
                "tenant_id": job.tenant_id,
                "tenant": tenant.name if tenant else job.tenant_id,
                "tenant_country": tenant.country if tenant else "",
                "purpose": job.purpose,
                "end_use": code,
                "state": job.state,
                "submitted_at": job.submitted_at.isoformat(),
                "started_at": _iso(job.started_at),
                "ended_at": _iso(job.ended_at),
                "gpus": job.gpus,
                "seconds": float(secs),
                "seconds_basis": basis,
                "gpu_hours": _hours(job.gpus * float(secs)),
                "peak_flops_per_gpu": str(peak),
                "utilisation": str(util),
                "estimated_ops": str(estimate),
                "estimated_ops_sci": _sci(estimate),
                "times_threshold": round(float(estimate / threshold), 3),
            }
        )
    runs.sort(key=lambda r: -Decimal(r["estimated_ops"]))
    return {
        "kind": "large-runs",
        "generated_at": now.isoformat(),
        "threshold_ops": str(threshold),
        "threshold_sci": _sci(threshold),
        "threshold_note": THRESHOLD_NOTES.get(f"{threshold:.0e}".replace("+", ""), ""),
        "formula": "estimated operations = GPUs x seconds x peak FLOP/s per GPU x utilisation",
        "terms": {
            "peak_flops_per_gpu": str(peak),
            "peak_flops_per_gpu_sci": _sci(peak),
            "peak_source": PEAK_SOURCE
            if peak == DEFAULT_PEAK_FLOPS_PER_GPU
            else "given by the caller",
            "utilisation": str(util),
            "seconds": "actual run seconds for a job that has run (finished or running), "
            "else its walltime limit, else its declared duration",
        },
        "jobs_considered": len(jobs),
        "jobs_without_estimate": unestimated,
        "runs": runs,
    }


# ----------------------------------------------------------------------- HTML
@functools.cache
def _environment() -> Any:
    import jinja2  # only the HTML rendering needs it

    from gpulease.services.report_templates import TEMPLATES

    env = jinja2.Environment(
        loader=jinja2.DictLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["verdict_class"] = _verdict_class
    env.filters["show"] = _show
    return env


def _when(value: Any) -> str:
    if not value:
        return "—"
    text = str(value)
    return text[:19].replace("T", " ") + (" UTC" if len(text) >= 19 else "")


def _show(value: Any) -> str:
    """A JSON value in words: lists joined, mappings as ``key: value``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_show(v) for v in value)
    return "" if value is None else str(value)


def _verdict_class(value: Any) -> str:
    text = str(value or "").lower()
    if text in ("clear", "approved", "approve", "allow", "succeeded", "clean"):
        return "ok"
    if text in ("review", "flagged", "needs_review", "suspended", "submitted", "screening"):
        return "warn"
    if text in ("block", "blocked", "restricted", "rejected", "reject", "refuse", "expired"):
        return "bad"
    return "neutral"


def render_html(report: dict[str, Any], kind: str) -> str:
    """A self-contained page (inline CSS, no external asset, every value escaped)."""
    if kind not in REPORT_KINDS:
        raise InvalidRequest(
            f"unknown report kind {kind!r}; use one of {', '.join(REPORT_KINDS)}", field="kind"
        )
    template = _environment().get_template(f"{kind}.html")
    return str(template.render(r=report, kind=kind))
