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


class LeaseState(StrEnum):
    """A lease of capacity over [start, end).

    ``requested``: a tenant asked and got a quote; the capacity is held while it is decided.
    ``approved``: the operator accepted it. ``scheduled``: its capacity is reserved in the
    calendar and it waits for its start. ``active``: inside its window, a guarantee the
    scheduler honours. ``suspended``: an active lease stopped by the operator (compliance,
    non-payment); it holds its capacity but guarantees nothing until resumed. ``expired``:
    a request nobody approved within the hold time (``lease_hold_hours``); its capacity went
    back to the calendar. A state of its own, not ``rejected`` (nobody decided against it)
    nor ``cancelled`` (the tenant did not withdraw it), so the trail says what happened.
    """

    REQUESTED = "requested"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ENDED = "ended"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


LEASE_TRANSITIONS: dict[LeaseState, frozenset[LeaseState]] = {
    LeaseState.REQUESTED: frozenset(
        {LeaseState.APPROVED, LeaseState.REJECTED, LeaseState.CANCELLED, LeaseState.EXPIRED}
    ),
    LeaseState.APPROVED: frozenset({LeaseState.SCHEDULED, LeaseState.CANCELLED}),
    # scheduled -> ended: the window passed while the tenant was not approved (never active)
    LeaseState.SCHEDULED: frozenset({LeaseState.ACTIVE, LeaseState.ENDED, LeaseState.CANCELLED}),
    LeaseState.ACTIVE: frozenset({LeaseState.ENDED, LeaseState.SUSPENDED}),
    LeaseState.SUSPENDED: frozenset({LeaseState.ACTIVE, LeaseState.ENDED}),
}

# Leases that hold capacity in the calendar (a request holds it while it is decided).
CAPACITY_HOLDING_LEASE_STATES: frozenset[LeaseState] = frozenset(
    {
        LeaseState.REQUESTED,
        LeaseState.APPROVED,
        LeaseState.SCHEDULED,
        LeaseState.ACTIVE,
        LeaseState.SUSPENDED,
    }
)


class KycState(StrEnum):
    """A tenant's approval case: the same steps for every tenant, domestic or foreign.

    ``submitted``: identity, owners and declared end uses recorded. ``screening``: the tenant
    and every owner up the chain are screened against the current lists under the policy in
    force. ``needs_review``: a compliance officer (two, with four-eyes) must decide; nothing
    is approved without an officer. ``approved`` until ``expires_at``; a new list import or
    the expiry sends it back to ``screening``. ``rejected`` is final for this case.
    """

    SUBMITTED = "submitted"
    SCREENING = "screening"
    NEEDS_REVIEW = "needs_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


KYC_TRANSITIONS: dict[KycState, frozenset[KycState]] = {
    KycState.SUBMITTED: frozenset({KycState.SCREENING}),
    KycState.SCREENING: frozenset({KycState.NEEDS_REVIEW}),
    KycState.NEEDS_REVIEW: frozenset({KycState.APPROVED, KycState.REJECTED, KycState.SCREENING}),
    KycState.APPROVED: frozenset({KycState.SCREENING, KycState.EXPIRED}),
    KycState.EXPIRED: frozenset({KycState.SCREENING}),
}


class TenantStanding(StrEnum):
    """A tenant's standing, kept beside the tenant row (``tenants.approval``) so that every
    admission check is one read. ``none``: no case approved yet. ``approved``: an officer
    approved a case (until its expiry). ``suspended``: a re-screening (new list, policy
    change) or the expiry reopened the case it stands on; its work is held until an officer
    decides again. ``rejected``: an officer refused its case; a new case may be approved.
    Nothing returns to ``none``; a standing restated with a new reason (a new approval of an
    approved tenant) is not a transition."""

    NONE = "none"
    APPROVED = "approved"
    SUSPENDED = "suspended"
    REJECTED = "rejected"


STANDING_TRANSITIONS: dict[TenantStanding, frozenset[TenantStanding]] = {
    TenantStanding.NONE: frozenset({TenantStanding.APPROVED, TenantStanding.REJECTED}),
    TenantStanding.APPROVED: frozenset({TenantStanding.SUSPENDED, TenantStanding.REJECTED}),
    TenantStanding.SUSPENDED: frozenset({TenantStanding.APPROVED, TenantStanding.REJECTED}),
    TenantStanding.REJECTED: frozenset({TenantStanding.APPROVED}),
}


class PurposeReviewState(StrEnum):
    """An officer's review of a declared purpose the classifier sent to review.

    ``pending``: the work declaring it is held (queued, never started). ``approved``: the
    purpose is cleared for its tenant; the held work is admitted. ``rejected``: the held
    work is refused (failed, with the officer's reason). Both decisions are final.
    """

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


PURPOSE_REVIEW_TRANSITIONS: dict[PurposeReviewState, frozenset[PurposeReviewState]] = {
    PurposeReviewState.PENDING: frozenset(
        {PurposeReviewState.APPROVED, PurposeReviewState.REJECTED}
    ),
}


class ComputeReviewState(StrEnum):
    """An officer's review of training compute that passed a threshold of the packs.

    ``open``: raised by the compute scan (a tenant's, a campaign's or a group's estimated
    operations reached a ``training_compute`` threshold); it follows the total while open.
    ``cleared``: the officer found nothing to report (reason recorded). ``reported``: the
    officer reported it to the authority the rule names (reference recorded). Both final.
    """

    OPEN = "open"
    CLEARED = "cleared"
    REPORTED = "reported"


COMPUTE_REVIEW_TRANSITIONS: dict[ComputeReviewState, frozenset[ComputeReviewState]] = {
    ComputeReviewState.OPEN: frozenset({ComputeReviewState.CLEARED, ComputeReviewState.REPORTED}),
}

S = TypeVar("S", bound=StrEnum)


def can_transition(table: dict[S, frozenset[S]], current: S, target: S) -> bool:
    return target in table.get(current, frozenset())


def transition(table: dict[S, frozenset[S]], current: S, target: S, *, subject: str = "") -> S:
    """Return ``target`` if ``current -> target`` is allowed, else raise InvalidTransition."""
    if not can_transition(table, current, target):
        allowed = sorted(table.get(current, frozenset()))
        what = f"{subject} " if subject else ""
        if current == target:  # asked twice: say so, not "cannot go from X to X"
            message = f"{what}is already {current.value!r}; nothing to do"
        elif not allowed:
            message = f"{what}has ended ({current.value!r}); it cannot become {target.value!r}"
        else:
            message = (
                f"{what}cannot go from {current.value!r} to {target.value!r}; "
                f"allowed: {', '.join(a.value for a in allowed)}"
            )
        raise InvalidTransition(message, current=current.value, target=target.value)
    return target
