"""Preemption: who may preempt whom, and which victims free a place for a job.

Rules (``may_preempt``), for a preemptor P and a running job V ranked below P:
* reclaim: a GUARANTEED P may preempt any BORROWED V (borrowed capacity is only lent);
* a GUARANTEED V is never preempted by another tenant;
* otherwise V must be ``preemptible`` and P must be of a higher priority class, or of the
  same class under a preemptive ordering policy (LAS).

Victim choice (``choose_victims``): candidates are taken worst-ranked first and added to a
trial free map (an overlay on the step's own map, restored before returning) until the
preemptor can be placed; victims whose GPUs the resulting placement does not touch are then
released from the list. The preempted get a grace period (the driver's notice) before their
GPUs are taken. The engine hands each call a stream that skips victims already chosen in
the step once (``candidates.CandidateList``), not at every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from gpulease.domain.models import JobSpec
from gpulease.scheduler.placement import FreeMap, Placement, WaitReason, place
from gpulease.scheduler.quota import Tier
from gpulease.scheduler.state import JobRecord

RankKey = tuple[float, ...]


class Ranked(NamedTuple):
    """A job with its rank: ``key`` orders the queue, ``coarse`` (a prefix of the key's
    meaning: tier, -priority, the policy's preempt key) decides preemption. A named tuple:
    a step makes one per job it visits or considers, and a tuple is the cheapest to make."""

    key: RankKey
    coarse: RankKey
    tier: Tier
    record: JobRecord


def may_preempt(preemptor: Ranked, victim: Ranked, *, policy_preemptive: bool) -> bool:
    if victim.coarse <= preemptor.coarse:
        return False
    if preemptor.tier is Tier.GUARANTEED and victim.tier is Tier.BORROWED:
        return True
    p_spec, v_spec = preemptor.record.spec, victim.record.spec
    if victim.tier is Tier.GUARANTEED and v_spec.tenant != p_spec.tenant:
        return False
    if not v_spec.preemptible:
        return False
    if p_spec.priority > v_spec.priority:
        return True
    return policy_preemptive and p_spec.priority == v_spec.priority


def usable(placement: Placement, schedulable: Sequence[bool]) -> list[tuple[int, int]]:
    """The part of a running job's GPUs that would return to the free map (UP nodes only)."""
    return [(node, count) for node, count in placement if schedulable[node]]


def choose_victims(
    job: JobSpec,
    preemptor: Ranked,
    candidates: Iterable[Ranked],
    free: FreeMap,
    schedulable: Sequence[bool],
    *,
    policy_preemptive: bool,
    domain: str,
) -> tuple[list[Ranked], Placement] | None:
    """Victims (worst first) whose GPUs, with ``free``, let ``job`` be placed; else None.

    ``candidates`` come worst-ranked (coarse key) first. ``free`` is left as it was: the
    trial lends each candidate's GPUs to ``free`` itself and takes them back before
    returning (an overlay costing O(victims' GPUs), instead of a copy of the site per call).
    """
    lent: list[tuple[int, int]] = []
    chosen: list[Ranked] = []
    outcome: Placement | WaitReason | None = None
    try:
        for candidate in candidates:
            if candidate.coarse <= preemptor.coarse:
                break  # the rest rank at least as high as the preemptor
            if not may_preempt(preemptor, candidate, policy_preemptive=policy_preemptive):
                continue
            gain = usable(candidate.record.placement, schedulable)
            if not gain:
                continue
            free.give(gain)
            lent.extend(gain)
            chosen.append(candidate)
            if free.total >= job.gpus:
                outcome = place(job, free, domain=domain)
                if not isinstance(outcome, WaitReason):
                    break
    finally:
        free.take(tuple(lent))
    if outcome is None or isinstance(outcome, WaitReason):
        return None
    used_nodes = {node for node, _ in outcome}
    needed = [v for v in chosen if any(n in used_nodes for n, _ in v.record.placement)]
    # A victim with no GPU on the placement's nodes is not needed: dropping it leaves every
    # node of the placement with the same free GPUs.
    return needed, outcome
