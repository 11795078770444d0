"""Sites as jurisdictions: the policy in force at a site, admission per site, dispatch.

Design. A site is a country (ISO 3166 alpha-2), an IANA time zone and a hardware profile.
The packs in force at a site are the operator-wide ones plus those scoped to the site or its
country, on the site's local day (:func:`policy_at`). One KYC approval per tenant, but
admission per site: :func:`admissions_of` says, for every site, whether the tenant is
admitted there and, if not, under which rule in words (``compliance.admission``; what
``kyc show`` and the API's case view carry); the scheduler's pass per site builds its
``Admission`` from the same policy (:func:`admission_at`). :func:`choose` loads what the
pure dispatch core (:mod:`gpulease.scheduler.dispatch`) needs for a job that names several
sites or none (each site's admission, the shape's fit, the tenant's leases and the idle
GPUs there) and returns its typed decision.

Invariants: reads only; admission here and in the scheduler come from the same functions,
so ``kyc show`` never says "admitted" where the scheduler holds the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from gpulease.compliance.admission import Admission, Standing, admission, site_refusal
from gpulease.compliance.policy import EffectivePolicy, SiteScope
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import LeaseState, NodeState
from gpulease.persistence import site_load
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Lease, Node, Site, Tenant
from gpulease.scheduler.dispatch import Dispatch, SiteOption, dispatch
from gpulease.services import kyc
from gpulease.services.context import ServiceContext
from gpulease.services.inventory import cached_topology

SITES_ASKED_MAX = 32  # sites one job may name


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


def info_of(site: Site) -> SiteInfo:
    return SiteInfo(site.id, site.name, site.country, site.city, site.timezone, site.hardware)


def site_infos(tx: Tx) -> list[SiteInfo]:
    return [info_of(s) for s in tx.all(tx.select(Site).order_by(Site.id))]


def policy_at(ctx: ServiceContext, site: SiteInfo, moment: datetime) -> EffectivePolicy:
    """The packs in force at ``site`` on its local day at ``moment``."""
    return kyc.policy_set(ctx).evaluate(site.local_day(moment), site.scope)


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
    asked: Sequence[str],
    never_fits: Callable[[str], str | None],
    now: datetime,
    *,
    ignore: str = "",
) -> Dispatch:
    """The dispatch decision for a job among ``asked`` (one read of the tenant, its leases,
    the running jobs and the nodes down or draining at those sites). A refusal starting
    with ``ignore`` (the hold for an officer's review of the purpose, decided operator-wide
    at submission) does not count against a site."""
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, tenant_id, "tenant")
        sites = {s.site_id: s for s in site_infos(tx) if s.site_id in asked}
        leases = tx.all(
            tx.select(Lease).where(
                Lease.tenant_id == tenant_id,
                Lease.site_id.in_(list(asked)),
                Lease.state == LeaseState.ACTIVE.value,
            )
        )
        load = site_load.running_gpus(tx.session, asked, tenant_id)
        unavailable = tx.all(
            tx.select(Node).where(Node.site_id.in_(list(asked)), Node.state != NodeState.UP.value)
        )
    standing = standing_of(tenant)
    options = []
    for site_id in asked:
        site = sites[site_id]
        admit = admission([standing], policy_at(ctx, site, now), now)
        refusal = admit.refusal(tenant_id, purpose)
        if refusal is not None and ignore and refusal.startswith(ignore):
            refusal = None
        lease_gpus = sum(lease.gpus for lease in leases if lease.site_id == site_id)
        held, own = load.get(site_id, (0, 0))
        total = cached_topology(ctx, site_id).cluster.total_gpus
        down = sum(n.gpus for n in unavailable if n.site_id == site_id)
        options.append(
            SiteOption(
                site_id,
                site.country,
                refusal,
                never_fits(site_id),
                lease_gpus,
                max(0, lease_gpus - own),
                max(0, total - down - held),
            )
        )
    return dispatch(gpus, options)
