"""``services.fleet_map``: every GPU with its state, and its holder only where the reader may
know it (SQLite and PostgreSQL, the demo with jobs placed by one scheduler pass)."""

from __future__ import annotations

import pytest
from web_support import busy_demo

from gpulease.domain.access import Principal
from gpulease.domain.errors import NotFound
from gpulease.domain.states import NodeState
from gpulease.services import fleet_map, inventory
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.fleet_map import CellState


def _cells(fleet: fleet_map.FleetMap) -> list[fleet_map.GpuCell]:
    return [cell for rack in fleet.racks for cell in rack.cells]


def test_staff_see_every_holder_and_a_tenant_only_itself(
    ctx: ServiceContext,
    demo: list[DemoUser],
    operator: Principal,
    bank: Principal,
    inftech: Principal,
) -> None:
    made = busy_demo(ctx, demo)
    staff = fleet_map.fleet_map(ctx, operator)
    mine = fleet_map.fleet_map(ctx, bank)
    assert staff.gpus == mine.gpus == 2304
    assert len(staff.racks) == 32
    assert all(len(rack.cells) == 72 for rack in staff.racks)
    assert [c.serial for c in _cells(staff)] == [c.serial for c in _cells(mine)]
    assert staff.counts == mine.counts  # the same states for every reader
    held = [c for c in _cells(staff) if c.state is CellState.ALLOCATED]
    assert {c.tenant_id for c in held} == set(staff.tenants)
    assert len(staff.tenants) == 3
    assert {c.job_id for c in held} == {j for jobs in made.values() for j in jobs[:2]} - {
        made["university"][-1]
    }
    assert set(mine.tenants) == {bank.tenant_id}
    for cell in _cells(mine):
        if cell.tenant_id is not None:
            assert cell.tenant_id == bank.tenant_id
            assert cell.mine
            assert cell.job_id in made["bank"]
        else:
            assert cell.job_id is None
            assert not cell.mine
    others = [c for c in _cells(mine) if c.state is CellState.ALLOCATED and not c.mine]
    assert len(others) == sum(1 for c in held if c.tenant_id != bank.tenant_id)
    # the panel of another tenant's GPU: where and "allocated", never who
    theirs = next(c for c in held if c.tenant_id == inftech.tenant_id)
    panel = fleet_map.gpu_panel(ctx, bank, theirs.serial)
    assert (panel.state, panel.held_by, panel.mine) == (CellState.ALLOCATED, None, False)
    assert fleet_map.gpu_panel(ctx, operator, theirs.serial).held_by is not None


def test_node_states_colour_the_cells(
    ctx: ServiceContext, demo: list[DemoUser], operator: Principal
) -> None:
    inventory.set_node_state(ctx, operator, "jkt1-r05-n00", NodeState.DRAINING, "test")
    inventory.set_node_state(ctx, operator, "jkt1-r05-n01", NodeState.DOWN, "test")
    fleet = fleet_map.fleet_map(ctx, operator)
    by_node = {c.node_id: c.state for c in _cells(fleet)}
    assert by_node["jkt1-r05-n00"] is CellState.DRAINING
    assert by_node["jkt1-r05-n01"] is CellState.DOWN
    assert fleet.counts[CellState.DOWN] == fleet.counts[CellState.DRAINING] == 4
    panel = fleet_map.gpu_panel(ctx, operator, _cells(fleet)[5 * 72 + 4].serial)
    assert panel.node_state is NodeState.DOWN
    assert panel.node_state_reason == "test"


def test_unknown_gpus_and_sites_are_not_found(
    ctx: ServiceContext, demo: list[DemoUser], bank: Principal
) -> None:
    with pytest.raises(NotFound):
        fleet_map.gpu_panel(ctx, bank, "NO-SUCH-GPU")
    with pytest.raises(NotFound):
        fleet_map.gpu_panel(ctx, bank, "x" * 500)
    with pytest.raises(NotFound):
        fleet_map.fleet_map(ctx, bank, "nowhere")
