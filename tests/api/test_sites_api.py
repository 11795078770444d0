"""Several sites over HTTP (in-process app, both databases): a case shows its tenant's
admission at every site, a job naming no site is dispatched with a reason for every other
site, a job no named site can take is refused with each reason, the sites report; and the
CLI's views of them (issue 19)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from gpulease.cli import compliance as cli_compliance
from gpulease.cli import remote as cli_remote
from gpulease.domain.access import Principal
from gpulease.services import demo_sites
from gpulease.services.context import ServiceContext

AsUser = Callable[[str], TestClient]
JOB = {"gpus": 8, "purpose": "financial-services-ai", "command": "train", "duration_s": 60}


@pytest.fixture
def regional(ctx: ServiceContext, operator: Principal) -> list[str]:
    return demo_sites.add_regional_sites(ctx, operator)


def printed(render: Any, monkeypatch: pytest.MonkeyPatch, module: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    monkeypatch.setattr(module, "stdout", lambda: console)
    render()
    return console.export_text()


def test_a_case_lists_admission_per_site_for_officers_and_the_tenant(
    as_user: AsUser, regional: list[str], inftech: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = as_user("compliance").get("/kyc/cases").json()
    [case_id] = [c["id"] for c in cases if c["tenant_id"] == inftech.tenant_id]
    assert all(c["sites"] == [] for c in cases)  # listings stay light
    for who in ("compliance", "inftech"):
        body = as_user(who).get(f"/kyc/cases/{case_id}").json()
        found = {s["site_id"]: s for s in body["sites"]}
        assert {s: f["admitted"] for s, f in found.items()} == {
            "bkk1": True,
            "jhb1": False,
            "jkt1": True,
            "sgp1": True,
        }
        assert found["jhb1"]["rule"] == (
            "my-strategic-trade-2010@1/ai-chips-suspected-restricted-activity"
        )
        assert found["jhb1"]["timezone"] == "Asia/Kuala_Lumpur"
    text = printed(lambda: cli_compliance._show(body), monkeypatch, cli_compliance)
    assert "admission per site:" in text
    assert "jkt1 (ID): admitted" in text
    assert "jhb1 (MY): held at jhb1: tenant not admitted under pack my-strategic-trade-2010@1" in (
        " ".join(text.split())
    )


def test_dispatch_over_http_and_job_show(
    as_user: AsUser, regional: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inf = as_user("inftech")
    made = inf.post("/jobs", json=JOB)
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["site_id"] == "jkt1"
    assert job["dispatch"]["start"] == "now_on_lease"
    assert {p["site_id"] for p in job["dispatch"]["passed"]} == {"sgp1", "jhb1", "bkk1"}
    shown = inf.get(f"/jobs/{job['id']}").json()
    assert shown["dispatch"] == job["dispatch"]
    text = " ".join(printed(lambda: cli_remote.show_job(shown), monkeypatch, cli_remote).split())
    assert "dispatched jkt1: admitted; it starts now on the tenant's lease there" in text
    assert "not chosen jhb1: held at jhb1: tenant not admitted under pack" in text
    gang = {**JOB, "gpus": 72, "topology": "required", "gpus_per_node": 8}
    refused = inf.post("/jobs", json={**gang, "sites": ["jhb1", "bkk1"]})
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_approved"
    assert set(refused.json()["details"]["sites"]) == {"jhb1", "bkk1"}
    named = inf.post("/jobs", json={**JOB, "site_id": "sgp1"}).json()
    assert (named["site_id"], named["dispatch"]) == ("sgp1", None)
    bad = inf.post("/jobs", json={**JOB, "sites": ["sgp1"] * 33})
    assert bad.status_code == 422


def test_the_sites_report_over_http(as_user: AsUser, regional: list[str]) -> None:
    body = as_user("compliance").get("/reports/sites", params={"country": "MY"}).json()
    assert [s["site_id"] for s in body["sites"]] == ["jhb1"]
    assert body["scope"] == {"country": "MY"}
    assert (
        as_user("compliance").get("/reports/sites", params={"site_id": "nowhere"}).status_code
        == 404
    )
    assert as_user("inftech").get("/reports/sites").status_code == 403
