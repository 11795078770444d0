"""The sites disclosure report: every site, one site or one country, at a moment.

Design. :func:`sites_disclosure` answers, for the sites chosen (all, ``site_id`` or
``country``) as they stood at ``as_of`` (default now): each site's jurisdiction (country,
time zone, its local day), the packs in force there on that day (operator-wide and the
site's own), and every tenant present there (a lease whose window covers the moment, or
compute used there by then) with its GPU-hours at the site (clipped at the moment, by
declared purpose), its leases there and its admission there in words; then the totals across
the chosen sites per tenant (GPU-hours by site) and per country. One JSON-ready ``dict``
(the conventions of :mod:`gpulease.services.reports`).

Point in time. Compute and leases are clipped at ``as_of`` and the packs are those in force on
the site's local day; admission is decided from the tenant's standing as it is now (the
standing's history is in the per-tenant disclosure report, ``report_disclosure``), which the
report says.

Invariants: operator staff only; it reads, never writes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from gpulease.compliance.admission import admission
from gpulease.compliance.countries import country_code, country_name
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest, NotFound
from gpulease.domain.states import LeaseState
from gpulease.persistence.tables import GpuAllocation, Lease, Node, Tenant
from gpulease.services import reports, sites
from gpulease.services.context import ServiceContext

NEVER_IN_FORCE = (LeaseState.REQUESTED, LeaseState.REJECTED, LeaseState.EXPIRED)


def sites_disclosure(
    ctx: ServiceContext,
    actor: Principal,
    *,
    as_of: datetime | None = None,
    site_id: str | None = None,
    country: str | None = None,
) -> dict[str, Any]:
    """The report (module docstring) for every site, ``site_id`` or ``country``."""
    actor.scope(Action.REPORT_READ)
    if site_id is not None and country is not None:
        raise InvalidRequest("name a site or a country, not both", field="country")
    code = country_code(country, field="country") if country is not None else None
    moment = as_of or ctx.now()
    with ctx.db.transaction(write=False) as tx:
        chosen = [
            s
            for s in sites.site_infos(tx)
            if (site_id is None or s.site_id == site_id) and (code is None or s.country == code)
        ]
        if not chosen:
            what = f"site {site_id!r}" if site_id is not None else f"site in {code}"
            raise NotFound(f"no {what}", site_id=site_id, country=code)
        ids = [s.site_id for s in chosen]
        tenants = {t.id: t for t in tx.all(tx.select(Tenant))}
        leases = tx.all(
            tx.select(Lease)
            .where(
                Lease.site_id.in_(ids),
                Lease.start <= moment,
                Lease.end > moment,
                Lease.state.not_in([s.value for s in NEVER_IN_FORCE]),
            )
            .order_by(Lease.start, Lease.id)
        )
        nodes = {n.id: n.site_id for n in tx.all(tx.select(Node).where(Node.site_id.in_(ids)))}
        used = tx.all(
            tx.select(GpuAllocation)
            .where(GpuAllocation.node_id.in_(list(nodes)), GpuAllocation.start <= moment)
            .order_by(GpuAllocation.start, GpuAllocation.id)
        )
    by_site: dict[str, dict[str, list[GpuAllocation]]] = defaultdict(lambda: defaultdict(list))
    for row in used:
        by_site[nodes[row.node_id]][row.tenant_id].append(row)
    out_sites = []
    tenant_totals: dict[str, dict[str, float]] = defaultdict(dict)
    country_hours: dict[str, float] = defaultdict(float)
    for site in chosen:
        policy = sites.policy_at(ctx, site, moment)
        here = {lease.tenant_id for lease in leases if lease.site_id == site.site_id}
        here |= set(by_site[site.site_id])
        admit = admission([sites.standing_of(tenants[t]) for t in here], policy, moment)
        rows = []
        for tenant_id in sorted(here, key=lambda t: (tenants[t].name, t)):
            compute = reports.compute_used(by_site[site.site_id][tenant_id], moment)
            tenant_totals[tenant_id][site.site_id] = compute["gpu_hours"]
            country_hours[site.country] += compute["gpu_hours"]
            held = admit.held.get(tenant_id)
            rows.append(
                {
                    "tenant_id": tenant_id,
                    "tenant": tenants[tenant_id].name,
                    "tenant_country": tenants[tenant_id].country,
                    "admitted": held is None,
                    "admission": held or "admitted",
                    "leases": [
                        {
                            "id": lease.id,
                            "gpus": lease.gpus,
                            "start": lease.start.isoformat(),
                            "end": lease.end.isoformat(),
                            "state": lease.state,
                        }
                        for lease in leases
                        if lease.site_id == site.site_id and lease.tenant_id == tenant_id
                    ],
                    "compute": compute,
                }
            )
        out_sites.append(
            {
                "site_id": site.site_id,
                "name": site.name,
                "country": site.country,
                "country_name": country_name(site.country),
                "city": site.city,
                "timezone": site.timezone,
                "local_day": site.local_day(moment).isoformat(),
                "hardware": site.hardware,
                "packs_in_force": list(policy.packs),
                "site_rules": sorted(policy.site_rules),
                "tenants": rows,
            }
        )
    return {
        "kind": "sites-disclosure",
        "as_of": moment.isoformat(),
        "scope": (
            {"site_id": site_id}
            if site_id is not None
            else {"country": code}
            if code is not None
            else {"sites": "all"}
        ),
        "note": "compute and leases as of the moment; packs in force on each site's local "
        "day; admission from each tenant's current standing",
        "sites": out_sites,
        "totals": {
            "by_tenant": [
                {
                    "tenant_id": t,
                    "tenant": tenants[t].name,
                    "gpu_hours": round(sum(per.values()), 4),
                    "by_site": dict(sorted(per.items())),
                }
                for t, per in sorted(tenant_totals.items(), key=lambda kv: -sum(kv[1].values()))
            ],
            "by_country": {c: round(h, 4) for c, h in sorted(country_hours.items())},
        },
    }
