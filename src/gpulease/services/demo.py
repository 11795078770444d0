"""The demo site: the reference case of SCENARIO.md, ready to take jobs.

Creates the Jakarta site (32 GB200 NVL72 racks, 2,304 GPUs with serials and each rack's
custody chain NVIDIA -> Aivres -> Indosat -> installed in Jakarta), the operator's staff,
and three tenants with approved, active leases:

* INF Tech (CN): an AI start-up training finance and health models: 8 racks (576 GPUs);
* Bank Nusantara Digital (ID), a local bank: 128 GPUs;
* Universitas Teknologi Jakarta (ID), a university: 64 GPUs.

The bank and the university are invented for the demo; the site, the racks' chain and INF
Tech are the reported facts of the reference case. Returns every user's token (shown once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gpulease.domain.access import Role
from gpulease.domain.states import LeaseState
from gpulease.services import identity, inventory, leases
from gpulease.services.context import ServiceContext

SITE_ID = "jkt1"
CUSTODY = (
    inventory.CustodyLink(
        datetime(2024, 8, 15, tzinfo=UTC),
        "manufactured",
        "NVIDIA Corporation",
        "Santa Clara, US",
        "GB200 Grace Blackwell superchips",
    ),
    inventory.CustodyLink(
        datetime(2024, 9, 20, tzinfo=UTC),
        "integrated",
        "Aivres Systems Inc.",
        "San Jose, US",
        "rack integration and burn-in",
    ),
    inventory.CustodyLink(
        datetime(2024, 10, 10, tzinfo=UTC),
        "sold",
        "Indosat Ooredoo Hutchison",
        "Jakarta, ID",
        "purchase contract 2024 (about USD 100 million)",
    ),
    inventory.CustodyLink(
        datetime(2024, 10, 28, tzinfo=UTC),
        "installed",
        "Indosat Ooredoo Hutchison",
        "Jakarta DC1, ID",
        "installation record",
    ),
)
TENANTS = (
    # (key, name, country, kind, lease: racks or GPUs)
    ("inftech", "INF Tech", "CN", "ai-startup", {"racks": 8}),
    ("bank", "Bank Nusantara Digital", "ID", "bank", {"gpus": 128}),
    ("university", "Universitas Teknologi Jakarta", "ID", "university", {"gpus": 64}),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    name: str
    email: str
    role: str
    tenant: str | None
    token: str


def create_demo(ctx: ServiceContext, *, lease_days: int = 365) -> list[DemoUser]:
    now = ctx.now()
    admin, admin_token = identity.bootstrap_operator(
        ctx, name="Indosat operations", email="ops@indosat.example"
    )
    operator = identity.principal_of(admin)
    users = [DemoUser(admin.name, admin.email, admin.role, None, admin_token)]
    officer, officer_token = identity.create_user(
        ctx,
        operator,
        name="Indosat compliance",
        email="compliance@indosat.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    users.append(DemoUser(officer.name, officer.email, officer.role, None, officer_token))
    inventory.register_site(
        ctx,
        operator,
        site_id=SITE_ID,
        name="Indosat Jakarta DC1",
        country="ID",
        city="Jakarta",
        hardware="gb200-nvl72",
        racks=32,
        serial_prefix="AIV-NVL72",
        custody=CUSTODY,
    )
    start = now.replace(microsecond=0)
    for key, name, country, kind, size in TENANTS:
        tenant = identity.create_tenant(ctx, operator, name=name, country=country, kind=kind)
        user, token = identity.create_user(
            ctx,
            operator,
            name=f"{name} admin",
            email=f"admin@{key}.example",
            role=Role.TENANT_ADMIN,
            tenant_id=tenant.id,
        )
        users.append(DemoUser(user.name, user.email, user.role, tenant.name, token))
        lease = leases.request_lease(
            ctx,
            identity.principal_of(user),
            leases.LeaseRequest(
                site_id=SITE_ID,
                start=start,
                end=start + timedelta(days=lease_days),
                gpus=size.get("gpus"),
                racks=size.get("racks"),
            ),
        )
        leases.decide(
            ctx,
            operator,
            lease.id,
            LeaseState.APPROVED,
            "demo: approved after the standard procedure",
        )
    leases.tick(ctx, now)
    return users
