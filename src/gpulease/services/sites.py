"""Sites as jurisdictions: the policy in force at a site, admission per site, dispatch.

Design. A site is a country (ISO 3166 alpha-2), an IANA time zone and a hardware profile.
The packs in force at a site are the operator-wide ones plus those scoped to the site or its
country, on the site's local day (:func:`policy_at`). One KYC approval per tenant, but
admission per site: :func:`admissions_of` says, for every site, whether the tenant is
admitted there and, if not, under which rule in words (``compliance.admission``; what
``kyc show`` and the API's case view carry); the scheduler's pass per site builds its
``Admission`` from the same policy (:func:`admission_at`).

Dispatch. :func:`choose` reads what the pure dispatch core (:mod:`gpulease.scheduler.dispatch`)
needs for a job that names several sites or none, in one read of the tenant and one
statement of the candidate sites' rows and sums (``persistence.site_load``), and
:func:`decide` turns those into the core's typed decision; the API's event-loop path
(``services.lean_submit.submit_lean``) reads the same statement without a session and calls the
same :func:`decide`, so both paths decide alike on the same rows.

Caches (per process, in ``ctx.cache``, bounded: a full memo is emptied):

* the policy in force at a site (:func:`policy_at`), per (policy set version, site and
  country, the site's local day): a pack change is a new ``PolicySet`` (a new version), a
  site's new country is another key, a new day another key;
* a tenant's admission at a site for a purpose (:func:`refusal_at`), per (its
  :class:`~gpulease.compliance.admission.Standing` -- every column admission reads, so a
  KYC decision, a suspension, narrowed end uses or a cleared purpose is another key --,
  the site's row, the policy set version, the site's local day, the purpose), kept only
  for a tenant approved at the moment asked (an expiry is checked at every lookup; an
  unapproved tenant's refusal is decided each time).

Invariants: reads only; admission here and in the scheduler come from the same functions,
so ``kyc show`` never says "admitted" where the scheduler holds the work; a cached verdict
is only ever reused for equal inputs (the key holds everything the verdict reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from gpulease.compliance.admission import (
    Admission,
    Standing,
    admission,
    is_approved,
    site_refusal,
)
from gpulease.compliance.policy import EffectivePolicy, SiteScope
from gpulease.domain.errors import InvalidRequest
from gpulease.persistence import site_load
from gpulease.persistence.db import Tx
from gpulease.persistence.site_load import SiteLoad, SiteRow
from gpulease.persistence.tables import Lease, Site, Tenant
from gpulease.scheduler.dispatch import Dispatch, SiteOption, dispatch
from gpulease.services import kyc
from gpulease.services.context import ServiceContext
from gpulease.services.inventory import cached_topology

SITES_ASKED_MAX = 32  # sites one job may name
POLICIES_KEPT = 1024  # (policy set, site, day) evaluations kept per process
REFUSALS_KEPT = 16_384  # (standing, site, policy set, day, purpose) verdicts kept per process
_UNDECIDED = object()


@dataclass(frozen=True, slots=True)
class SiteInfo:
    site_id: str
    name: str
    country: str
    city: str
    timezone: str
    hardware: str

    @property
    def scope(self) -> SiteScope:
        return SiteScope(self.site_id, self.country)

    def local_day(self, moment: datetime) -> date:
        """The site's calendar day at ``moment`` (its packs' dates are local dates)."""
        return moment.astimezone(ZoneInfo(self.timezone)).date()


@dataclass(frozen=True, slots=True)
class SiteAdmission:
    """Whether a tenant is admitted at a site, and why not in words (with the rule)."""

    site_id: str
    country: str
    timezone: str
    admitted: bool
    reason: str  # "" when admitted
    rule: str | None  # the site rule that refuses (pack@version/rule), if one does
    packs: tuple[str, ...]  # the packs in force at the site


def info_of(site: Site | SiteRow) -> SiteInfo:
    if isinstance(site, SiteRow):
        return SiteInfo(
            site.site_id, site.name, site.country, site.city, site.timezone, site.hardware
        )
    return SiteInfo(site.id, site.name, site.country, site.city, site.timezone, site.hardware)


def site_infos(tx: Tx) -> list[SiteInfo]:
    return [info_of(s) for s in tx.all(tx.select(Site).order_by(Site.id))]


def policy_at(ctx: ServiceContext, site: SiteInfo, moment: datetime) -> EffectivePolicy:
    """The packs in force at ``site`` on its local day at ``moment`` (kept per policy set
    version, site, country and day: an ``EffectivePolicy`` is immutable)."""
    policies = kyc.policy_set(ctx)
    day = site.local_day(moment)
    key = (policies.version, site.scope, day)
    memo: dict[tuple[object, ...], EffectivePolicy] = ctx.cache.setdefault("site_policies", {})
    found = memo.get(key)
    if found is None:
        found = policies.evaluate(day, site.scope)
        if len(memo) >= POLICIES_KEPT:
            memo.clear()
        memo[key] = found
    return found


def refusal_at(
    ctx: ServiceContext, standing: Standing, site: SiteInfo, purpose: str, now: datetime
) -> str | None:
    """Why work of this tenant (its ``standing``) and ``purpose`` is not admitted at
    ``site`` now, or None: ``admission([standing], policy_at(...), now).refusal(...)``,
    remembered per (standing, site, policy set version, local day, purpose) while the
    tenant is approved (module docstring)."""
    if not is_approved(standing.approval, standing.expires_at, now):
        policy = policy_at(ctx, site, now)
        return admission([standing], policy, now).refusal(standing.tenant_id, purpose)
    key = (standing, site, kyc.policy_set(ctx).version, site.local_day(now), purpose)
    memo: dict[tuple[object, ...], str | None] = ctx.cache.setdefault("site_refusals", {})
    found = memo.get(key, _UNDECIDED)  # one lookup: another thread may empty the memo
    if found is None or isinstance(found, str):
        return found
    policy = policy_at(ctx, site, now)
    refusal = admission([standing], policy, now).refusal(standing.tenant_id, purpose)
    if len(memo) >= REFUSALS_KEPT:
        memo.clear()
    memo[key] = refusal
    return refusal


def standing_of(tenant: Tenant) -> Standing:
    return Standing(
        tenant.id,
        tenant.approval,
        tenant.approval_expires_at,
        tuple(tenant.approved_end_uses),
        tuple(tenant.cleared_purposes),
        tenant.country,
    )


def admission_at(
    ctx: ServiceContext, site: SiteInfo, standings: Iterable[Standing], now: datetime
) -> Admission:
    """The scheduler's admission for one site's pass."""
    return admission(standings, policy_at(ctx, site, now), now)


def admissions_of(ctx: ServiceContext, tenant_id: str, now: datetime) -> list[SiteAdmission]:
    """The tenant's admission at every site (the caller has authorized the read)."""
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, tenant_id, "tenant")
        sites = site_infos(tx)
    standing = standing_of(tenant)
    found = []
    for site in sites:
        policy = policy_at(ctx, site, now)
        held = admission([standing], policy, now).held.get(tenant_id)
        refused = site_refusal(tenant.country, policy)
        found.append(
            SiteAdmission(
                site.site_id,
                site.country,
                site.timezone,
                held is None,
                held or "",
                refused.rule if refused is not None and held and refused.reason in held else None,
                policy.packs,
            )
        )
    return found


def candidates(
    ctx: ServiceContext, site_id: str | None, sites: Sequence[str] | None
) -> tuple[str, ...]:
    """The sites a submission may go to: the one it names, the set it names, or every site
    (validated: known ids, no repeats, at most ``SITES_ASKED_MAX``)."""
    known = site_ids(ctx)
    if site_id is not None:
        if sites:
            raise InvalidRequest("name one site_id or a set of sites, not both", field="sites")
        return (site_id,)
    if not sites:
        if not known:
            raise InvalidRequest(
                "no site is registered; run `gpulease init --demo`", field="site_id"
            )
        return known
    if len(sites) > SITES_ASKED_MAX:
        raise InvalidRequest(f"name at most {SITES_ASKED_MAX} sites", field="sites")
    if len(set(sites)) != len(sites):
        raise InvalidRequest("a site is named twice", field="sites")
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise InvalidRequest(f"no site {', '.join(unknown)}", field="sites")
    return tuple(sites)


def cached_infos(ctx: ServiceContext) -> tuple[SiteInfo, ...]:
    """Every site, read once per process (``inventory.register_site`` forgets them)."""
    found = ctx.cache.get("site_infos")
    if isinstance(found, tuple):
        return found
    with ctx.db.transaction(write=False) as tx:
        infos = tuple(site_infos(tx))
    ctx.cache["site_infos"] = infos
    return infos


def forget(ctx: ServiceContext) -> None:
    """Drop the process's lists of sites (a site was added or changed: read them again)."""
    for key in ("site_infos", "default_site"):
        ctx.cache.pop(key, None)


def site_ids(ctx: ServiceContext) -> tuple[str, ...]:
    """Every site's id (:func:`cached_infos`)."""
    return tuple(s.site_id for s in cached_infos(ctx))


def lease_site(ctx: ServiceContext, lease_id: str, tenant_id: str) -> str | None:
    """The site of the tenant's lease ``lease_id`` (None: no such lease of this tenant; the
    submission then says so)."""
    with ctx.db.transaction(write=False) as tx:
        lease = tx.get(Lease, lease_id)
    return lease.site_id if lease is not None and lease.tenant_id == tenant_id else None


def choose(
    ctx: ServiceContext,
    tenant_id: str,
    purpose: str,
    gpus: int,
    asked: Sequence[str] | None,
    never_fits: Callable[[str], str | None],
    now: datetime,
    *,
    ignore: str = "",
) -> Dispatch:
    """The dispatch decision for a job among ``asked`` (None: every site, as read now: a
    site another process added is a candidate at once): one read of the tenant and one
    statement of the sites' rows and sums (``persistence.site_load``), then :func:`decide`."""
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, tenant_id, "tenant")
        loads = site_load.site_loads(tx.session, asked, tenant_id)
    found = {site_id: (info_of(row), load) for site_id, (row, load) in loads.items()}
    if asked is None:
        asked = tuple(found)
        if tuple(info for info, _load in found.values()) != cached_infos(ctx):
            forget(ctx)  # a site added or changed elsewhere: the lists are read again
    return decide(
        ctx, standing_of(tenant), purpose, gpus, asked, found, never_fits, now, ignore=ignore
    )


def decide(
    ctx: ServiceContext,
    standing: Standing,
    purpose: str,
    gpus: int,
    asked: Sequence[str],
    found: Mapping[str, tuple[SiteInfo, SiteLoad]],
    never_fits: Callable[[str], str | None],
    now: datetime,
    *,
    ignore: str = "",
) -> Dispatch:
    """The dispatch decision for a job of this tenant among ``asked``, each site's row and
    sums as read (``found``; every asked site must be in it). A refusal starting with
    ``ignore`` (the hold for an officer's review of the purpose, decided operator-wide at
    submission) does not count against a site."""
    options = []
    for site_id in asked:
        site, load = found[site_id]
        refusal = refusal_at(ctx, standing, site, purpose, now)
        if refusal is not None and ignore and refusal.startswith(ignore):
            refusal = None
        total = _total_gpus(ctx, site_id)
        options.append(
            SiteOption(
                site_id,
                site.country,
                refusal,
                never_fits(site_id),
                load.lease_gpus,
                max(0, load.lease_gpus - load.own_running_gpus),
                max(0, total - load.down_gpus - load.running_gpus),
            )
        )
    return dispatch(gpus, options)


def _total_gpus(ctx: ServiceContext, site_id: str) -> int:
    """The site's GPUs (its topology's, summed once per topology read)."""
    topology = cached_topology(ctx, site_id)
    memo: dict[str, tuple[object, int]] = ctx.cache.setdefault("site_total_gpus", {})
    found = memo.get(site_id)
    if found is None or found[0] is not topology:
        found = memo[site_id] = (topology, topology.cluster.total_gpus)
    return found[1]
