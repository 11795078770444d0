"""The real server over HTTP, on SQLite and on PostgreSQL: what only processes show. The API
reports the scheduler process's heartbeat, that process runs a job end to end, and many
clients submit at once through uvicorn's threads. The API's behaviour itself (leases, jobs,
isolation, idempotency, validation) is tested in-process: tests/api/test_api_flows.py."""

from __future__ import annotations

import threading
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
    # the first request builds the document: seconds of CPU on a busy machine
    spec = httpx.get(demo_server.url + "/api/v1/openapi.json", timeout=60).json()
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


def test_the_terminal_shows_requests_and_busy_passes(demo_server: Server) -> None:
    """The API prints a line per request (no token in it) and the scheduler process a line
    per pass that started or ended something, none for idle passes."""
    with demo_server.client("bank") as bank:
        job = bank.post(
            "/jobs",
            json={"gpus": 4, "purpose": "financial AI", "command": "x", "duration_s": 0.5},
        ).json()
        wait_for(lambda: _job(bank, job["id"])["state"] == "succeeded", 30, "the job to end")
    wait_for(lambda: " ended" in demo_server.log.read_text(), 10, "the pass lines")
    ticks = demo_server.health()["schedulers"][0]["ticks"]
    text = demo_server.log.read_text()
    assert '"POST /api/v1/jobs HTTP/1.1" 201' in text
    assert f'"GET /api/v1/jobs/{job["id"]} HTTP/1.1" 200' in text
    assert demo_server.tokens["bank"] not in text
    passes = [line for line in text.splitlines() if "gpulease.scheduler: pass at jkt1" in line]
    assert any("1 started" in line for line in passes)
    assert any("1 ended" in line for line in passes)
    # a pass every 0.2 s since the server started, but lines only for the busy ones
    assert len(passes) <= ticks // 2


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
