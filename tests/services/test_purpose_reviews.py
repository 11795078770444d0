"""Declared purposes on a real database: a purpose needing review holds its job in an
officer queue (approve releases it, reject refuses it), a refused purpose is audited though
the request fails, officers alone see and decide the queue; on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from test_kyc import case_of

from gpulease.compliance.admission import REVIEW_HOLD
from gpulease.compliance.end_uses import PurposeOutcome
from gpulease.domain.access import Principal
from gpulease.domain.errors import Conflict, Denied, DomainError, InvalidRequest, NotFound
from gpulease.domain.states import JobState, PurposeReviewState
from gpulease.persistence.tables import AuditRecord, Job, PurposeReview, Tenant
from gpulease.services import identity, jobs, kyc, purpose_reviews
from gpulease.services.context import ServiceContext
from gpulease.services.kyc import NotApproved
from gpulease.services.scheduling import LiveScheduler

AGENT = "drug-discovery: ricin toxicity mechanisms"  # an agent named: review


def submission(purpose: str, **fields: Any) -> jobs.JobSubmission:
    fields.setdefault("command", "train")
    fields.setdefault("duration_s", 600)
    return jobs.JobSubmission(gpus=8, purpose=purpose, **fields)


def job_row(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


def audits(ctx: ServiceContext, action: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
        )


def count(ctx: ServiceContext, model: type) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_purpose_needing_review_is_held_until_an_officer_approves_it(
    ctx: ServiceContext, inftech: Principal, officer: Principal, scheduler: LiveScheduler
) -> None:
    job = jobs.submit(ctx, inftech, submission(AGENT))
    assert job.state == JobState.QUEUED
    assert job.wait_reason.startswith(REVIEW_HOLD)
    assert "'ricin' (chemical; CWC Schedule 1)" in job.wait_reason
    [review] = purpose_reviews.list_reviews(ctx, officer, state="pending")
    assert (review.subject_id, review.tenant_id, review.purpose) == (
        job.id,
        inftech.tenant_id,
        AGENT,
    )
    assert review.decision["classification"]["findings"][0]["source"] == "cwc-1"
    [opened] = audits(ctx, "purpose.review")
    assert opened.subject_id == job.id
    assert opened.after is not None
    assert opened.after["review_id"] == review.id

    scheduler.tick()
    held = job_row(ctx, job.id)
    assert held.state == JobState.QUEUED  # held: never started
    assert held.wait_reason.startswith(REVIEW_HOLD)

    decided = purpose_reviews.decide_review(
        ctx, officer, review.id, approve=True, reason="toxicology of an antidote; verified"
    )
    assert decided.state == PurposeReviewState.APPROVED
    assert decided.decided_by == officer.user_id
    [approved] = audits(ctx, "purpose.approve")
    assert approved.subject_id == inftech.tenant_id
    assert approved.reason == "toxicology of an antidote; verified"
    with ctx.db.transaction(write=False) as tx:
        assert AGENT in tx.require(Tenant, inftech.tenant_id or "", "tenant").cleared_purposes

    [report] = scheduler.tick()
    assert job.id in report.started
    assert job_row(ctx, job.id).state == JobState.RUNNING
    # the same words again: cleared for this tenant, not held a second time
    again = jobs.submit(ctx, inftech, submission(AGENT))
    assert not again.wait_reason.startswith(REVIEW_HOLD)
    assert len(purpose_reviews.list_reviews(ctx, officer)) == 1


def test_rejecting_a_review_refuses_every_job_it_holds(
    ctx: ServiceContext, inftech: Principal, officer: Principal, scheduler: LiveScheduler
) -> None:
    first = jobs.submit(ctx, inftech, submission(AGENT))
    second = jobs.submit(ctx, inftech, submission(AGENT))
    reviews = purpose_reviews.list_reviews(ctx, officer, state="pending")
    assert {r.subject_id for r in reviews} == {first.id, second.id}
    purpose_reviews.decide_review(
        ctx, officer, reviews[0].id, approve=False, reason="no credible civilian purpose"
    )
    for job_id in (first.id, second.id):
        ended = job_row(ctx, job_id)
        assert ended.state == JobState.FAILED
        assert "rejected its declared purpose: no credible civilian purpose" in ended.end_reason
    assert {r.state for r in purpose_reviews.list_reviews(ctx, officer)} == {"rejected"}
    assert len(audits(ctx, "purpose.reject")) == 2
    assert len(audits(ctx, "job.failed")) == 2
    scheduler.tick()
    assert job_row(ctx, first.id).state == JobState.FAILED
    with pytest.raises(Conflict, match="already decided"):
        purpose_reviews.decide_review(ctx, officer, reviews[0].id, approve=True, reason="x")


@pytest.mark.parametrize(
    "purpose",
    [
        "drug-discovery: sarin synthesis route optimisation",
        "financial AI: w3ap0ns targeting",
        "health-research: signals intelligence for a country's armed forces",
    ],
)
def test_a_refused_purpose_is_audited_and_stores_nothing_else(
    ctx: ServiceContext, inftech: Principal, purpose: str
) -> None:
    jobs_before, reviews_before = count(ctx, Job), count(ctx, PurposeReview)
    with pytest.raises(NotApproved) as refused:
        jobs.submit(ctx, inftech, submission(purpose))
    assert refused.value.code == "not_approved"
    assert "prohibited end use" in refused.value.message
    assert count(ctx, Job) == jobs_before
    assert count(ctx, PurposeReview) == reviews_before
    [record] = audits(ctx, "purpose.refuse")
    assert record.actor == inftech.user_id
    assert record.subject_type == "tenant"
    assert record.subject_id == inftech.tenant_id
    assert record.after is not None
    assert record.after["request"] == "job.submit"
    assert record.after["outcome"] == "refuse"
    assert record.after["classification"]["findings"]
    assert record.reason == refused.value.message


def test_negated_prohibited_words_run_without_review(
    ctx: ServiceContext, inftech: Principal, officer: Principal
) -> None:
    job = jobs.submit(ctx, inftech, submission("financial AI: credit models, no military use"))
    assert not job.wait_reason.startswith(REVIEW_HOLD)
    assert purpose_reviews.list_reviews(ctx, officer) == []


def test_only_officers_see_and_decide_the_queue(
    ctx: ServiceContext,
    inftech: Principal,
    bank: Principal,
    operator: Principal,
    officer: Principal,
) -> None:
    jobs.submit(ctx, inftech, submission(AGENT))
    [review] = purpose_reviews.list_reviews(ctx, officer)
    for who in (inftech, bank, operator):
        with pytest.raises(Denied):
            purpose_reviews.list_reviews(ctx, who)
        with pytest.raises(Denied):
            purpose_reviews.get_review(ctx, who, review.id)
        with pytest.raises(Denied):
            purpose_reviews.decide_review(ctx, who, review.id, approve=True, reason="mine")
    with pytest.raises(NotFound):
        purpose_reviews.get_review(ctx, officer, "review-000000000000")
    with pytest.raises(InvalidRequest, match="say why"):
        purpose_reviews.decide_review(ctx, officer, review.id, approve=True, reason=" ")
    with pytest.raises(InvalidRequest) as bad:
        purpose_reviews.list_reviews(ctx, officer, state="maybe")
    assert bad.value.details["field"] == "state"
    assert audits(ctx, "purpose.approve") == []  # nothing was decided
    assert purpose_reviews.get_review(ctx, officer, review.id).state == "pending"


def test_clearing_a_purpose_never_lifts_a_refusal(
    ctx: ServiceContext, inftech: Principal, officer: Principal
) -> None:
    """An officer's clearance lifts a review only: a purpose refused (here a code the
    tenant is not approved for) stays refused whatever words were cleared."""
    purpose = "inference-serving: ricin toxicity mechanisms"
    with ctx.db.transaction() as tx:
        tenant = tx.require(Tenant, inftech.tenant_id or "", "tenant", for_update=True)
        tenant.cleared_purposes = [purpose]
    with pytest.raises(DomainError, match="not among the end uses approved"):
        jobs.submit(ctx, inftech, submission(purpose))


def test_a_kyc_statement_about_surveilling_a_minority_is_not_clear(
    ctx: ServiceContext, operator: Principal
) -> None:
    tenant = identity.create_tenant(ctx, operator, name="Watchful AI", country="SG", kind="lab")
    statement = "vision models that help the police in surveilling a minority"
    case = kyc.submit_case(
        ctx,
        operator,
        tenant.id,
        case_of("Watchful AI", "SG", end_uses=("general-model-training",), statement=statement),
    )
    assert case.verdict == "block"
    assert case.screening is not None
    [why] = [r for r in case.screening["reasons"] if r.startswith("end-use statement")]
    assert "surveillance" in why
    assert "15 CFR 744.11" in why


def test_a_purpose_is_decided_in_one_place_and_review_is_a_hold(
    ctx: ServiceContext, inftech: Principal
) -> None:
    """The services decide a work purpose only through ``purpose_reviews.decide``, where
    "review" holds the work for an officer: no second admission path (there was one in
    ``kyc``, left behind when jobs moved to the queue) refuses what the queue would hold."""
    services = Path(purpose_reviews.__file__).parent
    deciders = set()
    for path in sorted(services.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and "check_purpose" in ast.unparse(call.func):
                    deciders.add(f"{path.stem}.{node.name}")
    assert deciders == {"purpose_reviews.decide"}
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, inftech.tenant_id or "", "tenant")
    assert purpose_reviews.decide(ctx, tenant, AGENT).outcome is PurposeOutcome.REVIEW
