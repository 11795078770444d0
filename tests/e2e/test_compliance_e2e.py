"""The approval procedure through the CLI against a real server initialised with
``gpulease init --demo`` (which imports every shipped list): officers' and tenants' commands,
the example cases, and ``gpulease report``. The procedure and the reports over HTTP are
tested in-process: tests/api/test_compliance_flows.py, tests/api/test_reports_flows.py."""

from __future__ import annotations

import json
import lzma
import os
from pathlib import Path

import httpx
from e2e_support import Server, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "compliance" / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# `gpulease init --demo` imported the shipped OFAC SDN, CSL legacy sample and BIS lists


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


def _tenant_id(client: httpx.Client, name: str) -> str:
    tenants = client.get("/tenants").json()
    return str(next(t["id"] for t in tenants if t["name"] == name))


def test_report_command(demo_server: Server, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        GPULEASE_URL=demo_server.url,
        GPULEASE_TOKEN=demo_server.tokens["compliance"],
        GPULEASE_CONFIG=str(tmp_path / "config.json"),
        COLUMNS="200",
    )

    def cli(*args: str) -> str:
        return run_cli(env, "report", *args).stdout

    with demo_server.client("compliance") as officer:
        inftech = _tenant_id(officer, "INF Tech")
    out = cli("disclosure", inftech, "--html", str(tmp_path / "d.html"))
    assert "INF Tech founder (demo)" in out
    assert "End-user disclosure: INF Tech" in (tmp_path / "d.html").read_text()
    report = json.loads(cli("disclosure", inftech, "--json"))
    assert report["tenant"]["id"] == inftech
    out = cli("gpu", "AIV-NVL72-G000000", "--html", str(tmp_path / "g.html"))
    assert "NVIDIA Corporation" in out
    assert "Aivres Systems Inc." in (tmp_path / "g.html").read_text()
    runs = json.loads(cli("large-runs", "--threshold", "1e25", "--json"))
    assert runs["threshold_sci"] == "1.000e+25"
    cli("large-runs", "--html", str(tmp_path / "r.html"))
    assert "Large training runs" in (tmp_path / "r.html").read_text()
