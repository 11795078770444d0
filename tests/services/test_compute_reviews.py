"""Compute reviews (issue 19, compliance that adds up): training compute over a threshold of
the packs raises a case for an officer without anyone asking; estimates use each site's GPU
model's rated peak. On SQLite and PostgreSQL, through the services."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, Denied, InvalidRequest, NotFound
from gpulease.inventory.gpu_models import GPU_MODELS, UNKNOWN_MODEL_PEAK, peak_of
from gpulease.persistence.tables import AuditRecord
from gpulease.services import compute_estimates, compute_reviews, demo_sites, jobs
from gpulease.services.context import ServiceContext
from support.shells import shell

CAMPAIGN = "financial AI: foundation model pretraining"
EU_RULE = "baseline@1/training-compute-1e25"


def _stage(ctx: ServiceContext, who: Principal, i: int, gpus: int = 2304) -> str:
    # 2304 GPUs x 2 days on B200: 2304 x 172800 x 2.5e15 x 0.4 = 3.98e23 operations
    return jobs.submit(
        ctx,
        who,
        jobs.JobSubmission(
            gpus=gpus, purpose=CAMPAIGN, command="train", walltime_s=2 * 86_400.0, name=f"s{i}"
        ),
    ).id


def _actions(ctx: ServiceContext, prefix: str) -> list[str]:
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(select(AuditRecord).where(AuditRecord.action.like(f"{prefix}%")))
        return sorted(r.action for r in rows)


def test_gpu_models_have_sourced_peaks_and_an_unknown_chip_is_never_under_estimated() -> None:
    assert peak_of("B200")[0] == Decimal("2.5e15")
    assert peak_of("h100")[0] == Decimal("9.89e14")
    assert all(spec.peak_flops > 0 and spec.source for spec in GPU_MODELS.values())
    peak, source = peak_of("MI300X")  # not in the table
    assert peak == UNKNOWN_MODEL_PEAK == max(s.peak_flops for s in GPU_MODELS.values())
    assert "not in gpulease's table" in source


def test_each_site_is_estimated_at_its_own_gpu_model(
    ctx: ServiceContext, operator: Principal
) -> None:
    demo_sites.add_regional_sites(ctx, operator)
    with ctx.db.transaction(write=False) as tx:
        peaks = compute_estimates.site_peaks(tx)
    assert {s: (p.models, p.peak) for s, p in peaks.items()} == {
        "jkt1": (("B200",), Decimal("2.5e15")),
        "sgp1": (("H100",), Decimal("9.89e14")),
        "jhb1": (("H100",), Decimal("9.89e14")),
        "bkk1": (("H100",), Decimal("9.89e14")),
    }


def test_a_campaign_over_the_packs_threshold_is_raised_followed_and_decided(
    ctx: ServiceContext,
    clock: ManualClock,
    officer: Principal,
    inftech: Principal,
    bank: Principal,
) -> None:
    for i in range(30):  # 30 x 3.98e23 = 1.19e25: over 10^25, no job alone near it
        _stage(ctx, inftech, i)
    jobs.submit(
        ctx,
        bank,
        jobs.JobSubmission(gpus=8, purpose="financial AI: fraud", command="x", walltime_s=3600.0),
    )
    first = compute_reviews.scan(ctx)
    assert (len(first.opened), first.updated, first.totals) == (2, (), 2)
    reviews = {r.kind: r for r in compute_reviews.list_reviews(ctx, officer, state="open")}
    assert set(reviews) == {"tenant", "campaign"}
    campaign = reviews["campaign"]
    assert campaign.subject_name == "INF Tech"
    assert campaign.campaign == "financial ai: foundation model pretraining"
    assert campaign.threshold_ref == EU_RULE
    assert campaign.jobs == 30
    assert Decimal(campaign.estimated_ops) == 30 * Decimal(2304 * 172800) * Decimal("1e15")
    assert campaign.evidence["by_site"] == {"jkt1": campaign.estimated_ops}
    assert len(campaign.evidence["job_ids"]) == 30
    assert _actions(ctx, "compute_review.") == ["compute_review.open"] * 2

    # a scan with nothing new changes nothing; a new stage updates the open reviews
    assert compute_reviews.scan(ctx) == compute_reviews.ScanResult((), (), 2)
    _stage(ctx, inftech, 30)
    grown = compute_reviews.scan(ctx)
    assert grown.opened == ()
    assert set(grown.updated) == {r.id for r in reviews.values()}
    again = compute_reviews.get_review(ctx, officer, campaign.id)
    assert again.jobs == 31
    assert Decimal(again.estimated_ops) > Decimal(campaign.estimated_ops)

    # decided: not raised again within the threshold's window (365 days) ...
    done = compute_reviews.decide_review(
        ctx, officer, campaign.id, outcome="reported", reason="reported to the ministry, ref 7/26"
    )
    assert (done.state, done.decided_by) == ("reported", officer.user_id)
    _stage(ctx, inftech, 31)
    later = compute_reviews.scan(ctx)
    assert later.opened == ()
    assert later.updated == (reviews["tenant"].id,)
    with pytest.raises(Conflict, match="already decided"):
        compute_reviews.decide_review(ctx, officer, campaign.id, outcome="cleared", reason="x")
    # ... and raised afresh once the window has passed since the decision
    clock.advance(366 * 86_400)
    renewed = compute_reviews.scan(ctx)
    [new_id] = renewed.opened
    new = compute_reviews.get_review(ctx, officer, new_id)
    assert (new.kind, new.state, new.subject_key) == ("campaign", "open", campaign.subject_key)
    assert "compute_review.reported" in _actions(ctx, "compute_review.")


def test_only_operator_staff_read_and_only_officers_decide(
    ctx: ServiceContext, operator: Principal, officer: Principal, inftech: Principal
) -> None:
    for i in range(30):
        _stage(ctx, inftech, i)
    compute_reviews.scan_on_demand(ctx, officer)
    [review, *_] = compute_reviews.list_reviews(ctx, operator)
    with pytest.raises(Denied):
        compute_reviews.list_reviews(ctx, inftech)
    with pytest.raises(Denied):
        compute_reviews.get_review(ctx, inftech, review.id)
    with pytest.raises(Denied):
        compute_reviews.scan_on_demand(ctx, operator)
    with pytest.raises(Denied):
        compute_reviews.decide_review(ctx, operator, review.id, outcome="cleared", reason="x")
    with pytest.raises(InvalidRequest, match="cleared or reported"):
        compute_reviews.decide_review(ctx, officer, review.id, outcome="open", reason="x")
    with pytest.raises(InvalidRequest, match="state must be one of"):
        compute_reviews.decide_review(ctx, officer, review.id, outcome="maybe", reason="x")
    with pytest.raises(InvalidRequest, match="say why"):
        compute_reviews.decide_review(ctx, officer, review.id, outcome="cleared", reason="  ")
    with pytest.raises(InvalidRequest, match="longer than"):
        compute_reviews.decide_review(ctx, officer, review.id, outcome="cleared", reason="x" * 1001)
    with pytest.raises(NotFound):
        compute_reviews.get_review(ctx, officer, "crev-000000000000")
    assert compute_reviews.get_review(ctx, officer, review.id).state == "open"  # nothing half-done


def test_a_failing_scan_never_reaches_the_scheduler_loop(
    ctx: ServiceContext, inftech: Principal
) -> None:
    if not ctx.db.is_sqlite:
        pytest.skip("drops a table: kept to the throwaway SQLite database")
    for i in range(30):
        _stage(ctx, inftech, i)
    scanner = compute_reviews.ComputeScanner(ctx, interval_s=3600)
    with ctx.db.transaction() as tx:
        tx.session.execute(text("DROP TABLE compute_reviews"))
    assert scanner.run() is None  # logged, not raised
    thread = scanner()
    assert thread is not None
    thread.join(30)
    assert scanner() is None  # not due again for an hour


def test_group_totals_across_sites_raise_one_review_for_the_controller(
    ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    # two shell tenants of one holding at two H100 sites: 13 jobs each of 32 GPUs for a year,
    # 32 x 31,536,000 s x 9.89e14 x 0.4 = 3.99e23 a job, 5.19e24 a tenant: below 10^25
    # alone, 1.04e25 together
    demo_sites.add_regional_sites(ctx, operator)
    one = shell(ctx, operator, officer, "Shell One")
    two = shell(ctx, operator, officer, "Shell Two")
    for who, site in ((one, "sgp1"), (two, "bkk1")):
        for i in range(13):
            jobs.submit(
                ctx,
                who,
                jobs.JobSubmission(
                    gpus=32,
                    site_id=site,
                    purpose=f"financial-services-ai: model {i}",
                    command="train",
                    walltime_s=365 * 86_400.0,
                ),
            )
    found = compute_reviews.scan(ctx)
    [review] = [compute_reviews.get_review(ctx, officer, r) for r in found.opened]
    assert (review.kind, review.subject_name) == ("group", "Harbour Holdings Pte Ltd")
    assert set(review.evidence["tenants"]) == {one.tenant_id, two.tenant_id}
    per_job = Decimal(32 * 31_536_000) * Decimal("9.89e14") * Decimal("0.4")
    assert {s: Decimal(v) for s, v in review.evidence["by_site"].items()} == {
        "sgp1": 13 * per_job,
        "bkk1": 13 * per_job,
    }
    assert review.jobs == 26
