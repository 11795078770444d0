"""The seeded rack-scale workload: determinism, leases, load, and the shape of the job mix."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import TopologyMode
from gpulease.inventory.topology import CLUSTER_PRESETS, ClusterSpec, parse_cluster_spec
from gpulease.sim.synthetic import (
    CHECKPOINT_INTERVAL,
    MAX_DURATION,
    MIN_DURATION,
    SPOT_TENANT,
    lease_split,
    rack_scale_mix,
    segment_capacity,
    segment_gpus,
)
from gpulease.sim.traces import dump_native, load_native, offered_load
from gpulease.sim.workload import Workload

REFERENCE = CLUSTER_PRESETS["reference"]  # 32 NVL72 racks, 2,304 GPUs
CLUSTERS = [
    REFERENCE,
    CLUSTER_PRESETS["tiresias"],
    CLUSTER_PRESETS["nvl72"],
    parse_cluster_spec("8x4x8"),
]


def rack_gpus(spec: ClusterSpec) -> int:
    return spec.nodes_per_rack * spec.gpus_per_node


@pytest.fixture(scope="module")
def reference_mix() -> Workload:
    return rack_scale_mix(REFERENCE, jobs=2000, load=0.9, seed=3)


def test_same_seed_same_workload_other_seed_other_workload() -> None:
    first = rack_scale_mix(REFERENCE, jobs=300, load=0.8, seed=11)
    assert rack_scale_mix(REFERENCE, jobs=300, load=0.8, seed=11) == first
    other = rack_scale_mix(REFERENCE, jobs=300, load=0.8, seed=12)
    assert other.jobs != first.jobs


def test_ids_and_submit_times(reference_mix: Workload) -> None:
    jobs = reference_mix.jobs
    assert [j.spec.id for j in jobs] == [f"syn-{n:06d}" for n in range(1, 2001)]
    times = [j.spec.submit_time for j in jobs]
    assert times[0] == 0.0
    assert times == sorted(times)


@pytest.mark.parametrize("spec", CLUSTERS, ids=str)
@pytest.mark.parametrize("load", [0.5, 0.9, 1.3])
def test_offered_load_is_exactly_the_requested_load(spec: ClusterSpec, load: float) -> None:
    workload = rack_scale_mix(spec, jobs=400, load=load, seed=1)
    assert abs(offered_load(workload, spec.total_gpus) - load) <= 1e-9


@pytest.mark.parametrize("spec", CLUSTERS, ids=str)
def test_leases_cover_the_fraction_unequally_over_the_horizon(spec: ClusterSpec) -> None:
    workload = rack_scale_mix(spec, jobs=400, load=0.9, seed=2)
    leased = [lease.gpus for lease in workload.leases]
    assert abs(sum(leased) - 0.75 * spec.total_gpus) <= rack_gpus(spec)
    assert leased == sorted(leased, reverse=True)
    assert leased[0] > leased[-1]
    assert [lease.tenant for lease in workload.leases] == [f"tenant-{c}" for c in "abcd"]
    last_end = max(j.spec.submit_time + j.duration for j in workload.jobs)
    for lease in workload.leases:
        assert lease.start == 0.0
        assert lease.end >= last_end
        assert lease.gpus % spec.gpus_per_node == 0
    if spec.racks * 0.75 >= 4:  # enough racks: every lease is whole racks
        assert all(g % rack_gpus(spec) == 0 for g in leased)


def test_reference_leases_are_whole_racks_4_3_2_1() -> None:
    assert lease_split(REFERENCE, 0.75, 4) == [r * 72 for r in (10, 7, 5, 2)]
    assert lease_split(CLUSTER_PRESETS["tiresias"], 0.75, 4) == [48, 40, 24, 8]


@pytest.mark.parametrize("spec", CLUSTERS, ids=str)
def test_job_mix_sizes_shapes_and_durations(spec: ClusterSpec) -> None:
    workload = rack_scale_mix(spec, jobs=1000, load=0.9, seed=5)
    segment = segment_gpus(spec)
    cap = min(2048, spec.total_gpus // segment * segment)
    large = [j for j in workload.jobs if j.spec.gpus >= 64]
    assert 0.10 <= len(large) / len(workload.jobs) <= 0.15
    for job in large:
        s = job.spec
        assert s.gpus <= cap
        assert s.gpus & (s.gpus - 1) == 0
        assert s.gpus_per_node == spec.gpus_per_node
        assert s.topology.mode is TopologyMode.REQUIRED
        assert s.topology.segment is not None
        assert s.topology.segment <= rack_gpus(spec)
        assert s.gpus % s.topology.segment == 0
        assert s.preemptible
        assert s.checkpoint_interval == CHECKPOINT_INTERVAL
    rest = Counter(j.spec.gpus for j in workload.jobs if j.spec.gpus < 64)
    assert set(rest) <= {1, 2, 4, 8, 16, 32}
    for job in workload.jobs:
        assert MIN_DURATION <= job.duration <= MAX_DURATION
        assert job.spec.walltime is None
        if job.spec.gpus < 64:
            assert job.spec.topology.segment is None
            assert job.spec.gpus_per_node is None


def test_reference_segment_is_64_and_large_gangs_run_longer(reference_mix: Workload) -> None:
    assert segment_gpus(REFERENCE) == 64
    large = [j for j in reference_mix.jobs if j.spec.gpus >= 64]
    small = [j for j in reference_mix.jobs if j.spec.gpus <= 4]
    assert {j.spec.topology.segment for j in large} == {64}
    assert max(j.spec.gpus for j in large) == 512  # the largest lease-held size

    def mean(durations: list[float]) -> float:
        return sum(durations) / len(durations)

    assert mean([j.duration for j in large]) > 2 * mean([j.duration for j in small])


def test_segment_capacity_counts_whole_segments_of_whole_racks_then_nodes() -> None:
    assert segment_capacity(REFERENCE, 10 * 72) == 640  # 10 racks hold ten 64-GPU segments
    assert segment_capacity(REFERENCE, 8 * 72) == 512
    assert segment_capacity(REFERENCE, 2 * 72 + 64) == 192  # and a partial rack of 64
    assert segment_capacity(REFERENCE, 2 * 72 + 60) == 128
    assert segment_capacity(REFERENCE, 0) == 0


def test_lease_limit_keeps_each_tenants_gangs_within_what_it_leases(
    reference_mix: Workload,
) -> None:
    # Leases of 10, 7, 5 and 2 racks; spot has the 8 racks nobody leases.
    limit = {"tenant-a": 512, "tenant-b": 256, "tenant-c": 256, "tenant-d": 128, SPOT_TENANT: 512}
    seen: dict[str, set[int]] = {}
    for job in reference_mix.jobs:
        if job.spec.gpus >= 64:
            seen.setdefault(job.spec.tenant, set()).add(job.spec.gpus)
    for tenant, sizes in seen.items():
        assert max(sizes) == limit[tenant], tenant  # every size up to its limit is drawn
        assert min(sizes) == 64


def test_site_limit_draws_every_size_for_every_tenant() -> None:
    workload = rack_scale_mix(REFERENCE, jobs=4000, load=0.9, seed=3, gang_limit="site")
    assert "gangs=site" in workload.name
    largest: dict[str, int] = {}
    for job in workload.jobs:
        largest[job.spec.tenant] = max(largest.get(job.spec.tenant, 0), job.spec.gpus)
    assert largest["tenant-d"] > 128
    assert max(largest.values()) == 2048


def test_a_lease_too_small_for_any_gang_gets_the_smallest() -> None:
    # 4x5x8: 40-GPU racks, 32-GPU segments; no lease holds a 64-GPU gang.
    workload = rack_scale_mix(CLUSTER_PRESETS["tiresias"], jobs=600, load=0.9, seed=4)
    assert {j.spec.gpus for j in workload.jobs if j.spec.gpus >= 64} == {64}


def test_tenants_spot_gets_about_a_tenth(reference_mix: Workload) -> None:
    tenants = Counter(j.spec.tenant for j in reference_mix.jobs)
    assert set(tenants) == {SPOT_TENANT, "tenant-a", "tenant-b", "tenant-c", "tenant-d"}
    assert 0.07 <= tenants[SPOT_TENANT] / 2000 <= 0.13
    assert tenants["tenant-a"] > tenants["tenant-b"] > tenants["tenant-c"] > tenants["tenant-d"]
    assert all(lease.tenant != SPOT_TENANT for lease in reference_mix.leases)


def test_walltime_estimates_change_nothing_else(reference_mix: Workload) -> None:
    estimated = rack_scale_mix(REFERENCE, jobs=2000, load=0.9, seed=3, walltime_estimates=True)
    for plain, job in zip(reference_mix.jobs, estimated.jobs, strict=True):
        assert job.spec.walltime is not None
        assert 1.0 <= job.spec.walltime / job.duration <= 3.0
        assert replace(job, spec=replace(job.spec, walltime=None)) == plain


def test_every_job_spec_is_valid_and_survives_the_native_format(
    reference_mix: Workload, tmp_path: Path
) -> None:
    for job in reference_mix.jobs:
        assert replace(job.spec) == job.spec  # re-runs JobSpec validation
    path = tmp_path / f"{reference_mix.name}.jsonl"
    dump_native(reference_mix, path)
    assert load_native(path) == reference_mix


def test_refuses_bad_arguments() -> None:
    with pytest.raises(InvalidRequest, match="jobs must be >= 2"):
        rack_scale_mix(REFERENCE, jobs=1, load=0.5)
    with pytest.raises(InvalidRequest, match="load must be a finite number > 0"):
        rack_scale_mix(REFERENCE, jobs=10, load=0.0)
    with pytest.raises(InvalidRequest, match="lease_fraction must be in"):
        rack_scale_mix(REFERENCE, jobs=10, load=0.5, lease_fraction=1.5)
    with pytest.raises(InvalidRequest, match=r"tenants must be in 1\.\.26"):
        rack_scale_mix(REFERENCE, jobs=10, load=0.5, tenants=0)
    with pytest.raises(InvalidRequest, match="gang_limit must be one of lease, site"):
        rack_scale_mix(REFERENCE, jobs=10, load=0.5, gang_limit="rack")  # type: ignore[arg-type]


def test_refuses_clusters_it_cannot_shape() -> None:
    with pytest.raises(InvalidRequest, match="power-of-two GPUs per node"):
        rack_scale_mix(ClusterSpec(4, 4, 6), jobs=10, load=0.5)
    with pytest.raises(InvalidRequest, match="too few for 4 leased tenants"):
        rack_scale_mix(ClusterSpec(1, 2, 8), jobs=10, load=0.5)
