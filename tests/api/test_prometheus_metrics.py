"""``/metrics`` scraped through the in-process app and read with Prometheus's own parser; the
JSON request and decision log lines; ``X-Request-ID``.

The figures follow real actions on the demo site: a submission raises its tenant's queue, a
pass raises the pass and step histograms, starts the job (its GPUs counted allocated to the
tenant, idle down by as many), a screening counts its outcome. The scrape needs the token.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gpulease.activity import JsonFormatter
from gpulease.domain.clock import ManualClock
from gpulease.services import metrics
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import Settings

AsUser = Callable[[str], TestClient]
TOKEN = "scrape-" + "s3cret" * 5
METRICS_URL = "http://testserver/metrics"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
JOB = {"gpus": 8, "purpose": "financial AI: credit risk models", "command": "run"}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The suite's settings with a scrape token, and fleet figures read at every scrape."""
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "var",
        preemption_grace_s=30.0,
        metrics_token=TOKEN,
        metrics_cache_s=0,
    )


def scrape(client: TestClient) -> tuple[set[str], Samples]:
    response = client.get(METRICS_URL, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    families: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``."""
    return sum(
        v for (n, got), v in samples.items() if n == name and set(labels.items()) <= set(got)
    )


def test_metrics_answer_only_the_scrape_token(
    api: Callable[[str | None], TestClient], as_user: AsUser
) -> None:
    anonymous = api(None)
    unknown = anonymous.get("http://testserver/no-such-path")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        refused = anonymous.get(METRICS_URL, headers=headers)
        assert refused.status_code == 404
        assert refused.json()["code"] == unknown.json()["code"] == "not_found"
        path_said = unknown.json()["message"].replace("/no-such-path", "/metrics")
        assert refused.json()["message"] == path_said
    # an operator's API token is not the scrape token
    assert as_user("operator").get(METRICS_URL).status_code == 404
    families, _ = scrape(anonymous)
    assert "gpulease_gpus" in families


def test_metrics_without_a_token_set_are_off(ctx_no_token: Callable[[], TestClient]) -> None:
    client = ctx_no_token()
    assert client.get(METRICS_URL).status_code == 404
    assert client.get(METRICS_URL, headers={"Authorization": "Bearer "}).status_code == 404


@pytest.fixture
def ctx_no_token(api: Callable[[str | None], TestClient]) -> Callable[[], TestClient]:
    """An app whose settings name no scrape token."""
    from gpulease.api.app import create_app
    from gpulease.services.context import ServiceContext

    base = api(None).app.state.ctx  # type: ignore[attr-defined]
    app = create_app(
        ctx=ServiceContext(
            base.db,
            settings=base.settings.model_copy(update={"metrics_token": None}),
            clock=base.clock,
            cache=base.cache,
        )
    )
    return lambda: TestClient(app)


def test_figures_follow_submissions_passes_and_screenings(
    api: Callable[[str | None], TestClient], as_user: AsUser, scheduler: LiveScheduler
) -> None:
    scraper = api(None)
    bank = as_user("bank")
    families, before = scrape(scraper)
    for family in (
        "gpulease_gpus",
        "gpulease_gpus_allocated",
        "gpulease_queue_jobs",
        "gpulease_queue_gpus",
        "gpulease_queue_oldest_wait_seconds",
        "gpulease_lease_gpus",
        "gpulease_lease_gpus_used",
        "gpulease_lease_utilisation",
        "gpulease_http_request_duration_seconds",
        "gpulease_http_requests",
        "gpulease_scheduler_pass_seconds",
        "gpulease_scheduler_step_seconds",
        "gpulease_scheduler_decisions",
        "gpulease_screening_decisions",
    ):
        assert family in families, family
    # the shipped Grafana dashboard asks only for families that exist
    dashboard = (Path(__file__).parents[2] / "docs" / "grafana-gpulease.json").read_text()
    asked = {
        re.sub(r"_(bucket|total|count|sum)$", "", n) for n in re.findall(r"gpulease_\w+", dashboard)
    }
    assert asked <= families, asked - families
    assert len(asked) >= 12
    site = "jkt1"
    idle_before = total(before, "gpulease_gpus", site=site, state="idle")
    assert idle_before > 0
    assert value(before, "gpulease_fleet_up") == 1

    job = bank.post("/jobs", json={**JOB, "duration_s": 3600})
    assert job.status_code == 201, job.text
    tenant = job.json()["tenant_id"]
    _, queued = scrape(scraper)
    assert value(queued, "gpulease_queue_jobs", site=site, tenant=tenant) == (
        value(before, "gpulease_queue_jobs", site=site, tenant=tenant) + 1
    )
    assert value(queued, "gpulease_queue_gpus", site=site, tenant=tenant) >= 8
    # the submission's route is counted by its template
    route = {"method": "POST", "route": "/api/v1/jobs", "status": "201"}
    assert total(queued, "gpulease_http_requests_total", **route) == (
        total(before, "gpulease_http_requests_total", **route) + 1
    )

    scheduler.tick()
    _, ran = scrape(scraper)
    assert value(ran, "gpulease_scheduler_pass_seconds_count") == (
        value(before, "gpulease_scheduler_pass_seconds_count") + 1
    )
    assert value(ran, "gpulease_scheduler_step_seconds_count", site=site) == (
        value(before, "gpulease_scheduler_step_seconds_count", site=site) + 1
    )
    assert value(ran, "gpulease_queue_jobs", site=site, tenant=tenant) == value(
        before, "gpulease_queue_jobs", site=site, tenant=tenant
    )
    assert total(ran, "gpulease_gpus_allocated", site=site, tenant=tenant) == (
        total(before, "gpulease_gpus_allocated", site=site, tenant=tenant) + 8
    )
    assert total(ran, "gpulease_gpus", site=site, state="idle") == idle_before - 8
    started = {"site": site, "kind": "started"}
    assert value(ran, "gpulease_scheduler_decisions_total", **started) == (
        value(before, "gpulease_scheduler_decisions_total", **started) + 1
    )
    # its wait from submission to its first start, in its tenant's histogram
    waited = {"tenant": tenant}
    assert value(ran, "gpulease_queue_wait_seconds_count", **waited) == (
        value(before, "gpulease_queue_wait_seconds_count", **waited) + 1
    )
    assert value(ran, "gpulease_queue_wait_seconds_bucket", le="+Inf", **waited) == value(
        ran, "gpulease_queue_wait_seconds_count", **waited
    )
    for (name, labels), share in ran.items():
        if name == "gpulease_lease_utilisation":
            assert 0 <= share <= 1, labels

    # a raw path's id never becomes a label: the route's template does
    assert bank.get(f"/jobs/{job.json()['id']}").status_code == 200
    _, read = scrape(scraper)
    assert total(read, "gpulease_http_requests_total", route="/api/v1/jobs/{job_id}") >= 1
    assert not any(job.json()["id"] in str(labels) for _, labels in read)

    screened = as_user("compliance").post(
        "/screening", json={"queries": [{"name": "Maria Sutanto", "kind": "person"}]}
    )
    assert screened.status_code == 200, screened.text
    outcome = screened.json()["responses"]["q1"]["outcome"]
    _, after = scrape(scraper)
    counted = {"kind": "adhoc", "outcome": outcome}
    assert value(after, "gpulease_screening_decisions_total", **counted) == (
        value(read, "gpulease_screening_decisions_total", **counted) + 1
    )


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == logger]


def test_a_json_line_per_request_with_its_request_id(
    as_user: AsUser, caplog: pytest.LogCaptureFixture, demo_tokens: dict[str, str]
) -> None:
    bank = as_user("bank")
    me = bank.get("/me").json()["user_id"]
    caplog.set_level(logging.INFO, logger="gpulease.access")
    given = bank.get("/jobs", headers={"X-Request-ID": "trace-42.a:b_c"})
    assert given.headers["X-Request-ID"] == "trace-42.a:b_c"
    for bad in ("x" * 65, "two words", "new\nline"):
        made = bank.get("/jobs", headers={"X-Request-ID": bad})
        assert made.headers["X-Request-ID"] != bad
        assert len(made.headers["X-Request-ID"]) == 32
    fresh = bank.get("/jobs/job-nope")
    assert fresh.status_code == 404
    lines = _lines(caplog, "gpulease.access")
    assert len(lines) == 5
    first, last = lines[0], lines[-1]
    assert first["request_id"] == "trace-42.a:b_c"
    assert first["method"] == "GET"
    assert first["route"] == "/api/v1/jobs"
    assert first["status"] == 200
    assert isinstance(first["duration_ms"], float)
    assert first["principal_id"] == me
    assert last["request_id"] == fresh.headers["X-Request-ID"]
    assert last["route"] == "/api/v1/jobs/{job_id}"
    assert last["status"] == 404
    text = json.dumps(lines)
    assert demo_tokens["bank"] not in text
    assert "job-nope" not in text


@pytest.fixture
def demo_tokens(tokens: dict[str, str]) -> dict[str, str]:
    return tokens


def test_a_json_line_per_scheduler_decision(
    as_user: AsUser,
    scheduler: LiveScheduler,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gpulease.decisions")
    job = as_user("bank").post("/jobs", json={**JOB, "duration_s": 1}).json()
    scheduler.tick()
    starts = [line for line in _lines(caplog, "gpulease.decisions") if line["event"] == "start"]
    assert [line["job_id"] for line in starts] == [job["id"]]
    assert starts[0]["tenant_id"] == job["tenant_id"]
    assert starts[0]["gpus"] == 8
    assert starts[0]["reason"]
    clock.advance(2)  # the simulated run ends; the next pass finishes it
    scheduler.tick()
    ends = [line for line in _lines(caplog, "gpulease.decisions") if line["event"] == "finish"]
    assert [line["job_id"] for line in ends] == [job["id"]]
    assert (ends[0]["tenant_id"], ends[0]["gpus"]) == (job["tenant_id"], 8)
    assert ends[0]["reason"] == "exit 0"  # the run's end reason


def test_the_scheduler_process_serves_its_own_figures_to_the_token() -> None:
    metrics.observe_pass(0.01)
    served = metrics.MetricsServer("127.0.0.1", 0, TOKEN)
    try:
        url = f"http://127.0.0.1:{served.port}/metrics"
        answer = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert answer.status_code == 200
        names = {f.name for f in text_string_to_metric_families(answer.text)}
        assert "gpulease_scheduler_pass_seconds" in names
        assert "gpulease_queue_jobs" not in names  # the fleet is the API's to serve
        for headers in ({}, {"Authorization": "Bearer nope"}):
            assert httpx.get(url, headers=headers, timeout=5).status_code == 404
        assert httpx.get(url + "x", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    finally:
        served.stop()
    closed = metrics.process_metrics_app(None)  # no token configured: nobody scrapes
    said: list[str] = []
    closed({"PATH_INFO": "/metrics", "HTTP_AUTHORIZATION": "Bearer "}, lambda s, _h: said.append(s))
    assert said == ["404 Not Found"]


def test_a_database_outage_leaves_the_process_figures_and_says_so() -> None:
    from gpulease.domain.clock import ManualClock
    from gpulease.persistence.db import Database

    nowhere = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        registry = metrics.fleet_registry(nowhere, ManualClock(), max_age_s=0)
        body = metrics.exposition(registry).decode()
    finally:
        nowhere.dispose()
    samples = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples["gpulease_fleet_up"] == 0
    assert "gpulease_scheduler_pass_seconds_count" in samples
    assert "gpulease_queue_jobs" not in {f.name for f in text_string_to_metric_families(body)}
