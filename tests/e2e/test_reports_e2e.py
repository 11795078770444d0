"""Disclosure reports over HTTP from the real server, as JSON and as HTML pages, and the
``gpulease report`` command against it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
from e2e_support import Server, run_cli, wait_for

PURPOSE = "health-research: protein structure"


def _tenant_id(client: httpx.Client, name: str) -> str:
    tenants = client.get("/tenants").json()
    return str(next(t["id"] for t in tenants if t["name"] == name))


def _run_job(server: Server) -> dict[str, Any]:
    with server.client("inftech") as tenant:
        response = tenant.post(
            "/jobs",
            json={"gpus": 8, "purpose": PURPOSE, "command": "train", "duration_s": 0.5},
        )
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        return dict(
            wait_for(
                lambda: (j := tenant.get(f"/jobs/{job_id}").json())["state"] == "succeeded" and j,
                30,
                f"job {job_id} to succeed",
            )
        )


def _serial(server: Server, job: dict[str, Any]) -> str:
    """A serial of a GPU the job ran on: its first node (from the job's start record), the
    slot whose provenance names the job."""
    with server.client("compliance") as officer:
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


def test_reports_as_json_and_html(demo_server: Server) -> None:
    job = _run_job(demo_server)
    with demo_server.client("compliance") as officer:
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
        assert report["access"], "the tenant's requests were recorded with their IP"
        assert report["access"][0]["ip"] == "127.0.0.1"

        page = officer.get(f"/reports/tenants/{inftech}/disclosure", params={"format": "html"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "End-user disclosure: INF Tech" in page.text
        assert case["verdict"] in page.text
        browser = officer.get(
            f"/reports/tenants/{inftech}/disclosure", headers={"Accept": "text/html,*/*"}
        )
        assert browser.headers["content-type"].startswith("text/html")

        serial = _serial(demo_server, job)
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
        assert officer.get("/reports/large-runs").json()["threshold_sci"] == "1.000e+26"
        runs_page = officer.get("/reports/large-runs", params={"format": "html"})
        assert runs_page.headers["content-type"].startswith("text/html")
        assert "Large training runs" in runs_page.text
        bad = officer.get("/reports/large-runs", params={"threshold": "lots"})
        assert bad.status_code == 422
        assert officer.get("/reports/gpus/NO-SUCH-GPU").status_code == 404

    with demo_server.client("inftech") as tenant:
        for path in (
            f"/reports/tenants/{inftech}/disclosure",
            f"/reports/gpus/{serial}",
            "/reports/large-runs",
        ):
            denied = tenant.get(path)
            assert denied.status_code == 403, path
            assert denied.json()["code"] == "denied"


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
