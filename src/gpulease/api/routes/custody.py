"""``/api/v1/custody``: the story of one chip, custody events, node keys, attestations, alerts.

Who: operator staff read (``CUSTODY_READ``: the story, the alerts); operator-admins record
events, register node keys and clear alerts (``CUSTODY_RECORD``); tenants are refused. A
node agent posts its signed statement to ``POST /custody/attestations`` with no bearer
token: the signature, checked against the key registered for the node, is its credential;
a statement refused for any reason (its signature does not verify, or it verifies but is a
replay or mis-dated) counts as a failed authentication of the client address
(``api.ratelimit``), so guessing, and replaying a statement captured on the wire, are
throttled like token guessing. As a token that authenticated from a blocked address still
works there (a NAT), a node whose statement was accepted from an address in the last
minutes still attests from it while the address is blocked: a compromised host behind the
site's NAT must not silence its neighbours' agents until they go stale and are drained.
Its statements naming those nodes still reach the check, which is a read and a signature
verification (``services.attestation.submit``: no write, no lock, for a refused one).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from gpulease.api.constraints import Ref
from gpulease.api.deps import Ctx, Me, client_address
from gpulease.api.ratelimit import ApiLimits
from gpulease.api.schemas import (
    ERROR_RESPONSES,
    AlertClear,
    AlertClearedOut,
    AlertOut,
    AttestationIn,
    AttestationOut,
    CustodyEventCreate,
    CustodyEventOut,
    NodeKeyCreate,
    NodeKeyOut,
)
from gpulease.domain.errors import InvalidRequest, Unauthenticated
from gpulease.services import attestation, custody
from gpulease.services.tokens import hash_token

router = APIRouter(prefix="/custody", tags=["custody"])


@router.get("/alerts", response_model=list[AlertOut], responses=ERROR_RESPONSES)
def list_alerts(
    ctx: Ctx,
    me: Me,
    state: Annotated[str | None, Query(pattern="^(open|cleared)$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[AlertOut]:
    """Operator staff: nodes whose attestations stopped or disagree with their site."""
    rows = attestation.list_alerts(ctx, me, state=state, limit=limit)
    return [AlertOut.model_validate(row) for row in rows]


@router.post("/alerts/{alert_id}/clear", response_model=AlertClearedOut, responses=ERROR_RESPONSES)
def clear_alert(alert_id: Ref, body: AlertClear, ctx: Ctx, me: Me) -> AlertClearedOut:
    """Operator-admin: decide an open alert; the drained node comes back up unless
    ``resume`` is false."""
    done = attestation.clear_alert(ctx, me, alert_id, body.reason, resume=body.resume)
    return AlertClearedOut(alert=AlertOut.model_validate(done.alert), node_state=done.node_state)


@router.post("/events", response_model=CustodyEventOut, status_code=201, responses=ERROR_RESPONSES)
def record_event(body: CustodyEventCreate, ctx: Ctx, me: Me) -> CustodyEventOut:
    """Operator-admin: record a provenance event; one out of order for its unit (installed
    before received, sold by someone who does not hold it) is a 422 saying why."""
    row = custody.record_event(ctx, me, custody.EventRequest(**body.model_dump()))
    return CustodyEventOut.model_validate(row)


@router.post(
    "/nodes/{node_id}/key", response_model=NodeKeyOut, status_code=201, responses=ERROR_RESPONSES
)
def register_key(node_id: Ref, body: NodeKeyCreate, ctx: Ctx, me: Me) -> NodeKeyOut:
    """Operator-admin: the public key the node's agent signs its attestations with (a new
    key replaces the old one)."""
    return NodeKeyOut.model_validate(attestation.register_key(ctx, me, node_id, body.public_key))


@router.post(
    "/attestations", response_model=AttestationOut, status_code=201, responses=ERROR_RESPONSES
)
def attest(body: AttestationIn, request: Request, ctx: Ctx) -> AttestationOut:
    """A node agent: "this node is at this site now", signed with the node's key (no bearer
    token; see the module doc)."""
    limits: ApiLimits = request.app.state.limits
    address = client_address(request)
    agent = f"attestation-agent {body.statement.node_id}"  # known here: passes a block
    limits.auth.check(address, agent)
    try:
        row = attestation.submit(ctx, body.statement.model_dump(), body.signature)
    except (Unauthenticated, InvalidRequest):  # forged, replayed or mis-dated
        limits.auth.failed(address)
        raise
    limits.auth.succeeded(address, hash_token(agent))
    return AttestationOut.model_validate(row)


@router.get("/{serial}", responses=ERROR_RESPONSES)
def story(serial: Ref, ctx: Ctx, me: Me) -> JSONResponse:
    """Operator staff: the full story of one chip: where it came from (the chain with its
    papers, its tray's and rack's events included), where it is, its node's last
    attestation and alerts, and every job that ran on it (tenant, purpose, when)."""
    report: dict[str, Any] = custody.story(ctx, me, serial)
    return JSONResponse(report)
