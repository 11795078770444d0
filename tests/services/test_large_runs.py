"""The large-runs report (issue 14, defect 9): a running job keeps its projected compute, a
tenant's jobs and each campaign's add up against the thresholds of the policy packs. The
core (``compliance.training_compute``) pure, the report on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gpulease.compliance.policy_packs import InvalidPolicyPack, parse_pack
from gpulease.compliance.training_compute import (
    JobCompute,
    Threshold,
    aggregate,
    campaign_key,
    job_seconds,
)
from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.services import jobs, reports
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler

NOW = datetime(2026, 6, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------ pure
def test_a_running_job_keeps_its_projected_seconds() -> None:
    common = {"starts": 1, "run_s": 0.0, "duration_s": None}
    assert job_seconds(
        running=True, finished=False, current_run_s=60, walltime_s=7200, **common
    ) == (
        7200,
        "walltime limit (running, 60 s so far)",
    )
    # past its limit (a limit raised, a clock skew): what it ran
    assert job_seconds(
        running=True, finished=False, current_run_s=9000, walltime_s=7200, **common
    ) == (
        9000,
        "actual run time (running)",
    )
    # an earlier run counts with the current one
    assert job_seconds(
        running=True,
        finished=False,
        starts=2,
        run_s=500,
        current_run_s=10,
        walltime_s=100,
        duration_s=None,
    ) == (600, "walltime limit (running, 10 s so far)")
    assert job_seconds(
        running=False, finished=True, current_run_s=0, walltime_s=7200, **common
    ) == (
        0.0,
        "actual run time",
    )
    assert (
        job_seconds(
            running=False,
            finished=False,
            starts=0,
            run_s=0,
            current_run_s=0,
            walltime_s=None,
            duration_s=None,
        )
        is None
    )


def test_split_runs_add_up_per_tenant_and_campaign() -> None:
    e = Decimal("1e25")
    runs = [
        JobCompute("j1", "t1", "Financial AI: pretraining", None, e * Decimal("0.4")),
        JobCompute("j2", "t1", "financial ai:  pretraining", None, e * Decimal("0.4")),
        JobCompute(
            "j3", "t1", "financial AI: pretraining", NOW - timedelta(days=10), e * Decimal("0.3")
        ),
        JobCompute("j4", "t1", "drug discovery", None, e * Decimal("0.2")),
        # ended before the window opened: not counted
        JobCompute("j5", "t1", "drug discovery", NOW - timedelta(days=400), e),
        JobCompute("j6", "t2", "financial AI: pretraining", None, e * Decimal("0.9")),
    ]
    found = aggregate(runs, [Threshold("eu", e, 365)], NOW)
    assert [(a.kind, a.tenant_id, a.campaign, a.job_ids, a.ops) for a in found] == [
        ("tenant", "t1", "", ("j1", "j2", "j3", "j4"), e * Decimal("1.3")),
        ("campaign", "t1", "financial ai: pretraining", ("j1", "j2", "j3"), e * Decimal("1.1")),
    ]
    assert found[0].window_start == NOW - timedelta(days=365)
    # a short window leaves out the job that ended ten days ago
    short = aggregate(runs, [Threshold("short", e, 7)], NOW)
    assert [(a.kind, a.job_ids) for a in short] == [("tenant", ("j1", "j2", "j4"))]
    assert campaign_key("  Drug   Discovery ") == "drug discovery"


def test_training_compute_rules_are_checked_on_load() -> None:
    pack = """
id = "p"
version = "1"
title = "t"
source = "s"
status = [{ state = "in_force", from = 2026-01-01 }]
[[rules]]
id = "r"
kind = "training_compute"
threshold_ops = "%s"
window_days = %s
"""
    parsed = parse_pack(pack % ("3e24", "90"), origin="p.toml")
    assert parsed.rules[0].params.threshold_ops == Decimal("3e24")  # type: ignore[union-attr]
    for ops, days, field in (
        ("lots", "90", "threshold_ops"),
        ("-1", "90", "threshold_ops"),
        ("1e26", "0", "window_days"),
    ):
        with pytest.raises(InvalidPolicyPack) as refused:
            parse_pack(pack % (ops, days), origin="p.toml")
        assert refused.value.details["field"] == field


# ------------------------------------------------------------------------ the report
def test_running_job_stays_in_the_report(
    ctx: ServiceContext,
    clock: ManualClock,
    officer: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(
            gpus=64, purpose="drug-discovery: folding", command="train", walltime_s=7200.0
        ),
    )
    expected = Decimal(64) * Decimal("7200.0") * reports.DEFAULT_PEAK_FLOPS_PER_GPU * Decimal("0.4")
    queued = reports.large_training_runs(ctx, officer, threshold_ops="1e20")
    assert [(r["job_id"], Decimal(r["estimated_ops"])) for r in queued["runs"]] == [
        (job.id, expected)
    ]

    [tick] = scheduler.tick()
    assert tick.started == [job.id]
    clock.advance(60)
    running = reports.large_training_runs(ctx, officer, threshold_ops="1e20")
    [run] = running["runs"]
    assert run["job_id"] == job.id
    assert run["state"] == "running"
    assert Decimal(run["estimated_ops"]) == expected
    assert run["seconds_so_far"] == pytest.approx(60, abs=1)
    assert run["seconds_basis"].startswith("walltime limit (running")


def test_a_campaign_split_across_jobs_reaches_the_packs_threshold(
    ctx: ServiceContext, officer: Principal, inftech: Principal, bank: Principal
) -> None:
    # each job 2304 GPUs x 2 days: 2304 x 172800 x 2.5e15 x 0.4 = 3.98e23; thirty of them
    # are 1.19e25, over the EU AI Act's 10^25 presumption, none of them alone near it
    for i in range(30):
        jobs.submit(
            ctx,
            inftech,
            jobs.JobSubmission(
                gpus=2304,
                purpose="financial AI: foundation model pretraining",
                command="train",
                walltime_s=2 * 86_400.0,
                name=f"stage-{i}",
            ),
        )
    jobs.submit(
        ctx,
        bank,
        jobs.JobSubmission(gpus=8, purpose="financial AI: fraud", command="x", walltime_s=3600.0),
    )
    report = reports.large_training_runs(ctx, officer)  # the packs' thresholds
    assert report["runs"] == []
    by_kind = {(a["kind"], a["tenant"]): a for a in report["aggregates"]}
    assert set(by_kind) == {("tenant", "INF Tech"), ("campaign", "INF Tech")}
    campaign = by_kind[("campaign", "INF Tech")]
    assert campaign["campaign"] == "financial ai: foundation model pretraining"
    assert campaign["jobs"] == 30
    assert campaign["passes"] == ["baseline@1/training-compute-1e25"]
    assert Decimal(campaign["estimated_ops"]) > Decimal("1e25")
    assert campaign["window_days"] == 365
