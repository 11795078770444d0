"""KYC: one approval procedure for every tenant, recorded step by step and enforced.

The procedure (``KycState``): a tenant (or the operator for it) **submits** a case: the
organisation's identity, its declared parties (each once) with their ownership and control
edges (``compliance.case_graph``; the older owners/officers lists are still accepted), the
end uses it declares and the customer-identification fields. The whole case is validated
before anything is stored (refs, self-ownership, stakes above 100 % in any entity, countries
that are not ISO 3166 ones: a 422 naming the field and the refs); countries are stored as
alpha-2 codes, names and alpha-3 codes accepted, as through the API. The case is
**screened** at once (``compliance.screening``, a pure core): every declared party
against the current lists (``compliance.matching``), the tenant's ownership under the 50 %
rules and red-flag thresholds in force (``compliance.ownership`` through the effective
policy), its declared end uses (``compliance.end_uses``), its country tier, and the
customer-identification fields the policy requires for a foreign customer. The outcome
(clear / review / block, with every reason) goes to **needs_review**: nothing is ever
approved without a compliance officer (two independent officers when four-eyes is set, under
the setting in force at each decision: :mod:`gpulease.compliance.four_eyes`). A
blocked case can only be rejected. A case whose stored facts cannot be screened goes to
review with the error as its reason (never left ``submitted``). A case screened while no
list is in force is never clear: its verdict is at least review, its first reason and each
party's say that no list was in force. Approval sets the tenant's standing (approved end
uses, expiry) beside the tenant row, which is what admission checks read: a submitted job's
purpose is decided by ``services.purpose_reviews.decide`` (a purpose sent to review is held
for an officer, not refused), the scheduler's admission by ``compliance.admission``.

Re-screening: a new list import, or a change of the policy rules in force (the scheduler's
pass notices it), re-screens every approved or pending case; a new hit (an entry not seen
at approval, or a worse verdict) sends an approved case back to screening and review and
**suspends** the tenant (queued jobs held, running jobs drained or kept by
configuration, active leases suspended). An approval that expires does the same. No path
skips a step: the transition table allows none, and every step writes an audit record in its
transaction, naming the policy packs in force and the list snapshots used.

This module holds the procedure's steps (submit, screen, decide, expire) and the tenant's
standing (``TenantStanding``, moved by ``STANDING_TRANSITIONS``); the screening of one case
is :mod:`gpulease.services.kyc_screening`, the re-screening of every case
:mod:`gpulease.services.rescreening`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gpulease.compliance import four_eyes
from gpulease.compliance.case_graph import (
    TENANT,
    CaseGraph,
    DeclaredParty,
    DeclaredRole,
    DeclaredStake,
    LegacyOfficer,
    LegacyOwner,
    PartyDetails,
    validate_graph,
    with_country_codes,
)
from gpulease.compliance.end_uses import is_end_use
from gpulease.compliance.model import PartyKind
from gpulease.compliance.policy import EffectivePolicy, PolicySet
from gpulease.domain.access import Action, Principal, Scope
from gpulease.domain.errors import Conflict, Denied, DomainError, InvalidRequest
from gpulease.domain.states import (
    KYC_TRANSITIONS,
    STANDING_TRANSITIONS,
    KycState,
    TenantStanding,
    transition,
)
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import (
    ControlRow,
    KycCase,
    KycDecision,
    OwnershipRow,
    PartyRow,
    Tenant,
)
from gpulease.services import approvers, audit, kyc_screening, leases
from gpulease.services.context import ServiceContext, new_id
from gpulease.services.screening_lists import current_lists

log = logging.getLogger("gpulease.kyc")
OPEN_STATES = frozenset({KycState.SUBMITTED, KycState.SCREENING, KycState.NEEDS_REVIEW})
CASE_FIELDS = ("state", "state_reason", "verdict", "round", "end_uses", "expires_at")


class NotApproved(Denied):
    """The tenant is not approved (or not for this purpose): the work is refused."""

    code = "not_approved"


# The case's parties and edges (``compliance.case_graph``); the list form is still accepted.
PartyInput = PartyDetails
OwnerInput = LegacyOwner
OfficerInput = LegacyOfficer


@dataclass(frozen=True, slots=True)
class CaseSubmission:
    """A case: the organisation, its declared parties with their ownership and control edges
    (or, in the older list form, ``owners`` and ``officers``), end uses, identification."""

    organization: PartyInput
    end_uses: tuple[str, ...]
    end_use_statement: str = ""
    owners: tuple[OwnerInput, ...] = ()
    officers: tuple[OfficerInput, ...] = ()
    identification: dict[str, Any] = field(default_factory=dict)
    parties: tuple[DeclaredParty, ...] = ()
    ownership: tuple[DeclaredStake, ...] = ()
    control: tuple[DeclaredRole, ...] = ()

    def graph(self) -> CaseGraph:
        return CaseGraph.build(
            self.organization,
            parties=self.parties,
            stakes=self.ownership,
            roles=self.control,
            owners=self.owners,
            officers=self.officers,
        )


# ----------------------------------------------------------------------- policy
def policy_set(ctx: ServiceContext) -> PolicySet:
    """Every loaded pack (shipped and the operator's files), loaded once per process."""
    found = ctx.cache.get("policy_set")
    if not isinstance(found, PolicySet):
        found = PolicySet.builtin(ctx.settings.policy_files)
        ctx.cache["policy_set"] = found
    return found


def policy_on(ctx: ServiceContext, moment: datetime) -> EffectivePolicy:
    """The operator-wide policy on ``moment``'s day (a site's: ``services.sites``)."""
    return policy_set(ctx).evaluate(moment.date())


# ----------------------------------------------------------------------- submit
def submit_case(
    ctx: ServiceContext, actor: Principal, tenant_id: str, sub: CaseSubmission
) -> KycCase:
    """Record a case and screen it at once; it then waits for an officer."""
    actor.authorize(Action.KYC_SUBMIT, tenant_id=tenant_id, record_id=tenant_id, kind="tenant")
    now = ctx.now()
    graph = _validate(sub, now.date())
    with ctx.db.transaction() as tx:
        tenant = tx.require(Tenant, tenant_id, "tenant", for_update=True)
        open_case = tx.first(
            tx.select(KycCase).where(
                KycCase.tenant_id == tenant_id, KycCase.state.in_([s.value for s in OPEN_STATES])
            )
        )
        if open_case is not None:
            raise Conflict(
                f"tenant {tenant.name} already has case {open_case.id} "
                f"({open_case.state}); wait for its decision",
                case_id=open_case.id,
            )
        party = _add_party(tx, graph.organization, now, tenant_id=tenant_id)
        refs = {TENANT: party.id}
        for declared in graph.parties:
            refs[declared.ref] = _add_party(tx, declared.details, now).id
        tx.flush()  # the parties in one batch (a flush per party: seconds for 500), then edges
        for stake in graph.stakes:
            tx.add(
                OwnershipRow(
                    owner_id=refs[stake.owner],
                    owned_id=refs[stake.owned],
                    percent=stake.percent,
                    since=_day(stake.since),
                    until=_day(stake.until),
                    evidence="declared at onboarding",
                )
            )
        for role in graph.roles:
            tx.add(ControlRow(person_id=refs[role.holder], org_id=refs[role.org], role=role.role))
        case = KycCase(
            id=new_id("kyc"),
            tenant_id=tenant_id,
            party_id=party.id,
            state=KycState.SUBMITTED.value,
            state_reason="submitted for screening",
            end_uses=list(sub.end_uses),
            end_use_statement=sub.end_use_statement,
            identification=dict(sub.identification),
            verdict="",
            screening=None,
            policy_versions=[],
            lists_screened=[],
            declared_parties=refs,
            approvals_needed=ctx.settings.kyc_approvals,
            round=0,
            submitted_by=actor.user_id,
            submitted_at=now,
        )
        tx.add(case)
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="kyc.submit",
            subject_type="tenant",
            subject_id=tenant_id,
            after={
                "case_id": case.id,
                "party_id": party.id,
                "parties": len(graph.parties),
                "ownership": len(graph.stakes),
                "control": len(graph.roles),
                "end_uses": list(sub.end_uses),
            },
            reason=sub.end_use_statement[:500],
        )
    return screen_case(ctx, actor.user_id, case.id, only_submitted=True)


def screen_case(
    ctx: ServiceContext, actor: str, case_id: str, *, only_submitted: bool = False
) -> KycCase:
    """Screen a submitted (or re-opened) case and put it before an officer.

    ``only_submitted``: leave the case as it is unless it still waits for its first
    screening (the submission and the scheduler's retry must not both screen it)."""
    now = ctx.now()
    policy = policy_on(ctx, now)
    lists = current_lists(ctx, policy.screening_lists or None)
    with ctx.db.transaction() as tx:
        case = tx.require(KycCase, case_id, "kyc case", for_update=True)
        if only_submitted and case.state != KycState.SUBMITTED:
            return case
        if KycState(case.state) in (
            KycState.SUBMITTED,
            KycState.APPROVED,
            KycState.EXPIRED,
            KycState.NEEDS_REVIEW,
        ):
            move_case(
                tx,
                case,
                KycState.SCREENING,
                now,
                actor,
                f"screening against {', '.join(lists.labels) or 'no lists (none imported)'}",
            )
        try:
            result = kyc_screening.screen(ctx, tx, case, policy, lists)
        except DomainError as error:  # bad stored facts: before an officer, saying why
            result = kyc_screening.failed(policy, lists, error)
        kyc_screening.store(case, result, policy, lists, now)
        case.round += 1
        move_case(
            tx,
            case,
            KycState.NEEDS_REVIEW,
            now,
            actor,
            f"screening verdict {result.verdict}: " + "; ".join(result.reasons)[:800],
        )
    return case


# --------------------------------------------------------------------- decisions
def decide_case(
    ctx: ServiceContext,
    officer: Principal,
    case_id: str,
    *,
    approve: bool,
    reason: str,
    end_uses: Iterable[str] | None = None,
) -> KycCase:
    """An officer's approval or rejection. Approval of a blocked case is refused."""
    officer.scope(Action.KYC_DECIDE)
    if not reason.strip():
        raise InvalidRequest("say why (the decision is recorded with its reason)", field="reason")
    now = ctx.now()
    with ctx.db.transaction() as tx:
        case = tx.require(KycCase, case_id, "kyc case", for_update=True)
        if case.state != KycState.NEEDS_REVIEW:
            raise Conflict(f"case {case_id} is {case.state}, not needs_review", case_id=case_id)
        tenant = tx.require(Tenant, case.tenant_id, "tenant", for_update=True)
        if approve:
            _check_approvable(case)
            if end_uses is not None:
                narrowed = list(dict.fromkeys(end_uses))
                if not narrowed:
                    raise InvalidRequest(
                        "approve at least one end use (or reject the case)", field="end_uses"
                    )
                outside = [u for u in narrowed if u not in case.end_uses]
                if outside:
                    raise InvalidRequest(
                        f"{', '.join(outside)} was not declared in the case", field="end_uses"
                    )
                case.end_uses = narrowed
        same_round = tx.all(
            tx.select(KycDecision).where(
                KycDecision.case_id == case.id, KycDecision.screening_round == case.round
            )
        )
        if any(d.officer_id == officer.user_id for d in same_round):
            raise Conflict(
                "you already decided this case in this round; four-eyes needs another officer",
                case_id=case_id,
            )
        # the setting in force now counts, not the one at submission: four-eyes switched on
        # while a case waits applies to it
        needed = ctx.settings.kyc_approvals
        case.approvals_needed = needed
        me = approvers.now(tx, officer.user_id, now)
        earlier = [d for d in same_round if d.decision == "approve"]
        if approve and needed > 1:
            refused = four_eyes.refusal(approvers.recorded(tx, earlier), me)
            if refused is not None:
                raise Denied(refused, case_id=case_id)
        tx.add(
            KycDecision(
                case_id=case.id,
                officer_id=officer.user_id,
                decision="approve" if approve else "reject",
                reason=reason,
                screening_round=case.round,
                at=now,
                controllers=sorted(me.controllers),
            )
        )
        audit.record(
            tx,
            at=now,
            actor=officer.user_id,
            action="kyc.approve" if approve else "kyc.reject",
            subject_type="tenant",
            subject_id=tenant.id,
            after={
                "case_id": case.id,
                "round": case.round,
                "approvals_needed": needed,
                "officer_created_by": me.created_by,
                "controllers": sorted(me.controllers),
            },
            reason=reason,
        )
        if not approve:
            move_case(tx, case, KycState.REJECTED, now, officer.user_id, reason)
            # refusing a further case leaves the approval the tenant stands on (another case)
            if tenant.approval != "approved" or tenant.approval_case_id in (None, case.id):
                set_standing(
                    tx,
                    tenant,
                    "rejected",
                    f"rejected by an officer: {reason}",
                    now,
                    officer.user_id,
                )
            return case
        approvals = 1 + len(earlier)
        if approvals < needed:
            case.state_reason = (
                f"{approvals} of {needed} approvals; four-eyes needs another officer, "
                "independent of the first (neither created the other, no one issued a live "
                "token of both)"
            )
            return case
        move_case(
            tx,
            case,
            KycState.APPROVED,
            now,
            officer.user_id,
            reason,
            decided_at=now,  # set inside the move, so its audit record shows the expiry
            expires_at=now + timedelta(days=ctx.settings.kyc_validity_days),
        )
        # a new approval supersedes the tenant's earlier one: it no longer expires or is
        # re-screened on its own (that would suspend a tenant standing on this case)
        for old in tx.all(
            tx.select(KycCase).where(
                KycCase.tenant_id == tenant.id,
                KycCase.state == KycState.APPROVED.value,
                KycCase.id != case.id,
            )
        ):
            move_case(
                tx, old, KycState.EXPIRED, now, officer.user_id, f"superseded by case {case.id}"
            )
        tenant.approved_end_uses = list(case.end_uses)
        tenant.approval_case_id = case.id
        tenant.approval_expires_at = case.expires_at
        set_standing(
            tx,
            tenant,
            "approved",
            f"approved for {', '.join(case.end_uses)} until {case.expires_at:%Y-%m-%d}",
            now,
            officer.user_id,
        )
    return case


def _check_approvable(case: KycCase) -> None:
    result = case.screening or {}
    if case.verdict == "block":
        raise Denied("cannot approve a blocked case: " + "; ".join(result.get("reasons", [])))
    missing = result.get("missing_fields", [])
    if missing:
        raise Denied("cannot approve: customer identification lacks " + ", ".join(missing))


# ------------------------------------------------------------ expiry and retries
def expire(ctx: ServiceContext, now: datetime) -> list[str]:
    """Approvals past their expiry go back to screening; their tenants are suspended."""
    with ctx.db.transaction(write=False) as tx:
        due = [
            c.id
            for c in tx.all(
                tx.select(KycCase).where(
                    KycCase.state == KycState.APPROVED.value, KycCase.expires_at <= now
                )
            )
        ]
    for case_id in due:
        with ctx.db.transaction() as tx:
            case = tx.require(KycCase, case_id, "kyc case", for_update=True)
            if case.state != KycState.APPROVED:
                continue
            reason = f"approval expired on {case.expires_at:%Y-%m-%d}"
            move_case(tx, case, KycState.EXPIRED, now, "scheduler", reason)
            tenant = tx.require(Tenant, case.tenant_id, "tenant", for_update=True)
            set_standing(
                tx, tenant, "suspended", f"suspended: {reason}; re-screening", now, "scheduler"
            )
        screen_case(ctx, "scheduler", case_id)
    return due


def screen_unscreened(ctx: ServiceContext) -> list[str]:
    """Screen cases left ``submitted`` (the submission's screening step failed or its process
    died): otherwise no officer could decide them and the tenant could not submit again."""
    with ctx.db.transaction(write=False) as tx:
        waiting = [
            c.id
            for c in tx.all(
                tx.select(KycCase)
                .where(KycCase.state == KycState.SUBMITTED.value)
                .order_by(KycCase.id)
            )
        ]
    for case_id in waiting:
        try:
            screen_case(ctx, "scheduler", case_id, only_submitted=True)
        except DomainError as error:  # retried next pass; never stops the scheduler's pass
            log.warning("screening case %s failed: %s", case_id, error.message)
    return waiting


# ------------------------------------------------------------------ queries
def get_case(ctx: ServiceContext, actor: Principal, case_id: str) -> KycCase:
    with ctx.db.transaction(write=False) as tx:
        case = tx.require(KycCase, case_id, "kyc case")
    actor.authorize(Action.KYC_READ, tenant_id=case.tenant_id, record_id=case_id, kind="kyc case")
    return case


def list_cases(ctx: ServiceContext, actor: Principal, state: str | None = None) -> list[KycCase]:
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(KycCase).order_by(KycCase.submitted_at.desc())
        if actor.scope(Action.KYC_READ) is not Scope.ALL:
            query = query.where(KycCase.tenant_id == actor.tenant_id)
        if state is not None:
            query = query.where(KycCase.state == KycState(state).value)
        return tx.all(query)


# ------------------------------------------------------------------ helpers
def _add_party(tx: Tx, data: PartyInput, now: datetime, tenant_id: str | None = None) -> PartyRow:
    row = PartyRow(
        id=new_id("party"),
        kind=PartyKind(data.kind).value,
        name=data.name.strip(),
        aliases=list(data.aliases),
        countries=list(data.countries),  # alpha-2 codes (``case_graph.with_country_codes``)
        identifiers=[[k, v] for k, v in data.identifiers],
        addresses=[
            {
                "street": a.street,
                "city": a.city,
                "region": a.region,
                "postal_code": a.postal_code,
                "country": a.country,
            }
            for a in data.addresses
        ],
        tenant_id=tenant_id,
        created_at=now,
    )
    tx.add(row)
    return row


def _validate(sub: CaseSubmission, today: date) -> CaseGraph:
    """The submission's graph, refused whole (422 naming the field and the refs the
    submitter typed) unless it can be screened on ``today`` (no stake starting later);
    nothing is stored before this passes."""
    if not sub.end_uses:
        raise InvalidRequest("declare at least one end use", field="end_uses")
    unknown = [u for u in sub.end_uses if not is_end_use(u)]
    if unknown:
        raise InvalidRequest(f"unknown end use(s): {', '.join(unknown)}", field="end_uses")
    graph = with_country_codes(sub.graph())
    validate_graph(graph, today=today)
    return graph


def move_case(
    tx: Tx,
    case: KycCase,
    target: KycState,
    now: datetime,
    actor: str,
    reason: str,
    **changes: Any,
) -> None:
    """Move the case (setting ``changes`` with it) and audit the move."""
    before = audit.fields_of(case, CASE_FIELDS)
    for name, value in changes.items():
        setattr(case, name, value)
    case.state = transition(
        KYC_TRANSITIONS, KycState(case.state), target, subject=f"case {case.id}"
    ).value
    case.state_reason = reason[:1000]
    audit.record(
        tx,
        at=now,
        actor=actor,
        action=f"kyc.{target.value}",
        subject_type="tenant",
        subject_id=case.tenant_id,
        before=before,
        after=audit.fields_of(case, CASE_FIELDS)
        | {
            "case_id": case.id,
            "policy": list(case.policy_versions),
            "lists": list(case.lists_screened),
        }
        # the screening a round put before the officers, so a disclosure as of a past day
        # shows that round's, not a later one's (``services.disclosure_history``)
        | ({"screening": case.screening} if target is KycState.NEEDS_REVIEW else {}),
        reason=reason,
    )


def set_standing(
    tx: Tx,
    tenant: Tenant,
    approval: TenantStanding | str,
    reason: str,
    now: datetime,
    actor: str,
) -> None:
    """Change a tenant's standing (``STANDING_TRANSITIONS``; the same standing with a new
    reason is restated, not moved); its leases follow (suspended unless approved)."""
    target = TenantStanding(approval)
    current = TenantStanding(tenant.approval)
    if target is not current:
        transition(STANDING_TRANSITIONS, current, target, subject=f"tenant {tenant.name}")
    before = audit.fields_of(tenant, ("approval", "approval_reason"))
    tenant.approval = target.value
    tenant.approval_reason = reason[:1000]
    audit.record(
        tx,
        at=now,
        actor=actor,
        action=f"tenant.{target.value}",
        subject_type="tenant",
        subject_id=tenant.id,
        before=before,
        after=audit.fields_of(tenant, ("approval", "approval_reason")),
        reason=reason,
    )
    leases.follow_standing(tx, tenant, now, actor)


def _day(value: date | None) -> datetime | None:
    return None if value is None else datetime(value.year, value.month, value.day, tzinfo=UTC)
