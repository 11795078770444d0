"""Several sites in one simulation: a trace dispatched over sites, each with its own scheduler.

Design. Each site is a :class:`~gpulease.sim.loop.Simulation` of its own (its cluster, its
leases, its own ``Scheduler`` core, as each site has its own leader live); this driver owns
the trace's arrivals and hands each one, at its submit time, to the site a **dispatch
policy** picks, then advances every site that has an event at that instant, in site order.
A job stays where it was sent (a gang never spans sites), as live.

Dispatch policies compared (:class:`DispatchPolicy`):

* ``home``: each tenant's jobs go to its home site (the tenant's lease there), the way an
  operator without a control plane across sites would run them;
* ``first-admits``: the first site, in the order given, that admits the tenant and could
  ever place the shape (MultiKueue's dispatch read literally: the first worker cluster
  that admits the workload; its quota check is the site's own queue here);
* ``gpulease``: :func:`gpulease.scheduler.dispatch.dispatch`, the core the live control
  plane runs, fed from each site's state at that instant: the tenant's lease GPUs there
  and those its running jobs leave free, and the site's idle GPUs (soonest start, own lease
  first, then borrowed capacity).

Admission is per site: a tenant a site's rules refuse is never sent there (``refuses``);
a job no admitting site could ever place is counted as refused, not run.

Invariants: deterministic (the same trace, sites and policies give the same result); every
job of the trace is either dispatched to exactly one site or counted as refused; each site
advances through its events in time order, and no arrival is handed to a site behind it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gpulease.domain.models import LeaseGuarantee
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.scheduler.dispatch import SiteOption, dispatch
from gpulease.scheduler.engine import Scheduler, SchedulerConfig
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.placement import never_fits
from gpulease.sim.loop import SimResult, Simulation
from gpulease.sim.metrics import busy_gpu_seconds, summarize
from gpulease.sim.workload import TraceJob, Workload


class DispatchPolicy(StrEnum):
    HOME = "home"
    FIRST_ADMITS = "first-admits"
    GPULEASE = "gpulease"


@dataclass(frozen=True, slots=True)
class SimSite:
    site_id: str
    country: str
    cluster: ClusterSpec
    leases: tuple[LeaseGuarantee, ...] = ()
    refuses: frozenset[str] = frozenset()  # tenants its rules do not admit


@dataclass(slots=True)
class SiteRun:
    site: SimSite
    result: SimResult
    figures: dict[str, Any]
    jobs: int


@dataclass(slots=True)
class MultiSiteRun:
    policy: DispatchPolicy
    sites: dict[str, SiteRun]
    refused: list[str] = field(default_factory=list)  # job ids no site could take

    def summary(self) -> dict[str, Any]:
        """Per site: jobs, average JCT, utilisation; overall: average JCT over every job and
        utilisation of every site's GPUs. Utilisations are over one window for every site
        (the first arrival to the last end of the whole run), so sites compare."""
        per_site: dict[str, Any] = {}
        outcomes = [o for run in self.sites.values() for o in run.result.outcomes.values()]
        finished = [o.end - o.submit for o in outcomes if o.end is not None]
        first = min((o.submit for o in outcomes), default=0.0)
        last = max((o.end for o in outcomes if o.end is not None), default=first)
        busy_all = 0.0
        for site_id, run in sorted(self.sites.items()):
            busy = busy_gpu_seconds(run.result.timeline, first, last)
            busy_all += busy
            span = (last - first) * run.result.cluster_gpus
            per_site[site_id] = {
                "jobs": run.jobs,
                "avg_jct_s": run.figures.get("avg_jct_s"),
                "utilization": busy / span if span > 0 else 0.0,
                "gpus": run.result.cluster_gpus,
            }
        total_gpus = sum(run.result.cluster_gpus for run in self.sites.values())
        return {
            "policy": self.policy.value,
            "jobs_refused": len(self.refused),
            "jobs_unfinished": sum(1 for o in outcomes if o.end is None),
            "avg_jct_s": sum(finished) / len(finished) if finished else None,
            "utilization": busy_all / ((last - first) * total_gpus) if last > first else 0.0,
            "window_s": last - first,
            "sites": per_site,
        }


def _option(
    site: SimSite, sim: Simulation, job: TraceJob, now: float, incoming: Sequence[TraceJob]
) -> SiteOption:
    spec = job.spec
    refusal = (
        f"tenant {spec.tenant} not admitted under this site's rules"
        if spec.tenant in site.refuses
        else None
    )
    blocked = never_fits(spec, sim.cluster)
    state = sim.state
    lease_gpus = sum(
        lease.gpus
        for lease in state.leases
        if lease.tenant == spec.tenant and lease.start <= now < lease.end
    )
    # demand already there: running jobs hold GPUs, queued ones (sent but not yet started,
    # or waiting) will take them first, so both count against the headroom
    mine = state.running_gpus(spec.tenant)
    mine += sum(r.spec.gpus for r in state.queued.values() if r.spec.tenant == spec.tenant)
    queued = sum(r.spec.gpus for r in state.queued.values())
    # sent at this instant, not yet submitted (the site takes them at its next advance)
    mine += sum(j.spec.gpus for j in incoming if j.spec.tenant == spec.tenant)
    queued += sum(j.spec.gpus for j in incoming)
    idle = max(0, state.up_free_gpus - queued)
    return SiteOption(
        site.site_id,
        site.country,
        refusal,
        None if blocked is None else f"never fits this site: {blocked.message}",
        lease_gpus,
        max(0, lease_gpus - mine),
        idle,
    )


def choose_site(
    policy: DispatchPolicy,
    job: TraceJob,
    sites: Sequence[SimSite],
    sims: Mapping[str, Simulation],
    home: Mapping[str, str],
    now: float,
    incoming: Mapping[str, Sequence[TraceJob]],
) -> str | None:
    """The site ``policy`` sends ``job`` to at ``now`` (None: no site can take it);
    ``incoming``: the jobs sent to each site at this instant, not yet submitted there."""
    options = [
        _option(site, sims[site.site_id], job, now, incoming.get(site.site_id, ()))
        for site in sites
    ]
    usable = [o for o in options if o.refusal is None and o.never_fits is None]
    if policy is DispatchPolicy.HOME:
        wanted = home.get(job.spec.tenant)
        return wanted if any(o.site_id == wanted for o in usable) else None
    if policy is DispatchPolicy.FIRST_ADMITS:
        return usable[0].site_id if usable else None
    return dispatch(job.spec.gpus, options).site_id


def simulate_sites(
    jobs: Iterable[TraceJob],
    sites: Sequence[SimSite],
    home: Mapping[str, str],
    *,
    dispatch_policy: DispatchPolicy,
    policy: str = "default",
    grace_s: float = 30.0,
) -> MultiSiteRun:
    """Replay ``jobs`` over ``sites`` under ``dispatch_policy`` (module doc)."""
    if len({s.site_id for s in sites}) != len(sites) or not sites:
        raise ValueError("give at least one site, each once")
    sims: dict[str, Simulation] = {}
    for site in sites:
        cluster = build_cluster(site.cluster, site=site.site_id)
        config = SchedulerConfig(preemption_grace_s=grace_s, explain=False)
        workload = Workload(site.site_id, [], list(site.leases))
        sims[site.site_id] = Simulation(
            cluster, workload, Scheduler(make_policy(policy), config), record_events=False
        )
        sims[site.site_id].prime()
    arrivals = sorted(jobs, key=lambda j: (j.spec.submit_time, j.spec.id))
    sent: dict[str, list[TraceJob]] = {s.site_id: [] for s in sites}
    refused: list[str] = []
    i = 0
    while True:
        next_arrival = arrivals[i].spec.submit_time if i < len(arrivals) else math.inf
        next_event = min(sim.next_time() for sim in sims.values())
        now = min(next_arrival, next_event)
        if now == math.inf:
            break
        incoming: dict[str, list[TraceJob]] = {}
        while i < len(arrivals) and arrivals[i].spec.submit_time == now:
            job = arrivals[i]
            i += 1
            site_id = choose_site(dispatch_policy, job, sites, sims, home, now, incoming)
            if site_id is None:
                refused.append(job.spec.id)
                continue
            sims[site_id].arrive_later(job)
            sent[site_id].append(job)
            incoming.setdefault(site_id, []).append(job)
        for site in sites:
            sim = sims[site.site_id]
            if sim.next_time() == now:
                sim.advance()
    runs: dict[str, SiteRun] = {}
    for site in sites:
        sim = sims[site.site_id]
        result = sim.result()
        workload = Workload(site.site_id, sent[site.site_id], list(site.leases))
        figures = summarize(result, workload, sim.cluster) if sent[site.site_id] else {}
        runs[site.site_id] = SiteRun(site, result, figures, len(sent[site.site_id]))
    return MultiSiteRun(dispatch_policy, runs, refused)
