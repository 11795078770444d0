"""The approval procedure over HTTP and the CLI: onboarding, screening, an officer's
decision, admission by end use, list imports that re-screen."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from e2e_support import Server, run_cli

LISTS = Path(__file__).resolve().parents[3] / "shared" / "lists"


def _client(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/api/v1", timeout=60, headers={"Authorization": f"Bearer {token}"}
    )


def test_onboarding_screening_decision_and_admission(demo_server: Server) -> None:
    with demo_server.client("operator") as op:
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
    with (
        _client(demo_server, made.json()["token"]) as quant,
        demo_server.client("compliance") as officer,
    ):
        refused = quant.post(
            "/jobs",
            json={"gpus": 4, "purpose": "financial AI", "command": "train", "duration_s": 1},
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "not_approved"
        case = quant.post(
            "/kyc/cases",
            json={
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
                    {
                        "ref": "v",
                        "party": {"name": "Harbour Ventures", "countries": ["SG"]},
                        "percent": 30,
                    },
                ],
                "officers": [
                    {"party": {"name": "Quant founder", "kind": "person"}, "role": "director"}
                ],
                "identification": {
                    "name": "Quant Lab",
                    "address": "Singapore",
                    "national_or_registration_id": "SG-2022-0007",
                    "payment_means": "card",
                    "payment_source": "Quant Lab",
                    "emails": ["a@quant.example"],
                    "phone_numbers": ["+65 0"],
                },
            },
        )
        assert case.status_code == 201, case.text
        body = case.json()
        assert body["state"] == "needs_review"
        assert body["status"] == "under review by the compliance team"
        assert "verdict" not in body  # the screening is for officers
        screened = officer.get(f"/kyc/cases/{body['id']}").json()
        assert screened["verdict"] == "clear"
        assert screened["policy_versions"]
        assert (
            quant.post(f"/kyc/cases/{body['id']}/approve", json={"reason": "self"}).status_code
            == 403
        )
        approved = officer.post(
            f"/kyc/cases/{body['id']}/approve",
            json={"reason": "verified", "end_uses": ["financial-services-ai"]},
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["state"] == "approved"
        outside = quant.post(
            "/jobs",
            json={"gpus": 4, "purpose": "drug discovery", "command": "dock", "duration_s": 1},
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
            json={
                "gpus": 4,
                "purpose": "financial AI: pricing",
                "command": "train",
                "duration_s": 1,
            },
        )
        assert inside.status_code == 201, inside.text
        trail = officer.get(
            "/audit", params={"subject_type": "tenant", "subject_id": tenant["id"]}
        ).json()
        actions = [r["action"] for r in reversed(trail)]
        steps = [a for a in actions if a.startswith("kyc.")]
        assert steps == [
            "kyc.submit",
            "kyc.screening",
            "kyc.needs_review",
            "kyc.approve",
            "kyc.approved",
        ]


def test_list_import_over_http_rescreens_and_refuses_bad_files(demo_server: Server) -> None:
    sample = (LISTS / "csl-legacy-sample.csv").read_bytes()
    with demo_server.client("compliance") as officer, demo_server.client("bank") as bank:
        first = officer.post(
            "/lists",
            files=[("files", ("csl.csv", sample))],
            data={"format": "csl-csv", "label": "legacy sample"},
        )
        assert first.status_code == 201, first.text
        report = first.json()
        assert report["snapshot"]["entries"] == 115
        assert len(report["rescreened"]) >= 3
        assert {r["outcome"] for r in report["rescreened"]} <= {
            "unchanged",
            "reopened",
            "suspended",
        }
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
        assert len(officer.get("/lists").json()) == 1  # nothing half-written
        assert (
            bank.post(
                "/lists", files=[("files", ("csl.csv", sample))], data={"format": "csl-csv"}
            ).status_code
            == 403
        )


def test_cli_for_officers(demo_server: Server, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        GPULEASE_URL=demo_server.url,
        GPULEASE_TOKEN=demo_server.tokens["compliance"],
        COLUMNS="200",
    )

    def cli(*args: str) -> str:
        return run_cli(env, *args).stdout

    out = cli("lists", "import", str(LISTS / "bis-denied-persons.tsv"), "--format", "bis-dpl")
    assert "bis-dpl" in out
    assert "579 entries" in out
    assert "bis-dpl" in cli("lists", "list")
    assert "approved" in cli("kyc", "list")
    suspended = cli("policy", "--as-of", "2026-01-01")
    assert "us-affiliates-rule-2025" in suspended
    assert "suspended" in suspended
    assert "prohibited" in cli("end-uses")


def test_cli_for_tenants_shows_status_not_screening(demo_server: Server) -> None:
    env = dict(
        os.environ,
        GPULEASE_URL=demo_server.url,
        GPULEASE_TOKEN=demo_server.tokens["bank"],
        COLUMNS="200",
    )

    def cli(*args: str) -> str:
        return run_cli(env, *args).stdout

    listed = cli("kyc", "list")
    assert "approved for financial-services-ai until" in listed
    assert "verdict" not in listed
    [case] = json_rows(cli("kyc", "list", "--json"))
    shown = cli("kyc", "show", case["id"])
    assert "approved end uses: financial-services-ai" in shown
    for internal in ("verdict", "score", "policy in force", "clear"):
        assert internal not in shown
    policy = cli("policy")
    assert "prohibited" in policy
    assert "military-end-use" in policy
    assert "baseline" not in policy  # the packs and their rules are for operator staff


def json_rows(text: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(text)
    return rows
