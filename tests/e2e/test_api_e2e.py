"""The real server over HTTP, on SQLite and on PostgreSQL: leases, jobs, isolation,
idempotency, validation, concurrency."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from e2e_support import Server, wait_for


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ended(client: httpx.Client, job_id: str, timeout: float = 30) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (
                (j := _job(client, job_id))["state"] in ("succeeded", "failed", "cancelled") and j
            ),
            timeout,
            f"job {job_id} to end",
        )
    )


def _window(days_from_now: float, days: float) -> dict[str, str]:
    start = datetime.now(UTC) + timedelta(days=days_from_now)
    return {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}


def test_health_and_openapi(demo_server: Server) -> None:
    health = demo_server.health()
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    # the scheduler runs in its own process: the API reports it from the database
    assert health["this_process_leads"] is False
    assert demo_server.scheduler is not None
    wait_for(lambda: demo_server.health()["schedulers"], 10, "a scheduler heartbeat")
    health = demo_server.health()
    assert health["leader"]
    assert health["leader_expired"] is False
    assert health["schedulers"][0]["stale"] is False
    spec = httpx.get(demo_server.url + "/api/v1/openapi.json").json()
    for path in (
        "/api/v1/leases",
        "/api/v1/leases/{lease_id}",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/nodes",
        "/api/v1/health",
    ):
        assert path in spec["paths"], path


def test_interactive_docs_are_served_without_a_cdn(demo_server: Server) -> None:
    page = httpx.get(demo_server.url + "/api/v1/docs")
    assert page.status_code == 200
    assert "/api/v1/openapi.json" in page.text
    assert "cdn." not in page.text  # everything the page loads comes from this server
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    for source in sources:
        assert source.startswith("/api/v1/docs/assets/"), source
        asset = httpx.get(demo_server.url + source)
        assert asset.status_code == 200, source
        assert asset.content, source
    script = httpx.get(demo_server.url + "/api/v1/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in script.text


def test_demo_site_is_the_reference_case(demo_server: Server) -> None:
    with demo_server.client("operator") as op:
        nodes = op.get("/nodes").json()
        leases = op.get("/leases").json()
    assert len(nodes) == 32 * 18
    assert sum(n["gpus"] for n in nodes) == 2304
    assert len({n["rack_id"] for n in nodes}) == 32
    assert sorted(lease["gpus"] for lease in leases) == [64, 128, 576]
    assert {lease["state"] for lease in leases} == {"active"}


def test_lease_lifecycle(demo_server: Server) -> None:
    with demo_server.client("university") as uni, demo_server.client("operator") as op:
        created = uni.post("/leases", json={"gpus": 72, **_window(10, 30)})
        assert created.status_code == 201, created.text
        lease = created.json()
        assert lease["state"] == "requested"
        assert lease["price"] == f"{72 * 30 * 24 * 3.5:.2f}"  # 72 GPUs x 720 h x 3.50
        refused = uni.post(f"/leases/{lease['id']}/approve")
        assert refused.status_code == 403
        assert refused.json()["code"] == "denied"
        approved = op.post(f"/leases/{lease['id']}/approve", json={"reason": "KYC passed"})
        assert approved.status_code == 200
        assert approved.json()["state"] == "scheduled"  # window starts in 10 days
        assert uni.get(f"/leases/{lease['id']}").json()["state"] == "scheduled"
        no_reason = op.post(f"/leases/{lease['id']}/cancel", json={"reason": ""})
        assert no_reason.status_code == 422
        assert no_reason.json()["details"]["field"] == "reason"
        cancelled = uni.post(f"/leases/{lease['id']}/cancel", json={"reason": "plans changed"})
        assert cancelled.json()["state"] == "cancelled"
        again = op.post(f"/leases/{lease['id']}/approve")
        assert again.status_code == 409
        assert again.json()["code"] == "invalid_transition"


def test_overselling_is_refused_with_the_instant(demo_server: Server) -> None:
    with demo_server.client("bank") as bank:
        before = len(bank.get("/leases").json())
        # 768 GPUs are leased by the demo; 2,304 - 768 = 1,536 remain.
        response = bank.post("/leases", json={"gpus": 1537, **_window(0.01, 7)})
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["code"] == "insufficient_capacity"
        assert "1,536 of 2,304 GPUs are free" in body["message"]
        assert len(bank.get("/leases").json()) == before  # nothing half-written


def test_job_lifecycle_on_the_simulated_executor(demo_server: Server) -> None:
    with demo_server.client("inftech") as inf:
        response = inf.post(
            "/jobs",
            json={
                "gpus": 64,
                "topology": "required",
                "purpose": "financial AI",
                "command": "python train.py",
                "duration_s": 1,
            },
        )
        assert response.status_code == 201, response.text
        job = response.json()
        assert job["state"] == "queued"
        assert job["wait_reason"]
        running = wait_for(
            lambda: (j := _job(inf, job["id"]))["state"] != "queued" and j, 20, "the job to start"
        )
        assert running["starts"] == 1
        done = _ended(inf, job["id"])
        assert done["state"] == "succeeded"
        assert done["exit_code"] == 0
        serials = [s for part in done["allocation"] for s in part["gpu_serials"]]
        assert len(serials) == len(set(serials)) == 64
        assert len({part["node_id"].rsplit("-", 1)[0] for part in done["allocation"]}) == 1
        logs = inf.get(f"/jobs/{job['id']}/logs").json()
        assert "python train.py" in logs["text"]
        assert "exit 0" in logs["text"]


def test_cancel_a_queued_and_a_running_job(demo_server: Server) -> None:
    with demo_server.client("bank") as bank:
        long = bank.post(
            "/jobs",
            json={
                "gpus": 8,
                "purpose": "financial AI: credit risk models",
                "command": "run",
                "duration_s": 3600,
            },
        ).json()
        wait_for(lambda: _job(bank, long["id"])["state"] == "running", 20, "start")
        cancelled = bank.post(f"/jobs/{long['id']}/cancel", json={"reason": "wrong data"})
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["end_reason"] == "wrong data"
        twice = bank.post(f"/jobs/{long['id']}/cancel")  # idempotent: the job as it is
        assert twice.status_code == 200
        assert twice.json()["state"] == "cancelled"
        assert twice.json()["end_reason"] == "wrong data"


def test_tenant_isolation(demo_server: Server) -> None:
    with (
        demo_server.client("inftech") as inf,
        demo_server.client("bank") as bank,
        demo_server.client("operator") as op,
    ):
        job = inf.post(
            "/jobs",
            json={"gpus": 4, "purpose": "drug discovery", "command": "dock", "duration_s": 600},
        ).json()
        lease = inf.get("/leases").json()[0]
        for path in (f"/jobs/{job['id']}", f"/jobs/{job['id']}/logs", f"/leases/{lease['id']}"):
            other = bank.get(path)
            assert other.status_code == 404, path
            assert other.json()["code"] == "not_found"
        assert bank.post(f"/jobs/{job['id']}/cancel").status_code == 404
        # the answer for another tenant's job is the answer for a job that does not exist
        real = bank.get(f"/jobs/{job['id']}").json()
        ghost = bank.get("/jobs/job-000000000000").json()
        assert real == {
            "code": "not_found",
            "message": f"no job {job['id']!r}",
            "details": {"job_id": job["id"]},
        }
        assert ghost["message"] == "no job 'job-000000000000'"
        assert job["id"] not in {j["id"] for j in bank.get("/jobs").json()}
        assert {lease["tenant_id"] for lease in bank.get("/leases").json()} == {
            bank.get("/me").json()["tenant_id"]
        }
        assert job["id"] in {j["id"] for j in op.get("/jobs", params={"limit": 5000}).json()}
        assert _job(inf, job["id"])["state"] in ("queued", "running")
        inf.post(f"/jobs/{job['id']}/cancel")


def test_idempotent_retries(demo_server: Server) -> None:
    key = str(uuid.uuid4())
    body = {
        "gpus": 4,
        "purpose": "financial AI: fraud detection",
        "command": "train",
        "duration_s": 1,
    }
    with demo_server.client("bank") as bank:
        first = bank.post("/jobs", json=body, headers={"Idempotency-Key": key})
        second = bank.post("/jobs", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]
        ids = [j["id"] for j in bank.get("/jobs", params={"limit": 5000}).json()]
        assert ids.count(first.json()["id"]) == 1
        changed = bank.post("/jobs", json=body | {"gpus": 8}, headers={"Idempotency-Key": key})
        assert changed.status_code == 422
        assert changed.json()["code"] == "idempotency_mismatch"
        lease_key = str(uuid.uuid4())
        lease_body = {"gpus": 8, **_window(20, 1)}
        a = bank.post("/leases", json=lease_body, headers={"Idempotency-Key": lease_key})
        b = bank.post("/leases", json=lease_body, headers={"Idempotency-Key": lease_key})
        assert a.status_code == 201
        assert a.json()["id"] == b.json()["id"]


def test_invalid_input_names_the_field_and_writes_nothing(demo_server: Server) -> None:
    with demo_server.client("university") as uni:
        before = len(uni.get("/jobs", params={"limit": 5000}).json())
        cases = [
            ({"gpus": 0, "purpose": "education", "command": "y"}, "gpus"),
            ({"gpus": 4, "command": "y"}, "purpose"),
            ({"gpus": 4, "purpose": "education", "command": "y", "colour": "red"}, "colour"),
            ({"gpus": 4, "purpose": "education", "command": "y", "topology": "tight"}, "topology"),
            (
                {"gpus": 6, "purpose": "education", "command": "y", "gpus_per_node": 4},
                "gpus_per_node",
            ),
            ({"gpus": 80, "purpose": "education", "command": "y", "topology": "required"}, "gpus"),
            ({"gpus": 4, "purpose": "education"}, "command"),
            (
                {"gpus": 4, "purpose": "education", "command": "y", "lease_id": "lease-nope"},
                "lease_id",
            ),
        ]
        for body, field in cases:
            response = uni.post("/jobs", json=body)
            assert response.status_code == 422, (body, response.text)
            error = response.json()
            assert set(error) == {"code", "message", "details"}
            assert error["code"] == "invalid_request"
            assert error["details"]["field"] == field, (body, error)
        assert "never fits" in uni.post("/jobs", json=cases[5][0]).json()["message"]
        assert len(uni.get("/jobs", params={"limit": 5000}).json()) == before
    anonymous = httpx.get(demo_server.url + "/api/v1/jobs")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthenticated"
    forged = httpx.get(
        demo_server.url + "/api/v1/jobs", headers={"Authorization": "Bearer glt_forged"}
    )
    assert forged.status_code == 401


def test_concurrent_submissions_from_many_clients(demo_server: Server) -> None:
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client_work(n: int) -> None:
        with demo_server.client("university") as uni:
            for i in range(5):
                response = uni.post(
                    "/jobs",
                    json={
                        "gpus": 1,
                        "purpose": "education",
                        "command": f"c{n}-{i}",
                        "duration_s": 0.5,
                    },
                    headers={"Idempotency-Key": f"conc-{n}-{i}"},
                )
                with lock:
                    results.append((response.status_code, response.json().get("id", "")))

    threads = [threading.Thread(target=client_work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [code for code, _ in results] == [201] * 80
    ids = {job_id for _, job_id in results}
    assert len(ids) == 80
    with demo_server.client("university") as uni:
        for job_id in list(ids)[:5]:
            assert _ended(uni, job_id, 60)["state"] == "succeeded"
