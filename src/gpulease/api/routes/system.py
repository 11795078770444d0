"""``/api/v1/health`` (no auth) and ``/api/v1/me``."""

from __future__ import annotations

from fastapi import APIRouter, Request

import gpulease
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import HealthOut, MeOut, SchedulerStatusOut
from gpulease.services import setup

router = APIRouter(tags=["system"])


@router.get("/health", response_model=HealthOut)
def health(request: Request, ctx: Ctx) -> HealthOut:
    """Liveness and the scheduler's heartbeat (which process leads, when it last decided)."""
    try:
        rows = setup.scheduler_status(ctx)
        database, status = "ok", "ok"
    except Exception as error:  # health must answer even when the database does not
        rows, database, status = [], f"unavailable: {type(error).__name__}", "degraded"
    loop = getattr(request.app.state, "loop", None)
    return HealthOut(
        status=status,  # type: ignore[arg-type]
        version=gpulease.__version__,
        database=database,
        executor=ctx.settings.executor,
        this_process_leads=bool(loop is not None and loop.leading),
        schedulers=[
            SchedulerStatusOut(
                site_id=r.site_id, leader=r.leader, last_tick_at=r.last_tick_at, ticks=r.ticks
            )
            for r in rows
        ],
    )


@router.get("/me", response_model=MeOut)
def me(principal: Me) -> MeOut:
    return MeOut(
        user_id=principal.user_id, role=principal.role.value, tenant_id=principal.tenant_id
    )
