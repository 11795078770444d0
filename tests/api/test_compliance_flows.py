"""The approval procedure over the in-process app, on SQLite and PostgreSQL: onboarding,
screening, an officer's decision, admission by end use, and list imports that re-screen.

The officer first imports the shipped CSL sample (the demo's ``csl`` list) over HTTP, so the
cases are screened against a list in force. The same procedure through the CLI and a real
server, against every list ``gpulease init --demo`` imports: tests/e2e/test_compliance_e2e.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpulease.data import read_bytes, shipped_lists

AsUser = Callable[[str], TestClient]
Api = Callable[[str | None], TestClient]


@pytest.fixture
def csl_in_force(as_user: AsUser) -> dict[str, Any]:
    """The officer imports the demo's CSL list (the legacy sample); returns the snapshot."""
    legacy = read_bytes(shipped_lists() / "csl-legacy-sample.csv.xz")
    imported = as_user("compliance").post(
        "/lists", files=[("files", ("csl.csv", legacy))], data={"format": "csl-csv"}
    )
    assert imported.status_code == 201, imported.text
    return dict(imported.json()["snapshot"])


CASE = {
    "organization": {
        "name": "Quant Lab Pte. Ltd.",
        "countries": ["SG"],
        "identifiers": {"registration": "SG-2022-0007"},
    },
    "end_uses": ["financial-services-ai", "drug-discovery"],
    "end_use_statement": "pricing and risk models",
    "owners": [
        {
            "ref": "f",
            "party": {"name": "Quant founder", "kind": "person", "countries": ["SG"]},
            "percent": 70,
        },
        {"ref": "v", "party": {"name": "Harbour Ventures", "countries": ["SG"]}, "percent": 30},
    ],
    "officers": [{"party": {"name": "Quant founder", "kind": "person"}, "role": "director"}],
    "identification": {
        "name": "Quant Lab",
        "address": "Singapore",
        "national_or_registration_id": "SG-2022-0007",
        "payment_means": "card",
        "payment_source": "Quant Lab",
        "emails": ["a@quant.example"],
        "phone_numbers": ["+65 0"],
    },
}


def test_onboarding_screening_decision_and_admission(
    as_user: AsUser, api: Api, csl_in_force: dict[str, Any]
) -> None:
    op, officer = as_user("operator"), as_user("compliance")
    tenant = op.post(
        "/tenants", json={"name": "Quant Lab", "country": "SG", "kind": "ai-startup"}
    ).json()
    made = op.post(
        "/users",
        json={
            "name": "Quant admin",
            "email": "a@quant.example",
            "role": "tenant-admin",
            "tenant_id": tenant["id"],
        },
    )
    quant = api(made.json()["token"])
    refused = quant.post(
        "/jobs", json={"gpus": 4, "purpose": "financial AI", "command": "train", "duration_s": 1}
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_approved"
    case = quant.post("/kyc/cases", json=CASE)
    assert case.status_code == 201, case.text
    body = case.json()
    assert body["state"] == "needs_review"
    assert body["status"] == "under review by the compliance team"
    assert "verdict" not in body  # the screening is for officers
    screened = officer.get(f"/kyc/cases/{body['id']}").json()
    assert screened["verdict"] == "clear"
    assert screened["policy_versions"]
    assert csl_in_force["id"] in screened["lists_screened"]
    assert (
        quant.post(f"/kyc/cases/{body['id']}/approve", json={"reason": "self"}).status_code == 403
    )
    approved = officer.post(
        f"/kyc/cases/{body['id']}/approve",
        json={"reason": "verified", "end_uses": ["financial-services-ai"]},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    outside = quant.post(
        "/jobs", json={"gpus": 4, "purpose": "drug discovery", "command": "dock", "duration_s": 1}
    )
    assert outside.status_code == 403
    assert "drug-discovery" in outside.json()["message"]
    weapons = quant.post(
        "/jobs", json={"gpus": 4, "purpose": "missile-uav", "command": "x", "duration_s": 1}
    )
    assert weapons.status_code == 403
    assert "prohibited" in weapons.json()["message"]
    inside = quant.post(
        "/jobs",
        json={"gpus": 4, "purpose": "financial AI: pricing", "command": "train", "duration_s": 1},
    )
    assert inside.status_code == 201, inside.text
    trail = officer.get(
        "/audit", params={"subject_type": "tenant", "subject_id": tenant["id"]}
    ).json()
    steps = [r["action"] for r in reversed(trail) if r["action"].startswith("kyc.")]
    assert steps == [
        "kyc.submit",
        "kyc.screening",
        "kyc.needs_review",
        "kyc.approve",
        "kyc.approved",
    ]


def test_list_import_over_http_rescreens_and_refuses_bad_files(
    as_user: AsUser, csl_in_force: dict[str, Any]
) -> None:
    sample = read_bytes(shipped_lists() / "csl-consolidated-sample.csv.xz")
    officer, bank = as_user("compliance"), as_user("bank")
    before = officer.get("/lists").json()
    assert [s["id"] for s in before] == [csl_in_force["id"]]
    first = officer.post(
        "/lists",
        files=[("files", ("csl.csv", sample))],
        data={"format": "csl-csv", "label": "legacy sample"},
    )
    assert first.status_code == 201, first.text
    report = first.json()
    assert report["snapshot"]["entries"] == 13
    assert report["replaces"] == csl_in_force["id"]
    assert len(report["rescreened"]) >= 3  # the demo's three tenants
    assert {r["outcome"] for r in report["rescreened"]} <= {"unchanged", "reopened", "suspended"}
    again = officer.post(
        "/lists", files=[("files", ("csl.csv", sample))], data={"format": "csl-csv"}
    )
    assert again.status_code == 409
    broken = officer.post(
        "/lists", files=[("files", ("bad.csv", sample[:300]))], data={"format": "csl-csv"}
    )
    assert broken.status_code == 422
    assert broken.json()["code"] == "invalid_list"
    assert "line" in broken.json()["message"]
    assert len(officer.get("/lists").json()) == len(before) + 1  # nothing half-written
    refused = bank.post(
        "/lists", files=[("files", ("csl.csv", sample))], data={"format": "csl-csv"}
    )
    assert refused.status_code == 403
