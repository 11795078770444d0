"""The disclosure and GPU reports cite ledger positions with inclusion proofs that a
regulator checks against the keys (and a published head) alone; the scheduler's leader signs
heads on its own."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import NotFound
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.ledger.heads import KeyPeriod, SignedTreeHead
from gpulease.ledger.proofs import RecordProof, check_record_proof
from gpulease.persistence.tables import GpuAllocation
from gpulease.services import (
    jobs,
    ledger,
    ledger_keys,
    report_disclosure,
    report_templates,
    reports,
)
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduler_loop import SchedulerLoop
from gpulease.services.scheduling import LiveScheduler


def _checked(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The section's records, each proof checked against the section's keys and head."""
    keys = [KeyPeriod.from_json(k) for k in section["keys"]]
    head = SignedTreeHead.from_json(section["head"])
    assert section["records"]
    for cited in section["records"]:
        proof = RecordProof.from_json(cited)
        assert proof.head == head
        assert check_record_proof(proof, keys) is None
        assert cited["inclusion"]["leaf_index"] == cited["position"]
        forged = RecordProof.from_json(dict(cited, record=dict(cited["record"], actor="x")))
        assert check_record_proof(forged, keys) is not None
    return list(section["records"])


def test_reports_cite_positions_and_proofs(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
) -> None:
    assert inftech.tenant_id is not None
    unsigned = report_disclosure.end_user_disclosure(ctx, operator, inftech.tenant_id)
    assert unsigned["ledger"]["head"] is None  # no key on this host: positions, no proofs
    assert unsigned["ledger"]["records"]

    ledger.ensure_key(ctx)
    disclosure = report_disclosure.end_user_disclosure(ctx, operator, inftech.tenant_id)
    cited = _checked(disclosure["ledger"])
    assert {c["record"]["action"] for c in cited} >= {"kyc.approve"}
    assert all(c["record"]["subject_id"] == inftech.tenant_id for c in cited)

    job = jobs.submit(
        ctx, inftech, jobs.JobSubmission(gpus=8, purpose="financial AI", command="train")
    )
    [report] = scheduler.tick()
    assert report.started == [job.id]
    with ctx.db.transaction(write=False) as tx:
        row = tx.first(tx.select(GpuAllocation).where(GpuAllocation.job_id == job.id))
    assert row is not None
    gpu = reports.gpu_provenance(ctx, operator, row.gpu_serial)
    [start] = _checked(gpu["ledger"])
    assert (start["record"]["action"], start["record"]["subject_id"]) == ("job.start", job.id)
    assert gpu["ledger"]["head"]["tree_size"] > start["position"]
    page = report_templates.render_html(gpu, "gpu")
    assert "<h2>Ledger</h2>" in page
    assert f'<td class="num">{start["position"]}</td>' in page
    assert "<h2>Ledger</h2>" in report_templates.render_html(unsigned, "disclosure")


def test_the_scheduler_leader_signs_heads(
    ctx: ServiceContext, demo: list[DemoUser], db_backend: str
) -> None:
    """The leader's loop signs a head over the demo's records after its first pass."""
    ledger.ensure_key(ctx)
    loop = SchedulerLoop(LiveScheduler(ctx, SimulatedExecutor(), name="leader"), interval_s=0.05)
    loop.start()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                head = ledger.latest_head(ctx)
                break
            except NotFound:
                assert time.monotonic() < deadline, "no head signed"
                time.sleep(0.05)
    finally:
        loop.stop()
    assert head.tree_size > 0
    assert ledger.verify(ctx).ok


def test_a_host_without_the_key_file_gives_positions_and_never_names_the_file(
    ctx: ServiceContext, operator: Principal, inftech: Principal
) -> None:
    """An API-only server does not hold the signing key that ``init`` made on another host:
    a report there cites positions without proofs (never an error), and asking that server
    to sign answers a conflict that does not reveal where keys live."""
    assert inftech.tenant_id is not None
    ledger.ensure_key(ctx)
    for path in ledger_keys.key_dir(ctx.settings).glob("*.pem"):
        path.unlink()  # the key is in the database's key table, its file elsewhere
    jobs.submit(ctx, inftech, jobs.JobSubmission(gpus=8, purpose="financial AI", command="t"))
    disclosure = report_disclosure.end_user_disclosure(ctx, operator, inftech.tenant_id)
    assert disclosure["ledger"]["head"] is None
    assert disclosure["ledger"]["records"]
    assert "no signing key on this host" in disclosure["ledger"]["note"]
    with pytest.raises(ledger.NoKey) as refused:
        ledger.sign_head(ctx)
    assert "does not hold the ledger's signing key" in refused.value.message
    assert str(ledger_keys.key_dir(ctx.settings)) not in refused.value.message
