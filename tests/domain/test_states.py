"""Table-driven test of every status transition table: each pair is allowed or refused."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pytest

from gpulease.domain.errors import Conflict, InvalidTransition
from gpulease.domain.states import (
    JOB_TRANSITIONS,
    KYC_TRANSITIONS,
    LEASE_TRANSITIONS,
    NODE_TRANSITIONS,
    PURPOSE_REVIEW_TRANSITIONS,
    STANDING_TRANSITIONS,
    TERMINAL_JOB_STATES,
    JobState,
    KycState,
    LeaseState,
    NodeState,
    PurposeReviewState,
    TenantStanding,
    can_transition,
    transition,
)

# The decisions, written out: a change to a table must change this test too.
NODE_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("up", "draining"),
        ("up", "down"),
        ("draining", "up"),
        ("draining", "down"),
        ("down", "up"),
    }
)
JOB_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("queued", "running"),
        ("queued", "cancelled"),
        ("queued", "failed"),
        ("running", "queued"),
        ("running", "succeeded"),
        ("running", "failed"),
        ("running", "cancelled"),
    }
)

LEASE_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("requested", "approved"),
        ("requested", "rejected"),
        ("requested", "cancelled"),
        ("requested", "expired"),  # nobody approved it within the hold time
        ("approved", "scheduled"),
        ("approved", "cancelled"),
        ("scheduled", "active"),
        ("scheduled", "ended"),
        ("scheduled", "cancelled"),
        ("active", "ended"),
        ("active", "suspended"),
        ("suspended", "active"),
        ("suspended", "ended"),
    }
)

KYC_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("submitted", "screening"),
        ("screening", "needs_review"),
        ("needs_review", "approved"),
        ("needs_review", "rejected"),
        ("needs_review", "screening"),
        ("approved", "screening"),
        ("approved", "expired"),
        ("expired", "screening"),
    }
)

STANDING_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("none", "approved"),
        ("none", "rejected"),
        ("approved", "suspended"),  # a re-screening or the expiry reopened its case
        ("approved", "rejected"),
        ("suspended", "approved"),
        ("suspended", "rejected"),
        ("rejected", "approved"),  # a new case approved
    }
)


PURPOSE_REVIEW_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {("pending", "approved"), ("pending", "rejected")}
)

Table = dict[Any, frozenset[Any]]
TABLES: dict[str, tuple[type[StrEnum], Table, frozenset[tuple[str, str]]]] = {
    "node": (NodeState, NODE_TRANSITIONS, NODE_ALLOWED),
    "job": (JobState, JOB_TRANSITIONS, JOB_ALLOWED),
    "lease": (LeaseState, LEASE_TRANSITIONS, LEASE_ALLOWED),
    "kyc": (KycState, KYC_TRANSITIONS, KYC_ALLOWED),
    "standing": (TenantStanding, STANDING_TRANSITIONS, STANDING_ALLOWED),
    "purpose_review": (
        PurposeReviewState,
        PURPOSE_REVIEW_TRANSITIONS,
        PURPOSE_REVIEW_ALLOWED,
    ),
}

PAIRS = [
    pytest.param(name, current, target, id=f"{name}:{current.value}->{target.value}")
    for name, (enum, _, _) in TABLES.items()
    for current in enum
    for target in enum
]


@pytest.mark.parametrize(("name", "current", "target"), PAIRS)
def test_every_pair_is_allowed_by_the_table_or_raises(
    name: str, current: StrEnum, target: StrEnum
) -> None:
    _, table, allowed = TABLES[name]
    if (current.value, target.value) in allowed:
        assert can_transition(table, current, target)
        assert transition(table, current, target, subject="x") is target
    else:
        assert not can_transition(table, current, target)
        with pytest.raises(InvalidTransition) as caught:
            transition(table, current, target, subject="x")
        error = caught.value
        assert error.code == "invalid_transition"
        assert isinstance(error, Conflict)
        assert error.details == {"current": current.value, "target": target.value}
        if current == target:  # asked twice
            assert error.message == f"x is already {current.value!r}; nothing to do"
        elif not table.get(current):  # terminal
            assert error.message == (
                f"x has ended ({current.value!r}); it cannot become {target.value!r}"
            )
        else:
            assert error.message.startswith(
                f"x cannot go from {current.value!r} to {target.value!r}; allowed: "
            )


@pytest.mark.parametrize("name", list(TABLES))
def test_table_matches_the_written_decisions(name: str) -> None:
    enum, table, allowed = TABLES[name]
    pairs = {(a.value, b.value) for a, targets in table.items() for b in targets}
    assert pairs == allowed
    for current, targets in table.items():
        assert isinstance(current, enum)
        assert all(isinstance(t, enum) for t in targets)
        assert current not in targets  # no self-loops


def test_every_job_status_is_a_key_or_terminal() -> None:
    keys = set(JOB_TRANSITIONS)
    assert keys | TERMINAL_JOB_STATES == set(JobState)
    assert keys.isdisjoint(TERMINAL_JOB_STATES)
    assert {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED} == TERMINAL_JOB_STATES


def test_every_node_status_is_a_key() -> None:
    # No node status is terminal: a node always comes back.
    assert set(NODE_TRANSITIONS) == set(NodeState)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_JOB_STATES))
def test_terminal_job_states_go_nowhere(terminal: JobState) -> None:
    for target in JobState:
        with pytest.raises(InvalidTransition) as caught:
            transition(JOB_TRANSITIONS, terminal, target, subject="job-1")
        if target is terminal:
            expected = f"job-1 is already {terminal.value!r}; nothing to do"
        else:
            expected = f"job-1 has ended ({terminal.value!r}); it cannot become {target.value!r}"
        assert caught.value.message == expected


def test_message_lists_allowed_targets_sorted() -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(JOB_TRANSITIONS, JobState.QUEUED, JobState.SUCCEEDED, subject="job-1")
    assert caught.value.message == (
        "job-1 cannot go from 'queued' to 'succeeded'; allowed: cancelled, failed, running"
    )
    assert caught.value.to_dict() == {
        "code": "invalid_transition",
        "message": caught.value.message,
        "details": {"current": "queued", "target": "succeeded"},
    }


def test_message_without_subject() -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(NODE_TRANSITIONS, NodeState.DOWN, NodeState.DRAINING)
    assert caught.value.message == "cannot go from 'down' to 'draining'; allowed: up"
