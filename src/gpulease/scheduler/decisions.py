"""What one scheduling step decides, and how a driver applies it: ``Decisions``.

Design. The engine (``engine.Scheduler.step``) returns a :class:`Decisions` and never
writes the state; a driver (the simulator, the live service) applies it with
:func:`apply_decisions`, in the one safe order: timeouts and requeues release GPUs before
starts take them, notices only mark jobs, and last the queued jobs waiting within a
guarantee keep (or begin) their claim.

Vocabulary: a *start* places a queued job now; a *notice* begins a victim's grace period
(its GPUs are taken at ``Preempt.at``); a *requeue* stops a job now and puts it back in the
queue; an *earmark* is the part of a waiting job's plan taken from GPUs free now (what an
observer needs to replay the free map); ``waiting`` says why each other queued job waits.
The texts a victim's tenant reads (``RECLAIMED``, ``PREEMPTED``) name no other job or
tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpulease.domain.states import JobState
from gpulease.scheduler.lease_book import Share
from gpulease.scheduler.placement import Placement
from gpulease.scheduler.state import SchedulerState
from gpulease.scheduler.waiting import WaitingMap


@dataclass(frozen=True, slots=True)
class Start:
    job_id: str
    placement: Placement
    borrowed: bool
    # whose capacity its GPUs are, in the order its GPUs are taken (``capacity.attribute``,
    # filled at the end of the step that decides it). Derived from the rest of the step's
    # decisions and the state, so left out of equality: a start is its job, GPUs and tier.
    shares: tuple[Share, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Preempt:
    job_id: str
    at: float  # when its GPUs are taken; <= now means at once
    reason: str  # read by the victim's tenant: names no other job or tenant
    by: str = ""  # the job that claims the GPUs (for the operator's audit)


# The victim's tenant reads these (its job's wait reason): they name no other job or tenant.
RECLAIMED = "reclaimed by its lease holder: the borrowed GPUs are needed within their lease"
PREEMPTED = "preempted: a job of a higher rank needs its GPUs"


@dataclass(slots=True)
class Decisions:
    now: float
    starts: list[Start] = field(default_factory=list)
    notices: list[Preempt] = field(default_factory=list)  # grace period begins
    requeues: list[Preempt] = field(default_factory=list)  # stop now, back to the queue
    timeouts: list[str] = field(default_factory=list)  # walltime exceeded: fail now
    # why each queued job that does not start waits (resolved on demand: ``waiting``)
    waiting: WaitingMap = field(default_factory=WaitingMap)
    guaranteed_waiting: list[str] = field(default_factory=list)  # queued within a guarantee
    # free GPUs promised this step to jobs waiting for preempted ones, with the number of
    # starts decided before the promise (what an observer needs to replay the free map)
    earmarks: list[tuple[int, Placement]] = field(default_factory=list)
    # GPUs freed during the walk (victims preempted with no grace), likewise numbered
    releases: list[tuple[int, Placement]] = field(default_factory=list)
    next_wakeup: float | None = None

    @property
    def empty(self) -> bool:
        return not (self.starts or self.notices or self.requeues or self.timeouts)


def apply_decisions(state: SchedulerState, decisions: Decisions) -> None:
    """Apply a step's decisions to ``state`` in the only safe order.

    Timeouts and requeues release GPUs before starts take them; notices only mark jobs;
    last, the queued jobs waiting within a guarantee keep (or begin) their claim.
    """
    now = decisions.now
    for job_id in decisions.timeouts:
        state.stop(job_id, now, JobState.FAILED, "walltime exceeded")
    for preempt in decisions.requeues:
        state.stop(preempt.job_id, now, JobState.QUEUED, preempt.reason)
    for preempt in decisions.notices:
        state.begin_preemption(preempt.job_id, preempt.at, preempt.reason)
    for start in decisions.starts:
        state.start(
            start.job_id, start.placement, now, borrowed=start.borrowed, shares=start.shares
        )
    state.note_guarantees(decisions.guaranteed_waiting, now)
