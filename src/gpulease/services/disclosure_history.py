"""A tenant's KYC cases and standing as they were at a past moment, rebuilt from the audit trail.

Design. A case row and a tenant row hold their *present* state: a case approved last week
says "approved" even in a disclosure as of last month, when it was still under review; a
tenant suspended today says "suspended" of a day it was approved. Every change of either is
audited in its own transaction (``kyc.move_case`` and ``kyc.set_standing`` write the fields
they change, ``after``), so the state at a moment is the last audited change at or before it:

* :func:`case_as_of`: a case's state, reason, verdict, round, end uses (narrowed at
  approval), expiry, decision time, the packs and lists of its last screening and the
  screening record itself (kept in the ``kyc.needs_review`` record from this version on; a
  case screened before that shows its stored screening only if that screening was done by
  the moment, else none);
* :func:`standing_as_of`: the tenant's approval, its reason, and the approved end uses,
  case and expiry of the last approval at or before the moment.

Invariant: nothing returned here comes from a change later than the moment; the input
records must be those at or before it (the caller's query bounds them). Reads no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpulease.domain.states import KycState
from gpulease.persistence.tables import AuditRecord, KycCase

DECIDED = frozenset({"kyc.approved", "kyc.rejected"})


@dataclass(frozen=True, slots=True)
class CaseAsOf:
    id: str
    state: str
    state_reason: str
    verdict: str
    round: int
    end_uses: list[str]
    expires_at: datetime | None
    decided_at: datetime | None
    screened_at: datetime | None
    policy_versions: list[str]
    lists_screened: list[str]
    screening: dict[str, Any] | None


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def case_as_of(case: KycCase, trail: Iterable[AuditRecord], moment: datetime) -> CaseAsOf:
    """``case`` as it stood at ``moment`` (``trail``: its tenant's audit records up to then)."""
    found = CaseAsOf(
        id=case.id,
        state=KycState.SUBMITTED.value,
        state_reason="submitted for screening",
        verdict="",
        round=0,
        end_uses=[],
        expires_at=None,
        decided_at=None,
        screened_at=None,
        policy_versions=[],
        lists_screened=[],
        screening=None,
    )
    fields: dict[str, Any] = {}
    legacy = True  # no screening kept in the trail: fall back on the row's, when dated
    for record in trail:
        after = record.after or {}
        if after.get("case_id") != case.id:
            continue
        if record.action == "kyc.submit":
            fields["end_uses"] = list(after.get("end_uses", []))
        if "state" not in after:
            continue
        fields |= {
            "state": str(after["state"]),
            "state_reason": str(after.get("state_reason", "")),
            "verdict": str(after.get("verdict", "")),
            "round": int(after.get("round", 0) or 0),
            "end_uses": list(after.get("end_uses", fields.get("end_uses", []))),
            "expires_at": _when(after.get("expires_at")),
            "policy_versions": [str(p) for p in after.get("policy", [])],
            "lists_screened": [str(s) for s in after.get("lists", [])],
        }
        if record.action == "kyc.needs_review":
            fields["screened_at"] = record.at
            if "screening" in after:
                fields["screening"] = after["screening"]
                legacy = False
        if record.action in DECIDED:
            fields["decided_at"] = record.at
    if not fields.get("end_uses"):
        fields["end_uses"] = list(case.end_uses)
    if legacy and case.screened_at is not None and case.screened_at <= moment:
        fields["screening"] = case.screening
    return CaseAsOf(**{**_as_dict(found), **fields})


def _as_dict(found: CaseAsOf) -> dict[str, Any]:
    return {name: getattr(found, name) for name in CaseAsOf.__slots__}


def standing_as_of(trail: Iterable[AuditRecord], moment: datetime) -> dict[str, Any]:
    """The tenant's standing at ``moment`` (``trail``: its audit records up to then)."""
    approval, reason = "none", "no KYC case has been approved"
    case_id: str | None = None
    end_uses: list[str] = []
    expires_at: datetime | None = None
    for record in trail:
        after = record.after or {}
        if record.action.startswith("tenant.") and "approval" in after:
            approval = str(after["approval"])
            reason = str(after.get("approval_reason", record.reason))
        elif record.action == "kyc.approved" and isinstance(after.get("case_id"), str):
            case_id = after["case_id"]
            end_uses = [str(u) for u in after.get("end_uses", [])]
            expires_at = _when(after.get("expires_at"))
    return {
        "approval": approval,
        "reason": reason,
        "approved_end_uses": end_uses,
        "case_id": case_id,
        "expires_at": None if expires_at is None else expires_at.isoformat(),
        "expired": expires_at is not None and expires_at <= moment,
    }
