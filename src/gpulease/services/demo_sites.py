"""The demo's regional sites: Singapore, Johor Bahru (Malaysia) and Bangkok (Thailand).

The reference case expands beyond Jakarta through data-centre partners (issue 19). Beside
the Jakarta site of :mod:`gpulease.services.demo` (32 GB200 NVL72 racks, its ids
unchanged), :func:`add_regional_sites` registers three SMALL sites, one HGX rack each (four
8-GPU servers, 32 GPUs: every extra GPU is rows that every test loading the demo pays for),
each in its own country and time zone, so each is under its own country's policy pack
(``compliance/packs``: ``sg-strategic-goods-control``, ``my-strategic-trade-2010``,
``th-wmd-trade-controls``) as well as the operator-wide ones. Their chips get a short chain of
custody (NVIDIA -> the partner: manufactured, sold with papers, shipped, received,
installed). The partners, invoices and papers are the demo's own inventions.

The demo's shared test fixture keeps the Jakarta site alone (``create_demo`` without
``regional_sites``); ``gpulease init --demo`` and the tests of several sites add these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gpulease.domain.access import Principal
from gpulease.inventory.custody import UnitKind
from gpulease.persistence.tables import Gpu, Node
from gpulease.services import custody, inventory
from gpulease.services.context import ServiceContext


@dataclass(frozen=True, slots=True)
class RegionalSite:
    site_id: str
    name: str
    country: str
    city: str
    timezone: str
    partner: str  # the data-centre partner that holds the servers
    serial_prefix: str


REGIONAL_SITES = (
    RegionalSite(
        "sgp1",
        "Singapore partner DC (demo)",
        "SG",
        "Singapore",
        "Asia/Singapore",
        "Lion City Data Centres Pte Ltd (demo)",
        "SGP-HGX",
    ),
    RegionalSite(
        "jhb1",
        "Johor Bahru partner DC (demo)",
        "MY",
        "Johor Bahru",
        "Asia/Kuala_Lumpur",
        "Selatan Compute Sdn Bhd (demo)",
        "JHB-HGX",
    ),
    RegionalSite(
        "bkk1",
        "Bangkok partner DC (demo)",
        "TH",
        "Bangkok",
        "Asia/Bangkok",
        "Chao Phraya Cloud Co., Ltd. (demo)",
        "BKK-HGX",
    ),
)
HARDWARE = "hgx-8gpu"
RACKS = 1  # one leaf switch of four 8-GPU servers per site


def gpu_chain(site: RegionalSite) -> tuple[custody.EventRequest, ...]:
    """The chips' chain for one regional site (the unit is filled in per GPU)."""
    country = site.country

    def event(kind: str, day: datetime, **facts: str) -> custody.EventRequest:
        return custody.EventRequest("gpu", "", kind, day, **facts)

    return (
        event(
            "manufactured",
            datetime(2025, 2, 3, tzinfo=UTC),
            holder="NVIDIA Corporation",
            location="Santa Clara, US",
            note="H100 GPU of an HGX 8-GPU board",
        ),
        event(
            "sold",
            datetime(2025, 2, 17, tzinfo=UTC),
            from_party="NVIDIA Corporation",
            to_party=site.partner,
            invoice=f"NVIDIA invoice NV-2025-{site.serial_prefix} (demo)",
            export_authorization=f"export to {country} under the licence terms in force "
            "in 2025 (demo)",
            end_user_statement=f"{site.partner}: cloud compute in {site.city} for vetted "
            "customers; no military end use (demo)",
        ),
        event(
            "shipped",
            datetime(2025, 3, 3, tzinfo=UTC),
            holder=site.partner,
            location=f"San Jose, US -> {site.city}, {country}",
        ),
        event(
            "received",
            datetime(2025, 3, 17, tzinfo=UTC),
            holder=site.partner,
            location=f"{site.name}, {country}",
        ),
        event(
            "installed",
            datetime(2025, 3, 24, tzinfo=UTC),
            holder=site.partner,
            location=f"its HGX server, {site.name} (site {site.site_id}), {country}",
        ),
    )


def add_regional_sites(ctx: ServiceContext, operator: Principal) -> list[str]:
    """Register the three regional sites with their chips' chains; returns their ids."""
    added = []
    for site in REGIONAL_SITES:
        inventory.register_site(
            ctx,
            operator,
            site_id=site.site_id,
            name=site.name,
            country=site.country,
            city=site.city,
            hardware=HARDWARE,
            racks=RACKS,
            serial_prefix=site.serial_prefix,
            timezone=site.timezone,
        )
        with ctx.db.transaction(write=False) as tx:
            serials = [
                g.serial
                for g in tx.all(
                    tx.select(Gpu)
                    .join(Node, Gpu.node_id == Node.id)
                    .where(Node.site_id == site.site_id)
                    .order_by(Gpu.serial)
                )
            ]
        custody.record_batch(ctx, operator, UnitKind.GPU, serials, gpu_chain(site))
        added.append(site.site_id)
    return added
