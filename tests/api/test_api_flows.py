"""The API's main flows over the in-process app, on SQLite and PostgreSQL: the demo site,
leases, jobs on the simulated executor (scheduler passes run by hand), isolation,
idempotency, validation, and the docs page's files.

What a real server adds (uvicorn, a scheduler process, concurrent clients) is in
tests/e2e/test_api_e2e.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.services.scheduling import LiveScheduler

AsUser = Callable[[str], TestClient]


def _job(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _window(clock: ManualClock, days_from_now: float, days: float) -> dict[str, str]:
    start = clock.now() + timedelta(days=days_from_now)
    return {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}


def test_openapi_lists_the_main_paths(as_user: AsUser) -> None:
    spec = as_user("bank").get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
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


def test_interactive_docs_are_served_without_a_cdn(api: Callable[[str | None], TestClient]) -> None:
    """Every file the page names is served by the app itself, and it is Swagger UI 5 (which
    reads OpenAPI 3.1; 3.x and 4.x answer "Unable to render this definition"). The page in a
    real browser: tests/e2e/test_docs_browser.py."""
    anyone = api(None)
    page = anyone.get("/docs")
    assert page.status_code == 200
    assert "/api/v1/openapi.json" in page.text
    assert "cdn." not in page.text  # everything the page loads comes from this server
    assert "http://" not in page.text
    assert "https://" not in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(sources) >= 3  # script, style, icon
    for source in sources:
        assert source.startswith("/api/v1/docs/assets/"), source
        asset = anyone.get(source.removeprefix("/api/v1"))
        assert asset.status_code == 200, source
        assert asset.content, source
    script = anyone.get("/docs/assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in script
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.\d+\.\d+"', script)
    assert version is not None
    assert int(version.group(1)) >= 5


def test_demo_site_is_the_reference_case(as_user: AsUser) -> None:
    op = as_user("operator")
    nodes = op.get("/nodes").json()
    leases = op.get("/leases").json()
    assert len(nodes) == 32 * 18
    assert sum(n["gpus"] for n in nodes) == 2304
    assert len({n["rack_id"] for n in nodes}) == 32
    assert sorted(lease["gpus"] for lease in leases) == [64, 128, 576]
    assert {lease["state"] for lease in leases} == {"active"}


def test_lease_lifecycle(as_user: AsUser, clock: ManualClock) -> None:
    uni, op = as_user("university"), as_user("operator")
    created = uni.post("/leases", json={"gpus": 72, **_window(clock, 10, 30)})
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


def test_overselling_is_refused_with_the_instant(as_user: AsUser, clock: ManualClock) -> None:
    bank = as_user("bank")
    before = len(bank.get("/leases").json())
    # 768 GPUs are leased by the demo; 2,304 - 768 = 1,536 remain.
    response = bank.post("/leases", json={"gpus": 1537, **_window(clock, 0.01, 7)})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "insufficient_capacity"
    assert "1,536 of 2,304 GPUs are free" in body["message"]
    assert len(bank.get("/leases").json()) == before  # nothing half-written


def test_job_lifecycle_on_the_simulated_executor(
    as_user: AsUser, scheduler: LiveScheduler, clock: ManualClock
) -> None:
    inf = as_user("inftech")
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
    scheduler.tick()
    running = _job(inf, job["id"])
    assert running["state"] == "running"
    assert running["starts"] == 1
    clock.advance(2)
    scheduler.tick()
    done = _job(inf, job["id"])
    assert done["state"] == "succeeded"
    assert done["exit_code"] == 0
    serials = [s for part in done["allocation"] for s in part["gpu_serials"]]
    assert len(serials) == len(set(serials)) == 64
    assert len({part["node_id"].rsplit("-", 1)[0] for part in done["allocation"]}) == 1
    logs = inf.get(f"/jobs/{job['id']}/logs").json()
    assert "python train.py" in logs["text"]
    assert "exit 0" in logs["text"]


def test_cancel_a_queued_and_a_running_job(
    as_user: AsUser, scheduler: LiveScheduler, executor: SimulatedExecutor
) -> None:
    bank = as_user("bank")
    body = {
        "gpus": 8,
        "purpose": "financial AI: credit risk models",
        "command": "run",
        "duration_s": 3600,
    }
    queued = bank.post("/jobs", json=body).json()
    dropped = bank.post(f"/jobs/{queued['id']}/cancel", json={"reason": "typo"})
    assert dropped.status_code == 200
    assert dropped.json()["state"] == "cancelled"
    long = bank.post("/jobs", json=body).json()
    scheduler.tick()
    assert _job(bank, long["id"])["state"] == "running"
    cancelled = bank.post(f"/jobs/{long['id']}/cancel", json={"reason": "wrong data"})
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["end_reason"] == "wrong data"
    twice = bank.post(f"/jobs/{long['id']}/cancel")  # idempotent: the job as it is
    assert twice.status_code == 200
    assert twice.json()["state"] == "cancelled"
    assert twice.json()["end_reason"] == "wrong data"
    scheduler.tick()  # the pass stops the cancelled run
    assert executor.active() == set()


def test_tenant_isolation(as_user: AsUser) -> None:
    inf, bank, op = as_user("inftech"), as_user("bank"), as_user("operator")
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
    assert _job(inf, job["id"])["state"] == "queued"


def test_idempotent_retries(as_user: AsUser, clock: ManualClock) -> None:
    key = str(uuid.uuid4())
    body = {
        "gpus": 4,
        "purpose": "financial AI: fraud detection",
        "command": "train",
        "duration_s": 1,
    }
    bank = as_user("bank")
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
    lease_body = {"gpus": 8, **_window(clock, 20, 1)}
    a = bank.post("/leases", json=lease_body, headers={"Idempotency-Key": lease_key})
    b = bank.post("/leases", json=lease_body, headers={"Idempotency-Key": lease_key})
    assert a.status_code == 201
    assert a.json()["id"] == b.json()["id"]


def test_invalid_input_names_the_field_and_writes_nothing(
    as_user: AsUser, api: Callable[[str | None], TestClient]
) -> None:
    uni = as_user("university")
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
    anonymous = api(None).get("/jobs")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthenticated"
    assert api("glt_forged").get("/jobs").status_code == 401
