"""Re-screening: every approved or pending KYC case again, after a list import, a change of
the policy in force, or on demand.

Design. A new list snapshot (``screening_lists.import_files``), a change of the policy rules
in force (:func:`on_policy_change`), or an officer's request re-screens every case that is
approved or waiting for review, one case per transaction (a failure leaves the others done).
For each case the screening step (:func:`gpulease.services.kyc_screening.screen`) runs against
the lists and policy in force now, and the outcome is one of:

* ``unchanged``: an approved case with no new hit and no worse verdict keeps its approval;
  the new screening record and the lists used are stored, and audited;
* ``reopened``: a new hit (an entry not seen before), a worse verdict, or a case that can no
  longer be screened (stored facts the code cannot read: its "review" is not the review an
  officer approved, its record lists no party) sends the case back through screening to
  review (a new round);
* ``suspended``: the same for the case the tenant stands on, which also suspends the tenant
  (its leases follow its standing: ``kyc.set_standing``).

A policy change is found by comparing the rules in force today with the rules each case's
last screening recorded (``screening.policy.rules``), so it survives restarts and is
idempotent: a re-screened case records today's rules and is not taken again. Rules change
only from one day to the next (packs give days), so a process that has checked every case
against today's rules skips the check until the rules differ, except for the first minutes
of a day (a case screened elsewhere just before midnight may commit after the check). A pass
re-screens at most ``RESCREENS_PER_PASS`` cases (oldest ids first) and leaves the rest to the
next passes, so a policy change over thousands of cases never holds up the leases' and sites'
passes that follow it for minutes.

Sites. A change of the packs in force at a site (a country pack added, one coming into
force on the site's local day) re-screens that site's tenants (those with a live lease or
queued or running work there), from the same :func:`on_policy_change`: each case is screened
under the site's policy (operator-wide plus the site's packs) and its admission there decided
(``services.sites``); the outcome is kept on the case under ``screening["sites"][site]``
(rules, verdict, admitted or the refusal in words) and audited (``kyc.rescreen_site``). A
site's verdict never suspends the tenant everywhere: one approval per tenant, admission per
site, and the site's scheduler pass holds its work there from the same rules.

Invariant: no re-screening ever approves or clears anything; only an officer's decision
does (``kyc.decide_case``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gpulease.compliance.admission import admission
from gpulease.compliance.screening import (
    ScreeningVerdict,
    recorded_hit_keys,
    recorded_rules,
)
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import DomainError
from gpulease.domain.states import JobState, KycState, LeaseState, TenantStanding
from gpulease.persistence.tables import Job, KycCase, Lease, Tenant
from gpulease.services import audit, kyc, kyc_screening, screening_lists, sites
from gpulease.services.context import ServiceContext
from gpulease.services.screening_lists import current_lists

POLICY_CHECKED = "rescreening.policy_checked"  # (rules checked, day) in ctx.cache
RESCREENS_PER_PASS = 25  # cases a scheduler pass re-screens after a policy change; the rest next
SETTLE = timedelta(minutes=5)  # every pass re-checks in the first minutes of a day


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
    done = [_rescreen(ctx, actor, case.id, why) for case in cases]
    return [r for r in done if r is not None]


def on_policy_change(ctx: ServiceContext, now: datetime) -> list[Rescreen]:
    """Re-screen every approved or pending case whose last screening was made under other
    policy rules than those in force at ``now`` (the scheduler's pass calls it), then the
    tenants of every site whose own packs changed (:func:`on_site_policy_change`)."""
    done = _on_operator_policy_change(ctx, now)
    return done + on_site_policy_change(ctx, now, budget=RESCREENS_PER_PASS - len(done))


def _on_operator_policy_change(ctx: ServiceContext, now: datetime) -> list[Rescreen]:
    rules = frozenset(r.ref for r in kyc.policy_on(ctx, now).rules)
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    since: datetime | None = None
    if ctx.cache.get(POLICY_CHECKED) == (rules, day_start):  # all checked today
        if now >= day_start + SETTLE:
            return []
        # only a case screened around midnight, committed after that check, can be stale
        since = day_start - SETTLE
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(KycCase).where(
            KycCase.state.in_([KycState.APPROVED.value, KycState.NEEDS_REVIEW.value])
        )
        if since is not None:
            query = query.where(KycCase.screened_at >= since)
        due = [
            (c.id, recorded_rules(c.screening) or frozenset())
            for c in tx.all(query.order_by(KycCase.id))
        ]
    stale = [(case_id, before) for case_id, before in due if before != rules]
    done = []
    for case_id, before in stale[:RESCREENS_PER_PASS]:
        changes = [f"now in force: {r}" for r in sorted(rules - before)]
        changes += [f"no longer in force: {r}" for r in sorted(before - rules)]
        why = "the policy in force changed (" + "; ".join(changes) + ")"
        done.append(_rescreen(ctx, "scheduler", case_id, why, only_if_rules_differ=True))
    if len(stale) <= RESCREENS_PER_PASS:  # else the next pass takes the next ones
        ctx.cache[POLICY_CHECKED] = (rules, day_start)
    return [r for r in done if r is not None]


def _rescreen(
    ctx: ServiceContext, actor: str, case_id: str, why: str, *, only_if_rules_differ: bool = False
) -> Rescreen | None:
    now = ctx.now()
    policy = kyc.policy_on(ctx, now)
    lists = current_lists(ctx, policy.screening_lists or None)
    with ctx.db.transaction() as tx:
        case = tx.require(KycCase, case_id, "kyc case", for_update=True)
        if case.state not in (KycState.APPROVED, KycState.NEEDS_REVIEW):
            return None  # decided or moved since it was listed
        rules = frozenset(r.ref for r in policy.rules)
        if only_if_rules_differ and recorded_rules(case.screening) == rules:
            return None  # another pass or process re-screened it meanwhile
        was_approved = case.state == KycState.APPROVED
        unscreened = ""
        try:
            result = kyc_screening.screen(ctx, tx, case, policy, lists)
        except DomainError as error:  # bad stored facts: before an officer, saying why
            result = kyc_screening.failed(policy, lists, error)
            unscreened = result.reasons[0]
        new_hits = sorted(set(result.hit_keys) - recorded_hit_keys(case.screening))
        before = ScreeningVerdict.parse(case.verdict) or ScreeningVerdict.CLEAR
        worse = result.verdict.rank > before.rank
        tenant = tx.require(Tenant, case.tenant_id, "tenant", for_update=True)
        if was_approved and not (new_hits or worse or unscreened):
            kyc_screening.store(case, result, policy, lists, now)
            audit.record(
                tx,
                at=now,
                actor=actor,
                action="kyc.rescreen",
                subject_type="tenant",
                subject_id=case.tenant_id,
                after={"case_id": case.id, "new_hits": 0, "policy": list(result.policy.packs)},
                reason=f"{why}: no new hit",
            )
            return Rescreen(case.id, case.tenant_id, "unchanged", "no new hit")
        words = (
            unscreened
            or (f"new hit(s) {', '.join(new_hits)}" if new_hits else "")
            or f"verdict {case.verdict or 'none'} -> {result.verdict}"
        )
        reason = f"{why}: {words}"
        kyc.move_case(tx, case, KycState.SCREENING, now, actor, reason)
        kyc_screening.store(case, result, policy, lists, now)
        case.round += 1
        kyc.move_case(tx, case, KycState.NEEDS_REVIEW, now, actor, reason)
        outcome = "reopened"
        # only the case the tenant stands on suspends it; a pending one is just re-screened
        if was_approved and tenant.approval == TenantStanding.APPROVED:
            kyc.set_standing(
                tx,
                tenant,
                TenantStanding.SUSPENDED,
                f"suspended pending review: {reason}",
                now,
                actor,
            )
            outcome = "suspended"
    return Rescreen(case.id, case.tenant_id, outcome, reason)


SITES_CHECKED = "rescreening.sites_checked"  # (site -> rules checked, day) in ctx.cache
LIVE_LEASES = (LeaseState.APPROVED, LeaseState.SCHEDULED, LeaseState.ACTIVE, LeaseState.SUSPENDED)


def recorded_site(screening: dict[str, object] | None, site_id: str) -> dict[str, object]:
    """What the case's last re-screening at ``site_id`` recorded (empty: none yet)."""
    found = (screening or {}).get(kyc_screening.SITES_KEY)
    entry = found.get(site_id) if isinstance(found, dict) else None
    return entry if isinstance(entry, dict) else {}


def site_rules_of(entry: dict[str, object]) -> frozenset[str]:
    """The site rules a recorded site re-screening was made under."""
    rules = entry.get("rules")
    return frozenset(str(r) for r in rules) if isinstance(rules, list) else frozenset()


def on_site_policy_change(ctx: ServiceContext, now: datetime, *, budget: int) -> list[Rescreen]:
    """Re-screen the tenants of every site whose own rules in force (its packs) differ from
    those their cases recorded for it (module docstring); at most ``budget`` cases."""
    where = sites.cached_infos(ctx)  # no read per pass: sites change by register_site only
    rules = {s.site_id: frozenset(sites.policy_at(ctx, s, now).site_rules) for s in where}
    key = (tuple(sorted((k, tuple(sorted(v))) for k, v in rules.items())), now.date())
    if ctx.cache.get(SITES_CHECKED) == key or budget <= 0:
        return []
    with ctx.db.transaction(write=False) as tx:
        present = {
            (row.site_id, row.tenant_id)
            for row in tx.all(
                tx.select(Lease).where(Lease.state.in_([s.value for s in LIVE_LEASES]))
            )
        } | {
            (row.site_id, row.tenant_id)
            for row in tx.all(
                tx.select(Job).where(Job.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]))
            )
        }
        cases = tx.all(
            tx.select(KycCase)
            .where(KycCase.state.in_([KycState.APPROVED.value, KycState.NEEDS_REVIEW.value]))
            .order_by(KycCase.id)
        )
    stale = [
        (case.id, site)
        for site in where
        for case in cases
        if (site.site_id, case.tenant_id) in present
        and site_rules_of(recorded_site(case.screening, site.site_id)) != rules[site.site_id]
    ]
    done = [_rescreen_site(ctx, case_id, site, now) for case_id, site in stale[:budget]]
    if len(stale) <= budget:
        ctx.cache[SITES_CHECKED] = key
    return [r for r in done if r is not None]


def _rescreen_site(
    ctx: ServiceContext, case_id: str, site: sites.SiteInfo, now: datetime
) -> Rescreen | None:
    """One case screened under ``site``'s policy and its admission there decided; kept on
    the case and audited. Never moves the case or the tenant's standing."""
    policy = sites.policy_at(ctx, site, now)
    rules = sorted(policy.site_rules)
    lists = current_lists(ctx, policy.screening_lists or None)
    with ctx.db.transaction() as tx:
        case = tx.require(KycCase, case_id, "kyc case", for_update=True)
        if case.state not in (KycState.APPROVED, KycState.NEEDS_REVIEW):
            return None
        before = recorded_site(case.screening, site.site_id)
        if site_rules_of(before) == frozenset(rules):
            return None  # another pass or process did it meanwhile
        try:
            result = kyc_screening.screen(ctx, tx, case, policy, lists)
            verdict, reasons = result.verdict.value, list(result.reasons[:5])
        except DomainError as error:
            verdict, reasons = ScreeningVerdict.REVIEW.value, [error.message]
        tenant = tx.require(Tenant, case.tenant_id, "tenant")
        held = admission([sites.standing_of(tenant)], policy, now).held.get(tenant.id)
        entry = {
            "at": now.isoformat(),
            "country": site.country,
            "packs": list(policy.packs),
            "rules": rules,
            "verdict": verdict,
            "reasons": reasons,
            "admitted": held is None,
            "refusal": held or "",
        }
        recorded = dict((case.screening or {}).get(kyc_screening.SITES_KEY) or {})
        recorded[site.site_id] = entry
        case.screening = {**(case.screening or {}), kyc_screening.SITES_KEY: recorded}
        added = sorted(set(rules) - site_rules_of(before))
        gone = sorted(site_rules_of(before) - set(rules))
        changes = [f"now in force: {r}" for r in added] + [f"no longer in force: {r}" for r in gone]
        outcome = "admitted" if held is None else "refused"
        words = f"admitted at {site.site_id}" if held is None else held
        reason = (
            f"the policy in force at site {site.site_id} ({site.country}) changed ("
            + ("; ".join(changes) or "first screening there")
            + f"): site verdict {verdict}; {words}"
        )
        audit.record(
            tx,
            at=now,
            actor="scheduler",
            action="kyc.rescreen_site",
            subject_type="tenant",
            subject_id=case.tenant_id,
            after={"case_id": case.id, "site_id": site.site_id, **entry},
            reason=reason[:1000],
        )
    return Rescreen(case_id, case.tenant_id, f"site {site.site_id}: {outcome}", reason)
