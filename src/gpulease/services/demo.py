"""The demo site: the reference case of SCENARIO.md, ready to take jobs.

Creates the Jakarta site (32 GB200 NVL72 racks, 2,304 GPUs with serials), the chain of
custody of every chip (NVIDIA -> Aivres: manufactured, sold with its papers, shipped,
received, installed in its tray) and every rack (Aivres -> Indosat: manufactured, sold with
invoice, export authorization and end-user statement, shipped, received and installed in
Jakarta), the operator's staff, and three tenants with approved, active leases:

* INF Tech (CN): an AI start-up training finance and health models: 8 racks (576 GPUs);
* Bank Nusantara Digital (ID), a local bank: 128 GPUs;
* Universitas Teknologi Jakarta (ID), a university: 64 GPUs.

Every tenant goes through the same KYC procedure (submitted, screened against the imported
lists, approved by the compliance officer) before its lease can activate. The lists are the
ones in ``lists_dir`` (``gpulease init --demo`` passes the shipped ones, see
:mod:`gpulease.data`); without lists the cases say that no list was in force. The bank and
the university are invented for the demo; the site, the racks' chain and INF Tech are the
reported facts of the reference case. Returns every user's token (shown once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gpulease import data
from gpulease.compliance.case_graph import TENANT, DeclaredParty, DeclaredStake
from gpulease.compliance.model import Address
from gpulease.domain.access import Principal, Role
from gpulease.domain.states import LeaseState
from gpulease.inventory.custody import UnitKind
from gpulease.persistence.tables import Gpu, Node, Rack
from gpulease.services import (
    custody,
    demo_sites,
    identity,
    inventory,
    kyc,
    leases,
    ledger_sequencer,
    price_plans,
    screening_lists,
)
from gpulease.services.context import ServiceContext

SITE_ID = "jkt1"
# The reference chain (SCENARIO.md): the chips NVIDIA -> Aivres (a US sale NVIDIA's
# compliance team approved), the racks Aivres -> Indosat (contract mid-2024, delivered to
# Jakarta in October). Dates, invoice numbers and document references are the demo's own.
_AIVRES = "Aivres Systems Inc."
_INDOSAT = "Indosat Ooredoo Hutchison"
GPU_CHAIN = (
    custody.EventRequest(
        "gpu",
        "",
        "manufactured",
        datetime(2024, 7, 15, tzinfo=UTC),
        holder="NVIDIA Corporation",
        location="Santa Clara, US",
        note="B200 GPU of a GB200 Grace Blackwell superchip",
    ),
    custody.EventRequest(
        "gpu",
        "",
        "sold",
        datetime(2024, 7, 22, tzinfo=UTC),
        from_party="NVIDIA Corporation",
        to_party=_AIVRES,
        invoice="NVIDIA invoice NV-2024-AIV-0722 (demo)",
        export_authorization="none required: a sale within the US",
        end_user_statement="Aivres statement: integration into GB200 NVL72 racks for "
        "Indosat Ooredoo Hutchison, Jakarta (demo)",
        note="sale approved by NVIDIA's compliance team",
    ),
    custody.EventRequest(
        "gpu",
        "",
        "shipped",
        datetime(2024, 7, 29, tzinfo=UTC),
        holder=_AIVRES,
        location="Santa Clara, US -> San Jose, US",
    ),
    custody.EventRequest(
        "gpu",
        "",
        "received",
        datetime(2024, 8, 2, tzinfo=UTC),
        holder=_AIVRES,
        location="Aivres integration plant, San Jose, US",
    ),
    custody.EventRequest(
        "gpu",
        "",
        "installed",
        datetime(2024, 8, 20, tzinfo=UTC),
        holder=_AIVRES,
        location="its compute tray, Aivres integration plant, San Jose, US",
    ),
)
RACK_CHAIN = (
    custody.EventRequest(
        "rack",
        "",
        "manufactured",
        datetime(2024, 9, 20, tzinfo=UTC),
        holder=_AIVRES,
        location="San Jose, US",
        note="GB200 NVL72 rack integration and burn-in",
    ),
    custody.EventRequest(
        "rack",
        "",
        "sold",
        datetime(2024, 10, 1, tzinfo=UTC),
        from_party=_AIVRES,
        to_party=_INDOSAT,
        invoice="Aivres invoice AIV-IOH-2024-0032: 32 racks, about USD 100 million (demo)",
        export_authorization="NLR: no licence required for Indonesia in 2024 (demo)",
        end_user_statement="Indosat end-user statement: cloud compute in Jakarta for vetted "
        "customers, first INF Tech; no military end use (demo)",
        note="contract signed mid-2024; title passes on shipment",
    ),
    custody.EventRequest(
        "rack",
        "",
        "shipped",
        datetime(2024, 10, 8, tzinfo=UTC),
        holder=_INDOSAT,
        location="San Jose, US -> Jakarta, ID",
    ),
    custody.EventRequest(
        "rack",
        "",
        "received",
        datetime(2024, 10, 25, tzinfo=UTC),
        holder=_INDOSAT,
        location="Jakarta DC1, ID",
    ),
    custody.EventRequest(
        "rack",
        "",
        "installed",
        datetime(2024, 10, 28, tzinfo=UTC),
        holder=_INDOSAT,
        location="Jakarta DC1 (site jkt1), ID",
    ),
)
TENANTS = (
    # (key, name, country, kind, lease: racks or GPUs)
    ("inftech", "INF Tech", "CN", "ai-startup", {"racks": 8}),
    ("bank", "Bank Nusantara Digital", "ID", "bank", {"gpus": 128}),
    ("university", "Universitas Teknologi Jakarta", "ID", "university", {"gpus": 64}),
)
# The KYC case of each tenant, each party declared once with its edges (``case_graph``).
# INF Tech's declared end uses are the reported ones; its owners are not public, so the
# founder's stake and the employee platform below are invented.
CASES: dict[str, kyc.CaseSubmission] = {
    "inftech": kyc.CaseSubmission(
        organization=kyc.PartyInput(
            "INF Tech",
            aliases=("INF Technology (Shanghai) Co., Ltd.",),
            countries=("CN",),
            identifiers=(("registration", "DEMO-SH-2021-0001"),),
            addresses=(Address(city="Shanghai", country="CN"),),
        ),
        end_uses=("financial-services-ai", "health-research", "drug-discovery"),
        end_use_statement="training models for financial AI and for health research "
        "including drug discovery; no military research",
        parties=(
            DeclaredParty(
                "founder",
                kyc.PartyInput("INF Tech founder (demo)", kind="person", countries=("US",)),
            ),
            DeclaredParty(
                "esop", kyc.PartyInput("INF Tech employee platform (demo)", countries=("CN",))
            ),
        ),
        ownership=(
            DeclaredStake("founder", TENANT, Decimal(60)),
            DeclaredStake("esop", TENANT, Decimal(40)),
        ),
        identification={
            "name": "INF Tech",
            "address": "Shanghai, CN",
            "national_or_registration_id": "DEMO-SH-2021-0001",
            "payment_means": "bank transfer",
            "payment_source": "INF Tech",
            "emails": ["admin@inftech.example"],
            "phone_numbers": ["+86 21 0000 0000"],
            "access_ips_with_times": [{"ip": "203.0.113.7", "at": "2026-01-05T02:00:00Z"}],
        },
    ),
    "bank": kyc.CaseSubmission(
        organization=kyc.PartyInput(
            "Bank Nusantara Digital",
            countries=("ID",),
            identifiers=(("registration", "DEMO-JKT-0042"),),
        ),
        end_uses=("financial-services-ai",),
        end_use_statement="credit risk and fraud detection models",
        parties=(
            DeclaredParty(
                "holding", kyc.PartyInput("Nusantara Holdings (demo)", countries=("ID",))
            ),
        ),
        ownership=(DeclaredStake("holding", TENANT, Decimal(100)),),
        identification={"name": "Bank Nusantara Digital", "address": "Jakarta, ID"},
    ),
    "university": kyc.CaseSubmission(
        organization=kyc.PartyInput("Universitas Teknologi Jakarta", countries=("ID",)),
        end_uses=("education", "scientific-computing"),
        end_use_statement="teaching and open research",
        identification={"name": "Universitas Teknologi Jakarta", "address": "Jakarta, ID"},
    ),
}
LIST_FILES = (  # (path under the lists folder, or that path + .xz / .gz; format)
    ("ofac-sdn", "ofac-sdn"),
    ("csl-legacy-sample.csv", "csl-csv"),
    ("bis-denied-persons.tsv", "bis-dpl"),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    name: str
    email: str
    role: str
    tenant: str | None
    token: str


def create_demo(
    ctx: ServiceContext,
    *,
    lease_days: int = 365,
    lists_dir: Path | None = None,
    regional_sites: bool = False,
) -> list[DemoUser]:
    """Create the demo; with ``lists_dir`` (e.g. :func:`gpulease.data.shipped_lists`),
    import its screening lists first so the tenants are screened against them."""
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
    if lists_dir is not None:
        officer_p = identity.principal_of(officer)
        for name, fmt in LIST_FILES:
            found = data.locate(lists_dir / name)
            if found is not None:
                screening_lists.import_list(
                    ctx, officer_p, found, fmt, label=f"demo import of {name}"
                )
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
    )
    record_reference_chain(ctx, operator, SITE_ID)
    start = now.replace(microsecond=0)
    create_demo_plan(ctx, operator, start)
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
        case = kyc.submit_case(ctx, identity.principal_of(user), tenant.id, CASES[key])
        kyc.decide_case(
            ctx,
            identity.principal_of(officer),
            case.id,
            approve=True,
            reason="demo: identity, owners and end uses verified",
        )
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
    if regional_sites:  # Singapore, Johor Bahru, Bangkok (services.demo_sites)
        demo_sites.add_regional_sites(ctx, operator)
    ledger_sequencer.sequence(ctx)  # the demo's records at their positions, as init leaves them
    return users


def create_demo_plan(ctx: ServiceContext, operator: Principal, start: datetime) -> None:
    """The default price plan, in force from the start of the demo's first month: a
    reserved GPU-hour at the leases' quoted rate, on-demand dearer, borrowed (preemptible)
    capacity 60% off on-demand, lenders credited 50% of that revenue, SLA credits at the
    committed rate for each GPU-hour late beyond an hour, capped at 30% of the reservation."""
    price_plans.create_version(
        ctx,
        operator,
        price_plans.PlanInput(
            plan_id=price_plans.DEFAULT_PLAN,
            effective_from=start.replace(day=1, hour=0, minute=0, second=0),
            currency=ctx.settings.currency,
            reserved_rate=ctx.settings.price_per_gpu_hour,
            on_demand_rate=ctx.settings.price_per_gpu_hour * Decimal("1.5"),
            borrowed_discount=Decimal("0.6"),
            lending_share=Decimal("0.5"),
        ),
    )


def record_reference_chain(ctx: ServiceContext, operator: Principal, site_id: str) -> None:
    """The reference chain for every GPU (per rack: one audit record per event names the
    rack's chips) and every rack of ``site_id``."""
    with ctx.db.transaction(write=False) as tx:
        racks = tx.all(tx.select(Rack).where(Rack.site_id == site_id).order_by(Rack.index))
        rack_of = {n.id: n.rack_id for n in tx.all(tx.select(Node).where(Node.site_id == site_id))}
        gpus = tx.all(
            tx.select(Gpu)
            .join(Node, Gpu.node_id == Node.id)
            .where(Node.site_id == site_id)
            .order_by(Node.index, Gpu.slot)
        )
    chips: dict[str, list[str]] = {rack.id: [] for rack in racks}
    for gpu in gpus:
        chips[rack_of[gpu.node_id]].append(gpu.serial)
    for rack in racks:
        custody.record_batch(ctx, operator, UnitKind.GPU, chips[rack.id], GPU_CHAIN)
    custody.record_batch(ctx, operator, UnitKind.RACK, [r.id for r in racks], RACK_CHAIN)
