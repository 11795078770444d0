"""Countries at the edge and in screening, over the in-process API on the demo (SQLite and
PostgreSQL): names and alpha-3 are stored as alpha-2, an unknown country is a 422 naming the
field with the nearest countries, a case from a high-risk country is flagged (defect 5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

AsUser = Callable[[str], TestClient]


def _case(countries: list[str], address_country: str = "") -> dict[str, Any]:
    return {
        "organization": {
            "name": "Parsian Compute",
            "countries": countries,
            "addresses": [{"city": "Somewhere", "country": address_country}],
        },
        "end_uses": ["financial-services-ai"],
    }


def _new_tenant(as_user: AsUser, country: str) -> dict[str, Any]:
    made = as_user("operator").post(
        "/tenants", json={"name": "Parsian Compute", "country": country, "kind": "lab"}
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_a_country_name_or_alpha_3_is_stored_as_its_code(as_user: AsUser) -> None:
    assert _new_tenant(as_user, "Indonesia")["country"] == "ID"
    assert _new_tenant(as_user, "sgp")["country"] == "SG"


def test_an_unknown_country_is_a_422_naming_the_field(as_user: AsUser) -> None:
    operator = as_user("operator")
    before = len(operator.get("/tenants").json())
    refused = operator.post("/tenants", json={"name": "X", "country": "Indonsia", "kind": "x"})
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["details"]["field"] == "country"
    assert "did you mean ID (Indonesia)" in error["message"]
    assert len(operator.get("/tenants").json()) == before
    tenant = _new_tenant(as_user, "IR")
    bad = operator.post("/kyc/cases", json=_case(["IR"], "Persia") | {"tenant_id": tenant["id"]})
    assert bad.status_code == 422, bad.text
    assert bad.json()["details"]["field"].startswith("organization.addresses")


def test_a_tenant_in_a_high_risk_country_is_flagged_whatever_its_spelling(
    as_user: AsUser,
) -> None:
    for spelling in ("IR", "Iran"):
        tenant = _new_tenant(as_user, spelling)
        made = as_user("operator").post(
            "/kyc/cases", json=_case([spelling], "Iran") | {"tenant_id": tenant["id"]}
        )
        assert made.status_code == 201, made.text
        case = made.json()
        assert case["verdict"] in ("review", "block")
        assert any(
            "the organisation itself is in Iran (IR), a high-risk country" in r
            for r in case["screening"]["reasons"]
        ), case["screening"]["reasons"]
