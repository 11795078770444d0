"""Disclosure reports on a real database: end-user disclosure, GPU provenance, large runs,
operator-only access, and the HTML pages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Denied, InvalidRequest, NotFound
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.tables import GpuAllocation, Job
from gpulease.services import identity, jobs, report_disclosure, report_templates, reports
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler

PURPOSE = "drug-discovery: protein folding"


def _run_job(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    tenant: Principal,
    gpus: int = 64,
    seconds: float = 120,
) -> Job:
    job = jobs.submit(
        ctx,
        tenant,
        jobs.JobSubmission(gpus=gpus, purpose=PURPOSE, command="train", duration_s=seconds),
    )
    [report] = scheduler.tick()
    assert report.started == [job.id]
    clock.advance(seconds + 1)
    [report] = scheduler.tick()
    assert report.finished == [job.id]
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job.id, "job")


def _serial_of(ctx: ServiceContext, job_id: str) -> str:
    with ctx.db.transaction(write=False) as tx:
        row = tx.first(tx.select(GpuAllocation).where(GpuAllocation.job_id == job_id))
    assert row is not None
    return row.gpu_serial


def test_disclosure_of_a_tenant(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    officer: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    assert inftech.tenant_id is not None
    job = _run_job(ctx, clock, scheduler, inftech)
    identity.note_access(ctx, inftech, "198.51.100.23")
    report = report_disclosure.end_user_disclosure(ctx, officer, inftech.tenant_id)

    assert report["tenant"]["name"] == "INF Tech"
    assert report["tenant"]["country"] == "CN"
    [me] = [p for p in report["who"]["parties"] if p["is_tenant"]]
    assert {"type": "registration", "value": "DEMO-SH-2021-0001"} in me["identifiers"]

    declared = [u["code"] for u in report["why"]["declared_end_uses"]]
    assert declared == ["financial-services-ai", "health-research", "drug-discovery"]
    assert [u["code"] for u in report["why"]["approved_end_uses"]] == declared
    assert "no military research" in report["why"]["statement"]

    owners = {o["owner"]: o for o in report["ownership"]["owners"]}
    assert owners["INF Tech founder (demo)"]["percent"] == "60"
    assert owners["INF Tech employee platform (demo)"]["percent"] == "40"
    tree = report["ownership"]["tree"]
    assert tree["name"] == "INF Tech"
    assert [c["name"] for c in tree["owners"]] == [
        "INF Tech founder (demo)",
        "INF Tech employee platform (demo)",
    ]

    [case] = report["decisions"]
    assert case["state"] == "approved"
    [decision] = case["decisions"]
    assert decision["officer_id"] == officer.user_id
    assert decision["decision"] == "approve"
    assert decision["reason"] == "demo: identity, owners and end uses verified"
    assert decision["policy_packs"], "the packs in force when decided"
    assert decision["policy_packs"] == case["rounds"][0]["policy_packs"]
    assert all("@" in p for p in decision["policy_packs"])
    assert report["restricted_links"]["verdict"] == case["verdict"]

    assert report["standing"]["approval"] == "approved"
    assert report["standing"]["expires_at"] is not None

    [used] = report["compute"]["by_purpose"]
    assert used["purpose"] == PURPOSE
    assert used["end_use"] == "drug-discovery"
    assert used["jobs"] == 1
    assert used["gpu_hours"] == pytest.approx(job.gpus * job.run_s / 3600, abs=1e-3)
    assert report["compute"]["gpu_hours"] == used["gpu_hours"]

    assert [a["ip"] for a in report["access"]] == ["198.51.100.23"]
    assert report["access"][0]["first_seen"] == clock.now().isoformat()

    assert report_disclosure.end_user_disclosure(ctx, operator, inftech.tenant_id)["tenant"][
        "id"
    ] == (inftech.tenant_id)
    with pytest.raises(NotFound):
        report_disclosure.end_user_disclosure(ctx, officer, "tenant-nope")

    # as of a moment before the onboarding: no case, no decision, no compute, no access
    before = report_disclosure.end_user_disclosure(
        ctx,
        officer,
        inftech.tenant_id,
        as_of=(job.submitted_at - timedelta(days=1)).replace(tzinfo=None),
    )
    assert before["decisions"] == []
    assert before["compute"] == {"gpu_hours": 0.0, "jobs": 0, "by_purpose": []}
    assert before["access"] == []


def test_gpu_provenance(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = _run_job(ctx, clock, scheduler, inftech)
    serial = _serial_of(ctx, job.id)
    report = reports.gpu_provenance(ctx, operator, serial)

    assert report["gpu"] == {"serial": serial, "model": "B200"}
    where = report["location"]
    assert where["site_id"] == "jkt1"
    assert where["city"] == "Jakarta"
    assert where["rack_serial"].startswith("AIV-NVL72-")
    assert where["node_serial"].startswith(where["rack_serial"])
    assert 0 <= where["slot"] < 4

    chain = [(e["event"], e["holder"]) for e in report["custody"]]
    # the chip's own chain (NVIDIA -> Aivres), then its rack's (Aivres -> Indosat)
    assert chain == [
        ("manufactured", "NVIDIA Corporation"),
        ("sold", "Aivres Systems Inc."),
        ("shipped", "Aivres Systems Inc."),
        ("received", "Aivres Systems Inc."),
        ("installed", "Aivres Systems Inc."),
        ("manufactured", "Aivres Systems Inc."),
        ("sold", "Indosat Ooredoo Hutchison"),
        ("shipped", "Indosat Ooredoo Hutchison"),
        ("received", "Indosat Ooredoo Hutchison"),
        ("installed", "Indosat Ooredoo Hutchison"),
    ]
    assert report["owner"] == "Indosat Ooredoo Hutchison"

    [use] = report["usage"]
    assert use["tenant"] == "INF Tech"
    assert use["tenant_id"] == inftech.tenant_id
    assert use["job_id"] == job.id
    assert use["purpose"] == PURPOSE
    assert use["end_use"] == "drug-discovery"
    assert use["start"] == job.started_at.isoformat() if job.started_at else False
    assert use["end"] == job.ended_at.isoformat() if job.ended_at else False
    assert use["gpu_hours"] == pytest.approx(job.run_s / 3600, abs=1e-4)

    with pytest.raises(NotFound):
        reports.gpu_provenance(ctx, operator, "NO-SUCH-GPU")


def test_large_training_runs(
    ctx: ServiceContext,
    clock: ManualClock,
    officer: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    walltime = 60 * 86_400.0  # 60 days on every GPU of the site
    big = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(
            gpus=2_304,
            purpose="financial AI",
            command="train",
            walltime_s=walltime,
            name="frontier-run",
        ),
    )
    expected = (
        Decimal(2_304)
        * Decimal(repr(walltime))
        * reports.DEFAULT_PEAK_FLOPS_PER_GPU
        * reports.DEFAULT_UTILISATION
    )
    assert Decimal("1e25") < expected < Decimal("1e26")

    # the thresholds of the packs in force: 10^25 (EU AI Act) and 10^26 (baseline)
    report = reports.large_training_runs(ctx, officer)
    assert [t["ref"] for t in report["thresholds"]] == [
        "baseline@1/training-compute-1e25",
        "baseline@1/training-compute-1e26",
    ]
    assert report["threshold_sci"] == "1.000e+25"
    [run] = report["runs"]
    assert run["passes"] == ["baseline@1/training-compute-1e25"]
    assert "NVIDIA GB200 NVL72 product brief" in report["terms"]["peak_source"]
    assert report["terms"]["utilisation"] == "0.4"
    report = reports.large_training_runs(ctx, officer, threshold_ops=reports.THRESHOLD_1E26)
    assert report["runs"] == []
    assert report["threshold_sci"] == "1.000e+26"

    report = reports.large_training_runs(ctx, officer, threshold_ops=reports.THRESHOLD_1E25)
    [run] = report["runs"]
    assert run["job_id"] == big.id
    assert run["gpus"] == 2_304
    assert run["seconds"] == walltime
    assert run["seconds_basis"].startswith("walltime")
    assert Decimal(run["estimated_ops"]) == expected
    assert run["tenant"] == "INF Tech"
    assert "EU AI Act" in report["threshold_note"]

    # the terms are parameters: a faster chip or a busier run changes the estimate
    report = reports.large_training_runs(
        ctx, officer, threshold_ops="5e25", peak_flops_per_gpu="5e15", utilisation="0.9"
    )
    [run] = report["runs"]
    assert Decimal(run["estimated_ops"]) == expected * 2 * Decimal("0.9") / Decimal("0.4")
    assert report["terms"]["peak_source"] == "given by the caller"

    with pytest.raises(InvalidRequest):
        reports.large_training_runs(ctx, officer, threshold_ops="lots")
    with pytest.raises(InvalidRequest):
        reports.large_training_runs(ctx, officer, utilisation="1.5")


def test_large_runs_use_actual_run_seconds(
    ctx: ServiceContext,
    clock: ManualClock,
    officer: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = _run_job(ctx, clock, scheduler, inftech, gpus=64, seconds=120)
    report = reports.large_training_runs(ctx, officer, threshold_ops="1e15")
    [run] = report["runs"]
    assert run["job_id"] == job.id
    assert run["seconds_basis"] == "actual run time"
    assert run["seconds"] == job.run_s
    assert Decimal(run["estimated_ops"]) == (
        Decimal(64) * Decimal(repr(job.run_s)) * Decimal("2.5e15") * Decimal("0.4")
    )


def test_reports_are_for_operator_staff(
    ctx: ServiceContext, inftech: Principal, bank: Principal
) -> None:
    assert inftech.tenant_id is not None
    with pytest.raises(Denied):
        report_disclosure.end_user_disclosure(ctx, inftech, inftech.tenant_id)
    with pytest.raises(Denied):
        report_disclosure.end_user_disclosure(ctx, bank, inftech.tenant_id)
    with pytest.raises(Denied):
        reports.gpu_provenance(ctx, inftech, "AIV-NVL72-G000000")
    with pytest.raises(Denied):
        reports.large_training_runs(ctx, inftech)


def test_html_pages(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    officer: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    assert inftech.tenant_id is not None
    job = _run_job(ctx, clock, scheduler, inftech)
    report = report_disclosure.end_user_disclosure(ctx, officer, inftech.tenant_id)
    page = report_templates.render_html(report, "disclosure")
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    assert "http://" not in page  # self-contained
    assert "https://" not in page
    assert "INF Tech founder (demo)" in page
    verdict = report["decisions"][0]["verdict"]
    assert verdict in ("clear", "review")
    assert f'class="badge {"ok" if verdict == "clear" else "warn"}">{verdict}</span>' in page
    assert '<span class="badge ok">approved</span>' in page
    assert officer.user_id in page

    odd = identity.create_tenant(ctx, operator, name='Ace & <Sons> "Ltd"', country="SG", kind="lab")
    page = report_templates.render_html(
        report_disclosure.end_user_disclosure(ctx, officer, odd.id), "disclosure"
    )
    assert "Ace &amp; &lt;Sons&gt; &#34;Ltd&#34;" in page
    assert "<Sons>" not in page

    gpu_page = report_templates.render_html(
        reports.gpu_provenance(ctx, operator, _serial_of(ctx, job.id)), "gpu"
    )
    assert "Aivres Systems Inc." in gpu_page
    assert PURPOSE in gpu_page
    runs_page = report_templates.render_html(
        reports.large_training_runs(ctx, operator, threshold_ops="1e15"), "large-runs"
    )
    assert job.id in runs_page
    assert "2.500e+15" in runs_page
    with pytest.raises(InvalidRequest):
        report_templates.render_html(report, "nonsense")
