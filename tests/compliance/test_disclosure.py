"""The tenant's view of its compliance standing (pure): states in plain words, what to
supply, and nothing a screening result says beyond customer-field names and refused codes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from gpulease.compliance.disclosure import (
    tenant_case_view,
    tenant_policy_view,
    tenant_standing,
)
from gpulease.compliance.policy import PolicySet

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HIT = {
    "source": "csl",
    "entry_id": "secret-7",
    "listed_name": "Listed Co",
    "score": 91.0,
    "programs": ["SECRETPROG"],
    "features": [{"name": "country_agrees", "detail": "CN", "weight": 3.0}],
}


@dataclass
class Case:
    state: str
    screening: dict[str, Any] | None = None
    end_uses: list[str] = field(default_factory=lambda: ["drug-discovery"])
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    id: str = "kyc-1"
    tenant_id: str = "tenant-1"
    end_use_statement: str = ""
    identification: dict[str, Any] = field(default_factory=dict)
    submitted_at: datetime = NOW


def screening(**extra: Any) -> dict[str, Any]:
    return {
        "verdict": "review",
        "reasons": ["'Our Co' resembles 'Listed Co' of csl secret-7 at 91 (review at 85)"],
        "parties": [{"name": "Our Co", "reason": "at 91 (review at 85)", "hits": [HIT]}],
        "hit_keys": ["csl:secret-7"],
        "missing_fields": [],
        "end_uses": [],
        **extra,
    }


def test_view_keeps_what_to_supply_and_drops_everything_else() -> None:
    case = Case(
        "needs_review",
        screening(
            # a field name, and a string that is none (never passed on)
            missing_fields=["payment_means", "csl secret-7 at 91"],
            end_uses=[{"code": "military-end-use", "outcome": "refuse", "reason": "secret-7"}],
        ),
        end_uses=["drug-discovery", "military-end-use"],
    )
    view = tenant_case_view(case)
    assert view.missing_identification == ("payment_means",)
    assert view.prohibited_end_uses == ("military-end-use",)
    assert view.status == (
        "more information needed: means of payment (card, account); "
        "end uses no approval can allow (prohibited): military-end-use; "
        "under review by the compliance team"
    )
    text = repr(view)
    for secret in ("secret-7", "Listed Co", "91", "85", "SECRETPROG", "country_agrees", "csl"):
        assert secret not in text


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("submitted", "received; being checked by the compliance team"),
        ("screening", "received; being checked by the compliance team"),
        ("needs_review", "under review by the compliance team"),
        ("approved", "approved for drug-discovery until 2027-03-02"),
        ("rejected", "rejected by the compliance team"),
        ("expired", "no longer in force (expired or replaced by a later case)"),
    ],
)
def test_status_in_plain_words(state: str, status: str) -> None:
    case = Case(state, screening(), expires_at=NOW + timedelta(days=365))
    view = tenant_case_view(case)
    assert view.status == status
    assert view.approved_end_uses == (("drug-discovery",) if state == "approved" else ())


def test_standing_never_depends_on_the_stored_reason() -> None:
    later, earlier = NOW + timedelta(days=1), NOW - timedelta(days=1)
    assert tenant_standing("suspended", later, NOW) == (
        "suspended pending review by the compliance team"
    )
    assert tenant_standing("suspended", earlier, NOW) == (
        "approval expired on 2026-03-01; suspended pending review by the compliance team"
    )
    assert tenant_standing("approved", earlier, NOW) == "approval expired on 2026-03-01"
    assert tenant_standing("rejected", None, NOW) == "rejected by the compliance team"
    assert tenant_standing("none", None, NOW) == "no KYC case has been approved"


def test_policy_view_has_no_screening_settings() -> None:
    view = tenant_policy_view(PolicySet.builtin().evaluate(date(2026, 3, 2)))
    assert "military-end-use" in view.prohibited_end_uses
    assert "payment_means" in view.identification_required_of_foreign_customers
    assert "payment_means" not in view.identification_required_of_all_customers
    for internal in ("screening", "ofac", "minority", "threshold", "high-risk", "KP"):
        assert internal not in repr(view)
