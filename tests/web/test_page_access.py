"""Every dashboard page, for every role, against another tenant's records (in-process).

The walk is driven by the app's routes: every ``/ui`` route must be listed in :data:`WALK`
(``test_every_page_is_walked`` fails for a new page nobody classified). The expected answer
follows from :data:`gpulease.domain.access.PERMISSIONS`:

* a role without the page's action gets 403 (the error page says who may);
* a tenant role naming another tenant's record (a tenant filter, a job) gets 404, as for a
  record that does not exist;
* every other visit answers 200;
* nothing a tenant role is shown (200, 403 or 404) names another tenant, its ids, its jobs
  or leases, or operator staff; staff pages do show the other tenant;
* the walk changes nothing (no audit record is written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web_support import Ui, add_member, busy_demo, short_tokens, sign_ledger

from gpulease.domain.access import PERMISSIONS, Action, Role
from gpulease.persistence.tables import AuditRecord, GpuAllocation, KycCase, Lease, Tenant, User
from gpulease.services import identity, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.web import app as web
from gpulease.web import login, pages
from gpulease.web.pages import fleet as fleet_page
from gpulease.web.pages import queue as queue_page


@dataclass(frozen=True)
class Visit:
    path: str  # formatted with the records' ids (b_*: the other tenant's)
    action: Action | None  # None: any signed-in user
    foreign: bool = False  # names a record of the other tenant


WALK: dict[tuple[str, str], list[Visit]] = {
    ("GET", "/ui/fleet"): [Visit("/ui/fleet", Action.NODE_READ)],
    ("GET", "/ui/fleet/grid"): [Visit("/ui/fleet/grid?n=3", Action.NODE_READ)],
    # another tenant's GPU: shown to tenants as "in use", without its holder
    ("GET", "/ui/fleet/gpu/{serial}"): [Visit("/ui/fleet/gpu/{b_gpu}", Action.NODE_READ)],
    ("GET", "/ui/queue"): [
        Visit("/ui/queue", Action.JOB_READ),
        Visit("/ui/queue?state=all&page=1", Action.JOB_READ),
        Visit("/ui/queue?tenant={b_tenant}", Action.JOB_READ, foreign=True),
        Visit("/ui/queue?job={b_job}", Action.JOB_READ, foreign=True),
    ],
    ("GET", "/ui/leases"): [Visit("/ui/leases?days=366", Action.LEASE_READ)],
    ("GET", "/ui/ledger"): [
        Visit("/ui/ledger", None),
        Visit("/ui/ledger?serial={b_gpu}", Action.CUSTODY_READ),
    ],
    ("GET", "/ui/ledger/verify"): [Visit("/ui/ledger/verify", Action.AUDIT_READ)],
    # a tenant's users see their own cases; staff the review queue (pages/compliance.py)
    ("GET", "/ui/compliance"): [Visit("/ui/compliance", Action.KYC_READ)],
    ("GET", "/ui/compliance/cases/{case_id}"): [
        Visit("/ui/compliance/cases/{b_case}", Action.KYC_READ, foreign=True)
    ],
    ("GET", "/ui/compliance/policy"): [
        Visit("/ui/compliance/policy", Action.POLICY_READ),
        Visit("/ui/compliance/policy?as_of=2026-11-10", Action.POLICY_READ),
    ],
    # metered usage: a tenant's own (pages/usage.py)
    ("GET", "/ui/usage"): [
        Visit("/ui/usage?month=2026-03", Action.USAGE_READ),
        Visit("/ui/usage?tenant={b_tenant}", Action.USAGE_READ, foreign=True),
    ],
    # POSTs that decide: walked for every role in test_compliance_pages.py
    ("POST", "/ui/compliance/cases/{case_id}/decide"): [],
    ("POST", "/ui/compliance/purpose-reviews/{review_id}/decide"): [],
}
# the session's own routes, tested in test_session.py
SESSION_ROUTES = {("GET", "/ui/"), ("GET", "/ui/login"), ("POST", "/ui/login")}
SESSION_ROUTES |= {("POST", "/ui/logout")}
ROLES = {
    "operator": Role.OPERATOR_ADMIN,
    "compliance": Role.COMPLIANCE_OFFICER,
    "university": Role.TENANT_ADMIN,
    "member": Role.TENANT_MEMBER,
}


def _audit_count(ctx: ServiceContext) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


def _records(ctx: ServiceContext, made: dict[str, list[str]]) -> tuple[dict[str, str], set[str]]:
    """The other tenant's (the bank's) ids for the paths, and every string a university
    user must never see."""
    with ctx.db.transaction(write=False) as tx:
        tenants = {t.name: t.id for t in tx.all(tx.select(Tenant))}
        staff = tx.all(tx.select(User).where(User.tenant_id.is_(None)))
        foreign_leases = tx.all(
            tx.select(Lease).where(Lease.tenant_id != tenants["Universitas Teknologi Jakarta"])
        )
        held = tx.all(
            tx.select(GpuAllocation).where(
                GpuAllocation.job_id == made["bank"][0], GpuAllocation.end.is_(None)
            )
        )
        [b_case] = tx.all(
            tx.select(KycCase).where(KycCase.tenant_id == tenants["Bank Nusantara Digital"])
        )
    assert held, "the bank's first job runs"
    ids = {"b_tenant": tenants["Bank Nusantara Digital"], "b_job": made["bank"][0]}
    ids["b_gpu"] = held[0].gpu_serial
    ids["b_case"] = b_case.id
    foreign = {"Bank Nusantara Digital", "INF Tech", tenants["Bank Nusantara Digital"]}
    foreign |= {b_case.id, "Nusantara Holdings (demo)"}
    foreign |= {tenants["INF Tech"], *made["bank"], *made["inftech"]}
    foreign |= {lease.id for lease in foreign_leases}
    foreign |= {u.id for u in staff} | {u.name for u in staff}
    return ids, foreign


def _expected(role: Role, visit: Visit) -> int:
    if visit.action is not None and role not in PERMISSIONS[visit.action]:
        return 403
    if visit.foreign and not role.is_operator:
        return 404
    return 200


def test_every_page_is_walked() -> None:
    served = {
        (method, web.PREFIX + route.path)
        for module in (login, *pages.MODULES)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert served == set(WALK) | SESSION_ROUTES, (
        f"add new pages to WALK: {sorted(served - set(WALK) - SESSION_ROUTES)}; "
        f"gone: {sorted(set(WALK) | SESSION_ROUTES - served)}"
    )


def test_each_role_sees_what_the_table_allows_and_tenants_nothing_of_others(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    made = busy_demo(ctx, demo)
    sign_ledger(ctx)
    tokens = short_tokens(demo) | {"member": add_member(ctx, demo)}
    ids, foreign = _records(ctx, made)
    before = _audit_count(ctx)
    for who, role in ROLES.items():
        client: TestClient = ui(tokens[who])
        for (_method, _template), visits in sorted(WALK.items()):
            for visit in visits:
                path = visit.path.format(**ids)
                answer = client.get(path)
                where = f"{who} GET {path}"
                assert answer.status_code == _expected(role, visit), (where, answer.text[:300])
                if not role.is_operator:
                    # (an id the request named may be echoed, as for a missing one)
                    leaked = sorted(s for s in foreign if s in answer.text and s not in path)
                    assert not leaked, (where, leaked)
                elif answer.status_code == 200 and visit.foreign:
                    assert "Bank Nusantara Digital" in answer.text or ids["b_job"] in answer.text
    assert _audit_count(ctx) == before


def test_a_tenant_sees_its_own_gpus_and_jobs_and_the_others_anonymous(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    made = busy_demo(ctx, demo)
    tokens = short_tokens(demo)
    bank, operator = ui(tokens["bank"]), ui(tokens["operator"])
    fleet = bank.get("/ui/fleet").text
    assert 'class="mine"' in fleet
    assert "yours" in fleet
    assert "INF Tech" not in fleet
    assert made["inftech"][0] not in fleet
    for job_id in made["bank"][:1]:
        assert job_id in fleet  # its own running job, in the cells' titles
    grid = bank.get("/ui/fleet/grid?n=1")
    assert grid.headers["content-encoding"] == "gzip"  # the polled grid only: no secret in it
    assert 'hx-trigger="every' in grid.text
    assert "content-encoding" not in bank.get("/ui/fleet").headers  # its CSRF token: plain
    last = bank.get(f"/ui/fleet/grid?n={fleet_page.MAX_POLLS}")
    assert last.status_code == fleet_page.STOP_POLLING  # htmx stops polling
    assert "hx-trigger" not in last.text
    assert "live refresh paused" in last.text
    staff_fleet = operator.get("/ui/fleet").text
    for name in ("INF Tech", "Bank Nusantara Digital", "Universitas Teknologi Jakarta"):
        assert name in staff_fleet
    queue = bank.get("/ui/queue?state=all").text
    assert all(job_id in queue for job_id in made["bank"])
    waiting = ui(tokens["university"]).get("/ui/queue").text
    assert made["university"][-1] in waiting  # the job too large to place waits, with why
    assert "waiting" in waiting


def test_the_queue_pages_by_fifty_and_bounds_the_page(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    tokens = short_tokens(demo)
    bank = identity.authenticate(ctx, tokens["bank"])
    made = [
        jobs.submit(
            ctx,
            bank,
            jobs.JobSubmission(gpus=1, purpose="financial-services-ai: batch", command="t"),
        ).id
        for _ in range(queue_page.PAGE_SIZE + 5)
    ]
    client = ui(tokens["bank"])
    first = client.get("/ui/queue")
    assert first.text.count("<tr data-job=") == queue_page.PAGE_SIZE
    assert 'rel="next"' in first.text
    assert 'rel="prev"' not in first.text
    second = client.get("/ui/queue?state=active&page=2")
    assert second.text.count("<tr data-job=") == 5
    assert 'rel="next"' not in second.text
    shown = re.findall(r'<tr data-job="([^"]+)"', first.text + second.text)
    assert sorted(shown) == sorted(made)  # every job once, across the pages
    assert client.get(f"/ui/queue?page={queue_page.MAX_PAGE + 1}").status_code == 422
    assert client.get("/ui/queue?state=nonsense").status_code == 422
