"""Literal scenarios for Scheduler.step + apply_decisions with explicit ``now`` values."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpulease.domain.errors import InvalidTransition
from gpulease.domain.models import JobSpec, LeaseGuarantee, PriorityClass
from gpulease.domain.states import JobState, NodeState
from gpulease.inventory.topology import build_cluster, parse_cluster_spec
from gpulease.scheduler.engine import (
    PREEMPTED,
    RECLAIMED,
    Decisions,
    Preempt,
    Scheduler,
    SchedulerConfig,
    Start,
)
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.placement import WaitCode, WaitReason
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.loop import Simulation
from gpulease.sim.workload import NodeEvent, TraceJob, Workload

MakeJob = Callable[..., JobSpec]
MakeLease = Callable[..., LeaseGuarantee]
MakeState = Callable[..., SchedulerState]
MakeScheduler = Callable[..., Scheduler]
RunStep = Callable[[Scheduler, SchedulerState, float], Decisions]

HIGH, LOW, CRITICAL = PriorityClass.HIGH, PriorityClass.LOW, PriorityClass.CRITICAL


def started(decisions: Decisions) -> list[str]:
    return [s.job_id for s in decisions.starts]


def codes(decisions: Decisions) -> dict[str, WaitCode]:
    return {job_id: reason.code for job_id, reason in decisions.waiting.items()}


# ------------------------------------------------------------------------------- FIFO


def test_fifo_starts_in_submit_order(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state("1x2x4", jobs=[job("a", 4, submit=0), job("b", 2, submit=1)])
    decisions = run_step(scheduler("fifo"), state, 5.0)
    assert decisions.starts == [Start("a", ((0, 4),), True), Start("b", ((1, 2),), True)]
    assert decisions.waiting == {}
    assert state.jobs["a"].history == [(0.0, "submitted"), (5.0, "started (borrowed)")]
    assert state.jobs["b"].allocation == ((1, (0, 1)),)
    assert state.node_free == [0, 2]
    assert state.node_free_mask == [0b0000, 0b1100]


def test_fifo_head_of_line_blocks_the_queue(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state(
        "1x2x4",
        jobs=[job("a", 4, submit=0), job("head", 8, submit=1), job("small", 2, submit=2)],
        running={"a": ((0, 4),)},
    )
    decisions = run_step(scheduler("fifo"), state, 10.0)
    assert decisions.starts == []
    assert decisions.waiting == {
        "head": WaitReason(
            WaitCode.NO_CAPACITY, "needs 8 GPUs; not enough free GPUs on schedulable nodes"
        ),
        "small": WaitReason(WaitCode.BLOCKED, "queued behind an earlier job that cannot start yet"),
    }
    # Once a finishes, the head starts first and the small job still waits behind it.
    state.stop("a", 20.0, JobState.SUCCEEDED)
    decisions = run_step(scheduler("fifo"), state, 20.0)
    assert started(decisions) == ["head"]
    assert decisions.waiting == {
        "small": WaitReason(
            WaitCode.NO_CAPACITY, "needs 2 GPUs; not enough free GPUs on schedulable nodes"
        )
    }


def test_same_state_same_decisions(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler
) -> None:
    state = make_state(
        "2x2x4",
        jobs=[job("a", 4), job("b", 6, submit=1), job("c", 2, submit=2), job("d", 8, submit=3)],
        running={"a": ((0, 4),)},
    )
    first = scheduler("default", grace=30).step(state, 100.0)
    assert scheduler("default", grace=30).step(state, 100.0) == first
    assert first.starts == [
        Start("c", ((1, 2),), True),  # fewer GPUs first; best fit: rack 0 has 4, rack 1 8
        Start("b", ((2, 4), (3, 2)), True),
    ]
    # las ranks a level in submission order: b first, then c on what b leaves of rack 1
    assert scheduler("las", grace=30).step(state, 100.0).starts == [
        Start("b", ((2, 4), (3, 2)), True),
        Start("c", ((3, 2),), True),  # best fit: rack 1 has 2 left, rack 0 has 4
    ]


# ------------------------------------------------------------------------- EASY backfill


def easy_state(make_state: MakeState, job: MakeJob, *queued: JobSpec) -> SchedulerState:
    """1x3x4: ``a`` runs 4 GPUs on node 0 until t=100 (walltime); the head needs 10."""
    return make_state(
        "1x3x4",
        jobs=[job("a", 4, walltime=100.0), job("head", 10, submit=1), *queued],
        running={"a": ((0, 4),)},
    )


def test_easy_short_job_backfills_before_the_shadow_time(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    # The head's reservation: nodes 0, 1 and 2 GPUs of node 2 from t=100. A 6-GPU job
    # ending at 10 + 90 = 100 <= 100 may use the GPUs the head holds.
    state = easy_state(make_state, job, job("short", 6, submit=2, walltime=90.0))
    decisions = run_step(scheduler("easy"), state, 10.0)
    assert decisions.starts == [Start("short", ((1, 4), (2, 2)), True)]
    assert decisions.waiting == {
        "head": WaitReason(
            WaitCode.NO_CAPACITY, "needs 10 GPUs; not enough free GPUs on schedulable nodes"
        )
    }


def test_easy_long_job_does_not_backfill(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = easy_state(make_state, job, job("long", 6, submit=2, walltime=91.0))
    decisions = run_step(scheduler("easy"), state, 10.0)
    assert decisions.starts == []
    assert decisions.waiting["long"] == WaitReason(
        WaitCode.RESERVATION,
        "would delay the job at the head of the queue, which holds a reservation from t=100s",
    )


def test_easy_unknown_walltime_only_uses_gpus_the_head_does_not_need(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = easy_state(make_state, job, job("u1", 2, submit=2), job("u2", 2, submit=3))
    decisions = run_step(scheduler("easy"), state, 10.0)
    # The head needs nodes 0 and 1 and 2 GPUs of node 2: u1 gets the other 2 of node 2
    # (not node 1, where best fit on the free map would have put it); u2 must wait.
    assert decisions.starts == [Start("u1", ((2, 2),), True)]
    assert decisions.waiting["u2"] == WaitReason(
        WaitCode.RESERVATION,
        "would delay the job at the head of the queue, which holds a reservation from t=100s",
    )
    assert codes(decisions) == {"head": WaitCode.NO_CAPACITY, "u2": WaitCode.RESERVATION}


def test_easy_reservation_without_walltimes_is_unbounded(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state(
        "1x2x4",
        jobs=[job("a", 4), job("head", 8, submit=1), job("small", 2, submit=2)],
        running={"a": ((0, 4),)},
    )
    decisions = run_step(scheduler("easy"), state, 10.0)
    assert decisions.starts == []
    assert decisions.waiting["small"] == WaitReason(
        WaitCode.RESERVATION,
        "would delay the job at the head of the queue, which holds a reservation from "
        "an unknown time",
    )
    # A job with a walltime ends before an unknown shadow time: it may backfill.
    state.submit(job("timed", 2, submit=3, walltime=5.0))
    decisions = run_step(scheduler("easy"), state, 11.0)
    assert decisions.starts == [Start("timed", ((1, 2),), True)]


def test_easy_with_room_for_everyone(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state("1x2x4", jobs=[job("a", 2), job("b", 4, submit=1), job("c", 2, submit=2)])
    decisions = run_step(scheduler("easy"), state, 0.0)
    assert started(decisions) == ["a", "b", "c"]


def test_easy_reservation_ignores_jobs_that_end_in_this_step(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    # t times out at 10; r runs until 100. The head (8 GPUs) can start at 100, so a 4-GPU
    # job with walltime 50 (ends at 60) must backfill on t's node now.
    state = make_state(
        "1x2x4",
        jobs=[
            job("t", 4, walltime=10.0),
            job("r", 4, walltime=100.0),
            job("head", 8, submit=5),
            job("b", 4, submit=6, walltime=50.0),
        ],
        running={"t": ((0, 4),), "r": ((1, 4),)},
    )
    decisions = run_step(scheduler("easy"), state, 10.0)
    assert decisions.timeouts == ["t"]
    assert decisions.starts == [Start("b", ((0, 4),), True)]


def test_easy_preemption_after_a_reservation_never_double_books(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state(
        "2x2x4",
        jobs=[
            job("a", 4, preemptible=False, walltime=1000.0),
            job("x", 2, preemptible=False, walltime=1000.0),
            job("b", 2, preemptible=False),
            job("low", 2, priority=LOW),
            job("head", 8, submit=1, topology="required"),  # waits for rack 0 at t=1000
            job("c", 6, submit=2, topology="required"),  # preempts `low` in rack 1
            job("d", 2, submit=3, topology="none"),
        ],
        running={"a": ((0, 4),), "x": ((1, 2),), "b": ((2, 2),), "low": ((2, 2),)},
    )
    # d is backfilled onto node 3's GPUs that c already took: run_step's decision check
    # reports "node 3 over-committed by d" (apply_decisions itself raises Conflict).
    decisions = run_step(scheduler("easy", grace=0), state, 10.0)
    assert started(decisions) == ["c"]
    assert decisions.waiting["d"].code is WaitCode.RESERVATION


# ----------------------------------------------------------------------------------- LAS


def las_state(make_state: MakeState, job: MakeJob) -> SchedulerState:
    """``long`` has run 4 GPUs x 1000 s = 4,000 GPU-s (LAS level 1); ``new`` arrives."""
    state = make_state("1x1x4", jobs=[job("long", 4)], running={"long": ((0, 4),)})
    state.submit(job("new", 4, submit=1000.0))
    return state


def test_las_preempts_a_long_running_job_at_once_with_no_grace(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = las_state(make_state, job)
    decisions = run_step(scheduler("las", grace=0), state, 1000.0)
    reason = PREEMPTED
    assert decisions.requeues == [Preempt("long", 1000.0, reason, "new")]
    assert decisions.notices == []
    assert decisions.starts == [Start("new", ((0, 4),), True)]
    long = state.jobs["long"]
    assert (long.status, long.preemptions, long.attained, long.run_time) == (
        JobState.QUEUED,
        1,
        4000.0,
        1000.0,
    )
    assert long.history[-1] == (1000.0, f"queued: {reason}")
    assert decisions.waiting == {}


def test_las_preempts_after_the_grace_period(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = las_state(make_state, job)
    las = scheduler("las", grace=30)
    reason = PREEMPTED
    notice = run_step(las, state, 1000.0)
    assert notice.notices == [Preempt("long", 1030.0, reason, "new")]
    assert notice.requeues == []
    assert notice.starts == []
    assert notice.waiting == {
        "new": WaitReason(
            WaitCode.PREEMPTING,
            "4 GPUs are being released by preempted jobs (grace period running)",
        )
    }
    assert state.jobs["long"].preempt_at == 1030.0
    assert state.jobs["long"].status is JobState.RUNNING
    during = run_step(las, state, 1015.0)
    assert during.empty
    assert codes(during) == {"new": WaitCode.PREEMPTING}
    assert during.next_wakeup == 1030.0
    after = run_step(las, state, 1030.0)
    assert after.requeues == [Preempt("long", 1030.0, reason)]
    assert after.starts == [Start("new", ((0, 4),), True)]
    assert after.notices == []
    assert state.jobs["long"].attained == 4120.0
    assert after.waiting == {}  # long was still running when the step decided


def test_next_wakeup_includes_the_grace_end_of_a_new_notice(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler
) -> None:
    state = las_state(make_state, job)
    decisions = scheduler("las", grace=30).step(state, 1000.0)
    assert decisions.notices == [Preempt("long", 1030.0, PREEMPTED, "new")]
    assert decisions.next_wakeup == 1030.0  # the engine says 3600.0 (long's next LAS level)


def test_las_does_not_preempt_within_a_level(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    # 4 GPUs x 800 s = 3,200 GPU-s: still level 0, and `old` was submitted first.
    state = make_state("1x1x4", jobs=[job("old", 4)], running={"old": ((0, 4),)})
    state.submit(job("new", 4, submit=800.0))
    decisions = run_step(scheduler("las", grace=0), state, 800.0)
    assert decisions.empty
    assert codes(decisions) == {"new": WaitCode.NO_CAPACITY}
    # At 900 s old crosses 3,600 GPU-s: next_wakeup said so.
    assert decisions.next_wakeup == 900.0
    assert started(run_step(scheduler("las", grace=0), state, 900.0)) == ["new"]


def boundary_state(make_state: MakeState, job: MakeJob) -> SchedulerState:
    """``big`` (7 GPUs from t=510) reaches 3,600 GPU-s at 510 + 3600/7 = 1024.2857...,
    where ``attained_at`` gives 3599.9999999999995: a rounding error below the limit."""
    state = make_state(
        "1x2x4", jobs=[job("big", 7)], running={"big": ((0, 4), (1, 3))}, started_at=510.0
    )
    state.submit(job("probe", 2, submit=511.0))
    return state


BOUNDARY = 510.0 + 3600.0 / 7


def test_las_level_changes_at_the_moment_next_wakeup_announced(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler
) -> None:
    state = boundary_state(make_state, job)
    assert scheduler("las").step(state, 511.0).next_wakeup == BOUNDARY
    at_wake = scheduler("las").step(state, BOUNDARY)
    assert at_wake.requeues == [Preempt("big", BOUNDARY, PREEMPTED, "probe")]


def test_a_used_scheduler_decides_like_a_fresh_one_at_a_las_boundary(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler
) -> None:
    state = boundary_state(make_state, job)
    used = scheduler("las")
    assert used.step(state, 511.0).next_wakeup == BOUNDARY
    used.step(state, BOUNDARY)
    fresh = scheduler("las").step(state, 1100.0)
    # At 1100 big has 4,130 GPU-s (level 1), probe none (level 0): probe preempts big.
    assert fresh.requeues == [Preempt("big", 1100.0, PREEMPTED, "probe")]
    assert used.step(state, 1100.0) == fresh


# ---------------------------------------------------------------------- priority classes


@pytest.mark.parametrize("policy", ["fifo", "easy", "fairshare", "las", "default"])
def test_high_priority_preempts_normal_preemptible(
    make_state: MakeState,
    job: MakeJob,
    scheduler: MakeScheduler,
    run_step: RunStep,
    policy: str,
) -> None:
    state = make_state(
        "1x1x4",
        jobs=[job("normal", 2), job("pinned", 2, preemptible=False)],
        running={"normal": ((0, 2),), "pinned": ((0, 2),)},
    )
    state.submit(job("urgent", 2, submit=5, priority=HIGH))
    decisions = run_step(scheduler(policy, grace=0), state, 5.0)
    assert decisions.requeues == [Preempt("normal", 5.0, PREEMPTED, "urgent")]
    assert decisions.starts == [Start("urgent", ((0, 2),), True)]
    assert state.jobs["urgent"].allocation == ((0, (0, 1)),)  # the GPUs `normal` held
    assert "pinned" in state.running


def test_high_priority_never_preempts_a_non_preemptible_job(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state(
        "1x1x4",
        jobs=[job("normal", 2), job("pinned", 2, preemptible=False)],
        running={"normal": ((0, 2),), "pinned": ((0, 2),)},
    )
    state.submit(job("urgent", 4, submit=5, priority=CRITICAL))
    # `normal` alone frees too little; no pointless preemption either.
    decisions = run_step(scheduler("fifo", grace=0), state, 5.0)
    assert decisions.requeues == []
    assert decisions.notices == []
    assert decisions.waiting == {
        "urgent": WaitReason(
            WaitCode.NO_CAPACITY, "needs 4 GPUs; not enough free GPUs on schedulable nodes"
        )
    }


@pytest.mark.parametrize("policy", ["fifo", "easy", "fairshare"])
def test_same_or_lower_class_does_not_preempt_under_non_preemptive_policies(
    make_state: MakeState,
    job: MakeJob,
    scheduler: MakeScheduler,
    run_step: RunStep,
    policy: str,
) -> None:
    state = make_state("1x1x4", jobs=[job("normal", 4)], running={"normal": ((0, 4),)})
    state.submit(job("peer", 4, submit=5000))
    state.submit(job("low", 4, submit=5001, priority=LOW))
    decisions = run_step(scheduler(policy, grace=0), state, 5000.0)
    assert decisions.empty


def test_higher_class_runs_first(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state(
        "1x1x4",
        jobs=[
            job("low", 4, priority=LOW),
            job("normal", 4, submit=1),
            job("high", 4, submit=2, priority=HIGH),
        ],
    )
    assert started(run_step(scheduler("fifo"), state, 3.0)) == ["high"]


# --------------------------------------------------------------------------------- leases


def test_lease_holder_reclaims_from_a_borrower(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    state = make_state(
        "1x2x4",
        leases=[lease("owner", 4)],
        jobs=[
            job("s1", 4, tenant="spot", preemptible=False),
            job("s2", 4, tenant="spot", submit=1, preemptible=False),
        ],
    )
    fifo = scheduler("fifo", grace=0)
    first = run_step(fifo, state, 1.0)
    assert first.starts == [Start("s1", ((0, 4),), True), Start("s2", ((1, 4),), True)]
    assert state.jobs["s1"].borrowed
    assert state.jobs["s2"].borrowed
    state.submit(job("o1", 4, tenant="owner", submit=10))
    reclaim = run_step(fifo, state, 10.0)
    # The worst-ranked borrower goes, although it is not preemptible: borrowing is lent.
    assert reclaim.requeues == [Preempt("s2", 10.0, RECLAIMED, "o1")]
    assert reclaim.starts == [Start("o1", ((1, 4),), False)]
    assert state.jobs["o1"].borrowed is False
    assert state.jobs["o1"].history[-1] == (10.0, "started")
    assert reclaim.waiting == {}


def test_lease_holder_reclaims_after_the_grace_period(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    state = make_state(
        "1x2x4",
        leases=[lease("owner", 8)],
        jobs=[job("s1", 8, tenant="spot")],
        running={"s1": ((0, 4), (1, 4))},
    )
    state.submit(job("o1", 2, tenant="owner", submit=10))
    state.submit(job("o2", 6, tenant="owner", submit=11))
    fifo = scheduler("fifo", grace=30)
    notice = run_step(fifo, state, 11.0)
    assert notice.notices == [Preempt("s1", 41.0, RECLAIMED, "o1")]
    assert codes(notice) == {"o1": WaitCode.PREEMPTING, "o2": WaitCode.PREEMPTING}
    assert notice.guaranteed_waiting == ["o1", "o2"]
    after = run_step(fifo, state, 41.0)
    assert [p.job_id for p in after.requeues] == ["s1"]
    assert after.starts == [Start("o1", ((0, 2),), False), Start("o2", ((0, 2), (1, 4)), False)]
    assert after.guaranteed_waiting == []


def test_a_later_guaranteed_claim_does_not_take_the_gpus_an_earlier_one_waits_for(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # 4 nodes of 8 GPUs, all lent to a spot tenant; "a" and "b" lease 16 GPUs each.
    state = make_state(
        "1x4x8",
        leases=[lease("a", 16), lease("b", 16)],
        jobs=[job(f"s{i}", 8, tenant="spot") for i in range(4)],
        running={f"s{i}": ((i, 8),) for i in range(4)},
    )
    state.credit_usage("a", 1e6, 0.0)  # "a" has used far more: fair share ranks "b" first
    policy = scheduler("default", grace=30)
    state.submit(job("a1", 16, tenant="a", submit=1.0))
    first = run_step(policy, state, 1.0)
    a_victims = sorted(p.job_id for p in first.notices)
    assert len(a_victims) == 2
    assert first.guaranteed_waiting == ["a1"]
    # Mid-grace, "b" claims its guarantee too: it must find its own victims rather than
    # take those "a" is waiting for (which would cost "a1" a second grace period).
    state.submit(job("b1", 16, tenant="b", submit=20.0))
    second = run_step(policy, state, 20.0)
    b_victims = sorted(p.job_id for p in second.notices)
    assert len(b_victims) == 2
    assert set(b_victims).isdisjoint(a_victims)
    third = run_step(policy, state, 31.0)
    assert [s.job_id for s in third.starts] == ["a1"]  # one grace after its claim
    assert sorted(p.job_id for p in third.requeues) == a_victims
    fourth = run_step(policy, state, 50.0)
    assert [s.job_id for s in fourth.starts] == ["b1"]
    assert not fourth.guaranteed_waiting


def test_the_oldest_claim_gets_the_gpus_its_victims_release_first(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # 6 nodes of 8 GPUs. "b" fills its first lease with b0 and queues b1 early; its second
    # lease starts at 20, making b1 guaranteed only then. Spot borrows the other 4 nodes.
    state = make_state(
        "1x6x8",
        leases=[lease("a", 16), lease("b", 16), lease("b", 16, start=20.0, lease_id="b2")],
        jobs=[
            job("b0", 16, tenant="b"),
            *(job(f"s{i}", 8, tenant="spot") for i in range(2, 6)),
            job("b1", 16, tenant="b", submit=0.5),
        ],
        running={"b0": ((0, 8), (1, 8)), **{f"s{i}": ((i, 8),) for i in range(2, 6)}},
    )
    state.credit_usage("a", 1e6, 0.0)  # fair share alone would put "b" first
    policy = scheduler("default", grace=30)
    state.submit(job("a1", 16, tenant="a", submit=1.0))
    first = run_step(policy, state, 1.0)
    assert len(first.notices) == 2
    assert state.jobs["a1"].guaranteed_since == 1.0
    second = run_step(policy, state, 20.0)  # b1 becomes guaranteed: its own victims
    assert len(second.notices) == 2
    assert state.jobs["b1"].guaranteed_since == 20.0
    third = run_step(policy, state, 31.0)  # a1's victims leave: a1, not the older b1
    assert [s.job_id for s in third.starts] == ["a1"]
    assert [s.job_id for s in run_step(policy, state, 50.0).starts] == ["b1"]


@pytest.mark.parametrize(("keep", "racks"), [(0, {1}), (64, {0, 2})])
def test_keep_blocks_is_a_scheduler_setting(
    make_state: MakeState, job: MakeJob, run_step: RunStep, keep: int, racks: set[int]
) -> None:
    gang = {"segment": 64, "topology": "required", "gpus_per_node": 4}
    state = make_state(
        "3x18x4",
        jobs=[job("g0", 64, **gang), job("g2", 64, **gang), job("m", 16)],
        running={
            "g0": tuple((n, 4) for n in range(0, 16)),
            "g2": tuple((n, 4) for n in range(36, 52)),
        },
    )
    engine = Scheduler(make_policy("fifo"), SchedulerConfig(keep_blocks=keep))
    [start] = run_step(engine, state, 1.0).starts
    assert {state.cluster.nodes[n].rack for n, _ in start.placement} == racks


def test_a_claim_on_gpus_being_released_keeps_them_against_a_newer_claimant(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # Six 8-GPU nodes lent to spot; "a" leases 24. v16 ranks worst (low priority), so a1's
    # reclaim takes it, and a2 counts on v16's other 8 GPUs without a victim of its own.
    state = make_state(
        "1x6x8",
        leases=[lease("a", 24)],
        jobs=[
            job("v16", 16, tenant="spot", priority=LOW),
            job("w8", 8, tenant="spot"),
            job("x8", 8, tenant="spot"),
            job("y16", 16, tenant="spot"),
        ],
        running={
            "v16": ((0, 8), (1, 8)),
            "w8": ((2, 8),),
            "x8": ((3, 8),),
            "y16": ((4, 8), (5, 8)),
        },
    )
    policy = scheduler("default", grace=30)
    state.submit(job("a1", 8, tenant="a"))
    state.submit(job("a2", 8, tenant="a"))
    first = run_step(policy, state, 0.0)
    assert [p.job_id for p in first.notices] == ["v16"]
    assert first.guaranteed_waiting == ["a1", "a2"]
    state.submit(job("a3", 8, tenant="a", submit=4.0))
    assert len(run_step(policy, state, 4.0).notices) == 1  # a3 needs a victim of its own
    # v16 leaves at 30: both claims made at 0 are served, not the claim made at 4
    assert sorted(s.job_id for s in run_step(policy, state, 30.0).starts) == ["a1", "a2"]
    assert [s.job_id for s in run_step(policy, state, 34.0).starts] == ["a3"]


def test_tenant_without_lease_runs_only_borrowed(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    state = make_state(
        "1x2x4",
        leases=[lease("owner", 4)],
        jobs=[
            job("o1", 4, tenant="owner"),
            job("o2", 2, tenant="owner", submit=1),
            job("s1", 2, tenant="spot", submit=2),
        ],
    )
    decisions = run_step(scheduler("fifo"), state, 5.0)
    assert {s.job_id: s.borrowed for s in decisions.starts} == {
        "o1": False,  # within the guarantee
        "o2": True,  # beyond it
        "s1": True,  # no lease at all
    }


def test_guarantee_ranks_before_priority(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    state = make_state(
        "1x1x4",
        leases=[lease("owner", 4)],
        jobs=[
            job("spot-critical", 4, tenant="spot", priority=CRITICAL),
            job("o1", 4, tenant="owner"),
        ],
    )
    decisions = run_step(scheduler("fifo"), state, 0.0)
    assert decisions.starts == [Start("o1", ((0, 4),), False)]


def test_guaranteed_job_is_never_preempted_by_another_tenant(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # Node 2 is down, so B's guarantee (8) cannot be met from borrowed work alone.
    state = make_state(
        "1x3x4",
        leases=[lease("a", 4), lease("b", 8)],
        jobs=[job("a1", 4, tenant="a"), job("a2", 4, tenant="a", submit=1)],
        running={"a1": ((0, 4),), "a2": ((1, 4),)},
    )
    state.set_node_state(2, NodeState.DOWN, 5.0)
    state.submit(job("b1", 8, tenant="b", submit=10, priority=CRITICAL))
    decisions = run_step(scheduler("las", grace=0), state, 10.0)
    # b1 (guaranteed) may take a2 (borrowed) but not a1 (a's guarantee): it waits, and
    # preempts nothing, although it is CRITICAL and a1 is preemptible.
    assert decisions.requeues == []
    assert decisions.notices == []
    assert codes(decisions) == {"b1": WaitCode.NO_CAPACITY}
    assert decisions.guaranteed_waiting == ["b1"]
    # A 4-GPU guaranteed job instead reclaims a2 only.
    state.stop("b1", 11.0, JobState.CANCELLED, "user")
    state.submit(job("b2", 4, tenant="b", submit=11, priority=CRITICAL))
    decisions = run_step(scheduler("las", grace=0), state, 11.0)
    assert decisions.requeues == [Preempt("a2", 11.0, RECLAIMED, "b2")]
    assert decisions.starts == [Start("b2", ((1, 4),), False)]
    assert "a1" in state.running


def test_priority_preemption_between_tenants_is_not_called_a_reclaim(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    # Same tenant: plain "preempted".
    state = make_state("1x1x4", jobs=[job("x1", 4)], running={"x1": ((0, 4),)})
    state.submit(job("x2", 4, submit=1, priority=HIGH))
    decisions = run_step(scheduler("fifo", grace=0), state, 1.0)
    assert decisions.requeues == [Preempt("x1", 1.0, PREEMPTED, "x2")]


def test_priority_preemption_without_leases_is_not_a_reclaim(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state("1x1x4", jobs=[job("y1", 4, tenant="yellow")], running={"y1": ((0, 4),)})
    state.submit(job("vip", 4, tenant="spot", submit=1, priority=HIGH))
    decisions = run_step(scheduler("fifo", grace=0), state, 1.0)
    # No tenant holds a lease: the reason must not say "reclaimed by its lease holder".
    assert decisions.requeues == [Preempt("y1", 1.0, PREEMPTED, "vip")]


def test_borrower_of_higher_class_cannot_preempt_a_guaranteed_job(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    state = make_state(
        "1x1x4", leases=[lease("a", 4)], jobs=[job("a1", 4, tenant="a")], running={"a1": ((0, 4),)}
    )
    state.submit(job("vip", 4, tenant="spot", submit=1, priority=CRITICAL))
    decisions = run_step(scheduler("default", grace=0), state, 100000.0)
    assert decisions.empty
    assert codes(decisions) == {"vip": WaitCode.NO_CAPACITY}


def test_lease_start_is_a_wakeup_and_changes_tiers(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    state = make_state(
        "1x1x4",
        leases=[lease("owner", 4, start=500.0, end=900.0)],
        jobs=[job("s1", 4, tenant="spot"), job("o1", 4, tenant="owner", submit=1)],
    )
    fifo = scheduler("fifo", grace=0)
    first = run_step(fifo, state, 1.0)
    assert first.starts == [Start("s1", ((0, 4),), True)]
    assert first.next_wakeup == 500.0
    at_start = run_step(fifo, state, 500.0)
    assert [p.job_id for p in at_start.requeues] == ["s1"]
    assert at_start.starts == [Start("o1", ((0, 4),), False)]
    assert at_start.next_wakeup == 900.0
    assert run_step(fifo, state, 900.0).next_wakeup is None


# ------------------------------------------------------------------------ nodes, failures


def test_node_down_returns_the_jobs_it_hit(make_state: MakeState, job: MakeJob) -> None:
    state = make_state(
        "1x3x4",
        jobs=[job("a", 2), job("b", 4), job("c", 4, topology="none")],
        running={"a": ((0, 2),), "b": ((1, 4),), "c": ((0, 2), (2, 2))},
    )
    assert state.set_node_state(0, NodeState.DOWN, 5.0) == ["a", "c"]
    assert state.set_node_state(1, NodeState.DRAINING, 5.0) == []
    assert state.set_node_state(1, NodeState.DOWN, 6.0) == ["b"]
    assert state.set_node_state(0, NodeState.UP, 7.0) == []
    with pytest.raises(InvalidTransition) as caught:
        state.set_node_state(1, NodeState.DRAINING, 8.0)
    assert caught.value.code == "invalid_transition"
    assert caught.value.message == "r00-n01 cannot go from 'down' to 'draining'; allowed: up"


def test_down_node_gives_nothing_until_it_is_up(
    make_state: MakeState,
    job: MakeJob,
    scheduler: MakeScheduler,
    run_step: RunStep,
    check_state_fn: Callable[[SchedulerState], None],
) -> None:
    state = make_state("1x2x4", jobs=[job("a", 4)], running={"a": ((0, 4),)})
    hit = state.set_node_state(0, NodeState.DOWN, 5.0)
    for job_id in hit:
        state.stop(job_id, 5.0, JobState.QUEUED, "node failure")
    check_state_fn(state)
    assert state.free_map().node_free == [0, 4]
    state.submit(job("b", 8, submit=6))
    decisions = run_step(scheduler("fifo"), state, 6.0)
    assert decisions.starts == [Start("a", ((1, 4),), True)]
    assert decisions.waiting == {
        "b": WaitReason(
            WaitCode.NO_CAPACITY, "needs 8 GPUs; not enough free GPUs on schedulable nodes"
        )
    }
    state.set_node_state(0, NodeState.UP, 7.0)
    assert state.free_map().node_free == [4, 0]


def test_draining_node_receives_nothing_but_its_job_continues(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state(
        "1x2x4",
        jobs=[job("a", 2, walltime=1000.0), job("c", 4, preemptible=False)],
        running={"a": ((0, 2),), "c": ((1, 4),)},
    )
    state.set_node_state(0, NodeState.DRAINING, 5.0)
    state.submit(job("b", 2, submit=6))
    state.submit(job("urgent", 2, submit=6, priority=CRITICAL))
    decisions = run_step(scheduler("fifo", grace=0), state, 10.0)
    # Node 0 has 2 free GPUs, but it is draining; a's GPUs would not return to the free
    # map, so it is not a useful victim either.
    assert decisions.empty
    assert decisions.waiting == {
        "urgent": WaitReason(
            WaitCode.NO_CAPACITY, "needs 2 GPUs; not enough free GPUs on schedulable nodes"
        ),
        "b": WaitReason(WaitCode.BLOCKED, "queued behind an earlier job that cannot start yet"),
    }
    assert decisions.next_wakeup == 1000.0
    assert state.jobs["a"].status is JobState.RUNNING
    state.stop("a", 50.0, JobState.SUCCEEDED)
    assert run_step(scheduler("fifo"), state, 50.0).empty
    state.set_node_state(0, NodeState.UP, 60.0)
    decisions = run_step(scheduler("fifo"), state, 60.0)
    assert decisions.starts == [Start("urgent", ((0, 2),), True), Start("b", ((0, 2),), True)]


def test_simulation_requeues_or_fails_jobs_on_a_failed_node(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler
) -> None:
    cluster = build_cluster(parse_cluster_spec("1x2x4"))
    workload = Workload(
        "failures",
        [
            TraceJob(job("r", 4, checkpoint_interval=30.0), 100.0),
            TraceJob(job("f", 4, requeueable=False), 500.0),
        ],
        node_events=[
            NodeEvent(70.0, 0, NodeState.DOWN),
            NodeEvent(80.0, 0, NodeState.UP),
            NodeEvent(200.0, 1, NodeState.DOWN),
            NodeEvent(210.0, 1, NodeState.UP),
        ],
    )
    sim = Simulation(cluster, workload, scheduler("fifo"))
    result = sim.run()
    assert result.events == [
        (0.0, "submit", "r"),
        (0.0, "submit", "f"),
        (0.0, "start", "r"),
        (0.0, "start", "f"),
        (70.0, "node-down", "r00-n00"),
        (70.0, "requeue-failure", "r"),
        (80.0, "node-up", "r00-n00"),
        (80.0, "start", "r"),
        (120.0, "end", "r"),  # 100 - 60 checkpointed = 40 more seconds
        (200.0, "node-down", "r00-n01"),
        (200.0, "fail", "f"),
        (210.0, "node-up", "r00-n01"),
    ]
    r, f = result.outcomes["r"], result.outcomes["f"]
    assert (r.status, r.start, r.end, r.preemptions) == (JobState.SUCCEEDED, 0.0, 120.0, 0)
    assert (f.status, f.start, f.end) == (JobState.FAILED, 0.0, 200.0)
    assert sim.state.jobs["r"].preemptions == 1  # one requeue, counted by the state
    assert sim.state.jobs["f"].end_reason == "node failure"
    assert sim.state.running == {}
    assert sim.state.queued == {}


@pytest.mark.parametrize(
    ("checkpoint", "end"),
    [(30.0, 120.0), (None, 110.0), (7.0, 110.0), (100.0, 180.0), (69.0, 111.0)],
)
def test_progress_since_the_last_checkpoint_is_lost(
    job: MakeJob, scheduler: MakeScheduler, checkpoint: float | None, end: float
) -> None:
    cluster = build_cluster(parse_cluster_spec("1x1x4"))
    workload = Workload(
        "checkpoint",
        [TraceJob(job("r", 4, checkpoint_interval=checkpoint), 100.0)],
        node_events=[NodeEvent(70.0, 0, NodeState.DOWN), NodeEvent(80.0, 0, NodeState.UP)],
    )
    result = Simulation(cluster, workload, scheduler("las")).run()
    assert result.outcomes["r"].end == end
    assert result.outcomes["r"].status is JobState.SUCCEEDED


# ------------------------------------------------------------------------------ walltime


def test_walltime_timeout_frees_gpus_in_the_same_step(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state("1x1x4", jobs=[job("a", 4, walltime=100.0)], running={"a": ((0, 4),)})
    state.submit(job("b", 4, submit=1))
    fifo = scheduler("fifo")
    early = run_step(fifo, state, 99.0)
    assert early.empty
    assert early.next_wakeup == 100.0
    decisions = run_step(fifo, state, 100.0)
    assert decisions.timeouts == ["a"]
    assert decisions.starts == [Start("b", ((0, 4),), True)]
    a = state.jobs["a"]
    assert (a.status, a.end_time, a.end_reason) == (JobState.FAILED, 100.0, "walltime exceeded")


def test_walltime_counts_run_time_across_requeues(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state("1x1x4", jobs=[job("a", 4, walltime=100.0)], running={"a": ((0, 4),)})
    state.stop("a", 60.0, JobState.QUEUED, "preempted")
    fifo = scheduler("fifo")
    restart = run_step(fifo, state, 200.0)
    assert started(restart) == ["a"]
    assert run_step(fifo, state, 210.0).next_wakeup == 240.0  # 40 s of walltime left
    assert run_step(fifo, state, 239.0).timeouts == []
    assert run_step(fifo, state, 240.0).timeouts == ["a"]
    assert state.jobs["a"].run_time == 100.0


def test_simulation_enforces_the_walltime_of_a_new_start(
    job: MakeJob, scheduler: MakeScheduler
) -> None:
    cluster = build_cluster(parse_cluster_spec("1x1x4"))
    workload = Workload("walltime", [TraceJob(job("a", 4, walltime=50.0), 100.0)])
    result = Simulation(cluster, workload, scheduler("fifo")).run()
    assert result.events[-1] == (50.0, "timeout", "a")
    assert result.outcomes["a"].status is JobState.FAILED


def test_simulation_reclaims_when_the_grace_ends(
    job: MakeJob, lease: MakeLease, scheduler: MakeScheduler
) -> None:
    cluster = build_cluster(parse_cluster_spec("1x1x1"))
    workload = Workload(
        "reclaim",
        [
            TraceJob(job("s0", 1, tenant="spot", preemptible=False), 50.0),
            TraceJob(job("o0", 1, tenant="owner", submit=10.0), 1.0),
        ],
        leases=[lease("owner", 1)],
    )
    result = Simulation(cluster, workload, scheduler("fifo", grace=30)).run()
    assert (10.0, "notice", "s0") in result.events
    assert result.outcomes["o0"].start == 40.0


# ----------------------------------------------------------------------- reasons, wakeups


def test_every_queued_job_gets_a_reason(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    jobs = [
        job("a", 8, walltime=500.0),
        job("b", 16, submit=1, topology="required"),
        job("c", 4, submit=2, gpus_per_node=4),
        job("d", 2, submit=3),
        job("e", 32, submit=4, segment=8),
    ]
    for policy in ("fifo", "easy", "las", "fairshare", "default"):
        state = make_state("2x2x8", jobs=jobs, running={"a": ((0, 8),)})
        decisions = run_step(scheduler(policy, grace=10), state, 10.0)
        assert set(decisions.waiting) == set(state.queued), policy
        assert all(reason.message for reason in decisions.waiting.values())
        quiet = scheduler(policy, grace=10, explain=False).step(state, 11.0)
        assert quiet.waiting == {}


def test_reasons_for_fifo_mix(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    state = make_state(
        "2x2x8",
        jobs=[
            job("a", 12, topology="none"),
            job("b", 16, submit=1, topology="required"),
            job("c", 2, submit=2),
        ],
        running={"a": ((0, 8), (2, 4))},
    )
    decisions = run_step(scheduler("fifo"), state, 10.0)
    assert decisions.waiting == {
        "b": WaitReason(
            WaitCode.NO_DOMAIN_BLOCK, "needs 16 GPUs in one rack; no rack has that many free"
        ),
        "c": WaitReason(WaitCode.BLOCKED, "queued behind an earlier job that cannot start yet"),
    }


def test_next_wakeup_values(
    make_state: MakeState, job: MakeJob, scheduler: MakeScheduler, run_step: RunStep
) -> None:
    empty = make_state("1x2x4")
    assert scheduler("las").step(empty, 0.0).next_wakeup is None
    # No walltime, no queue: nothing to wake for, even under LAS.
    state = make_state("1x2x4", jobs=[job("a", 2)], running={"a": ((0, 2),)})
    assert scheduler("las").step(state, 10.0).next_wakeup is None
    # With a queue, LAS wakes when a's level changes: 3,600 GPU-s / 2 GPUs = 1,800 s.
    state.submit(job("big", 8, submit=10))
    assert scheduler("las").step(state, 10.0).next_wakeup == 1800.0
    # default (las-gang's levels): a leaves level 0 at 3,250 GPU-s / 2 GPUs = 1,625 s
    assert scheduler("default").step(state, 10.0).next_wakeup == 1625.0
    assert scheduler("fifo").step(state, 10.0).next_wakeup is None
    # At 1,800 s a reaches level 1: big (level 0) preempts it and starts; with a queued again,
    # the next change is big's own crossing: 3,600 GPU-s / 8 GPUs = 450 s later.
    assert scheduler("las").step(state, 1800.0).next_wakeup == 2250.0
    # A walltime is a wake-up whatever the policy.
    timed = make_state("1x2x4", jobs=[job("w", 2, walltime=300.0)], running={"w": ((0, 2),)})
    assert scheduler("fifo").step(timed, 10.0).next_wakeup == 300.0
    # A notice that began earlier is a wake-up at its grace end.
    timed.begin_preemption("w", 40.0, "test")
    assert scheduler("fifo").step(timed, 10.0).next_wakeup == 40.0


# ------------------------------------------------------------------- memos of the state


def test_state_change_journal_lists_jobs_touched_since(make_state: MakeState, job: MakeJob) -> None:
    state = make_state("1x2x4", jobs=[job("a", 4), job("b", 2)])
    mark = state.change_count
    assert state.changed_since(mark) == []
    state.start("a", ((0, 4),), 1.0, borrowed=True)
    state.submit(job("c", 1))
    state.stop("a", 2.0, JobState.QUEUED)
    # latest change first; "a" appears once although it changed twice
    assert state.changed_since(mark) == ["a", "c"]
    assert state.changed_since(0) == ["a", "c", "b"]


@pytest.mark.parametrize("policy", ["fifo", "las", "las-gang", "fairshare", "default"])
def test_split_keys_add_up_to_the_policy_key(
    policy: str, make_state: MakeState, job: MakeJob
) -> None:
    from gpulease.scheduler.ordering import OrderContext, SplitKey, make_policy

    chosen = make_policy(policy)
    assert isinstance(chosen, SplitKey)
    state = make_state("1x2x4", jobs=[job("a", 4, tenant="x"), job("b", 2, tenant="y")])
    state.start("a", ((0, 4),), 0.0, borrowed=True)
    state.stop("a", 5000.0, JobState.QUEUED)  # attained 20,000 GPU-s: a later LAS level
    ctx = OrderContext(6000.0, state.usage_by_tenant(6000.0), {"x": 2.0})
    for record in state.queued.values():
        queued = chosen.queued_key(record, ctx.now)
        tenant = chosen.tenant_key(record.spec.tenant, ctx)
        assert chosen.key(record, ctx) == queued + tenant + chosen.inner_key(record, ctx.now)
        prefix = chosen.preempt_key(record, ctx.now)
        assert queued[: len(prefix)] == prefix


def test_default_shares_a_level_between_tenants_then_ranks_each_tenant_as_las_gang(
    make_state: MakeState, job: MakeJob
) -> None:
    """Inside a level, the tenant with less usage per leased GPU first; inside a tenant's
    turn, las-gang's order (fewer GPUs first, then more service); and the queue index's
    groups, merged by their prefix, give exactly that order."""
    from gpulease.scheduler.ordering import LasGang, OrderContext, make_policy
    from gpulease.scheduler.queue_index import QueueIndex

    policy = make_policy("default")
    state = make_state(
        "1x4x8",
        jobs=[
            job("x-big", 16, tenant="x"),
            job("x-small", 2, tenant="x", submit=1),
            job("y-big", 8, tenant="y", submit=2),
            job("y-small", 1, tenant="y", submit=3),
            job("y-ran", 8, tenant="y", submit=4),
            job("x-old", 1, tenant="x", submit=5),
        ],
    )
    state.start("y-ran", ((0, 8),), 0.0, borrowed=True)
    state.stop("y-ran", 100.0, JobState.QUEUED)  # 800 GPU-s: still level 0
    state.start("x-old", ((0, 1),), 100.0, borrowed=True)
    state.stop("x-old", 4000.0, JobState.QUEUED)  # 3,900 GPU-s: level 1
    state.credit_usage("y", 1e6, 4000.0)  # y has used far more than x
    ctx = OrderContext(4000.0, state.usage_by_tenant(4000.0), {})
    ranked = sorted(state.queued.values(), key=lambda r: policy.key(r, ctx))
    assert [r.id for r in ranked] == ["x-small", "x-big", "y-small", "y-ran", "y-big", "x-old"]
    # one tenant alone ranks as las-gang
    gang = LasGang()
    mine = [r for r in state.queued.values() if r.spec.tenant == "y"]
    assert sorted(mine, key=lambda r: policy.key(r, ctx)) == sorted(
        mine, key=lambda r: gang.key(r, ctx)
    )
    # the index keeps (level, waiting) before the share and (GPUs, service) after it
    index = QueueIndex(policy)
    index.sync(state, 4000.0)
    merged = sorted(
        (
            (*g.outer, *policy.tenant_key(g.tenant, ctx), *g.inner, *entry[:2]),
            entry[2],
        )
        for g in index.groups.values()
        for entry in g.entries
    )
    assert [job_id for _, job_id in merged] == [r.id for r in ranked]


def test_the_queue_index_follows_queue_changes_between_steps(
    make_state: MakeState, job: MakeJob
) -> None:
    from gpulease.scheduler.ordering import make_policy
    from gpulease.scheduler.queue_index import QueueIndex

    state = make_state("1x2x4", jobs=[job("a", 4), job("b", 2), job("c", 2)])
    index = QueueIndex(make_policy("las"))
    index.sync(state, 0.0)
    assert len(index) == 3
    state.start("a", ((0, 4),), 0.0, borrowed=True)
    state.stop("a", 7200.0, JobState.QUEUED)  # back in the queue one LAS level down
    state.stop("b", 7200.0, JobState.CANCELLED)
    index.sync(state, 7200.0)
    held = {e[2]: g.static for g in index.groups.values() for e in g.entries}
    assert held == {"a": (-1.0, 2.0), "c": (-1.0, 0.0)}
    other = make_state("1x2x4", jobs=[job("z", 1)])
    index.sync(other, 0.0)  # another state: indexed from scratch
    assert [e[2] for g in index.groups.values() for e in g.entries] == ["z"]


def test_las_gang_ranks_by_level_then_smaller_gang_then_more_service(
    make_state: MakeState, job: MakeJob
) -> None:
    from gpulease.scheduler.ordering import LasGang, OrderContext

    policy = LasGang()
    state = make_state(
        "1x4x8",
        jobs=[job("big", 16), job("small", 2), job("small-ran", 2), job("old", 1)],
    )
    state.start("small-ran", ((0, 2),), 0.0, borrowed=True)
    state.stop("small-ran", 100.0, JobState.QUEUED)  # 200 GPU-s: still level 0
    state.start("old", ((0, 1),), 0.0, borrowed=True)
    state.stop("old", 4000.0, JobState.QUEUED)  # 4,000 GPU-s: past 3,250, level 1
    ctx = OrderContext(5000.0)
    ranked = sorted(state.queued.values(), key=lambda r: policy.key(r, ctx))
    assert [r.id for r in ranked] == ["small-ran", "small", "big", "old"]
    # a lower level may preempt a higher one; waiting jobs of one level share a preempt key
    assert policy.preempt_key(state.job("big"), 5000.0) == (0.0, 0.5)
    assert policy.preempt_key(state.job("small"), 5000.0) == (0.0, 0.5)
    assert policy.preempt_key(state.job("old"), 5000.0) == (1.0, 0.5)
    # level 2 starts at 7,200 x GPUs^0.45 GPU-seconds: 7,200 for one GPU, 25,072 for 16
    assert policy.job_limits(state.job("old")) == (3250.0, 7200.0)
    assert policy.job_limits(state.job("big")) == pytest.approx((3250.0, 7200.0 * 16**0.45))
    assert round(policy.job_limits(state.job("big"))[1]) == 25072


def test_las_gang_middle_level_of_a_wide_job_ends_at_gpus_to_the_045(
    make_state: MakeState, job: MakeJob
) -> None:
    """A 16-GPU job with 26,000 GPU-seconds is past its middle level (7,200 x 16^0.45 =
    25,072; it was 28,800 with the square root), so a 32-GPU job still in the middle level
    (4,000 GPU-seconds) now ranks before it; with the square root the narrower job went
    first (fewer GPUs first inside the middle level)."""
    from gpulease.scheduler.ordering import LasGang, OrderContext

    policy = LasGang()
    state = make_state("1x8x8", jobs=[job("wide-long", 16), job("wider-mid", 32, submit=1)])
    state.start("wide-long", ((0, 8), (1, 8)), 0.0, borrowed=True)
    state.stop("wide-long", 1625.0, JobState.QUEUED)  # 26,000 GPU-s on 16 GPUs
    state.start("wider-mid", ((0, 8), (1, 8), (2, 8), (3, 8)), 1625.0, borrowed=True)
    state.stop("wider-mid", 1750.0, JobState.QUEUED)  # 4,000 GPU-s on 32 GPUs
    assert policy.level(state.job("wide-long"), 2000.0) == 2
    assert policy.level(state.job("wider-mid"), 2000.0) == 1
    ctx = OrderContext(2000.0)
    ranked = sorted(state.queued.values(), key=lambda r: policy.key(r, ctx))
    assert [r.id for r in ranked] == ["wider-mid", "wide-long"]
    sqrt_rule = LasGang(exponents=(0.0, 0.5))
    assert sqrt_rule.level(state.job("wide-long"), 2000.0) == 1
    ranked = sorted(state.queued.values(), key=lambda r: sqrt_rule.key(r, ctx))
    assert [r.id for r in ranked] == ["wide-long", "wider-mid"]


def test_las_gang_a_job_entering_a_level_yields_to_its_waiting_jobs_then_keeps_its_gpus(
    make_state: MakeState, job: MakeJob
) -> None:
    """Tiresias' queues: a job demoted while running joins its new level behind the jobs
    already waiting there (they may preempt it at that step), and keeps its GPUs after."""
    from gpulease.scheduler.ordering import LasGang

    policy = LasGang()
    state = make_state("1x1x8", jobs=[job("waiting", 1), job("runner", 1, submit=1)])
    state.start("waiting", ((0, 1),), 0.0, borrowed=True)
    state.stop("waiting", 4000.0, JobState.QUEUED)  # level 1 since 3,250 s, now waiting
    state.start("runner", ((0, 1),), 4000.0, borrowed=True)
    runner, waiting = state.job("runner"), state.job("waiting")
    assert policy.level(runner, 7249.0) == 0
    assert policy.next_key_change(runner, 5000.0) == 7250.0  # 3,250 GPU-s on one GPU
    entering = policy.preempt_key(runner, 7250.0)
    assert entering == (1.0, 1.0, 7250.0)
    assert policy.preempt_key(waiting, 7250.0) < entering  # the waiting job may preempt it
    assert policy.next_key_change(runner, 7250.0) == 7250.0 + 1e-3
    kept = policy.preempt_key(runner, 7260.0)
    assert kept == (1.0, 0.0, 7250.0)
    assert policy.preempt_key(waiting, 7260.0) > kept  # ... but not after that step


def test_free_gpus_promised_to_a_claimant_waiting_for_preemptions_are_reported(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    state = make_state(
        "1x3x4",
        leases=[lease("owner", 8)],
        jobs=[job("s1", 4, tenant="spot"), job("s3", 4, tenant="spot", submit=1)],
        running={"s1": ((0, 4),), "s3": ((1, 4),)},
    )
    state.submit(job("o1", 8, tenant="owner", submit=10))
    state.submit(job("s2", 2, tenant="spot", submit=11))
    decisions = run_step(scheduler("fifo", grace=30), state, 12.0)
    # o1 (within its guarantee) waits for one borrower's GPUs and holds the free node 2,
    # before any start of this step; s2 finds nothing left
    assert decisions.starts == []
    assert [p.job_id for p in decisions.notices] == ["s3"]
    assert decisions.earmarks == [(0, ((2, 4),))]
    assert codes(decisions)["s2"] is not WaitCode.PREEMPTING


def two_claims_then_a_bystander(
    state: SchedulerState,
    job: MakeJob,
    scheduler: MakeScheduler,
    run_step: RunStep,
    a_gpus: int,
    b_gpus: int,
) -> list[Decisions]:
    """Grace 30 s, FIFO: owner's claim "a" at t=1, owner's claim "b" at t=5, spot job "c"
    (1 GPU) at t=6; the decisions of the steps at 1, 5, 6 and 31 (when a's grace ends)."""
    fifo = scheduler("fifo", grace=30)
    steps = []
    for name, gpus, tenant, now in (
        ("a", a_gpus, "owner", 1.0),
        ("b", b_gpus, "owner", 5.0),
        ("c", 1, "spot", 6.0),
    ):
        state.submit(job(name, gpus, tenant=tenant, submit=now, topology="none"))
        steps.append(run_step(fifo, state, now))
    steps.append(run_step(fifo, state, 31.0))
    return steps


def test_a_claim_counts_on_the_earliest_released_gpus_and_keeps_its_free_ones(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # One rack of four 4-GPU nodes: three borrowers, node 3 free. "a" (8 GPUs, guaranteed)
    # preempts one borrower and counts on node 3; "b" (4, guaranteed, later) preempts
    # another, whose GPUs come 4 s after a's. Had "a" then planned on both borrowers' GPUs
    # (one rack either way), "b" would take node 3 at once and "a" would wait 34 s.
    state = make_state(
        "1x4x4",
        leases=[lease("owner", 12)],
        jobs=[job(f"v{i}", 4, tenant="spot", submit=i) for i in range(3)],
        running={f"v{i}": ((i, 4),) for i in range(3)},
    )
    first, second, third, at_grace = two_claims_then_a_bystander(
        state, job, scheduler, run_step, 8, 4
    )
    assert first.earmarks == [(0, ((3, 4),))]
    assert len(first.notices) == len(second.notices) == 1
    assert third.starts == []  # any later step: nothing moves
    assert third.earmarks == [(0, ((3, 4),))]
    victim_node = int(first.notices[0].job_id[1:])  # v<i> runs on node i
    assert at_grace.starts == [Start("a", tuple(sorted([(victim_node, 4), (3, 4)])), False)]


def test_an_in_time_plan_holds_the_free_gpus_beside_gpus_released_too_late(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # Node 1 has 2 free GPUs and 2 held by v1. "a" (6) waits for v0 (node 0) and counts
    # on node 1's free pair; "b" (2, later) preempts v1, released 4 s after v0. On its next
    # plan "a" must hold node 1's *free* GPUs, not v1's, or "c" takes them and "a" misses
    # its grace.
    state = make_state(
        "1x3x4",
        leases=[lease("owner", 12)],
        jobs=[
            job("v2", 4, tenant="spot", submit=1),
            job("v1", 2, tenant="spot", submit=2),
            job("v0", 4, tenant="spot", submit=3),
        ],
        running={"v0": ((0, 4),), "v1": ((1, 2),), "v2": ((2, 4),)},
    )
    _, second, later, at_grace = two_claims_then_a_bystander(state, job, scheduler, run_step, 6, 2)
    assert [n.job_id for n in second.notices] == ["v1"]
    assert later.starts == []
    assert later.earmarks == [(0, ((1, 2),))]
    assert at_grace.starts == [Start("a", ((0, 4), (1, 2)), False)]


def test_gpus_a_node_releases_at_two_times_count_from_each(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # Node 0 runs v0 and v1 (2 GPUs each); node 1 has 1 free GPU. "a" (3) preempts v0
    # (released at 31) and holds the free GPU; "b" (1) preempts v1 (released at 35). Node
    # 0's first pair still comes at 31, so "a" keeps the free GPU and starts at 31 (counted
    # from node 0's latest release, its plan would wait for 35 and leave the free GPU to c).
    state = make_state(
        "1x2x4",
        leases=[lease("owner", 8)],
        jobs=[
            job("v2", 3, tenant="spot", submit=1),
            job("v1", 2, tenant="spot", submit=2),
            job("v0", 2, tenant="spot", submit=3),
        ],
        running={"v0": ((0, 2),), "v1": ((0, 2),), "v2": ((1, 3),)},
    )
    first, second, later, at_grace = two_claims_then_a_bystander(
        state, job, scheduler, run_step, 3, 1
    )
    assert [n.job_id for n in first.notices] == ["v0"]
    assert [n.job_id for n in second.notices] == ["v1"]
    assert later.starts == []
    assert later.earmarks == [(0, ((1, 1),))]
    assert at_grace.starts == [Start("a", ((0, 2), (1, 1)), False)]


def test_another_tenants_blocked_head_does_not_hold_back_a_guaranteed_job(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # Two racks of 2x4 GPUs; "other" leases 12, "owner" 4. other's head (8 GPUs in one
    # rack) cannot start while r0 and r1 hold a GPU of each rack; under strict FIFO it
    # blocks other's later jobs, not owner's guaranteed one.
    state = make_state(
        "2x2x4",
        leases=[lease("other", 12), lease("owner", 4)],
        jobs=[
            job("r0", 1, tenant="other", submit=0),
            job("r1", 1, tenant="other", submit=0),
            job("head", 8, tenant="other", submit=1, topology="required"),
            job("next", 1, tenant="other", submit=2),
            job("o", 2, tenant="owner", submit=3),
        ],
        running={"r0": ((0, 1),), "r1": ((2, 1),)},
    )
    decisions = run_step(scheduler("fifo"), state, 10.0)
    assert started(decisions) == ["o"]
    assert codes(decisions)["next"] is WaitCode.BLOCKED


def test_another_tenants_reservation_does_not_hold_back_a_guaranteed_job(
    make_state: MakeState,
    job: MakeJob,
    lease: MakeLease,
    scheduler: MakeScheduler,
    run_step: RunStep,
) -> None:
    # Three racks of 2x4 GPUs. other's guaranteed head (8 GPUs in one rack) cannot start
    # and reserves rack 0 for when r0 ends (t=100). Owner's guaranteed job (4 GPUs in one
    # rack) fits only on rack 0: EASY would hold it back as a backfill that may delay the
    # head; as owner's own guarantee, it starts.
    state = make_state(
        "3x2x4",
        leases=[lease("other", 14), lease("owner", 4), lease("x", 6)],
        jobs=[
            job("r0", 1, tenant="other", submit=0, walltime=100.0),
            job("s", 6, tenant="x", submit=0, walltime=500.0),
            job("r2", 5, tenant="other", submit=0, walltime=200.0),
            job("head", 8, tenant="other", submit=1, topology="required"),
            job("o", 4, tenant="owner", submit=3, topology="required"),
        ],
        running={"r0": ((0, 1),), "s": ((2, 4), (3, 2)), "r2": ((4, 4), (5, 1))},
    )
    decisions = run_step(scheduler("easy"), state, 10.0)
    assert decisions.starts == [Start("o", ((1, 4),), False)]  # node 1, in the reserved rack
    assert "head" in decisions.waiting


def test_default_gives_rack_scale_gangs_more_levels_and_no_yield_on_entry(
    make_state: MakeState, job: MakeJob
) -> None:
    """Under ``default`` a job with a segment (a rack-scale gang) has eight levels and keeps
    its GPUs when it enters one; a job without is ranked exactly as ``las-gang`` ranks it."""
    from gpulease.scheduler.ordering import LasGang, LasGangRack

    policy, gang = LasGangRack(), LasGang()
    state = make_state(
        "2x4x8",
        jobs=[job("rack", 16, segment=16, topology="required"), job("plain", 16, submit=1)],
    )
    state.start("rack", ((0, 8), (1, 8)), 0.0, borrowed=True)
    state.start("plain", ((4, 8), (5, 8)), 0.0, borrowed=True)
    rack, plain = state.job("rack"), state.job("plain")
    middle = 7200.0 * 16**0.45  # las-gang's middle level of a 16-GPU job: 25,072 GPU-s
    assert policy.job_limits(plain) == gang.job_limits(plain) == (3250.0, middle)
    assert policy.job_limits(rack) == (3250.0, *(28800.0 * 4.0**i for i in range(6)))
    # the plain job crosses its limit at 1,567 s and yields once; the gang crosses 28,800
    # GPU-s (7,200 x sqrt(16)) at 1,800 s and does not yield
    crossing = middle / 16
    assert policy.preempt_key(plain, crossing) == gang.preempt_key(plain, crossing)
    assert policy.preempt_key(plain, crossing) == (2.0, 1.0, crossing)
    assert policy.next_key_change(plain, 1000.0) == crossing
    assert policy.next_key_change(plain, crossing) == crossing + 1e-3
    assert policy.level(rack, crossing) == 1
    assert policy.preempt_key(rack, 1800.0) == (2.0, 0.0, 1800.0)
    assert policy.next_key_change(rack, 1800.0) == 4 * 28800.0 / 16  # the next level
    assert policy.level(rack, 10 * 3600.0) == 4  # 576,000 GPU-s: past 460,800
