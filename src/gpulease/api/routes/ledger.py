"""``/api/v1/ledger``: signed tree heads, consistency and inclusion proofs.

Heads, key periods and consistency proofs are what the operator publishes: any
authenticated user may read them (``gpulease ledger`` and the heads file publish them
further). A record's inclusion proof (the record itself, its position and the path to a
signed head) is operator staff's for any record and a tenant's only for records about
itself; another tenant's record answers 404 exactly as a missing one. Signing a head now is
the operator-admin's. Sizes and ids are bounded here: 1 .. 2**53 - 1.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import ErrorOut
from gpulease.domain.errors import NotFound
from gpulease.ledger.canonical import MAX_SAFE_INTEGER
from gpulease.services import ledger, ledger_proofs

router = APIRouter(prefix="/ledger", tags=["ledger"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}
Size = Annotated[int, Path(ge=1, le=MAX_SAFE_INTEGER, description="a tree size")]
AuditId = Annotated[int, Path(ge=1, le=MAX_SAFE_INTEGER, description="an audit record's id")]


def _size_query(description: str) -> Any:
    return Query(ge=1, le=MAX_SAFE_INTEGER, description=description)


@router.get("/heads", responses=ERRORS)
def heads(
    ctx: Ctx,
    me: Me,
    after: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER, description="sizes above")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Signed tree heads, smallest first: keep them, and check later ones extend them."""
    return [head.to_json() for head in ledger.list_heads(ctx, after=after, limit=limit)]


@router.post("/heads", responses=ERRORS)
def sign(ctx: Ctx, me: Me) -> dict[str, Any]:
    """Operator-admin: sign a head over the ledger now (published as the periodic ones)."""
    signed = ledger.sign_now(ctx, me)
    if signed is None:
        raise NotFound("the ledger is empty: nothing to sign")
    return signed.to_json()


@router.get("/heads/latest", responses=ERRORS)
def latest(ctx: Ctx, me: Me) -> dict[str, Any]:
    """The latest signed tree head."""
    return ledger.latest_head(ctx).to_json()


@router.get("/heads/{tree_size}", responses=ERRORS)
def head(tree_size: Size, ctx: Ctx, me: Me) -> dict[str, Any]:
    """The signed head of one size."""
    return ledger.latest_head(ctx, tree_size).to_json()


@router.get("/keys", responses=ERRORS)
def keys(ctx: Ctx, me: Me) -> list[dict[str, Any]]:
    """Every signing key's public key and period: what a head is checked against."""
    return [period.to_json() for period in ledger.key_periods(ctx)]


@router.get("/consistency", responses=ERRORS)
def consistency(
    ctx: Ctx,
    me: Me,
    first: Annotated[int, _size_query("the older head's size")],
    second: Annotated[int, _size_query("the newer head's size")],
) -> dict[str, Any]:
    """RFC 9162 consistency proof that the head of size ``second`` extends ``first``."""
    return ledger_proofs.consistency(ctx, first, second)


@router.get("/records/{audit_id}/proof", responses=ERRORS)
def proof(
    audit_id: AuditId,
    ctx: Ctx,
    me: Me,
    tree_size: Annotated[int | None, _size_query("under this head (default: the latest)")] = None,
) -> dict[str, Any]:
    """An audit record, its ledger position and its inclusion proof under a signed head."""
    return ledger_proofs.prove(ctx, me, audit_id=audit_id, tree_size=tree_size).to_json()
