"""``/ui/fleet``: every rack of a site, each GPU a cell coloured by tenant or state.

Operator staff see each holder's colour and name; a tenant sees its own GPUs ("yours")
and every other held GPU as "in use", with no name (``services.fleet_map`` decides, the
template only lays out). A click on a cell (an htmx-boosted link, a plain link without
JavaScript) opens the GPU's panel: where it is, its job and tenant where the reader may
know them, and for staff its custody (``services.custody.story``).

Live refresh: the grid polls ``/ui/fleet/grid`` every ``Settings.ui_refresh_s``; each poll
carries its count ``n`` and after :data:`MAX_POLLS` the server answers 286, which stops
htmx polling (a tab left open does not poll forever; reloading the page starts again).
"""

from __future__ import annotations

import gzip
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from gpulease.domain.access import Action, Principal
from gpulease.services import custody, fleet_map, inventory
from gpulease.services.context import ServiceContext
from gpulease.services.fleet_map import CellState, FleetMap, GpuCell
from gpulease.web import nav
from gpulease.web.render import fragment, is_htmx, page, page_router
from gpulease.web.session import Looking

router = page_router()
NAV_ITEM = nav.register(nav.NavItem("Fleet", "/ui/fleet", Action.NODE_READ, order=10))
MAX_POLLS = 240  # an hour at the default 15 s
STOP_POLLING = 286  # htmx: stop this element's polling
PALETTE = 8  # tenant colours t0..t7 in app.css
SiteRef = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Serial = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def colours(fleet: FleetMap) -> dict[str, str]:
    """A colour class per tenant shown, stable for the page (tenants sorted by id)."""
    return {tenant_id: f"t{i % PALETTE}" for i, tenant_id in enumerate(sorted(fleet.tenants))}


def cell_class(cell: GpuCell, colour: dict[str, str], principal: Principal) -> str:
    classes: list[str] = []
    if cell.state is CellState.DOWN:
        classes.append("down")
    elif cell.state is CellState.ALLOCATED:
        if cell.mine and not principal.is_operator:
            classes.append("mine")
        elif cell.tenant_id is not None:
            classes.append(colour.get(cell.tenant_id, "alloc"))
        else:
            classes.append("alloc")
    if cell.node_state.value == "draining":
        classes.append("draining")
    return " ".join(classes)


def cell_title(cell: GpuCell, fleet: FleetMap) -> str:
    if cell.state is CellState.ALLOCATED:
        if cell.tenant_id is None:
            holder = "in use"
        else:
            name = fleet.tenants.get(cell.tenant_id, cell.tenant_id)
            holder = f"{name} · {cell.job_id}"
        drain = " · node draining" if cell.node_state.value == "draining" else ""
        return f"{cell.serial} · {holder}{drain}"
    return f"{cell.serial} · {cell.state.value}"


def _grid_context(fleet: FleetMap, principal: Principal, n: int, refresh_s: int) -> dict[str, Any]:
    colour = colours(fleet)
    racks = []
    number = 0  # each cell's id ("g<number>"): htmx gives focus back to it after a refresh
    for rack in fleet.racks:
        cells = []
        for cell in rack.cells:
            cells.append(
                (number, cell.serial, cell_class(cell, colour, principal), cell_title(cell, fleet))
            )
            number += 1
        racks.append(
            {
                "id": rack.rack_id,
                "label": f"r{rack.index:02d}",
                "serial": rack.serial,
                "allocated": rack.allocated,
                "size": len(rack.cells),
                "cells": cells,
            }
        )
    if principal.is_operator:
        legend = [(colour[t], name) for t, name in fleet.tenants.items()]
    else:
        legend = [("mine", "yours"), ("alloc", "in use")]
    legend += [("idle", "idle"), ("draining", "draining node"), ("down", "down")]
    return {
        "fleet": fleet,
        "racks": racks,
        "legend": legend,
        "counts": {state.value: fleet.counts[state] for state in CellState},
        "next_poll": n + 1,
        "refresh_s": refresh_s,
        "polling": n < MAX_POLLS,
    }


@router.get("/fleet")
def fleet_page(request: Request, viewer: Looking, site: SiteRef = None) -> HTMLResponse:
    ctx = request.app.state.ctx
    fleet = fleet_map.fleet_map(ctx, viewer.principal, site)
    context = _grid_context(fleet, viewer.principal, 0, ctx.settings.ui_refresh_s)
    context["sites"] = _sites(ctx)
    return page(request, viewer, "fleet.html", title=f"Fleet · {fleet.site_id}", **context)


def _sites(ctx: ServiceContext) -> list[tuple[str, str]]:
    return [(site.id, site.name) for site in inventory.list_sites(ctx)]


@router.get("/fleet/grid")
def fleet_grid(
    request: Request,
    viewer: Looking,
    site: SiteRef = None,
    n: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The polled grid (htmx); 286 with the last grid once the polls are spent."""
    ctx = request.app.state.ctx
    fleet = fleet_map.fleet_map(ctx, viewer.principal, site)
    context = _grid_context(fleet, viewer.principal, n, ctx.settings.ui_refresh_s)
    status = 200 if context["polling"] else STOP_POLLING
    return compressed(request, fragment("fleet_grid.html", status=status, **context))


def compressed(request: Request, response: HTMLResponse) -> Response:
    """The polled grid gzipped when the browser takes it (~220 kB of cells to ~15 kB). Only
    this fragment: it carries no secret (no CSRF token) and reflects nothing but a checked
    site id and a number, so compression cannot leak a secret (BREACH)."""
    if "gzip" not in request.headers.get("accept-encoding", "").lower():
        return response
    body = gzip.compress(bytes(response.body), compresslevel=6)
    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(body, status_code=response.status_code, headers=headers, media_type="text/html")


@router.get("/fleet/gpu/{serial}")
def gpu_panel(request: Request, viewer: Looking, serial: Serial) -> HTMLResponse:
    """One GPU's panel: a fragment for htmx, the fleet page with the panel open otherwise."""
    ctx = request.app.state.ctx
    panel = fleet_map.gpu_panel(ctx, viewer.principal, serial)
    story = None
    if viewer.principal.can(Action.CUSTODY_READ):
        story = custody.story(ctx, viewer.principal, panel.serial)
    context: dict[str, Any] = {"panel": panel, "story": story}
    if is_htmx(request):
        return fragment("gpu_panel.html", **context)
    fleet = fleet_map.fleet_map(ctx, viewer.principal, panel.site_id)
    grid = _grid_context(fleet, viewer.principal, 0, ctx.settings.ui_refresh_s)
    grid["sites"] = _sites(ctx)
    return page(request, viewer, "fleet.html", title=f"Fleet · {fleet.site_id}", **grid, **context)
