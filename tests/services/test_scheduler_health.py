"""``/health`` tells a stale scheduler and an expired leader lease apart from a live one
(in-process API, ManualClock), and says nothing sensitive."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from gpulease.domain.clock import ManualClock
from gpulease.persistence.leader import LeaderLock
from gpulease.services import demo as demo_service
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler

KEYS = {
    "status",
    "version",
    "database",
    "executor",
    "this_process_leads",
    "leader",
    "leader_expires_at",
    "leader_expired",
    "failed_passes",
    "schedulers",
}


def _health(api: Callable[[str | None], TestClient]) -> dict[str, Any]:
    response = api(None).get("/health")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert set(body) == KEYS
    return body


def test_health_reports_stale_passes_and_an_expired_leader(
    ctx: ServiceContext,
    clock: ManualClock,
    demo: list[demo_service.DemoUser],
    scheduler: LiveScheduler,
    api: Callable[[str | None], TestClient],
) -> None:
    assert ctx.settings.scheduler_interval_s * 3 < ctx.settings.leader_ttl_s == 15
    fresh = _health(api)
    assert (fresh["status"], fresh["schedulers"], fresh["leader"]) == ("ok", [], None)

    lock = LeaderLock(ctx.db, clock, holder=scheduler.name, ttl_s=ctx.settings.leader_ttl_s)
    scheduler.leadership = lock
    assert lock.acquire()
    scheduler.tick()
    live = _health(api)
    assert live["status"] == "ok"
    assert live["leader"] == "test-scheduler"
    expires = clock.now() + timedelta(seconds=15)
    assert datetime.fromisoformat(live["leader_expires_at"]) == expires
    assert live["leader_expired"] is False
    [site] = live["schedulers"]
    assert (site["site_id"], site["stale"], site["age_s"], site["ticks"]) == (
        demo_service.SITE_ID,
        False,
        0,
        1,
    )

    clock.advance(10)
    assert lock.acquire()  # the leader renews but makes no pass
    slow = _health(api)
    assert slow["status"] == "ok"
    assert (slow["schedulers"][0]["stale"], slow["schedulers"][0]["age_s"]) == (False, 10)

    clock.advance(6)  # 16 s since the last pass: more than max(3 intervals, the TTL)
    stale = _health(api)
    assert stale["status"] == "degraded"
    assert stale["schedulers"][0]["stale"] is True
    assert stale["leader_expired"] is False

    clock.advance(10)  # nor has the lease been renewed: nobody leads
    gone = _health(api)
    assert gone["status"] == "degraded"
    assert gone["leader_expired"] is True

    assert not lock.acquire()  # a new pass, after taking the lease again
    assert lock.acquire()
    scheduler.tick()
    back = _health(api)
    assert back["status"] == "ok"
    assert back["schedulers"][0]["stale"] is False
    assert back["leader_expired"] is False


def test_health_reports_the_scheduler_processs_failed_passes(
    ctx: ServiceContext,
    clock: ManualClock,
    demo: list[demo_service.DemoUser],
    scheduler: LiveScheduler,
    api: Callable[[str | None], TestClient],
) -> None:
    """The API process runs no scheduler: ``failed_passes`` is the figure of the process
    that leads, from its heartbeat, not this process's zero."""
    lock = LeaderLock(ctx.db, clock, holder=scheduler.name, ttl_s=ctx.settings.leader_ttl_s)
    scheduler.leadership = lock
    assert lock.acquire()
    scheduler.tick()
    assert _health(api)["failed_passes"] == 0

    with ctx.db.connect() as conn:  # the site's passes fail: the change feed is gone
        conn.execute(text("ALTER TABLE scheduler_changes RENAME TO scheduler_changes_away"))
        conn.commit()
    try:
        for _ in range(2):
            clock.advance(1)
            assert scheduler.tick() == []
    finally:
        with ctx.db.connect() as conn:
            conn.execute(text("ALTER TABLE scheduler_changes_away RENAME TO scheduler_changes"))
            conn.commit()
    assert scheduler.failed_passes == 2
    assert _health(api)["failed_passes"] == 0  # no heartbeat since: nothing known yet

    clock.advance(1)
    assert lock.acquire()
    [report] = scheduler.tick()  # the next pass's heartbeat carries the count
    assert report.rebuilt
    body = _health(api)
    assert body["failed_passes"] == 2
    assert body["schedulers"][0]["ticks"] == 2
