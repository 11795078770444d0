"""Several sites in several countries on a real database (SQLite and PostgreSQL): the demo's
regional sites, admission per site under each country's packs (one approval per tenant),
dispatch across sites with a reason for every site not chosen, and a change of a site's
packs re-screening that site's tenants (issue 19)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from gpulease.compliance.policy import parse_pack
from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import JobState
from gpulease.persistence.tables import AuditRecord, Gpu, Job, KycCase, Node, Site, Tenant
from gpulease.scheduler.dispatch import Start
from gpulease.services import (
    demo_sites,
    inventory,
    jobs,
    kyc,
    report_sites,
    reports,
    rescreening,
    sites,
)
from gpulease.services.context import ServiceContext
from gpulease.services.kyc import NotApproved
from gpulease.services.scheduling import LiveScheduler
from support.shells import shell

MALAYSIA_RULE = "my-strategic-trade-2010@1/ai-chips-suspected-restricted-activity"


@pytest.fixture
def regional(ctx: ServiceContext, operator: Principal) -> list[str]:
    """The demo (Jakarta) plus its Singapore, Johor Bahru and Bangkok sites."""
    return demo_sites.add_regional_sites(ctx, operator)


def submission(gpus: int = 8, **fields: Any) -> jobs.JobSubmission:
    fields.setdefault("command", "train")
    fields.setdefault("duration_s", 600)
    fields.setdefault("purpose", "financial-services-ai")
    return jobs.JobSubmission(gpus=gpus, **fields)


def job_row(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


def test_the_demo_shows_four_sites_in_four_countries(
    ctx: ServiceContext, regional: list[str]
) -> None:
    assert regional == ["sgp1", "jhb1", "bkk1"]
    with ctx.db.transaction(write=False) as tx:
        found = {s.id: (s.country, s.timezone, s.hardware) for s in tx.all(select(Site))}
        gpus = {
            site: len(tx.all(select(Gpu).join(Node).where(Node.site_id == site))) for site in found
        }
    assert found == {
        "jkt1": ("ID", "Asia/Jakarta", "gb200-nvl72"),
        "sgp1": ("SG", "Asia/Singapore", "hgx-8gpu"),
        "jhb1": ("MY", "Asia/Kuala_Lumpur", "hgx-8gpu"),
        "bkk1": ("TH", "Asia/Bangkok", "hgx-8gpu"),
    }
    assert gpus == {"jkt1": 2304, "sgp1": 32, "jhb1": 32, "bkk1": 32}
    assert inventory.default_site(ctx) == "jkt1"  # a lease naming no site: the main site


def test_a_site_time_zone_is_checked(ctx: ServiceContext, operator: Principal) -> None:
    with pytest.raises(InvalidRequest, match="not an IANA time zone") as caught:
        inventory.register_site(
            ctx,
            operator,
            site_id="x1",
            name="x",
            country="SG",
            city="x",
            hardware="hgx-8gpu",
            racks=1,
            serial_prefix="X",
            timezone="Mars/Olympus",
        )
    assert caught.value.details["field"] == "timezone"


def test_one_approval_admitted_in_jakarta_refused_in_johor_with_the_rule_in_words(
    ctx: ServiceContext, regional: list[str], inftech: Principal, bank: Principal
) -> None:
    now = ctx.now()
    found = {a.site_id: a for a in sites.admissions_of(ctx, inftech.tenant_id or "", now)}
    assert {s: a.admitted for s, a in found.items()} == {
        "bkk1": True,
        "jhb1": False,
        "jkt1": True,
        "sgp1": True,
    }
    johor = found["jhb1"]
    assert johor.rule == MALAYSIA_RULE
    assert "tenant not admitted under pack my-strategic-trade-2010@1" in johor.reason
    assert "headquartered in China (CN)" in johor.reason
    assert "my-strategic-trade-2010@1" in johor.packs
    assert "baseline@1" in johor.packs
    assert found["jkt1"].packs == ("baseline@1", "iaas-customer-identification@1")
    assert all(a.admitted for a in sites.admissions_of(ctx, bank.tenant_id or "", now))


def test_each_site_pass_holds_work_only_where_its_packs_refuse(
    ctx: ServiceContext, regional: list[str], inftech: Principal, scheduler: LiveScheduler
) -> None:
    johor = jobs.submit(ctx, inftech, submission(site_id="jhb1"))
    singapore = jobs.submit(ctx, inftech, submission(site_id="sgp1"))
    jakarta = jobs.submit(ctx, inftech, submission(site_id="jkt1"))
    reports = {r.site_id: r for r in scheduler.tick()}
    assert set(reports) == {"bkk1", "jhb1", "jkt1", "sgp1"}
    held = job_row(ctx, johor.id)
    assert held.state == JobState.QUEUED
    assert held.wait_reason.startswith("held at jhb1: tenant not admitted under pack")
    assert "my-strategic-trade-2010@1" in held.wait_reason
    assert job_row(ctx, singapore.id).state == JobState.RUNNING
    assert job_row(ctx, singapore.id).borrowed  # no lease there: idle capacity
    assert job_row(ctx, jakarta.id).state == JobState.RUNNING


def test_a_job_naming_no_site_goes_to_its_lease_with_a_reason_for_every_other_site(
    ctx: ServiceContext, regional: list[str], inftech: Principal
) -> None:
    job = jobs.submit(ctx, inftech, submission())
    assert job.site_id == "jkt1"
    assert job.dispatch is not None
    assert job.dispatch["start"] == Start.NOW_ON_LEASE.name.lower()
    passed = {p["site_id"]: p["reason"] for p in job.dispatch["passed"]}
    assert set(passed) == {"sgp1", "jhb1", "bkk1"}
    assert passed["jhb1"].startswith("held at jhb1: tenant not admitted under pack my-strategic")
    assert passed["sgp1"] == "admitted, but it starts now on idle capacity it borrows there"
    # a 72-GPU gang that must stay in one NVLink domain: only Jakarta has one
    gang = jobs.submit(
        ctx,
        inftech,
        submission(72, topology="required", gpus_per_node=4, sites=("bkk1", "sgp1", "jkt1")),
    )
    assert gang.site_id == "jkt1"
    assert gang.dispatch is not None
    reasons = {p["site_id"]: p["reason"] for p in gang.dispatch["passed"]}
    assert reasons["bkk1"].startswith("never fits this site")
    assert gang.dispatch["asked"] == ["bkk1", "sgp1", "jkt1"]
    with ctx.db.transaction(write=False) as tx:
        trail = tx.all(select(AuditRecord).where(AuditRecord.subject_id == gang.id))
    assert trail[0].after["dispatch"]["site_id"] == "jkt1"


def test_a_job_no_named_site_can_take_is_refused_with_each_reason(
    ctx: ServiceContext, regional: list[str], inftech: Principal, bank: Principal
) -> None:
    with pytest.raises(NotApproved) as refused:
        jobs.submit(
            ctx,
            inftech,
            submission(72, topology="required", gpus_per_node=8, sites=("jhb1", "bkk1")),
        )
    assert set(refused.value.details["sites"]) == {"jhb1", "bkk1"}
    assert "my-strategic-trade-2010@1" in refused.value.message
    assert "never fits this site" in refused.value.details["sites"]["bkk1"]
    with pytest.raises(InvalidRequest, match="no site nowhere1"):
        jobs.submit(ctx, bank, submission(sites=("sgp1", "nowhere1")))
    with pytest.raises(InvalidRequest, match="not both"):
        jobs.submit(ctx, bank, submission(site_id="sgp1", sites=("sgp1", "bkk1")))
    # the bank has no lease outside Jakarta: equal idle capacity, the first id
    job = jobs.submit(ctx, bank, submission(sites=("sgp1", "bkk1")))
    assert job.site_id == "bkk1"
    assert job.dispatch is not None
    assert job.dispatch["start"] == "now_borrowed"


def test_a_change_of_a_sites_packs_rescreens_that_sites_tenants(
    ctx: ServiceContext, regional: list[str], bank: Principal, scheduler: LiveScheduler
) -> None:
    johor = jobs.submit(ctx, bank, submission(site_id="jhb1"))
    scheduler.tick()  # the bank is at jhb1 now: its case is screened there once
    assert job_row(ctx, johor.id).state == JobState.RUNNING
    case_id = _case_of(ctx, bank.tenant_id or "")
    recorded = rescreening.recorded_site(_screening(ctx, case_id), "jhb1")
    assert recorded["admitted"] is True
    assert MALAYSIA_RULE in recorded["rules"]
    assert rescreening.recorded_site(_screening(ctx, case_id), "sgp1") == {}  # not there
    # Malaysia adds a rule refusing Indonesian tenants (a test pack, scoped to MY)
    extra = parse_pack(
        """
id = "my-test-rule"
version = "1"
title = "t"
source = "s"
scope = { countries = ["MY"] }
status = [{ state = "in_force", from = 2026-01-01 }]
[[rules]]
id = "no-id"
kind = "tenant_countries"
title = "no tenants headquartered in Indonesia (test)"
countries = ["ID"]
""",
        origin="test",
    )
    ctx.cache["policy_set"] = kyc.policy_set(ctx).with_packs(extra)
    done = rescreening.on_policy_change(ctx, ctx.now())
    assert [(r.tenant_id, r.outcome) for r in done] == [(bank.tenant_id, "site jhb1: refused")]
    assert "now in force: my-test-rule@1/no-id" in done[0].reason
    after = rescreening.recorded_site(_screening(ctx, case_id), "jhb1")
    assert after["admitted"] is False
    assert "my-test-rule@1" in str(after["refusal"])
    assert rescreening.on_policy_change(ctx, ctx.now()) == []  # idempotent
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, bank.tenant_id or "", "tenant")
        trail = tx.all(select(AuditRecord).where(AuditRecord.action == "kyc.rescreen_site"))
    assert tenant.approval == "approved"  # one approval: only Johor refuses now
    assert [t.after["site_id"] for t in trail] == ["jhb1", "jhb1"]
    scheduler.tick()  # the site's pass holds (drains, if so set) the bank's work there
    queued = jobs.submit(ctx, bank, submission(site_id="jhb1"))
    scheduler.tick()
    assert "rule no-id" in job_row(ctx, queued.id).wait_reason


def _case_of(ctx: ServiceContext, tenant_id: str) -> str:
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, tenant_id, "tenant")
    assert tenant.approval_case_id is not None
    return tenant.approval_case_id


def _screening(ctx: ServiceContext, case_id: str) -> dict[str, Any] | None:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(KycCase, case_id, "kyc case").screening


def test_reports_cover_every_site_one_site_or_one_country_and_add_compute_up(
    ctx: ServiceContext,
    clock: ManualClock,
    regional: list[str],
    inftech: Principal,
    operator: Principal,
    scheduler: LiveScheduler,
) -> None:
    start = clock.now()
    campaign = "financial-services-ai: one model, two sites"
    for site in ("jkt1", "sgp1"):
        jobs.submit(ctx, inftech, submission(site_id=site, duration_s=3600, purpose=campaign))
    scheduler.tick()
    clock.advance(3600)
    scheduler.tick()
    everything = report_sites.sites_disclosure(ctx, operator)
    assert [s["site_id"] for s in everything["sites"]] == ["bkk1", "jhb1", "jkt1", "sgp1"]
    [inf] = [t for t in everything["totals"]["by_tenant"] if t["tenant_id"] == inftech.tenant_id]
    assert inf["by_site"] == {"jkt1": 8.0, "sgp1": 8.0}
    assert inf["gpu_hours"] == 16.0
    assert everything["totals"]["by_country"] == {"ID": 8.0, "SG": 8.0}
    johor = next(s for s in everything["sites"] if s["site_id"] == "jhb1")
    assert johor["tenants"] == []
    assert "my-strategic-trade-2010@1" in johor["packs_in_force"]
    singapore = report_sites.sites_disclosure(ctx, operator, country="Singapore")
    assert [s["site_id"] for s in singapore["sites"]] == ["sgp1"]
    [row] = singapore["sites"][0]["tenants"]
    assert (row["tenant_id"], row["admitted"], row["compute"]["gpu_hours"]) == (
        inftech.tenant_id,
        True,
        8.0,
    )
    before = report_sites.sites_disclosure(
        ctx, operator, site_id="sgp1", as_of=start - timedelta(seconds=1)
    )
    assert before["sites"][0]["tenants"] == []  # nothing had run there then
    with pytest.raises(InvalidRequest, match="not both"):
        report_sites.sites_disclosure(ctx, operator, site_id="sgp1", country="SG")
    runs = reports.large_training_runs(ctx, operator, threshold_ops="1e18")
    [total] = [
        a
        for a in runs["aggregates"]
        if a["kind"] == "campaign" and a["tenant_id"] == inftech.tenant_id
    ]
    assert set(total["by_site"]) == {"jkt1", "sgp1"}
    assert Decimal(total["estimated_ops"]) == sum(Decimal(v) for v in total["by_site"].values())


def test_large_runs_add_up_across_sites_and_tenants_under_one_owner(
    ctx: ServiceContext,
    clock: ManualClock,
    regional: list[str],
    operator: Principal,
    officer: Principal,
    scheduler: LiveScheduler,
) -> None:
    one = shell(ctx, operator, officer, "Shell One")
    two = shell(ctx, operator, officer, "Shell Two")
    jobs.submit(ctx, one, submission(site_id="sgp1", duration_s=3600))
    jobs.submit(ctx, two, submission(site_id="bkk1", duration_s=3600))
    scheduler.tick()
    clock.advance(3600)
    scheduler.tick()
    # each job runs on H100s (the regional sites' HGX racks, 9.89e14 dense BF16 FLOP/s):
    # 8 GPUs x 3600 s x 9.89e14 x 0.4 = 1.139328e19; the two together pass 2e19
    found = reports.large_training_runs(ctx, operator, threshold_ops="2e19")
    assert [a["kind"] for a in found["aggregates"]] == ["group"]
    [group] = found["aggregates"]
    assert group["tenant"] == "Harbour Holdings Pte Ltd"
    assert {t["tenant_id"] for t in group["tenants"]} == {one.tenant_id, two.tenant_id}
    assert {s: Decimal(v) for s, v in group["by_site"].items()} == {
        "bkk1": Decimal("1.139328e19"),
        "sgp1": Decimal("1.139328e19"),
    }
