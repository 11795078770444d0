"""``/api/v1/leases``: request (with a quote), list, show, and decisions on a lease.

A lease may be named by its id or a unique prefix of it, a tenant by its id, a unique prefix
or its name (``services.lookup``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gpulease.api.constraints import Ref
from gpulease.api.deps import Ctx, IdempotencyKey, Me, count_submission
from gpulease.api.schemas import ERROR_RESPONSES, LeaseAmend, LeaseCreate, LeaseDecision, LeaseOut
from gpulease.domain.access import Action
from gpulease.domain.states import LeaseState
from gpulease.persistence.tables import Lease
from gpulease.services import leases, names
from gpulease.services.context import ServiceContext
from gpulease.services.idempotency import Idempotent
from gpulease.services.inventory import default_site
from gpulease.services.lookup import Kind, resolve, resolve_optional

router = APIRouter(prefix="/leases", tags=["leases"])


def lease_out(lease: Lease, ctx: ServiceContext | None = None) -> LeaseOut:
    """The lease's answer; with ``ctx``, its tenant's name beside the id."""
    return LeaseOut(
        id=lease.id,
        tenant_id=lease.tenant_id,
        tenant_name=names.tenant_name(ctx, lease.tenant_id) if ctx is not None else "",
        site_id=lease.site_id,
        gpus=lease.gpus,
        racks=lease.racks,
        start=lease.start,
        end=lease.end,
        state=lease.state,
        state_reason=lease.state_reason,
        price=str(lease.price),
        rate_per_gpu_hour=str(lease.rate),
        currency=lease.currency,
        created_at=lease.created_at,
        updated_at=lease.updated_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=LeaseOut,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(count_submission)],  # a request is a submission: per tenant
)
def request_lease(
    body: LeaseCreate, ctx: Ctx, me: Me, idempotency_key: IdempotencyKey = None
) -> LeaseOut:
    """Ask for GPUs (or whole racks) over [start, end); refused if it would oversell."""
    # the window's horizon is the service's check (leases.check_window), for every caller
    req = leases.LeaseRequest(
        site_id=body.site_id or default_site(ctx),
        start=body.start,
        end=body.end,
        gpus=body.gpus,
        racks=body.racks,
        tenant_id=resolve_optional(ctx, me, Kind.TENANT, body.tenant_id, Action.LEASE_REQUEST),
    )
    idem = Idempotent.of(idempotency_key, "lease.request", body.model_dump(mode="json"))
    return lease_out(leases.request_lease(ctx, me, req, idem), ctx)


@router.get("", response_model=list[LeaseOut], responses=ERROR_RESPONSES)
def list_leases(
    ctx: Ctx, me: Me, state: Annotated[LeaseState | None, Query()] = None
) -> list[LeaseOut]:
    return [
        lease_out(lease, ctx)
        for lease in leases.list_leases(ctx, me, state=state.value if state else None)
    ]


@router.get("/{lease_id}", response_model=LeaseOut, responses=ERROR_RESPONSES)
def show_lease(lease_id: Ref, ctx: Ctx, me: Me) -> LeaseOut:
    lease_id = resolve(ctx, me, Kind.LEASE, lease_id, Action.LEASE_READ)
    return lease_out(leases.get_lease(ctx, me, lease_id), ctx)


def _decision(action: str, target: LeaseState, doc: str) -> None:
    needs = Action.LEASE_CANCEL if target is LeaseState.CANCELLED else Action.LEASE_DECIDE

    def endpoint(lease_id: Ref, ctx: Ctx, me: Me, body: LeaseDecision | None = None) -> LeaseOut:
        reason = body.reason if body else ""
        found = resolve(ctx, me, Kind.LEASE, lease_id, needs)
        return lease_out(leases.decide(ctx, me, found, target, reason), ctx)

    endpoint.__doc__ = doc
    endpoint.__name__ = f"{action}_lease"
    router.post(f"/{{lease_id}}/{action}", response_model=LeaseOut, responses=ERROR_RESPONSES)(
        endpoint
    )


_decision("approve", LeaseState.APPROVED, "Operator: approve a requested lease.")
_decision("reject", LeaseState.REJECTED, "Operator: reject a requested lease (reason required).")
_decision("cancel", LeaseState.CANCELLED, "Cancel a lease before it starts (reason required).")
_decision("suspend", LeaseState.SUSPENDED, "Operator: suspend an active lease (reason required).")
_decision("resume", LeaseState.ACTIVE, "Operator: resume a suspended lease.")


@router.post("/{lease_id}/amend", response_model=LeaseOut, responses=ERROR_RESPONSES)
def amend_lease(lease_id: Ref, body: LeaseAmend, ctx: Ctx, me: Me) -> LeaseOut:
    """Operator: resize a decided lease or move its end, admitted against the calendar
    (409 ``insufficient_capacity`` if it would oversell) and priced again."""
    found = resolve(ctx, me, Kind.LEASE, lease_id, Action.LEASE_DECIDE)
    amended = leases.amend(ctx, me, found, gpus=body.gpus, end=body.end, reason=body.reason)
    return lease_out(amended, ctx)
