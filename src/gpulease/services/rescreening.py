"""Re-screening: every approved or pending KYC case again, after a list import or on demand.

Design. A new list snapshot (``screening_lists.import_files``), an officer's request or a
policy change re-screens every case that is approved or waiting for review, one case per
transaction (a failure leaves the others done). For each case the screening step
(:func:`gpulease.services.kyc_screening.screen`) runs against the lists and policy in force
now, and the outcome is one of:

* ``unchanged``: an approved case with no new hit and no worse verdict keeps its approval;
  the new screening record and the lists used are stored, and audited;
* ``reopened``: a new hit (an entry not seen before) or a worse verdict sends the case back
  through screening to review (a new round);
* ``suspended``: the same for the case the tenant stands on, which also suspends the tenant
  (its leases follow its standing: ``kyc.set_standing``).

Invariant: no re-screening ever approves or clears anything; only an officer's decision
does (``kyc.decide_case``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulease.domain.access import Action, Principal
from gpulease.domain.states import KycState
from gpulease.persistence.tables import KycCase, Tenant
from gpulease.services import audit, kyc, kyc_screening, screening_lists
from gpulease.services.context import ServiceContext
from gpulease.services.screening_lists import current_lists


@dataclass(frozen=True, slots=True)
class Rescreen:
    case_id: str
    tenant_id: str
    outcome: str  # unchanged / reopened / suspended
    reason: str


def import_list_and_rescreen(
    ctx: ServiceContext, actor: Principal, files: dict[str, bytes], fmt: str, *, label: str = ""
) -> tuple[screening_lists.ImportReport, list[Rescreen]]:
    """Import a list snapshot, then re-screen every approved or pending tenant against it."""
    report = screening_lists.import_files(ctx, actor, files, fmt, label=label)
    why = f"new {report.snapshot.source} list {report.snapshot.label}"
    return report, rescreen_all(ctx, actor.user_id, why)


def rescreen_now(ctx: ServiceContext, actor: Principal, why: str) -> list[Rescreen]:
    """An officer's re-screening of every approved or pending case (no list changed)."""
    actor.scope(Action.KYC_RESCREEN)
    return rescreen_all(ctx, actor.user_id, why)


def rescreen_all(ctx: ServiceContext, actor: str, why: str) -> list[Rescreen]:
    """Re-screen every approved or pending case (after a list import or a policy change)."""
    with ctx.db.transaction(write=False) as tx:
        cases = tx.all(
            tx.select(KycCase)
            .where(KycCase.state.in_([KycState.APPROVED.value, KycState.NEEDS_REVIEW.value]))
            .order_by(KycCase.id)
        )
    return [_rescreen(ctx, actor, case.id, why) for case in cases]


def _rescreen(ctx: ServiceContext, actor: str, case_id: str, why: str) -> Rescreen:
    now = ctx.now()
    policy = kyc.policy_on(ctx, now)
    lists = current_lists(ctx, policy.screening_lists or None)
    with ctx.db.transaction() as tx:
        case = tx.require(KycCase, case_id, "kyc case", for_update=True)
        before = case.screening or {}
        was_approved = case.state == KycState.APPROVED
        result = kyc_screening.screen(ctx, tx, case, policy, lists, now)
        new_hits = sorted(set(result["hit_keys"]) - set(before.get("hit_keys", [])))
        worse = kyc_screening.rank(result["verdict"]) > kyc_screening.rank(case.verdict)
        tenant = tx.require(Tenant, case.tenant_id, "tenant", for_update=True)
        if case.state == KycState.APPROVED and not (new_hits or worse):
            case.screening, case.screened_at = result, now
            case.lists_screened = list(lists.snapshot_ids)
            audit.record(
                tx,
                at=now,
                actor=actor,
                action="kyc.rescreen",
                subject_type="tenant",
                subject_id=case.tenant_id,
                after={"case_id": case.id, "new_hits": 0},
                reason=f"{why}: no new hit",
            )
            return Rescreen(case.id, case.tenant_id, "unchanged", "no new hit")
        words = (
            f"new hit(s) {', '.join(new_hits)}"
            if new_hits
            else f"verdict {case.verdict or 'none'} -> {result['verdict']}"
        )
        reason = f"{why}: {words}"
        kyc.move_case(tx, case, KycState.SCREENING, now, actor, reason)
        case.screening, case.verdict, case.screened_at = result, result["verdict"], now
        case.policy_versions = list(policy.packs)
        case.lists_screened = list(lists.snapshot_ids)
        case.round += 1
        kyc.move_case(tx, case, KycState.NEEDS_REVIEW, now, actor, reason)
        outcome = "reopened"
        # only the case the tenant stands on suspends it; a pending one is just re-screened
        if was_approved and tenant.approval == "approved":
            kyc.set_standing(
                tx, tenant, "suspended", f"suspended pending review: {reason}", now, actor
            )
            outcome = "suspended"
    return Rescreen(case.id, case.tenant_id, outcome, reason)
