"""Disclosure reports over the in-process app, on SQLite and PostgreSQL, as JSON and as HTML
pages, after a job ran on the simulated executor (a scheduler pass run by hand). The
``gpulease report`` command against a real server: tests/e2e/test_reports_e2e.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock
from gpulease.services.scheduling import LiveScheduler

AsUser = Callable[[str], TestClient]
PURPOSE = "health-research: protein structure"


def _tenant_id(client: TestClient, name: str) -> str:
    return str(next(t["id"] for t in client.get("/tenants").json() if t["name"] == name))


def _run_job(tenant: TestClient, scheduler: LiveScheduler, clock: ManualClock) -> dict[str, Any]:
    response = tenant.post(
        "/jobs", json={"gpus": 8, "purpose": PURPOSE, "command": "train", "duration_s": 0.5}
    )
    assert response.status_code == 201, response.text
    scheduler.tick()
    clock.advance(1)
    scheduler.tick()
    job = tenant.get(f"/jobs/{response.json()['id']}").json()
    assert job["state"] == "succeeded", job
    return dict(job)


def _serial(officer: TestClient, job: dict[str, Any]) -> str:
    """A serial of a GPU the job ran on: its first node (from the job's start record), the
    slot whose provenance names the job."""
    trail = officer.get("/audit", params={"subject_type": "job", "subject_id": job["id"]})
    assert trail.status_code == 200, trail.text
    placement = next(r for r in trail.json() if r["action"] == "job.start")["reason"]
    node_id = placement.split(",")[0].split(":")[0].strip()
    node = next(n for n in officer.get("/nodes").json() if n["id"] == node_id)
    prefix = node["serial"].rsplit("-", 2)[0]  # AIV-NVL72-0001-T01 -> AIV-NVL72
    for slot in range(node["gpus"]):
        serial = f"{prefix}-G{node['index'] * node['gpus'] + slot:06d}"
        usage = officer.get(f"/reports/gpus/{serial}").json()["usage"]
        if any(u["job_id"] == job["id"] for u in usage):
            return serial
    raise AssertionError(f"no GPU of node {node_id} names job {job['id']}")


def test_reports_as_json_and_html(
    as_user: AsUser, scheduler: LiveScheduler, clock: ManualClock
) -> None:
    tenant, officer = as_user("inftech"), as_user("compliance")
    job = _run_job(tenant, scheduler, clock)
    inftech = _tenant_id(officer, "INF Tech")

    response = officer.get(f"/reports/tenants/{inftech}/disclosure")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    report = response.json()
    assert report["tenant"]["name"] == "INF Tech"
    assert {o["owner"] for o in report["ownership"]["owners"]} == {
        "INF Tech founder (demo)",
        "INF Tech employee platform (demo)",
    }
    [case] = report["decisions"]
    assert case["decisions"][0]["policy_packs"]
    purposes = {p["purpose"]: p for p in report["compute"]["by_purpose"]}
    assert purposes[PURPOSE]["gpu_hours"] > 0
    assert report["access"], "the tenant's requests were recorded with their address"
    assert report["access"][0]["ip"] == "testclient"  # the in-process client's peer

    page = officer.get(f"/reports/tenants/{inftech}/disclosure", params={"format": "html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "End-user disclosure: INF Tech" in page.text
    assert case["verdict"] in page.text
    browser = officer.get(
        f"/reports/tenants/{inftech}/disclosure", headers={"Accept": "text/html,*/*"}
    )
    assert browser.headers["content-type"].startswith("text/html")

    serial = _serial(officer, job)
    gpu = officer.get(f"/reports/gpus/{serial}")
    assert gpu.status_code == 200, gpu.text
    provenance = gpu.json()
    assert [e["holder"] for e in provenance["custody"]][:2] == [
        "NVIDIA Corporation",
        "Aivres Systems Inc.",
    ]
    assert any(
        u["job_id"] == job["id"] and u["purpose"] == PURPOSE and u["tenant"] == "INF Tech"
        for u in provenance["usage"]
    )
    gpu_page = officer.get(f"/reports/gpus/{serial}", params={"format": "html"})
    assert gpu_page.headers["content-type"].startswith("text/html")
    assert "Chain of custody" in gpu_page.text

    runs = officer.get("/reports/large-runs", params={"threshold": "1e15"})
    assert runs.status_code == 200, runs.text
    assert job["id"] in {r["job_id"] for r in runs.json()["runs"]}
    assert officer.get("/reports/large-runs").json()["threshold_sci"] == "1.000e+25"  # packs'
    assert (
        officer.get("/reports/large-runs", params={"threshold": "1e26"}).json()["threshold_sci"]
        == "1.000e+26"
    )
    runs_page = officer.get("/reports/large-runs", params={"format": "html"})
    assert runs_page.headers["content-type"].startswith("text/html")
    assert "Large training runs" in runs_page.text
    bad = officer.get("/reports/large-runs", params={"threshold": "lots"})
    assert bad.status_code == 422
    assert officer.get("/reports/gpus/NO-SUCH-GPU").status_code == 404

    for path in (
        f"/reports/tenants/{inftech}/disclosure",
        f"/reports/gpus/{serial}",
        "/reports/large-runs",
    ):
        denied = tenant.get(path)
        assert denied.status_code == 403, path
        assert denied.json()["code"] == "denied"
