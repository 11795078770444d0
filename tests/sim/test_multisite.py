"""The simulator over several sites (issue 19): a trace dispatched over sites, each with its
own scheduler core, under three dispatch policies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.domain.models import JobSpec, LeaseGuarantee
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.scheduler.engine import Scheduler, SchedulerConfig
from gpulease.scheduler.ordering import make_policy
from gpulease.sim.loop import Simulation
from gpulease.sim.multisite import DispatchPolicy, SimSite, simulate_sites
from gpulease.sim.traces import load_philly
from gpulease.sim.workload import TraceJob, Workload

EIGHT = ClusterSpec(1, 1, 8)
PHILLY = Path(__file__).parents[2] / "src" / "gpulease" / "data" / "traces" / "philly.csv.xz"


def job(name: str, tenant: str, gpus: int, at: float, duration: float) -> TraceJob:
    return TraceJob(JobSpec(name, tenant, gpus, at), duration)


def ends(run: object) -> dict[str, float | None]:
    return {o.id: o.end for r in run.sites.values() for o in r.result.outcomes.values()}  # type: ignore[attr-defined]


def test_a_full_home_site_sends_the_next_job_elsewhere_only_under_dispatch() -> None:
    sites = [SimSite("s1", "ID", EIGHT), SimSite("s2", "SG", EIGHT)]
    jobs = [job("a", "t", 8, 0.0, 100.0), job("b", "t", 8, 0.0, 100.0)]
    home = simulate_sites(jobs, sites, {"t": "s1"}, dispatch_policy=DispatchPolicy.HOME)
    assert ends(home) == {"a": 100.0, "b": 200.0}
    assert home.sites["s2"].jobs == 0
    ours = simulate_sites(jobs, sites, {"t": "s1"}, dispatch_policy=DispatchPolicy.GPULEASE)
    assert ends(ours) == {"a": 100.0, "b": 100.0}
    assert (ours.sites["s1"].jobs, ours.sites["s2"].jobs) == (1, 1)
    first = simulate_sites(jobs, sites, {"t": "s1"}, dispatch_policy=DispatchPolicy.FIRST_ADMITS)
    assert ends(first) == {"a": 100.0, "b": 200.0}  # the first site that admits, busy or not
    assert ours.summary()["avg_jct_s"] == 100.0
    assert home.summary()["avg_jct_s"] == 150.0


def test_a_site_that_refuses_the_tenant_is_never_used_and_a_job_no_site_can_place_is_refused() -> (
    None
):
    sites = [SimSite("jhb1", "MY", EIGHT, refuses=frozenset({"cn"})), SimSite("jkt1", "ID", EIGHT)]
    jobs = [
        job("a", "cn", 8, 0.0, 50.0),
        job("b", "cn", 8, 0.0, 50.0),
        job("big", "cn", 16, 1.0, 50.0),  # no 16-GPU site
        job("c", "sg", 8, 2.0, 50.0),
    ]
    for policy in DispatchPolicy:
        run = simulate_sites(jobs, sites, {"cn": "jhb1", "sg": "jkt1"}, dispatch_policy=policy)
        placed = {o.id for o in run.sites["jhb1"].result.outcomes.values()}
        assert not placed & {"a", "b", "big"}, policy
        if policy is DispatchPolicy.HOME:
            assert sorted(run.refused) == ["a", "b", "big"]  # its home refuses it
        else:
            assert run.refused == ["big"]
        assert run.summary()["jobs_refused"] == len(run.refused)


def test_one_site_decides_exactly_as_the_single_site_simulation() -> None:
    workload = load_philly(PHILLY, first=300)
    spec = ClusterSpec(2, 4, 8)
    lease = LeaseGuarantee("l1", workload.jobs[0].spec.tenant, 16, 0.0, 1e12)
    single = Simulation(
        build_cluster(spec, site="s"),
        Workload("w", workload.jobs, [lease]),
        Scheduler(make_policy("default"), SchedulerConfig(explain=False)),
        record_events=False,
    ).run()
    sites = [SimSite("s", "ID", spec, leases=(lease,))]
    for policy in DispatchPolicy:
        run = simulate_sites(workload.jobs, sites, {}, dispatch_policy=policy)
        if policy is DispatchPolicy.HOME:
            assert len(run.refused) == len(workload.jobs)  # no tenant has a home
            continue
        got = run.sites["s"].result
        assert {o.id: (o.start, o.end, o.preemptions) for o in got.outcomes.values()} == {
            o.id: (o.start, o.end, o.preemptions) for o in single.outcomes.values()
        }
        assert got.steps == single.steps


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["t1", "t2", "t3"]),
            st.sampled_from([1, 2, 4, 8, 16]),
            st.integers(0, 500),
            st.integers(1, 400),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from(list(DispatchPolicy)),
)
def test_every_job_is_dispatched_once_or_refused(
    draws: list[tuple[str, int, int, int]], policy: DispatchPolicy
) -> None:
    sites = [
        SimSite("a", "ID", ClusterSpec(1, 2, 8)),
        SimSite("b", "SG", EIGHT, refuses=frozenset({"t2"})),
        SimSite("c", "TH", ClusterSpec(1, 1, 4)),
    ]
    jobs = [job(f"j{i}", t, g, float(at), float(d)) for i, (t, g, at, d) in enumerate(draws)]
    run = simulate_sites(jobs, sites, {"t1": "a", "t2": "b", "t3": "c"}, dispatch_policy=policy)
    seen = Counter(o.id for r in run.sites.values() for o in r.result.outcomes.values())
    seen.update(run.refused)
    assert seen == Counter(j.spec.id for j in jobs)
    assert all(o.end is not None for r in run.sites.values() for o in r.result.outcomes.values())
    assert not {o.id for o in run.sites["b"].result.outcomes.values()} & {
        j.spec.id for j in jobs if j.spec.tenant == "t2"
    }


def test_sites_are_given_once_each() -> None:
    with pytest.raises(ValueError, match="each once"):
        simulate_sites([], [SimSite("a", "ID", EIGHT)] * 2, {}, dispatch_policy=DispatchPolicy.HOME)
