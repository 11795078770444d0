"""Benchmark 3: latency of one scheduling step at scale.

Two cases: 2,304 GPUs (32 NVL72 racks) with 10,000 queued jobs, and 100,008 GPUs (1,389
racks) with 100,000 queued jobs. The cluster is first filled to ~97 % with running jobs of
mixed sizes and attained service. Default policy, reasons explained. Two modes:

* ``repeat``: ``Scheduler.step`` is timed repeatedly on that same state (decisions are not
  applied, so every step sees the same input; no leases). The first step also builds the
  running-jobs index and is reported apart.
* ``steady``: the live service's shape. Four of the eight tenants hold leases (10 % of the
  site each), reasons are explained, the grace period is 30 s. The queued jobs arrive at
  once (the *burst* step: leased tenants reclaim, LAS level 0 preempts nearly every
  running job); then every simulated second ``--arrivals`` jobs arrive, as many running
  jobs finish, the step runs and its decisions are applied: first through the burst's
  grace period, then ``--steps`` steady steps (LAS level crossings keep preempting). The
  burst step and the first ``--before-steps`` steady steps are timed *before*
  (``SchedulerConfig(queue_index=False)``: rank, tier and explain every job, as the live
  service did) and *after* (the indexed walk) on the same states, in the same run, and
  their decisions compared; a digest of every indexed step's decisions is printed (two
  versions that print the same digest decided alike). Wall and CPU time per step (the
  machine may be shared). As
  the live leader, the process freezes the built state and indexes out of the collector's
  sight and collects with the leader's thresholds.

Before and after a change in the same run: ``--baseline REF`` runs the steady mode on the
code at REF (a temporary ``git worktree``) and on this tree (or ``--after REF``), one
process each, alternately ``--pairs`` times, and prints CPU figures side by side (median
over the pairs).

    .venv/bin/python benchmarks/bench_step_latency.py [--mode repeat|steady|both]
        [--repeat 20] [--racks 1389] [--queued 100000] [--steps 120] [--before-steps 5]
        [--baseline REF [--after REF] [--pairs 3]]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import ROOT, git_tree, peak_rss_mib, side_by_side
from gpulease.domain.models import JobSpec, LeaseGuarantee
from gpulease.domain.states import JobState
from gpulease.inventory.topology import build_cluster, parse_cluster_spec
from gpulease.scheduler.engine import Decisions, Scheduler, SchedulerConfig, apply_decisions
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.metrics import percentile

SIZES = (1, 1, 1, 2, 4, 4, 8, 8, 16, 32, 64)
LEADER_GC_THRESHOLDS = (50_000, 20, 20)  # services.scheduling.GC_THRESHOLDS


def build(
    spec_text: str, queued: int, seed: int, *, submit: bool = True
) -> tuple[SchedulerState, float]:
    rng = random.Random(seed)
    cluster = build_cluster(parse_cluster_spec(spec_text))
    state = SchedulerState(cluster, keep_history=False)
    fill = Scheduler(make_policy("fifo"), SchedulerConfig(explain=False))
    now = 0.0
    target = int(cluster.total_gpus * 0.97)
    n = 0
    while cluster.total_gpus - state.free_map().total < target:
        batch = [
            JobSpec(f"run-{n + i}", f"t{rng.randrange(8)}", rng.choice(SIZES), now)
            for i in range(2000)
        ]
        n += len(batch)
        for spec in batch:
            state.submit(spec)
        apply_decisions(state, fill.step(state, now))
        for job_id in list(state.queued):
            state.stop(job_id, now, state.jobs[job_id].status.CANCELLED)
        now += rng.uniform(600, 7200)
    if not submit:
        return state, now
    for i in range(queued):
        state.submit(JobSpec(f"q-{i}", f"t{rng.randrange(8)}", rng.choice(SIZES), now + i * 0.01))
    return state, now + queued * 0.01 + 1.0


def measure(spec_text: str, queued: int, repeat: int) -> None:
    state, now = build(spec_text, queued, seed=7)
    scheduler = Scheduler(make_policy("default"), SchedulerConfig(explain=True))
    started = time.perf_counter()
    first = scheduler.step(state, now)
    first_s = time.perf_counter() - started
    times = []
    cpu = []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        scheduler.step(state, now)
        cpu.append(time.process_time() - started_cpu)
        times.append(time.perf_counter() - started)
    print(
        f"{spec_text} ({state.cluster.total_gpus:,} GPUs), {len(state.running):,} running, "
        f"{len(state.queued):,} queued: first step {first_s * 1000:,.0f} ms "
        f"({len(first.starts)} starts, {len(first.requeues) + len(first.notices)} preemptions)"
        f"; then p50 {statistics.median(times) * 1000:,.0f} ms, "
        f"p99 {percentile(times, 99) * 1000:,.0f} ms (CPU p50 {statistics.median(cpu) * 1000:,.0f}"
        f" ms) over {repeat} steps; "
        f"peak memory {peak_rss_mib():,.0f} MiB"
    )


class _Digest:
    """A hash of every decision of the indexed steps (starts, notices, requeues, timeouts,
    earmarks, releases, guaranteed jobs waiting, every reason, the next wake-up), taken
    outside the timed steps: two versions that print the same digest decided alike."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, decisions: Decisions) -> None:
        d = decisions
        reasons = sorted((job, r.code.value, r.message) for job, r in d.waiting.items())
        seen = (
            d.now,
            [(s.job_id, s.placement, s.borrowed) for s in d.starts],
            d.notices,
            d.requeues,
            d.timeouts,
            d.earmarks,
            d.releases,
            d.guaranteed_waiting,
            reasons,
            d.next_wakeup,
        )
        self._hash.update(repr(seen).encode())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:16]


class _Timed:
    """Wall and CPU seconds of each timed step (CPU: this process only, so other work on
    a shared machine does not count)."""

    collect_between = False  # --collect-between: as services.collection does for a pass
    steps_collected = 0

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def step(self, scheduler: Scheduler, state: SchedulerState, now: float) -> Decisions:
        if self.collect_between:
            gc.disable()
        wall, cpu = time.perf_counter(), time.process_time()
        decisions = scheduler.step(state, now)
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)
        if self.collect_between:  # young generations after the step, all every 60 (untimed)
            gc.enable()
            _Timed.steps_collected += 1
            gc.collect(2 if _Timed.steps_collected % 60 == 0 else 1)
        return decisions

    def cpu_ms(self) -> dict[str, float]:
        cpu = [t * 1000 for t in self.cpu] or [0.0]
        return {
            "p50": round(statistics.median(cpu), 1),
            "p99": round(percentile(cpu, 99), 1),
            "max": round(max(cpu), 1),
        }

    def figures(self) -> str:
        if not self.wall:
            return "no steps"
        wall = [t * 1000 for t in self.wall]
        cpu = [t * 1000 for t in self.cpu]
        return (
            f"{len(wall)} steps, wall p50 {statistics.median(wall):,.1f} / p99 "
            f"{percentile(wall, 99):,.1f} / max {max(wall):,.1f} ms, CPU p50 "
            f"{statistics.median(cpu):,.1f} / p99 {percentile(cpu, 99):,.1f} / max "
            f"{max(cpu):,.1f} ms"
        )


def steady(
    spec_text: str, queued: int, steps: int, before_steps: int, arrivals: int
) -> dict[str, Any]:
    """The burst, its grace period, then steady steps; before and after on the same states.
    Returns the CPU figures (for ``--baseline``)."""
    state, now = build(spec_text, queued, seed=7, submit=False)
    share = state.cluster.total_gpus // 10
    for tenant in ("t0", "t1", "t2", "t3"):
        state.add_lease(LeaseGuarantee(f"lease-{tenant}", tenant, share, 0.0, 1e12))
    rng = random.Random(11)
    for i in range(queued):
        state.submit(JobSpec(f"q-{i}", f"t{rng.randrange(8)}", rng.choice(SIZES), now))
    gc.collect()
    gc.freeze()  # as a long-lived leader would: the built state is not garbage
    grace = 30.0
    config = SchedulerConfig(preemption_grace_s=grace, explain=True)
    policy = make_policy("default")
    after = Scheduler(policy, config)
    before = Scheduler(policy, replace(config, queue_index=False))
    print(
        f"steady state, {spec_text} ({state.cluster.total_gpus:,} GPUs), "
        f"{len(state.running):,} running, {queued:,} queued at once (the burst), then "
        f"{arrivals} arrivals and up to {arrivals} completions per simulated second; "
        "4 leases of 10 %, reasons explained, grace 30 s, default policy:"
    )
    after.step(state, now)  # each builds its running-jobs index (a leader's first pass)
    before.step(state, now)
    # As the live leader does after each rebuild: its kept state and the indexes are not
    # garbage, and its collector runs less often (``services.scheduling.GC_THRESHOLDS``).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*LEADER_GC_THRESHOLDS)
    now += 1.0
    burst_before, burst_after = _Timed(), _Timed()
    full = burst_before.step(before, state, now)
    burst = burst_after.step(after, state, now)
    same = full == burst
    digest = _Digest()
    digest.add(burst)
    print(
        f"  burst step: {len(burst.starts)} starts, "
        f"{len(burst.notices) + len(burst.requeues)} preemptions, "
        f"{len(burst.guaranteed_waiting):,} guaranteed jobs waiting; full walk "
        f"{burst_before.wall[0] * 1000:,.0f} ms (CPU {burst_before.cpu[0] * 1000:,.0f}), indexed "
        f"{burst_after.wall[0] * 1000:,.0f} ms (CPU {burst_after.cpu[0] * 1000:,.0f})"
    )
    apply_decisions(state, burst)
    n = 0

    def tick() -> None:
        nonlocal now, n
        now += 1.0
        ending = rng.sample(sorted(state.running), min(arrivals, len(state.running)))
        for job_id in ending:
            if state.running[job_id].preempt_at is None:
                state.stop(job_id, now, JobState.SUCCEEDED)
        for _ in range(arrivals):
            state.submit(JobSpec(f"s-{n}", f"t{rng.randrange(8)}", rng.choice(SIZES), now))
            n += 1

    aftermath = _Timed()
    for _ in range(int(grace) + 1):  # the burst's grace period: its victims leave at the end
        tick()
        decisions = aftermath.step(after, state, now)
        digest.add(decisions)
        apply_decisions(state, decisions)
    print(f"  after, during the burst's grace period: {aftermath.figures()}")
    timed_before, timed_after = _Timed(), _Timed()
    starts = preemptions = 0
    for i in range(steps):
        tick()
        if i < before_steps:
            full = timed_before.step(before, state, now)
        decisions = timed_after.step(after, state, now)
        if i < before_steps:
            same = same and full == decisions
        starts += len(decisions.starts)
        preemptions += len(decisions.notices) + len(decisions.requeues)
        digest.add(decisions)
        apply_decisions(state, decisions)
    print(f"  steady, before (full walk): {timed_before.figures()}")
    print(f"  steady, after (indexed):    {timed_after.figures()}")
    print(
        f"  steady steps: {starts:,} starts, {preemptions:,} preemptions; same decisions "
        f"before and after on every step both ran: {same}; peak memory "
        f"{peak_rss_mib():,.0f} MiB; decisions digest {digest.hexdigest()}"
    )
    return {
        "burst_cpu_ms": round(burst_after.cpu[0] * 1000, 1),
        "grace_cpu_ms": aftermath.cpu_ms(),
        "steady_cpu_ms": timed_after.cpu_ms(),
        "starts": starts,
        "preemptions": preemptions,
        "same": same,
        "digest": digest.hexdigest(),
        "peak_mib": round(peak_rss_mib()),
    }


ROWS = (
    ("burst step CPU ms", "burst_cpu_ms"),
    ("grace steps CPU p50 ms", "grace_cpu_ms.p50"),
    ("grace steps CPU p99 ms", "grace_cpu_ms.p99"),
    ("steady CPU p50 ms", "steady_cpu_ms.p50"),
    ("steady CPU p99 ms", "steady_cpu_ms.p99"),
    ("steady CPU max ms", "steady_cpu_ms.max"),
    ("steady starts", "starts"),
    ("steady preemptions", "preemptions"),
    ("peak memory MiB", "peak_mib"),
)


def paired(args: argparse.Namespace) -> None:
    """Steady mode on the code at ``args.baseline`` and on this tree, alternately, one
    process per run; CPU figures side by side (median over the pairs)."""
    flags = [
        f"--racks={args.racks}",
        f"--queued={args.queued}",
        f"--steps={args.steps}",
        f"--before-steps={args.before_steps}",
        f"--arrivals={args.arrivals}",
        *(["--collect-between"] if args.collect_between else []),
    ]
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    refs = {"before": args.baseline, "after": args.after or "this tree"}
    with contextlib.ExitStack() as trees:
        base = trees.enter_context(git_tree(args.baseline))
        after = trees.enter_context(git_tree(args.after)) if args.after else ROOT / "src"
        tmp = trees.enter_context(tempfile.TemporaryDirectory())
        for n in range(args.pairs):
            for label, src in (("before", base), ("after", after)):
                out = Path(tmp) / f"{label}-{n}.json"
                print(
                    f"-- {label} ({args.baseline if label == 'before' else 'this tree'}),"
                    f" run {n + 1} of {args.pairs}",
                    flush=True,
                )
                env = dict(os.environ, PYTHONPATH=str(src))
                cmd = [sys.executable, __file__, "--mode=steady", f"--side-json={out}", *flags]
                subprocess.run(cmd, env=env, check=True)
                runs[label].append(json.loads(out.read_text()))
    sides = {label: _median(found) for label, found in runs.items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nsteady mode, {args.racks} racks, {args.queued:,} queued, {args.steps} steps: "
        f"before = {refs['before']}, after = {refs['after']}, median of {args.pairs} runs each"
        f" (load average at the end {load})"
    )
    print(side_by_side(sides, ROWS))
    for label, found in runs.items():
        print(f"{label} steady CPU p99 per run: {[r['steady_cpu_ms']['p99'] for r in found]}")
    digests = {label: sides[label].get("digest", "") for label in sides}
    print(
        f"decisions digest: before {digests['before']}, after {digests['after']}: "
        + ("the same decisions" if digests["before"] == digests["after"] else "DIFFERENT")
    )


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over ``runs`` (nested dicts likewise)."""
    first = runs[0]
    merged: dict[str, Any] = {}
    for key, value in first.items():
        if isinstance(value, dict):
            merged[key] = _median([r[key] for r in runs])
        elif isinstance(value, bool):
            merged[key] = all(r[key] for r in runs)
        elif isinstance(value, str):  # the decisions digest: one value if all runs agree
            merged[key] = " / ".join(sorted({r[key] for r in runs}))
        else:
            # rounded: the median of an even count is a mean (no float noise in the table)
            merged[key] = round(statistics.median(r[key] for r in runs), 1)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("repeat", "steady", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--racks", type=int, default=1389, help="steady mode: NVL72 racks")
    parser.add_argument("--queued", type=int, default=100_000, help="steady mode")
    parser.add_argument("--steps", type=int, default=120, help="steady mode: indexed steps")
    parser.add_argument("--before-steps", type=int, default=5, help="steady: full-walk steps")
    parser.add_argument("--arrivals", type=int, default=100, help="steady: jobs per second")
    parser.add_argument(
        "--collect-between",
        action="store_true",
        help="collect garbage between steps, not in them, as the live leader does since "
        "services/collection.py",
    )
    parser.add_argument("--baseline", metavar="REF", help="steady mode before (REF) and after")
    parser.add_argument("--after", metavar="REF", help="--baseline: after (default this tree)")
    parser.add_argument("--pairs", type=int, default=3, help="--baseline: runs of each side")
    parser.add_argument("--side-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    _Timed.collect_between = args.collect_between
    if args.baseline:
        return paired(args)
    if args.mode in ("repeat", "both"):
        measure("32x18x4", 10_000, args.repeat)
        measure("1389x18x4", 100_000, max(3, args.repeat // 4))
    if args.mode in ("steady", "both"):
        found = steady(
            f"{args.racks}x18x4", args.queued, args.steps, args.before_steps, args.arrivals
        )
        if args.side_json:
            args.side_json.write_text(json.dumps(found))


if __name__ == "__main__":
    main()
