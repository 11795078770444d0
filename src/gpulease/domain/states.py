"""Status enums and their explicit transition tables.

Every status change in gpulease goes through :func:`transition`, which consults the table of
the enum. A status absent from the table's keys is terminal. Tests walk every pair of every
table, so a new status cannot slip in without a decision about where it may go.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from gpulease.domain.errors import InvalidTransition


class NodeState(StrEnum):
    """A node (compute tray or server). Only ``UP`` nodes receive new work."""

    UP = "up"
    DRAINING = "draining"  # running work continues, nothing new lands
    DOWN = "down"  # failed or in maintenance; its jobs were requeued or failed


NODE_TRANSITIONS: dict[NodeState, frozenset[NodeState]] = {
    NodeState.UP: frozenset({NodeState.DRAINING, NodeState.DOWN}),
    NodeState.DRAINING: frozenset({NodeState.UP, NodeState.DOWN}),
    NodeState.DOWN: frozenset({NodeState.UP}),
}


class JobState(StrEnum):
    """A gang job. Preemption and requeue after a node failure go RUNNING -> QUEUED."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.QUEUED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    ),
}

TERMINAL_JOB_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
)

S = TypeVar("S", bound=StrEnum)


def can_transition(table: dict[S, frozenset[S]], current: S, target: S) -> bool:
    return target in table.get(current, frozenset())


def transition(table: dict[S, frozenset[S]], current: S, target: S, *, subject: str = "") -> S:
    """Return ``target`` if ``current -> target`` is allowed, else raise InvalidTransition."""
    if not can_transition(table, current, target):
        allowed = sorted(table.get(current, frozenset()))
        what = f"{subject} " if subject else ""
        raise InvalidTransition(
            f"{what}cannot go from {current.value!r} to {target.value!r}; "
            f"allowed: {', '.join(a.value for a in allowed) or 'none (terminal)'}",
            current=current.value,
            target=target.value,
        )
    return target
