"""Compute reviews: training compute that reached a threshold of the packs, raised for an officer.

Design. The large-runs report answers when someone asks; a threshold must also be noticed
when nobody asks. :func:`scan` (run by the scheduler leader every
``compute_review_scan_s``, and on demand by an officer) estimates every job's training
compute (:mod:`services.compute_estimates`: each site's GPU model's rated peak), adds them
up per tenant, per campaign (a tenant's jobs declaring one purpose) and per group of tenants
under common control, across every site (:func:`compliance.training_compute.aggregate`),
against the ``training_compute`` thresholds of the packs in force, and for each total that
reaches one:

* opens a review if none is open for the same subject (kind, tenant or controller,
  campaign, threshold: ``subject_key``), with its evidence (jobs, largest first, at most
  :data:`CITED`; a group's tenants; operations per site);
* else updates the open review's total and evidence when they changed;
* opens none when the same subject's last review was decided less than the threshold's
  window ago (the officer has looked at this total; a new window brings a new review).

An officer lists the queue and decides: **cleared** (nothing to report, reason recorded) or
**reported** (reported to the authority the rule names; the reason carries the reference).

Who. Operator staff read the queue (``Action.COMPUTE_REVIEW_READ``); only compliance
officers decide (``Action.COMPUTE_REVIEW_DECIDE``). Tenants never see it. Every opening,
update and decision is audited (the scan as ``system:compute-scan``) with the review as its
subject (``compute_review``), never the tenant: a tenant may prove its own ledger records.

Invariants: a review moves only open -> cleared | reported (``COMPUTE_REVIEW_TRANSITIONS``);
at most one open review per subject key (the scan runs under an advisory lock); a scan
never raises into its caller's loop (:class:`ComputeScanner` logs and retries); a scan
takes the review's row lock, so a decision under way is waited for and a decided review is
never rewritten; a scan with the same jobs writes nothing (the window's start moves with the
clock and is not compared).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gpulease.compliance import training_compute
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.domain.states import (
    COMPUTE_REVIEW_TRANSITIONS,
    ComputeReviewState,
    transition,
)
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import ComputeReview, Job, Tenant
from gpulease.services import audit
from gpulease.services import compute_estimates as estimates_core
from gpulease.services.context import ServiceContext, new_id
from gpulease.services.periodic import Periodic

log = logging.getLogger(__name__)

SCAN_ACTOR = "system:compute-scan"
SCAN_LOCK = "compute-review-scan"
CITED = 200  # job ids kept as a review's evidence, the largest first
REASON_MAX = 1000
REVIEW_FIELDS = ("state", "estimated_ops", "jobs", "decided_by", "decision_reason")


@dataclass(frozen=True, slots=True)
class ScanResult:
    opened: tuple[str, ...]  # review ids
    updated: tuple[str, ...]
    totals: int  # totals that reached a threshold


def subject_key(kind: str, subject_id: str, campaign: str, threshold_ref: str) -> str:
    text = "\x1f".join((kind, subject_id, campaign, threshold_ref))
    return hashlib.sha256(text.encode()).hexdigest()


def scan(ctx: ServiceContext) -> ScanResult:
    """Raise or update a review for every total over a threshold of the packs (module doc)."""
    now = ctx.now()
    limits = [t for t, _note in estimates_core.thresholds(ctx, None, None)]
    with ctx.db.transaction() as tx:
        tx.lock(SCAN_LOCK)
        # only jobs that can count in a window: not ended before the longest one opened
        opened_at = now - timedelta(days=max(t.window_days for t in limits))
        jobs = tx.all(tx.select(Job).where(Job.ended_at.is_(None) | (Job.ended_at >= opened_at)))
        groups, controller_names = estimates_core.ownership_groups_at(tx, now, opened_at)
        peaks = estimates_core.site_peaks(tx)
        estimated, _unestimated = estimates_core.estimate_jobs(
            jobs, now, peaks, estimates_core.DEFAULT_UTILISATION
        )
        computed = [e.compute() for e in estimated]
        totals = training_compute.aggregate(computed, limits, now, groups)
        if not totals:
            return ScanResult((), (), 0)
        names = {t.id: t.name for t in tx.all(tx.select(Tenant))} | controller_names
        ops_of = {c.job_id: c.ops for c in computed}
        site_of = {job.id: job.site_id for job in jobs}
        by_ref = {t.ref: t for t in limits}
        opened: list[str] = []
        updated: list[str] = []
        for total in totals:
            evidence = _evidence(total, ops_of, site_of)
            for ref in total.passes:
                review_id, changed = _raise(
                    tx, total, by_ref[ref], evidence, names.get(total.tenant_id, ""), now
                )
                if review_id is None:
                    continue
                (opened if changed == "opened" else updated).append(review_id)
        return ScanResult(tuple(opened), tuple(updated), len(totals))


def _evidence(
    total: training_compute.Aggregate, ops_of: dict[str, Decimal], site_of: dict[str, str]
) -> dict[str, Any]:
    by_site: dict[str, Decimal] = defaultdict(Decimal)
    for job_id in total.job_ids:
        by_site[site_of[job_id]] += ops_of[job_id]
    largest = sorted(total.job_ids, key=lambda j: (-ops_of[j], j))[:CITED]
    return {
        "job_ids": largest,
        "jobs_omitted": max(0, len(total.job_ids) - CITED),
        "tenants": list(total.tenants),
        "by_site": {site: str(ops) for site, ops in sorted(by_site.items())},
        "window_start": total.window_start.isoformat(),
    }


def _raise(
    tx: Tx,
    total: training_compute.Aggregate,
    threshold: training_compute.Threshold,
    evidence: dict[str, Any],
    name: str,
    now: datetime,
) -> tuple[str | None, str]:
    key = subject_key(total.kind, total.tenant_id, total.campaign, threshold.ref)
    # locked: an officer's decision under way is waited for and seen (never overwritten)
    last = tx.first(
        tx.select(ComputeReview)
        .where(ComputeReview.subject_key == key)
        .order_by(ComputeReview.opened_at.desc(), ComputeReview.id.desc())
        .with_for_update()
    )
    ops = str(total.ops)
    if last is not None and last.state == ComputeReviewState.OPEN:
        if last.estimated_ops == ops and _same(last.evidence, evidence):
            return None, ""
        before = audit.fields_of(last, REVIEW_FIELDS)
        last.estimated_ops, last.jobs, last.evidence = ops, len(total.job_ids), evidence
        last.updated_at = now
        _audit(tx, last, "compute_review.update", before, now, SCAN_ACTOR, "")
        return last.id, "updated"
    if (
        last is not None
        and last.decided_at is not None
        and now - last.decided_at < timedelta(days=threshold.window_days)
    ):
        return None, ""
    review = ComputeReview(
        id=new_id("crev"),
        subject_key=key,
        kind=total.kind,
        subject_id=total.tenant_id,
        subject_name=name[:200],
        campaign=total.campaign[:200],
        threshold_ref=threshold.ref[:200],
        threshold_ops=str(threshold.ops),
        window_days=threshold.window_days,
        estimated_ops=ops,
        jobs=len(total.job_ids),
        evidence=evidence,
        state=ComputeReviewState.OPEN.value,
        opened_at=now,
        updated_at=now,
        decided_by=None,
        decided_at=None,
        decision_reason="",
    )
    tx.add(review)
    tx.flush()
    _audit(tx, review, "compute_review.open", {}, now, SCAN_ACTOR, "")
    return review.id, "opened"


def _same(stored: dict[str, Any], found: dict[str, Any]) -> bool:
    """The same evidence but for the window's start, which moves with the clock."""
    moving = "window_start"
    return {k: v for k, v in stored.items() if k != moving} == {
        k: v for k, v in found.items() if k != moving
    }


def _audit(
    tx: Tx,
    review: ComputeReview,
    action: str,
    before: dict[str, Any],
    now: datetime,
    actor: str,
    reason: str,
) -> None:
    audit.record(
        tx,
        at=now,
        actor=actor,
        action=action,
        # the review is the subject, not the tenant: a tenant proves the ledger records
        # about itself (services.ledger_proofs) and must not learn of a review
        subject_type="compute_review",
        subject_id=review.id,
        before=before,
        after=audit.fields_of(review, REVIEW_FIELDS)
        | {
            "review_id": review.id,
            "subject_kind": "party" if review.kind == "group" else "tenant",
            "subject_id": review.subject_id,
            "kind": review.kind,
            "campaign": review.campaign,
            "threshold": review.threshold_ref,
        },
        reason=reason,
    )


# ----------------------------------------------------------------- the queue
def list_reviews(
    ctx: ServiceContext, actor: Principal, *, state: str | None = None, limit: int = 200
) -> list[ComputeReview]:
    """The queue, open first, the oldest first; operator staff only."""
    actor.scope(Action.COMPUTE_REVIEW_READ)
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000", field="limit")
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(ComputeReview).order_by(ComputeReview.opened_at, ComputeReview.id)
        if state is not None:
            query = query.where(ComputeReview.state == _state(state).value)
        return tx.all(query.limit(limit))


def get_review(ctx: ServiceContext, actor: Principal, review_id: str) -> ComputeReview:
    actor.scope(Action.COMPUTE_REVIEW_READ)
    with ctx.db.transaction(write=False) as tx:
        return tx.require(ComputeReview, review_id, "compute review")


def decide_review(
    ctx: ServiceContext, officer: Principal, review_id: str, *, outcome: str, reason: str
) -> ComputeReview:
    """An officer's decision: ``cleared`` or ``reported`` (the reason says why, or gives the
    report's reference)."""
    officer.scope(Action.COMPUTE_REVIEW_DECIDE)
    target = _state(outcome)
    if target is ComputeReviewState.OPEN:
        raise InvalidRequest("decide cleared or reported", field="outcome")
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidRequest("say why (the decision is recorded with its reason)", field="reason")
    if len(reason) > REASON_MAX:
        raise InvalidRequest(f"reason is longer than {REASON_MAX} characters", field="reason")
    now = ctx.now()
    with ctx.db.transaction() as tx:
        review = tx.require(ComputeReview, review_id, "compute review", for_update=True)
        if review.state != ComputeReviewState.OPEN:
            raise Conflict(
                f"compute review {review.id} was already decided ({review.state}); "
                "a later total over the threshold raises a new review",
                review_id=review.id,
            )
        before = audit.fields_of(review, REVIEW_FIELDS)
        review.state = transition(
            COMPUTE_REVIEW_TRANSITIONS,
            ComputeReviewState(review.state),
            target,
            subject=f"compute review {review.id}",
        ).value
        review.decided_by, review.decided_at, review.decision_reason = (
            officer.user_id,
            now,
            reason,
        )
        _audit(tx, review, f"compute_review.{target.value}", before, now, officer.user_id, reason)
    return review


def _state(value: str) -> ComputeReviewState:
    try:
        return ComputeReviewState(value.strip().lower())
    except ValueError:
        raise InvalidRequest(
            f"state must be one of {', '.join(s.value for s in ComputeReviewState)}",
            field="state",
        ) from None


def scan_on_demand(ctx: ServiceContext, officer: Principal) -> ScanResult:
    """An officer runs the scan now (the leader runs it every ``compute_review_scan_s``)."""
    officer.scope(Action.COMPUTE_REVIEW_DECIDE)
    return scan(ctx)


class ComputeScanner(Periodic):
    """The scheduler leader's periodic hook: a scan every ``interval_s``, in a thread of its
    own (it reads every job: it must not delay the next pass). A failure is logged once and
    retried at the next interval; it never reaches the loop."""

    name = "gpulease-compute-scan"

    def __init__(self, ctx: ServiceContext, interval_s: float | None = None) -> None:
        super().__init__(interval_s or ctx.settings.compute_review_scan_s)
        self.ctx = ctx
        self._warned = False

    def run(self) -> ScanResult | None:
        try:
            found = scan(self.ctx)
            self._warned = False
            if found.opened:
                log.info("compute scan: %d review(s) opened", len(found.opened))
            return found
        except Exception:
            if not self._warned:
                log.exception("compute scan failed; retrying every %.3g s", self.interval_s)
                self._warned = True
        return None
