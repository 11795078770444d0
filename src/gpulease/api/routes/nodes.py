"""``/api/v1/nodes``: the inventory's trays and their use; operators change node states."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpulease.api.constraints import Ref
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import ERROR_RESPONSES, NodeOut, NodeStateChange
from gpulease.domain.access import Action
from gpulease.domain.states import NodeState
from gpulease.services import inventory
from gpulease.services.lookup import Kind, resolve

router = APIRouter(prefix="/nodes", tags=["nodes"])


def node_out(view: inventory.NodeView) -> NodeOut:
    node = view.node
    return NodeOut(
        id=node.id,
        site_id=node.site_id,
        rack_id=node.rack_id,
        rack_index=view.rack_index,
        index=node.index,
        serial=node.serial,
        gpus=node.gpus,
        used_gpus=view.used_gpus,
        state=node.state,
        state_reason=node.state_reason,
        tenants=list(view.tenants),
    )


@router.get("", response_model=list[NodeOut], responses=ERROR_RESPONSES)
def list_nodes(
    ctx: Ctx,
    me: Me,
    site_id: Annotated[Ref | None, Query()] = None,
    state: Annotated[NodeState | None, Query()] = None,
) -> list[NodeOut]:
    views = inventory.list_nodes(ctx, me, site_id, state.value if state else None)
    return [node_out(v) for v in views]


@router.post("/{node_id}/state", response_model=NodeOut, responses=ERROR_RESPONSES)
def change_state(node_id: Ref, body: NodeStateChange, ctx: Ctx, me: Me) -> NodeOut:
    """Operator: drain, take down (its jobs are requeued) or bring back a node (named by its
    id or its serial)."""
    node_id = resolve(ctx, me, Kind.NODE, node_id, Action.NODE_CHANGE)
    inventory.set_node_state(ctx, me, node_id, NodeState(body.state), body.reason)
    (view,) = inventory.list_nodes(ctx, me, node_id=node_id)
    return node_out(view)
