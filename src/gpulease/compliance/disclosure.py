"""What a tenant may be told about its own compliance standing: the tenant's view.

Design. Screening internals are for compliance officers only: the scores of list matches,
the features that weighed in them, the review and block thresholds, the matched list entries
(their names, ids, programs, list names), which list snapshots were screened, the officers'
decision reasons and the case's internal ``state_reason`` (which quotes all of those). A
party that saw them could tune its names until they score under the threshold. A tenant is
told instead where its case stands in plain words and what it must do:

* :func:`tenant_case_view`: a case as its tenant sees it: its id, state, a plain-language
  status ("under review by the compliance team", "approved for ... until ...", "rejected by
  the compliance team", "more information needed: ..."), the customer-identification fields
  it still has to supply, the declared end uses no approval can allow (prohibited ones, from
  the public vocabulary and policy), its end uses (approved ones apart) and its dates;
* :func:`tenant_standing`: why a tenant may not run work now, as the messages of refused
  jobs and leases and the reasons of held ones say it (whatever the stored reason quotes);
* :func:`tenant_policy_view`: the part of the policy in force a tenant needs: the end uses
  that are prohibited and the identification fields required of customers, never the
  screening rules, thresholds, lists or red-flag settings.

Invariant: every text built here is made of the case's state and dates, end-use codes and
customer-field names only; nothing read from a screening result other than the missing
customer fields and the refused end-use codes reaches the tenant, so nothing a list or a
score put there can leak. Pure: the clock is an argument, the case is read through
:class:`CaseRecord` (a KYC case row satisfies it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gpulease.compliance.end_uses import END_USES
from gpulease.compliance.policy_packs import CUSTOMER_FIELDS
from gpulease.domain.states import KycState

if TYPE_CHECKING:
    from gpulease.compliance.policy import EffectivePolicy

UNDER_REVIEW = "under review by the compliance team"
REJECTED = "rejected by the compliance team"
SUSPENDED = "suspended pending review by the compliance team"
NEVER_APPROVED = "no KYC case has been approved"
_PROHIBITED_BY_VOCABULARY = frozenset(e.code for e in END_USES if e.prohibited)


class CaseRecord(Protocol):
    """The fields of a KYC case the tenant's view is built from."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def end_uses(self) -> list[str]: ...
    @property
    def end_use_statement(self) -> str: ...
    @property
    def identification(self) -> dict[str, Any]: ...
    @property
    def screening(self) -> dict[str, Any] | None: ...
    @property
    def submitted_at(self) -> datetime: ...
    @property
    def decided_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class TenantCaseView:
    id: str
    tenant_id: str
    state: str
    status: str  # in plain words; never quotes a score, a threshold or a list entry
    missing_identification: tuple[str, ...]  # customer-field names still to supply
    prohibited_end_uses: tuple[str, ...]  # declared codes no approval can allow
    end_uses: tuple[str, ...]  # declared (narrowed to the approved ones once approved)
    approved_end_uses: tuple[str, ...]  # empty unless the case is approved
    end_use_statement: str
    identification: dict[str, Any]  # what the tenant supplied, as it supplied it
    submitted_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None


def tenant_case_view(case: CaseRecord) -> TenantCaseView:
    """The case as its tenant may see it (see the module docstring for what is left out)."""
    screening = case.screening or {}
    missing = tuple(_known_fields(screening.get("missing_fields", ())))
    refused = tuple(
        code
        for code in case.end_uses
        if code in _PROHIBITED_BY_VOCABULARY or code in _refused_codes(screening)
    )
    state = KycState(case.state)
    approved = tuple(case.end_uses) if state is KycState.APPROVED else ()
    return TenantCaseView(
        id=case.id,
        tenant_id=case.tenant_id,
        state=state.value,
        status=_status(state, missing, refused, approved, case.expires_at),
        missing_identification=missing,
        prohibited_end_uses=refused,
        end_uses=tuple(case.end_uses),
        approved_end_uses=approved,
        end_use_statement=case.end_use_statement,
        identification=dict(case.identification),
        submitted_at=case.submitted_at,
        decided_at=case.decided_at,
        expires_at=case.expires_at,
    )


def _status(
    state: KycState,
    missing: Sequence[str],
    refused: Sequence[str],
    approved: Sequence[str],
    expires_at: datetime | None,
) -> str:
    if state in (KycState.SUBMITTED, KycState.SCREENING):
        return "received; being checked by the compliance team"
    if state is KycState.APPROVED:
        until = f" until {expires_at:%Y-%m-%d}" if expires_at is not None else ""
        return f"approved for {', '.join(approved)}{until}"
    if state is KycState.REJECTED:
        return REJECTED
    if state is KycState.EXPIRED:
        return "no longer in force (expired or replaced by a later case)"
    parts = []
    if missing:
        parts.append("more information needed: " + "; ".join(CUSTOMER_FIELDS[f] for f in missing))
    if refused:
        parts.append("end uses no approval can allow (prohibited): " + ", ".join(refused))
    parts.append(UNDER_REVIEW)
    return "; ".join(parts)


def _known_fields(names: Any) -> list[str]:
    """Customer-field names only (a screening result is read, never trusted to be clean)."""
    return [n for n in names if isinstance(n, str) and n in CUSTOMER_FIELDS]


def _refused_codes(screening: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(
        str(r.get("code"))
        for r in screening.get("end_uses", ())
        if isinstance(r, Mapping) and r.get("outcome") == "refuse"
    )


def tenant_standing(approval: str, expires_at: datetime | None, now: datetime) -> str:
    """Why a tenant with standing ``approval`` may not run work at ``now``, in words a
    tenant may read (never the stored reason, which may quote list entries or scores)."""
    expired = expires_at is not None and expires_at <= now
    if approval == "approved" and expired and expires_at is not None:
        return f"approval expired on {expires_at:%Y-%m-%d}"
    if approval == "suspended":
        if expired and expires_at is not None:
            return f"approval expired on {expires_at:%Y-%m-%d}; {SUSPENDED}"
        return SUSPENDED
    if approval == "rejected":
        return REJECTED
    if approval == "approved":
        return "approved"
    return NEVER_APPROVED


@dataclass(frozen=True, slots=True)
class TenantPolicyView:
    as_of: str
    prohibited_end_uses: tuple[str, ...]
    identification_required_of_foreign_customers: tuple[str, ...]
    identification_required_of_all_customers: tuple[str, ...]


def tenant_policy_view(policy: EffectivePolicy) -> TenantPolicyView:
    """The policy in force as a tenant may read it: what is prohibited and what to supply."""
    return TenantPolicyView(
        as_of=policy.as_of.isoformat(),
        prohibited_end_uses=tuple(sorted(_PROHIBITED_BY_VOCABULARY | policy.prohibited_end_uses)),
        identification_required_of_foreign_customers=policy.required_customer_fields(foreign=True),
        identification_required_of_all_customers=policy.required_customer_fields(foreign=False),
    )
