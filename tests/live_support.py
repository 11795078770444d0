"""Helpers for the tests of the live scheduler's kept state (services and attack tests)."""

from __future__ import annotations

from gpulease.domain.clock import ManualClock
from gpulease.services import demo as demo_service
from gpulease.services import inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.live_state import SiteState
from gpulease.services.scheduling import LiveScheduler, PassReport

SITE = demo_service.SITE_ID


def job_of(gpus: int, duration_s: float) -> jobs.JobSubmission:
    return jobs.JobSubmission(
        gpus=gpus, purpose="financial AI", command="train", duration_s=duration_s
    )


def kept_and_rebuilt(
    scheduler: LiveScheduler, ctx: ServiceContext, clock: ManualClock
) -> tuple[SiteState, SiteState]:
    """The leader's kept state brought up to now, and a state rebuilt from the database."""
    now = clock.now()
    admit = scheduler._admission(now, SITE)
    topology = inventory.cached_topology(ctx, SITE)
    kept = scheduler._current(SITE, topology, now, admit, PassReport(SITE))
    fresh = scheduler._build(SITE, topology, now, admit, PassReport(SITE))
    return kept, fresh


def tick_and_attest(scheduler: LiveScheduler) -> list[PassReport]:
    """A pass, then the attestation sweep it may have started beside it, finished."""
    reports = scheduler.tick()
    assert scheduler.attestor.wait(30)
    return reports
