"""Admission: which work the scheduler may consider at all, and why not. A pure function.

Design. Before scheduling, compliance decides which jobs are admitted: a tenant that is not
approved (never approved, suspended, expired) has its work held; a job whose declared end use
its tenant's approval no longer covers under the policy in force (an officer narrowed it, a
policy pack changed) is held too. The scheduling cycle only sees admitted work.
:func:`admission` builds an :class:`Admission` from the tenants' standing and the effective
policy; :meth:`Admission.refusal` answers for one job, one verdict per tenant and purpose.
A purpose the end-use classifier sends to review is held until an officer decides it
(``services.purpose_reviews``); one the officer cleared for the tenant (``cleared``) is
admitted, unless it is refused on other grounds (a code no longer approved, a prohibited
use): clearance lifts a review, never a refusal.

Sites. Admission is evaluated per site: the policy given is the one in force at the site
(operator-wide packs plus the site's country packs, ``PolicySet.evaluate(day, site)``), so a
site's prohibited end uses hold work there only, and a ``tenant_countries`` rule of the
site's packs holds a tenant headquartered in a listed country there only
(:func:`site_refusal`, the rule named in words): one KYC approval, admission per site.

Invariants: no I/O, no clock (``now`` is an argument); two admissions built from the same
standing and policy are equal (``key``), so the live scheduler rebuilds its kept state only
when the key changes. The texts are those the tenant reads: they never quote list entries or
officers' notes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gpulease.compliance.countries import country_name
from gpulease.compliance.disclosure import tenant_standing
from gpulease.compliance.end_uses import PurposeOutcome, check_purpose
from gpulease.compliance.policy import EffectivePolicy
from gpulease.domain.errors import InvalidRequest

REASON_MAX = 500  # the width of the wait_reason column


@dataclass(frozen=True, slots=True)
class Standing:
    """What admission reads of one tenant."""

    tenant_id: str
    approval: str
    expires_at: datetime | None
    end_uses: tuple[str, ...]
    cleared: tuple[str, ...] = ()  # purposes an officer cleared after review
    country: str = ""  # headquarters (ISO alpha-2): what a site's tenant_countries rules read


def is_approved(approval: str, expires_at: datetime | None, now: datetime) -> bool:
    return approval == "approved" and (expires_at is None or expires_at > now)


def clip(text: str, limit: int = REASON_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def purpose_refused(
    purpose: str,
    end_uses: Iterable[str],
    policy: EffectivePolicy,
    cleared: Collection[str] = (),
) -> str | None:
    """Why a job's purpose may not run under the tenant's approval now, or None.
    ``cleared``: the purposes an officer cleared for the tenant after review."""
    try:
        decision = check_purpose(purpose, list(end_uses), policy)
    except InvalidRequest as error:  # an approval naming unknown codes holds work, not passes
        return clip(f"held: {error}")
    if decision.outcome is PurposeOutcome.ALLOW:
        return None
    if decision.outcome is PurposeOutcome.REVIEW:
        if purpose.strip() in cleared:
            return None
        return clip(f"{REVIEW_HOLD}: {decision.reason}")
    return clip(f"held: {decision.reason}")


REVIEW_HOLD = "held until a compliance officer reviews the declared purpose"


@dataclass
class Admission:
    """Held tenants (with why) and the end uses each tenant may run, under one policy."""

    held: dict[str, str]
    end_uses: dict[str, tuple[str, ...]]
    policy: EffectivePolicy
    cleared: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _verdicts: dict[tuple[str, str], str | None] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for equal standing and policy (what the kept state was built under)."""
        return (
            tuple(sorted(self.held.items())),
            tuple(sorted(self.end_uses.items())),
            tuple(sorted((t, c) for t, c in self.cleared.items() if c)),
            self.policy.packs,
        )

    def purpose(self, tenant_id: str, purpose: str) -> str | None:
        """Why this purpose may not run for this tenant now (its end uses), or None."""
        key = (tenant_id, purpose)
        if key not in self._verdicts:
            self._verdicts[key] = purpose_refused(
                purpose,
                self.end_uses.get(tenant_id, ()),
                self.policy,
                self.cleared.get(tenant_id, ()),
            )
        return self._verdicts[key]

    def refusal(self, tenant_id: str, purpose: str) -> str | None:
        """Why a queued job of this tenant and purpose is held, or None (admitted)."""
        return self.held.get(tenant_id) or self.purpose(tenant_id, purpose)


@dataclass(frozen=True, slots=True)
class SiteRefusal:
    """Why a site's own rules do not admit a tenant: the rule's ref and the words."""

    rule: str  # pack@version/rule
    reason: str


def site_refusal(country: str, policy: EffectivePolicy) -> SiteRefusal | None:
    """The first ``tenant_countries`` rule in force at the policy's site that refuses a
    tenant headquartered in ``country`` (None: the site's rules admit it)."""
    code = country.strip().upper()
    for active, params in policy.tenant_country_rules():
        if code not in params.countries:
            continue
        reason = (
            f"tenant not admitted under pack {active.pack.ref}, rule {active.rule.id} "
            f"({active.rule.title or 'tenants headquartered in listed countries'}): the tenant "
            f"is headquartered in {country_name(code)} ({code})"
        )
        if params.notice_days:
            reason += f"; {params.notice_days} days' notice first"
        if params.permit:
            reason += f"; needs {params.permit}"
        return SiteRefusal(active.ref, clip(reason))
    return None


def admission(tenants: Iterable[Standing], policy: EffectivePolicy, now: datetime) -> Admission:
    """Who is held and what each may run, under ``policy`` (at its site, if it has one)."""
    held: dict[str, str] = {}
    end_uses: dict[str, tuple[str, ...]] = {}
    cleared: dict[str, tuple[str, ...]] = {}
    where = f" at {policy.site.site_id}" if policy.site is not None else ""
    for tenant in tenants:
        end_uses[tenant.tenant_id] = tenant.end_uses
        cleared[tenant.tenant_id] = tenant.cleared
        if not is_approved(tenant.approval, tenant.expires_at, now):
            why = tenant_standing(tenant.approval, tenant.expires_at, now)
            held[tenant.tenant_id] = f"held: the tenant is not approved ({why})"
            continue
        refused = site_refusal(tenant.country, policy) if tenant.country else None
        if refused is not None:
            held[tenant.tenant_id] = clip(f"held{where}: {refused.reason}")
    return Admission(held, end_uses, policy, cleared)
