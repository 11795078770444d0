"""Synthetic rack-scale training workloads, generated from a seed.

:func:`rack_scale_mix` builds the workload the reference case is about: a site of NVLink
racks shared by a few tenants that hold leases, one tenant (``spot``) that only borrows, and
a job mix where a minority of huge rack-aligned gangs carries most of the GPU-time.

Design:

- *Leases.* ``tenants`` leased tenants ``tenant-a``, ``tenant-b``, ... share
  ``lease_fraction`` of the cluster with weights ``n : n-1 : ... : 1`` (4:3:2:1 for four),
  apportioned by largest remainder in whole racks (``round(lease_fraction * racks)``), or in
  whole nodes when there are fewer leased racks than tenants; every leased tenant gets at
  least one unit. Each lease runs from 0 to a horizon of last submit + the sum of all
  durations: the makespan of running every job one after another, so the leases cover any
  schedule that is never idle while work waits (work lost to preemption aside).
- *Job mix.* Exactly ``round(12.5 %)`` of the jobs are large gangs, ``round(25 %)`` medium,
  the rest small, in shuffled order. Large gangs take a power-of-two size from 64 up to
  2,048 GPUs (weight 1/sqrt(size)), capped at the cluster rounded down to whole segments;
  they fill whole nodes (``gpus_per_node = spec.gpus_per_node``), require rack locality
  with segments of ``S`` GPUs, where S is the largest power of two <= the GPUs of a rack
  (64 on NVL72; a 64-GPU gang on racks of 128+ GPUs uses one 64-GPU segment), and are
  preemptible with a checkpoint every 1,800 s. Medium jobs take 8, 16 or 32 GPUs with
  preferred locality; small jobs 1, 2, 4 or 8 GPUs (up to two 4-GPU trays: inference
  replicas, notebooks, fine-tuning) with default settings. Sizes larger than the cluster
  are never drawn; a class with no size that fits is left out.
- *Why small jobs reach 8 GPUs and run for hours.* 64-GPU segments leave two trays (8
  GPUs, 11 % of an NVL72 rack) beside every segment that only jobs of 8 GPUs or fewer can
  use without breaking a block a gang needs; an operator sells those trays to small work.
  With small jobs of 1-4 GPUs and a 30-minute median (the mix before 2026-11-29), work
  of 8 GPUs or fewer was 2.3 % of the GPU-time, the gangs' share (93 %) exceeded what
  their segments can hold beside the other work, and no scheduler could pass 90 %
  utilisation at load 0.95 while keeping every job on the fewest racks (README,
  benchmark 4). Now it is about 5 %, gangs about 90 %.
- *Gang limit.* With ``gang_limit="lease"`` (the default) a tenant's large gangs are no
  larger than the segments its own leased racks hold (the spot tenant: the racks nobody
  leases), so a 2-rack lease never submits 2,048-GPU runs: a tenant trains on what it
  rents and borrows idle capacity for its overflow. On the reference site that caps gangs at
  512 GPUs (tenant-a's 10 racks, the 8 unleased racks), 256 (7 and 5 racks) and 128 (2
  racks). A tenant whose lease holds no whole large size gets the smallest one (it can
  only borrow). ``gang_limit="site"`` draws every size up to the site for every tenant:
  the stress case in which most of the work is gangs no lease covers.
- *Durations* are lognormal, clipped to [60 s, 14 days]; medians 2 h (small), 3 h
  (medium) and 12 h (large).
- *Tenants.* A job belongs to ``spot`` with probability 10 %, otherwise to a leased tenant
  drawn in proportion to its lease.
- *Arrivals* are a Poisson process: exponential gaps, then every submit time is scaled by
  one factor (:func:`compress_to_load`) so the offered load, total GPU-seconds /
  (cluster GPUs x arrival span), is exactly ``load``. The first job submits at 0.0.
- *Walltimes.* Every job draws an estimate factor in [1, 3); it is used only when
  ``walltime_estimates`` is set (walltime = duration x factor), so turning estimates on
  changes nothing else in the workload.

Invariants: same arguments, same workload, bit for bit (one ``random.Random(seed)``, drawn
in a fixed order; no global randomness, no numpy). Every job is a valid :class:`JobSpec`;
job ids are ``syn-000001``, ``syn-000002``, ... in submit order.
"""

from __future__ import annotations

import math
import random
from typing import Literal, get_args

from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import JobSpec, LeaseGuarantee, TopologyMode, TopologyRequest
from gpulease.inventory.topology import ClusterSpec
from gpulease.sim.traces import compress_to_load
from gpulease.sim.workload import TraceJob, Workload

JobClass = Literal["large", "medium", "small"]
GangLimit = Literal["lease", "site"]
GANG_LIMITS: tuple[str, ...] = get_args(GangLimit)

LARGE_FRACTION = 0.125
MEDIUM_FRACTION = 0.25
SPOT_FRACTION = 0.10
SPOT_TENANT = "spot"
CHECKPOINT_INTERVAL = 1800.0
MIN_DURATION = 60.0
MAX_DURATION = 14 * 86400.0
LARGE_SIZES = tuple(2**k for k in range(6, 12))  # 64 .. 2,048 GPUs
MEDIUM_SIZES = ((8, 0.5), (16, 0.3), (32, 0.2))  # (GPUs, weight)
SMALL_SIZES = ((1, 0.3), (2, 0.2), (4, 0.3), (8, 0.2))
# Lognormal (median seconds, sigma) of the true run time, per job class.
DURATIONS: dict[JobClass, tuple[float, float]] = {
    "small": (2 * 3600.0, 1.6),
    "medium": (3 * 3600.0, 1.3),
    "large": (12 * 3600.0, 1.0),
}


def segment_gpus(spec: ClusterSpec) -> int:
    """The largest power of two that is a multiple of ``gpus_per_node`` and fits in a rack."""
    gpn = spec.gpus_per_node
    if gpn & (gpn - 1):
        raise InvalidRequest(
            f"cluster {spec}: rack_scale_mix needs a power-of-two GPUs per node, got {gpn}",
            field="cluster",
        )
    return 1 << ((spec.nodes_per_rack * gpn).bit_length() - 1)


def segment_capacity(spec: ClusterSpec, gpus: int) -> int:
    """GPUs of the whole segments that ``gpus`` GPUs leased in whole racks (then nodes) hold."""
    segment = segment_gpus(spec)
    rack_gpus = spec.nodes_per_rack * spec.gpus_per_node
    racks, rest = divmod(gpus, rack_gpus)
    return (racks * (rack_gpus // segment) + rest // segment) * segment


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` units by ``weights`` (largest remainder), each share at least 1."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    for i, share in enumerate(shares):
        if share == 0:  # take one unit from the largest share (total >= len(weights))
            shares[max(range(len(shares)), key=shares.__getitem__)] -= 1
            shares[i] = 1
    return shares


def lease_split(spec: ClusterSpec, lease_fraction: float, tenants: int) -> list[int]:
    """GPUs leased to each of ``tenants`` tenants, in whole racks where possible."""
    weights = list(range(tenants, 0, -1))
    rack_gpus = spec.nodes_per_rack * spec.gpus_per_node
    racks = round(lease_fraction * spec.racks)
    if racks >= tenants:
        return [r * rack_gpus for r in _apportion(racks, weights)]
    nodes = round(lease_fraction * spec.racks * spec.nodes_per_rack)
    if nodes < tenants:
        raise InvalidRequest(
            f"cluster {spec}: {lease_fraction:.0%} of it is {nodes} node(s), too few for "
            f"{tenants} leased tenants; lower tenants or raise lease_fraction",
            field="tenants",
        )
    return [n * spec.gpus_per_node for n in _apportion(nodes, weights)]


def _check(
    spec: ClusterSpec,
    jobs: int,
    load: float,
    lease_fraction: float,
    tenants: int,
    gang_limit: str,
) -> None:
    problems = [
        (jobs < 2, f"jobs must be >= 2 (arrivals need a span), got {jobs}", "jobs"),
        (not (0 < load < math.inf), f"load must be a finite number > 0, got {load}", "load"),
        (
            not (0 < lease_fraction <= 1),
            f"lease_fraction must be in (0, 1], got {lease_fraction}",
            "lease_fraction",
        ),
        (not (1 <= tenants <= 26), f"tenants must be in 1..26, got {tenants}", "tenants"),
        (spec.total_gpus < 1, f"cluster {spec} has no GPUs", "cluster"),
        (
            gang_limit not in GANG_LIMITS,
            f"gang_limit must be one of {', '.join(GANG_LIMITS)}, got {gang_limit!r}",
            "gang_limit",
        ),
    ]
    for failed, message, field in problems:
        if failed:
            raise InvalidRequest(message, field=field)


def _duration(rng: random.Random, kind: JobClass) -> float:
    median, sigma = DURATIONS[kind]
    return min(MAX_DURATION, max(MIN_DURATION, rng.lognormvariate(math.log(median), sigma)))


def _pick_size(rng: random.Random, sizes: list[tuple[int, float]]) -> int:
    return rng.choices([s for s, _ in sizes], weights=[w for _, w in sizes])[0]


def rack_scale_mix(
    spec: ClusterSpec,
    *,
    jobs: int,
    load: float,
    seed: int = 0,
    lease_fraction: float = 0.75,
    tenants: int = 4,
    walltime_estimates: bool = False,
    gang_limit: GangLimit = "lease",
) -> Workload:
    """A seeded rack-scale training workload on ``spec`` (see the module docstring)."""
    _check(spec, jobs, load, lease_fraction, tenants, gang_limit)
    rng = random.Random(seed)
    gpn, total = spec.gpus_per_node, spec.total_gpus
    segment = segment_gpus(spec)
    cap = total // segment * segment
    sizes: dict[JobClass, list[tuple[int, float]]] = {
        "large": [(s, 1 / math.sqrt(s)) for s in LARGE_SIZES if s <= cap],
        "medium": [(s, w) for s, w in MEDIUM_SIZES if s <= total],
        "small": [(s, w) for s, w in SMALL_SIZES if s <= total],
    }
    leased = lease_split(spec, lease_fraction, tenants)
    names = [f"tenant-{chr(ord('a') + i)}" for i in range(tenants)]
    everyone = sizes["large"]
    large_sizes = dict.fromkeys([*names, SPOT_TENANT], everyone)
    if gang_limit == "lease" and everyone:
        held = dict(zip(names, leased, strict=True))
        held[SPOT_TENANT] = total - sum(leased)
        for tenant, gpus in held.items():
            room = segment_capacity(spec, gpus)
            large_sizes[tenant] = [sw for sw in everyone if sw[0] <= room] or everyone[:1]

    n_large = round(LARGE_FRACTION * jobs) if sizes["large"] else 0
    n_medium = round(MEDIUM_FRACTION * jobs) if sizes["medium"] else 0
    counts: dict[JobClass, int] = {
        "large": n_large,
        "medium": n_medium,
        "small": jobs - n_large - n_medium,
    }
    kinds = [kind for kind, count in counts.items() for _ in range(count)]
    rng.shuffle(kinds)

    drafts: list[tuple[JobClass, str, int, float, float]] = []  # kind, tenant, gpus, dur, est.
    for kind in kinds:
        if rng.random() < SPOT_FRACTION:
            tenant = SPOT_TENANT
        else:
            tenant = rng.choices(names, weights=leased)[0]
        gpus = _pick_size(rng, large_sizes[tenant] if kind == "large" else sizes[kind])
        drafts.append((kind, tenant, gpus, _duration(rng, kind), rng.uniform(1.0, 3.0)))

    submit = 0.0
    trace: list[TraceJob] = []
    for number, (kind, tenant, gpus, duration, estimate) in enumerate(drafts, start=1):
        job_id = f"syn-{number:06d}"
        walltime = duration * estimate if walltime_estimates else None
        if kind == "large":
            topology = TopologyRequest(TopologyMode.REQUIRED, segment=min(segment, gpus))
            job = JobSpec(
                job_id,
                tenant,
                gpus,
                submit,
                gpus_per_node=gpn,
                walltime=walltime,
                preemptible=True,
                checkpoint_interval=CHECKPOINT_INTERVAL,
                topology=topology,
            )
        elif kind == "medium":
            topology = TopologyRequest(TopologyMode.PREFERRED)
            job = JobSpec(job_id, tenant, gpus, submit, walltime=walltime, topology=topology)
        else:
            job = JobSpec(job_id, tenant, gpus, submit, walltime=walltime)
        trace.append(TraceJob(job, duration))
        submit += rng.expovariate(1.0)  # unit-rate gaps, rescaled to the load below

    name = f"rack-scale-mix[{spec},jobs={jobs},load={load:g},seed={seed},gangs={gang_limit}]"
    arrivals = compress_to_load(Workload(name, trace), total, load)
    horizon = arrivals.jobs[-1].spec.submit_time + sum(j.duration for j in trace)
    leases = [
        LeaseGuarantee(f"lease-{tenant}", tenant, gpus, 0.0, horizon)
        for tenant, gpus in zip(names, leased, strict=True)
    ]
    return Workload(name, arrivals.jobs, leases)
