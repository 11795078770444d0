"""The approval procedure over HTTP and the CLI: onboarding, screening, an officer's
decision, admission by end use, list imports that re-screen."""

from __future__ import annotations

import json
import lzma
import os
from pathlib import Path

import httpx
from e2e_support import Server, run_cli

from gpulease.data import read_bytes, shipped_lists

FIXTURES = Path(__file__).resolve().parents[1] / "compliance" / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# `gpulease init --demo` imported the shipped OFAC SDN, CSL legacy sample and BIS lists


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
    sample = read_bytes(shipped_lists() / "csl-consolidated-sample.csv.xz")
    with demo_server.client("compliance") as officer, demo_server.client("bank") as bank:
        before = officer.get("/lists").json()
        assert {s["source"] for s in before} == {"ofac-sdn", "csl", "bis-dpl"}  # the demo's
        first = officer.post(
            "/lists",
            files=[("files", ("csl.csv", sample))],
            data={"format": "csl-csv", "label": "legacy sample"},
        )
        assert first.status_code == 201, first.text
        report = first.json()
        assert report["snapshot"]["entries"] == 13
        assert report["replaces"] == next(s["id"] for s in before if s["source"] == "csl")
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
        assert len(officer.get("/lists").json()) == len(before) + 1  # nothing half-written
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

    # the CLI reads a compressed file itself and uploads its content
    packed = tmp_path / "opensanctions.ftm.jsonl.xz"
    packed.write_bytes(lzma.compress((FIXTURES / "opensanctions-sample.ftm.jsonl").read_bytes()))
    out = cli("lists", "import", str(packed), "--format", "opensanctions")
    assert "opensanctions" in out
    assert "5 entries" in out
    assert "opensanctions" in cli("lists", "list")
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


def test_example_cases_submit_with_the_cli(demo_server: Server) -> None:
    """``examples/case.json`` is a valid case for ``gpulease kyc submit``: screened against
    the lists ``init --demo`` imported, it comes out clear; ``examples/case-listed-owner.json``
    (60 % owned by an SDN entry) comes out blocked, naming the owner and the 50 % rule."""
    with demo_server.client("operator") as op:
        borneo = op.post(
            "/tenants", json={"name": "Borneo Climate Analytics", "country": "ID", "kind": "ai"}
        ).json()
        gulf = op.post(
            "/tenants", json={"name": "Gulf Harbour Compute", "country": "AE", "kind": "ai"}
        ).json()
        made = op.post(
            "/users",
            json={
                "name": "Borneo admin",
                "email": "admin@borneo-climate.example",
                "role": "tenant-admin",
                "tenant_id": borneo["id"],
            },
        )
    tenant_env = dict(os.environ, GPULEASE_URL=demo_server.url, GPULEASE_TOKEN=made.json()["token"])
    operator_env = dict(tenant_env, GPULEASE_TOKEN=demo_server.tokens["operator"])
    officer_env = dict(tenant_env, GPULEASE_TOKEN=demo_server.tokens["compliance"])

    out = run_cli(tenant_env, "kyc", "submit", str(EXAMPLES / "case.json"), "--json").stdout
    submitted = json.loads(out)
    assert (submitted["tenant_id"], submitted["state"]) == (borneo["id"], "needs_review")
    case = json.loads(run_cli(officer_env, "kyc", "show", submitted["id"], "--json").stdout)
    assert len(case["lists_screened"]) >= 3  # the demo's OFAC SDN, CSL and BIS lists
    assert case["verdict"] == "clear", case["screening"]["reasons"]

    listed = EXAMPLES / "case-listed-owner.json"
    out = run_cli(operator_env, "kyc", "submit", str(listed), "--tenant", gulf["id"], "--json")
    case = json.loads(
        run_cli(officer_env, "kyc", "show", json.loads(out.stdout)["id"], "--json").stdout
    )
    assert case["verdict"] == "block"
    assert any(
        "200G PSA HOLDINGS LLC" in r and "ofac-50" in r for r in case["screening"]["reasons"]
    )
