"""``/api/v1/health`` (no auth) and ``/api/v1/me``."""

from __future__ import annotations

from fastapi import APIRouter, Request

import gpulease
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import HealthOut, MeOut, SchedulerStatusOut
from gpulease.services import lookup, setup

router = APIRouter(tags=["system"])


@router.get("/health", response_model=HealthOut)
def health(request: Request, ctx: Ctx) -> HealthOut:
    """Liveness and the scheduler's heartbeat: who holds the leader lease and until when,
    each site's last pass and whether it is stale. Unauthenticated: it names no tenant, job
    or user, and a database error only by its kind."""
    loop = getattr(request.app.state, "loop", None)
    try:
        found: setup.SchedulerHealth | None = setup.scheduler_status(ctx)
        database = "ok"
    except Exception as error:  # health must answer even when the database does not
        found, database = None, f"unavailable: {type(error).__name__}"
    degraded = found is None or found.degraded
    return HealthOut(
        status="degraded" if degraded else "ok",
        version=gpulease.__version__,
        database=database,
        executor=ctx.settings.executor,
        this_process_leads=bool(loop is not None and loop.leading),
        leader=found.leader if found else None,
        leader_expires_at=found.leader_expires_at if found else None,
        leader_expired=bool(found and found.leader_expired),
        # the scheduler process's count (its heartbeat); this process's own when it runs
        # the loop (fresher: a pass that failed has written no heartbeat yet)
        failed_passes=max(
            found.failed_passes if found else 0,
            loop.failed_passes if loop is not None else 0,
        ),
        schedulers=[
            SchedulerStatusOut(
                site_id=site.site_id,
                leader=site.leader,
                last_tick_at=site.last_tick_at,
                ticks=site.ticks,
                age_s=round(site.age_s, 3),
                stale=site.stale,
            )
            for site in (found.sites if found else [])
        ],
    )


@router.get("/me", response_model=MeOut)
def me(principal: Me, ctx: Ctx) -> MeOut:
    """Who the token belongs to: ids, and the names people know them by."""
    user_name, tenant_name = lookup.display_names(ctx, principal.user_id, principal.tenant_id)
    return MeOut(
        user_id=principal.user_id,
        role=principal.role.value,
        tenant_id=principal.tenant_id,
        user_name=user_name,
        tenant_name=tenant_name,
    )
