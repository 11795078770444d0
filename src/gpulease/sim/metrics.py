"""Figures of a simulation run: job completion times, waits, utilisation, placement quality.

Definitions (all times in seconds):
* JCT = end - submit of completed jobs; wait = first start - submit;
* makespan = last end - first submit; utilisation = busy GPU-seconds / (GPUs x makespan),
  integrated over the step timeline (work later lost to preemption counts as busy);
  ``utilization_while_arriving`` is the same between the first and the last submission
  (``arrival_span_s``, the span an offered load is defined over): a trace's longest jobs
  run long after the last arrival, so the whole-run figure mostly measures that idle tail;
* ``utilization_bound_while_arriving``: the most any scheduler could reach over that same
  window on this input (:func:`fluid_utilization_bound`, which knows that rack-bound
  segments over half a rack never share one): a target above it is unattainable
  whatever the scheduler does (measured utilisation may pass it only by redoing work lost
  to preemptions);
* lease-guarantee wait = the longest time a job spent queued within its tenant's guarantee
  without a break (a job that drops out of the guarantee while queued, because the
  tenant's better-ranked jobs took it, is not guaranteed demand meanwhile);
* placement quality, against two yardsticks (:mod:`gpulease.sim.locality`): starts spanning
  more racks than the job needs on an empty site, and starts spanning more racks than the
  GPUs free at that moment allowed, each in all and by locality request. ``preferred`` and
  ``none`` jobs span racks rather than wait when no rack has room, which counts against
  the first yardstick only; the placer promises the second (``keep_blocks`` breaks it, and
  an EASY backfill placed around the queue head's reservation may count against it).
Percentiles use the nearest-rank method.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from gpulease.domain.models import JobSpec, TopologyMode
from gpulease.domain.states import JobState
from gpulease.inventory.topology import Cluster
from gpulease.scheduler.placement import min_racks_needed, rack_piece
from gpulease.sim.loop import JobOutcome, SimResult
from gpulease.sim.workload import Workload


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def busy_gpu_seconds(
    timeline: Sequence[tuple[float, int, int]], start: float = -math.inf, end: float = math.inf
) -> float:
    """Busy GPU-seconds of the step timeline, clipped to [start, end]."""
    busy = 0.0
    for (t0, gpus, _), (t1, _, _) in itertools.pairwise(timeline):
        lo, hi = max(t0, start), min(t1, end)
        if hi > lo:
            busy += gpus * (hi - lo)
    return busy


def _job_figures(outcomes: Sequence[JobOutcome]) -> dict[str, float]:
    done = [o for o in outcomes if o.status is JobState.SUCCEEDED and o.end is not None]
    jcts = [o.end - o.submit for o in done if o.end is not None]
    waits = [o.start - o.submit for o in outcomes if o.start is not None]
    return {
        "jobs": len(outcomes),
        "completed": len(done),
        "avg_jct_s": _mean(jcts),
        "p50_jct_s": percentile(jcts, 50),
        "p99_jct_s": percentile(jcts, 99),
        "avg_wait_s": _mean(waits),
        "gpu_hours": sum(o.gpus * o.duration for o in done) / 3600.0,
    }


def domain_bound_gpus(workload: Workload, cluster: Cluster) -> tuple[frozenset[str], int]:
    """Jobs whose rack-local pieces are over half the largest rack, and the most GPUs they
    can hold at once: such pieces never share a rack, so together they hold at most, per
    rack, the largest of their pieces that fits in it (64 of 72 GPUs on NVL72 racks with
    64-GPU segments: 2,048 of the reference site's 2,304)."""
    largest = max((cluster.rack_gpus(r) for r in range(len(cluster.racks))), default=0)
    pieces: dict[str, int] = {}
    for job in workload.jobs:
        piece = rack_piece(job.spec)
        if piece is not None and 2 * piece > largest:
            pieces[job.spec.id] = piece
    sizes = sorted(set(pieces.values()))
    held = 0
    for rack in range(len(cluster.racks)):
        room = cluster.rack_gpus(rack)
        held += max((p for p in sizes if p <= room), default=0)
    return frozenset(pieces), held


def fluid_utilization_bound(workload: Workload, cluster: Cluster) -> float:
    """Upper bound on utilisation between the first and the last submission.

    Busy GPU-seconds over that window are at most both (a) what a work-conserving *fluid*
    server serves out of the arriving work and (b) the sum over jobs of ``gpus x`` the part
    of ``[submit, submit + duration]`` inside the window (no job runs before it arrives or
    faster than its duration). The fluid server (a Lindley recursion on two backlogs) runs
    any job at any rate on the cluster's GPUs, except that the rack-bound jobs of
    :func:`domain_bound_gpus` together never use more than the GPUs their pieces can hold;
    serving those first up to that limit and everything else on the rest maximises the work
    done by every instant, since the rest can use any GPU. No gangs, no nodes, no fixed
    placement: real schedules only add constraints.
    """
    jobs = sorted(workload.jobs, key=lambda j: j.spec.submit_time)
    if len(jobs) < 2:
        return 0.0
    start, end = jobs[0].spec.submit_time, jobs[-1].spec.submit_time
    if end <= start:
        return 0.0
    gpus = cluster.total_gpus
    bound, held = domain_bound_gpus(workload, cluster)
    tied = free = served = 0.0  # backlogs of rack-bound work and of the rest, GPU-seconds
    last = start
    for job in jobs:
        now = job.spec.submit_time
        span = now - last
        done_tied = min(tied, held * span)
        done_free = min(free, gpus * span - done_tied)
        served += done_tied + done_free
        tied -= done_tied
        free -= done_free
        last = now
        work = job.spec.gpus * job.duration
        if job.spec.id in bound:
            tied += work
        else:
            free += work
    per_job = sum(j.spec.gpus * min(j.duration, end - j.spec.submit_time) for j in jobs)
    return min(served, per_job) / (gpus * (end - start))


def _utilization_between(result: SimResult, start: float, end: float) -> float:
    """Utilisation while jobs still arrive: the steady state an offered load describes,
    without the drain at the end, when only the longest jobs are left."""
    if end <= start:
        return 0.0
    return busy_gpu_seconds(result.timeline, start, end) / (result.cluster_gpus * (end - start))


def summarize(result: SimResult, workload: Workload, cluster: Cluster) -> dict[str, Any]:
    outcomes = list(result.outcomes.values())
    figures: dict[str, Any] = _job_figures(outcomes)
    submits = [o.submit for o in outcomes]
    ends = [o.end for o in outcomes if o.end is not None]
    makespan = (max(ends) - min(submits)) if ends and submits else 0.0
    busy = busy_gpu_seconds(result.timeline)
    figures.update(
        {
            "failed": sum(1 for o in outcomes if o.status is JobState.FAILED),
            "unfinished": sum(1 for o in outcomes if o.end is None),
            "makespan_s": makespan,
            "arrival_span_s": (max(submits) - min(submits)) if submits else 0.0,
            "utilization": busy / (result.cluster_gpus * makespan) if makespan else 0.0,
            "utilization_while_arriving": _utilization_between(
                result, min(submits, default=0.0), max(submits, default=0.0)
            ),
            "utilization_bound_while_arriving": fluid_utilization_bound(workload, cluster),
            "preemptions": sum(o.preemptions for o in outcomes),
            "policy": result.policy,
            "cluster_gpus": result.cluster_gpus,
            "steps": result.steps,
        }
    )
    guarantee_waits = [o.guarantee_wait for o in outcomes if o.guarantee_wait is not None]
    figures["guarantee_wait"] = {
        "jobs": len(guarantee_waits),
        "avg_s": _mean(guarantee_waits),
        "p99_s": percentile(guarantee_waits, 99),
        "max_s": max(guarantee_waits, default=0.0),
    }
    figures["placement"] = placement_quality(
        outcomes, {j.spec.id: j.spec for j in workload.jobs}, cluster
    )
    tenants = sorted({o.tenant for o in outcomes})
    figures["per_tenant"] = {
        t: _job_figures([o for o in outcomes if o.tenant == t]) for t in tenants
    }
    return figures


def placement_quality(
    outcomes: Sequence[JobOutcome], specs: dict[str, JobSpec], cluster: Cluster
) -> dict[str, Any]:
    needed_by_shape: dict[tuple[int, int | None, int | None, str], int] = {}
    starts = multi = 0
    extra_by_mode = {mode.value: 0 for mode in TopologyMode}
    spread_by_mode = {mode.value: 0 for mode in TopologyMode}
    for outcome in outcomes:
        if not outcome.racks:
            continue
        spec = specs[outcome.id]
        shape = (spec.gpus, spec.gpus_per_node, spec.topology.segment, spec.topology.mode.value)
        needed = needed_by_shape.get(shape)
        if needed is None:
            needed = needed_by_shape[shape] = min_racks_needed(spec, cluster)
        mode = spec.topology.mode.value
        for racks, least in zip(outcome.racks, outcome.fewest_free, strict=True):
            starts += 1
            multi += racks > 1
            extra_by_mode[mode] += racks > needed
            spread_by_mode[mode] += 0 < least < racks
    extra, spread = sum(extra_by_mode.values()), sum(spread_by_mode.values())
    return {
        "starts": starts,
        "multi_rack_starts": multi,
        "starts_on_more_racks_than_needed": extra,
        # by locality request: only ``preferred`` and ``none`` may span racks when no single
        # rack has room (rather than wait); ``required`` jobs and segments never do
        "more_racks_by_topology": extra_by_mode,
        "fewest_racks_share": 1.0 - extra / starts if starts else 1.0,
        # against the GPUs free at the start: what the placer promises (keep_blocks breaks
        # it on purpose, trading locality for whole blocks)
        "starts_on_more_racks_than_free_allowed": spread,
        "spread_by_topology": spread_by_mode,
        "fewest_free_racks_share": 1.0 - spread / starts if starts else 1.0,
    }
