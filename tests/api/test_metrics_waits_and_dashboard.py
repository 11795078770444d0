"""The queue-wait histogram counts every start, and the shipped Grafana dashboard asks only
for series a real ``/metrics`` scrape has (read with Prometheus's own text parser).

Waits: the bank's job starts in the pass that sees it (a wait of 0 s); its node goes down,
it is requeued, and it starts again 120 s later: the histogram counts two starts of the
tenant, 120 s in all, one in the 1 s bucket and both in the 300 s one.

Dashboard: after a submission, passes, a requeue and a screening, every metric name in
every panel's query and in the variables is a sample of the scrape, and the panels cover
what issue 16 lists (GPUs allocated / idle / down per rack and tenant, queue length and wait
by tenant, pass and step latency, lease utilisation, API latency by route, screening
decisions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.states import NodeState
from gpulease.persistence.tables import GpuAllocation
from gpulease.services import inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import Settings

TOKEN = "scrape-" + "w4its" * 6
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-gpulease.json"
PURPOSE = "financial AI: credit risk models"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "var",
        preemption_grace_s=30.0,
        metrics_token=TOKEN,
        metrics_cache_s=0,
    )


def scrape(client: TestClient) -> Samples:
    response = client.get("http://testserver/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _requeue_and_restart(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
) -> str:
    job = jobs.submit(ctx, bank, jobs.JobSubmission(8, PURPOSE, command="run", duration_s=86400))
    scheduler.tick()
    assert jobs.get_job(ctx, bank, job.id).state == "running"
    with ctx.db.transaction(write=False) as tx:
        node = tx.all(select(GpuAllocation.node_id).where(GpuAllocation.job_id == job.id))[0]
    _, hit = inventory.set_node_state(ctx, operator, node, NodeState.DOWN, "test: tray lost")
    assert hit == [job.id]
    clock.advance(120)
    scheduler.tick()
    restarted = jobs.get_job(ctx, bank, job.id)
    assert (restarted.state, restarted.starts) == ("running", 2)
    return job.tenant_id


def test_every_start_is_counted_with_its_wait_since_it_was_queued(
    api: Callable[[str | None], TestClient],
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
) -> None:
    scraper = api(None)
    before = scrape(scraper)
    tenant = _requeue_and_restart(ctx, clock, scheduler, operator, bank)
    after = scrape(scraper)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, tenant=tenant, **labels) - value(
            before, name, tenant=tenant, **labels
        )

    assert grew("gpulease_queue_wait_seconds_count") == 2  # the first start and the restart
    assert grew("gpulease_queue_wait_seconds_sum") == pytest.approx(120.0)
    assert grew("gpulease_queue_wait_seconds_bucket", le="1.0") == 1  # the first: 0 s
    assert grew("gpulease_queue_wait_seconds_bucket", le="60.0") == 1
    assert grew("gpulease_queue_wait_seconds_bucket", le="300.0") == 2  # the restart: 120 s
    assert grew("gpulease_queue_wait_seconds_bucket", le="+Inf") == 2


def _queried(dashboard: dict[str, Any]) -> set[str]:
    """Every metric name in the dashboard's panel queries and variable queries."""
    texts = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    texts += [json.dumps(v.get("query", "")) for v in dashboard["templating"]["list"]]
    return {n for text in texts for n in re.findall(r"\bgpulease_[a-z_]+\b", text)}


def test_every_series_the_dashboard_queries_is_in_a_real_scrape(
    api: Callable[[str | None], TestClient],
    as_user: Callable[[str], TestClient],
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
) -> None:
    _requeue_and_restart(ctx, clock, scheduler, operator, bank)
    screened = as_user("compliance").post(
        "/screening", json={"queries": [{"name": "Maria Sutanto", "kind": "person"}]}
    )
    assert screened.status_code == 200, screened.text
    scheduler.tick()
    jobs.submit(ctx, bank, jobs.JobSubmission(8, PURPOSE, command="run"))  # queued at the scrape
    names = {name for name, _ in scrape(api(None))}
    dashboard = json.loads(DASHBOARD.read_text())
    asked = _queried(dashboard)
    assert asked <= names, sorted(asked - names)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    # what the issue lists, each in some panel
    for needed in (
        "gpulease_gpus",  # allocated / idle / draining / down per rack
        "gpulease_gpus_allocated",  # per rack and tenant
        "gpulease_queue_jobs",
        "gpulease_queue_oldest_wait_seconds",
        "gpulease_queue_wait_seconds_bucket",  # the wait of every start, by tenant
        "gpulease_scheduler_pass_seconds_bucket",
        "gpulease_scheduler_step_seconds_bucket",
        "gpulease_lease_utilisation",
        "gpulease_http_request_duration_seconds_bucket",  # by route
        "gpulease_screening_decisions_total",
    ):
        assert needed in asked, needed
