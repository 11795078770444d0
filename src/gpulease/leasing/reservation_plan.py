"""Which whole nodes mirror each lease of a site as a workload-manager reservation.

A lease is a GPU quota (a count of GPUs over ``[start, end)``), not bound to nodes. A site
that mirrors its leases as Slurm reservations (so tenants may submit to Slurm directly)
needs nodes for each one; :func:`plan` chooses them. Pure and deterministic: no I/O, no
clock; the same inputs give the same plan.

Vocabulary. A *node* here is what the workload manager reserves (a Slurm node; several
gpulease nodes mapped onto one Slurm node count as one, with their GPUs summed), *usable*
when both sides have it up. A lease's *cover* is the nodes it gets and how well they cover
it (:class:`Coverage`).

Rounding rule (whole nodes, rounded down). A lease of ``G`` GPUs gets whole nodes whose GPUs
sum to at most ``G``: on nodes of ``n`` GPUs, ``floor(G / n)`` nodes. A reservation never
takes more GPUs than the lease holds, so reservations never take capacity the calendar
promised to another lease or left for on-demand work; the ``G mod n`` GPUs left over are
not mirrored, and the cover says so (``rounded_down``). A lease smaller than any node gets
no reservation at all (``rounded_down`` with no nodes).

Choice. In two passes over the leases in order of (start, id):

1. *keep*: each lease keeps the nodes it holds now (``previous``, as the workload manager
   has them) that are still usable and not already kept by an overlapping lease earlier in
   the order, in name order while they fit in ``G`` (a lease that shrank keeps the first
   ones);
2. *fill*: each lease then takes usable nodes no overlapping lease holds, in name order,
   each one that still fits in ``G``.

Invariants (tested as properties, ``tests/leasing/test_reservation_plan.py``):

* never one node in two leases whose windows overlap (half-open windows: a lease ending at
  ``t`` and one starting at ``t`` may share nodes); only usable nodes are chosen;
* a lease's nodes hold at most ``G`` GPUs;
* stable: planning again from a plan's own output, nothing else changed, gives the same
  plan; a lease keeps its nodes unless they stopped being usable or it shrank;
* honest: a cover is ``full``, else ``short`` when a node of the site that would fit in
  what is missing is not the lease's (it is down, or held by an overlapping lease), else
  ``rounded_down`` (no whole node fits in what is missing). With nodes of several sizes the
  fill is greedy in name order, not the best packing; the cover says what it got.

``Coverage`` classifies a cover; it is not a lifecycle (no transitions): each plan
classifies afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Cover", "Coverage", "PlanLease", "PlanNode", "plan"]


class Coverage(StrEnum):
    """How well whole nodes cover a lease (module doc: the rounding rule)."""

    FULL = "full"  # the nodes hold exactly the lease's GPUs
    ROUNDED_DOWN = "rounded_down"  # no whole node of the site fits in what is left
    SHORT = "short"  # a node that would fit is down or held by an overlapping lease


@dataclass(frozen=True, slots=True)
class PlanNode:
    name: str
    gpus: int
    usable: bool = True


@dataclass(frozen=True, slots=True)
class PlanLease:
    lease_id: str
    gpus: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Cover:
    """The nodes of one lease (sorted by name; empty: no reservation) and how well they
    cover it."""

    lease_id: str
    nodes: tuple[str, ...]
    gpus: int  # the nodes' GPUs
    wanted: int  # the lease's GPUs
    coverage: Coverage

    @property
    def missing(self) -> int:
        return self.wanted - self.gpus

    def describe(self) -> str:
        """One line for an operator: what is reserved and why not more."""
        got = f"{self.gpus} of {self.wanted} GPUs on {len(self.nodes)} whole nodes"
        if self.coverage is Coverage.FULL:
            return got
        if self.coverage is Coverage.ROUNDED_DOWN:
            return f"{got}: the other {self.missing} fit no whole node (rounded down)"
        return f"{got}: {self.missing} short, nodes that would fit are down or reserved"


def plan(
    nodes: Iterable[PlanNode],
    leases: Iterable[PlanLease],
    previous: Mapping[str, Sequence[str]] | None = None,
) -> list[Cover]:
    """One :class:`Cover` per lease, in the order (start, lease id); module doc."""
    by_name = {node.name: node for node in nodes}
    usable = sorted(name for name, node in by_name.items() if node.usable and node.gpus > 0)
    ordered = sorted(leases, key=lambda lease: (lease.start, lease.lease_id))
    if len({lease.lease_id for lease in ordered}) != len(ordered):
        raise ValueError("a lease is listed twice")
    held: dict[str, list[PlanLease]] = {name: [] for name in usable}  # node -> its leases
    chosen: dict[str, list[str]] = {lease.lease_id: [] for lease in ordered}
    room: dict[str, int] = {lease.lease_id: max(lease.gpus, 0) for lease in ordered}

    def free_for(lease: PlanLease, name: str) -> bool:
        return all(not _overlap(lease, other) for other in held.get(name, ()))

    def take(lease: PlanLease, name: str) -> None:
        held[name].append(lease)
        chosen[lease.lease_id].append(name)
        room[lease.lease_id] -= by_name[name].gpus

    for lease in ordered:  # 1. keep
        for name in sorted(set((previous or {}).get(lease.lease_id, ()))):
            node = by_name.get(name)
            if node is None or name not in held or node.gpus > room[lease.lease_id]:
                continue
            if free_for(lease, name):
                take(lease, name)
    for lease in ordered:  # 2. fill
        for name in usable:
            fits = by_name[name].gpus <= room[lease.lease_id]
            if fits and name not in chosen[lease.lease_id] and free_for(lease, name):
                take(lease, name)

    covers = []
    for lease in ordered:
        names = tuple(sorted(chosen[lease.lease_id]))
        gpus = sum(by_name[name].gpus for name in names)
        left = max(lease.gpus, 0) - gpus
        # short: a node of the site that would fit is not this lease's (fill would have
        # taken it were it usable and free), else whole nodes cannot do better
        would_fit = any(
            0 < node.gpus <= left and name not in names for name, node in by_name.items()
        )
        if left == 0:
            coverage = Coverage.FULL
        elif would_fit:
            coverage = Coverage.SHORT
        else:
            coverage = Coverage.ROUNDED_DOWN
        covers.append(Cover(lease.lease_id, names, gpus, max(lease.gpus, 0), coverage))
    return covers


def _overlap(a: PlanLease, b: PlanLease) -> bool:
    return a.start < b.end and b.start < a.end
