"""``/api/v1/reports``: disclosure reports for operator staff, as JSON or as an HTML page.

Each report answers JSON by default, and a self-contained HTML page when asked with
``?format=html`` or an ``Accept`` header that names ``text/html`` (a browser).

Query parameters are bounded here, at the edge: ``as_of`` lies in the constraints'
``TIME_WINDOW``; the large-runs terms are finite decimals within :data:`THRESHOLD_RANGE`,
:data:`PEAK_RANGE` and :data:`UTILISATION_RANGE` (``1e-999999`` is not a threshold).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from gpulease.api.constraints import Ref, ReportTime
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import ErrorOut
from gpulease.domain.access import Action
from gpulease.services import report_disclosure, report_sites, report_templates, reports
from gpulease.services.lookup import Kind, resolve

router = APIRouter(prefix="/reports", tags=["reports"])
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 422)
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: JSON, or an HTML page with ?format=html / Accept: text/html",
        "content": {"application/json": {}, "text/html": {}},
    },
    **ERRORS,
}
Format = Annotated[
    str | None,
    Query(alias="format", pattern="^(json|html)$", description="json (default) or html"),
]


def _wants_html(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "html"
    return "text/html" in request.headers.get("accept", "")


def _answer(request: Request, fmt: str | None, report: dict[str, Any], kind: str) -> Response:
    if _wants_html(request, fmt):
        return HTMLResponse(report_templates.render_html(report, kind))
    return JSONResponse(report)


THRESHOLD_RANGE = (1.0, 1e40)  # operations
PEAK_RANGE = (1e6, 1e20)  # FLOP/s of one GPU
UTILISATION_RANGE = (1e-6, 1.0)  # a fraction of the peak


def _bounded(low: float, high: float, description: str) -> Any:
    return Query(ge=low, le=high, allow_inf_nan=False, description=description)


Threshold = Annotated[
    Decimal | None,
    _bounded(
        *THRESHOLD_RANGE,
        "operations, e.g. 1e26 or 1e25 (1 .. 1e40); default: the thresholds of the policy "
        "packs in force",
    ),
]
WindowDays = Annotated[
    int | None,
    Query(ge=1, le=3660, description="days a tenant's or campaign's jobs are added up over"),
]
PeakFlops = Annotated[
    Decimal | None,
    _bounded(
        *PEAK_RANGE,
        "dense peak FLOP/s per GPU for every job (default: each site's GPU model's rated peak)",
    ),
]
Utilisation = Annotated[
    Decimal | None, _bounded(*UTILISATION_RANGE, "fraction of peak (default 0.4)")
]


@router.get("/tenants/{tenant_id}/disclosure", response_class=Response, responses=RESPONSES)
def disclosure(
    tenant_id: Ref,
    request: Request,
    ctx: Ctx,
    me: Me,
    fmt: Format = None,
    as_of: Annotated[
        ReportTime | None, Query(description="ISO date-time (UTC if bare); default now")
    ] = None,
) -> Response:
    """Operator staff (the tenant named by its id, a unique prefix or its name): who the end
    user is, why it uses the compute, who owns it, its links
    to restricted parties, every decision, its standing, GPU-hours by purpose and its IPs."""
    tenant_id = resolve(ctx, me, Kind.TENANT, tenant_id, Action.REPORT_READ)
    report = report_disclosure.end_user_disclosure(ctx, me, tenant_id, as_of=as_of)
    return _answer(request, fmt, report, "disclosure")


@router.get("/gpus/{serial}", response_class=Response, responses=RESPONSES)
def gpu(serial: Ref, request: Request, ctx: Ctx, me: Me, fmt: Format = None) -> Response:
    """Operator staff: where a GPU is, its chain of custody, and who used it for what."""
    return _answer(request, fmt, reports.gpu_provenance(ctx, me, serial), "gpu")


@router.get("/large-runs", response_class=Response, responses=RESPONSES)
def large_runs(
    request: Request,
    ctx: Ctx,
    me: Me,
    fmt: Format = None,
    threshold: Threshold = None,
    peak_flops_per_gpu: PeakFlops = None,
    utilisation: Utilisation = None,
    window_days: WindowDays = None,
) -> Response:
    """Operator staff: jobs, tenants and campaigns whose estimated compute (GPUs x seconds
    x peak x utilisation) reaches a threshold, with every term shown."""
    report = reports.large_training_runs(
        ctx,
        me,
        threshold_ops=threshold,
        peak_flops_per_gpu=peak_flops_per_gpu,
        utilisation=utilisation or reports.DEFAULT_UTILISATION,
        window_days=window_days,
    )
    return _answer(request, fmt, report, "large-runs")


@router.get("/sites", responses=ERRORS)
def sites_report(
    ctx: Ctx,
    me: Me,
    site_id: Annotated[Ref | None, Query(description="one site")] = None,
    country: Annotated[
        str | None,
        Query(min_length=2, max_length=60, description="one country (ISO code or name)"),
    ] = None,
    as_of: Annotated[
        ReportTime | None, Query(description="ISO date-time (UTC if bare); default now")
    ] = None,
) -> dict[str, Any]:
    """Operator staff: every site, one site or one country at a moment: its jurisdiction,
    the packs in force there, each tenant's GPU-hours, leases and admission there, and the
    totals per tenant and per country across the sites chosen (JSON)."""
    return report_sites.sites_disclosure(ctx, me, as_of=as_of, site_id=site_id, country=country)
