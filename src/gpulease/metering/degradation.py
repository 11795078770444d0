"""Degraded leased capacity: GPUs a site's leases are guaranteed that were down and not
replaced, as :class:`~.rating.Degradation` evidence for the SLA credit.

Design. Leases are quotas (GPUs of a site over a window), not named chips, so a tray that
goes down degrades a lease only when the site cannot replace it: at any instant the site's
*shortfall* is ``max(0, guaranteed - up)``, where ``guaranteed`` is the sum of the GPUs of
the leases active then and ``up`` the GPUs of the site's nodes that are not ``DOWN`` (a
draining node still runs its work and counts as up; planned maintenance is not sold by the
lease calendar, so it makes no shortfall unless a node beyond it fails too). A shortfall is
shared among the active leases in proportion to their GPUs, by largest remainder (exact
fractions; ties to the earlier lease, then the smaller id), so the shares are whole GPUs
that add up to the shortfall exactly.

Inputs: the site's nodes (:class:`SiteNode`), each node's down spans (:class:`DownHistory`
folds the node state changes, in the order they were written, into them), and the site's
leases (:class:`SiteLease`). Output: per lease, maximal spans with the same share and the
same nodes down, each a ``Degradation`` whose ``cause`` names the nodes and the figures.

Invariants: at every instant the shares of the active leases add up to the shortfall; no
lease's share exceeds its GPUs; a span lies inside the period and the lease's window. The
clock of the change records may step back: a node's changes are taken in the order written
and none is earlier than the one before it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from gpulease.domain.errors import InvalidRequest
from gpulease.metering.periods import Period, utc
from gpulease.metering.rating import Degradation

Span = tuple[datetime, datetime]
NAMED = 12  # nodes named in one piece of evidence; more are counted


@dataclass(frozen=True, slots=True)
class SiteNode:
    """A node (tray or server) of a site with its GPUs."""

    id: str
    site_id: str
    gpus: int

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise InvalidRequest(f"node {self.id}: GPUs are not negative", node=self.id)


@dataclass(frozen=True, slots=True)
class SiteLease:
    """A lease's guarantee: ``gpus`` of ``site_id`` over ``[start, end)``."""

    id: str
    site_id: str
    gpus: int
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start, "lease.start"))
        object.__setattr__(self, "end", utc(self.end, "lease.end"))
        if self.gpus <= 0 or self.end <= self.start:
            raise InvalidRequest(f"lease {self.id}: positive GPUs over a non-empty window")


@dataclass(slots=True)
class DownHistory:
    """Node state changes folded into each node's down spans inside ``period``.

    Call :meth:`initial` with a node's state before its first change (or its state now if
    it has none), then :meth:`change` for each change in the order written; :meth:`spans`
    closes what is still down at the period's end. Memory: one entry per node and its
    spans in the period, whatever the length of the history fed."""

    period: Period
    _down_since: dict[str, datetime | None] = field(default_factory=dict)
    _last: dict[str, datetime] = field(default_factory=dict)
    _spans: dict[str, list[Span]] = field(default_factory=dict)

    def initial(self, node_id: str, down: bool) -> None:
        if node_id not in self._down_since:
            self._down_since[node_id] = self.period.start if down else None

    def change(self, node_id: str, at: datetime, down: bool) -> None:
        at = utc(at, "change.at")
        last = self._last.get(node_id)
        if last is not None and at < last:
            at = last  # the writer's clock stepped back: never before the change before it
        self._last[node_id] = at
        since = self._down_since.get(node_id)
        if down and since is None:
            self._down_since[node_id] = max(at, self.period.start)
        elif not down and since is not None:
            self._close(node_id, since, at)
            self._down_since[node_id] = None

    def _close(self, node_id: str, since: datetime, until: datetime) -> None:
        span = self.period.clip(since, min(until, self.period.end))
        if span is not None and span[0] < span[1]:
            self._spans.setdefault(node_id, []).append(span)

    def spans(self) -> dict[str, list[Span]]:
        """Each node's down spans inside the period (still down: up to its end)."""
        out = {k: list(v) for k, v in self._spans.items()}
        for node_id, since in self._down_since.items():
            if since is not None and since < self.period.end:
                out.setdefault(node_id, []).append((since, self.period.end))
        return out


def shares(shortfall: int, leases: Sequence[SiteLease]) -> dict[str, int]:
    """``shortfall`` GPUs shared among ``leases`` in proportion to their GPUs, by largest
    remainder (ties: earlier lease, then smaller id); never more than a lease's GPUs."""
    total = sum(x.gpus for x in leases)
    if shortfall <= 0 or total <= 0:
        return {}
    shortfall = min(shortfall, total)
    quotas = {x.id: Fraction(shortfall * x.gpus, total) for x in leases}
    out = {k: int(q) for k, q in quotas.items()}
    left = shortfall - sum(out.values())
    order = sorted(leases, key=lambda x: (-(quotas[x.id] - out[x.id]), x.start, x.id))
    for x in order[:left]:
        out[x.id] += 1
    return {k: v for k, v in out.items() if v > 0}


def degradations(
    nodes: Sequence[SiteNode],
    down: Mapping[str, Sequence[Span]],
    leases: Sequence[SiteLease],
    period: Period,
) -> list[Degradation]:
    """Every lease's degraded spans in ``period`` (module doc), sorted by (lease, start)."""
    out: list[Degradation] = []
    by_site: dict[str, list[SiteNode]] = {}
    for n in nodes:
        by_site.setdefault(n.site_id, []).append(n)
    for site_id in sorted({x.site_id for x in leases}):
        site_nodes = by_site.get(site_id, [])
        site_leases = [x for x in leases if x.site_id == site_id]
        out += _site(site_id, site_nodes, down, site_leases, period)
    return sorted(out, key=lambda d: (d.lease_id, d.start, d.id))


def _site(
    site_id: str,
    nodes: Sequence[SiteNode],
    down: Mapping[str, Sequence[Span]],
    leases: Sequence[SiteLease],
    period: Period,
) -> list[Degradation]:
    total = sum(n.gpus for n in nodes)
    gpus = {n.id: n.gpus for n in nodes}
    moves: dict[datetime, list[tuple[str, int]]] = {}
    for node_id in sorted(gpus):
        for lo, hi in down.get(node_id, ()):
            clipped = period.clip(lo, hi)
            if clipped is None or clipped[0] >= clipped[1]:
                continue
            moves.setdefault(clipped[0], []).append((node_id, 1))
            moves.setdefault(clipped[1], []).append((node_id, -1))
    if not moves:
        return []
    instants = set(moves) | {period.start, period.end}
    for x in leases:
        instants.update(t for t in (x.start, x.end) if period.start < t < period.end)
    times = sorted(t for t in instants if period.start <= t <= period.end)
    depth: dict[str, int] = {}
    open_spans: dict[str, tuple[datetime, int, tuple[str, ...], str]] = {}
    out: list[Degradation] = []
    for lo, hi in itertools.pairwise(times):
        for node_id, step in moves.get(lo, ()):
            depth[node_id] = depth.get(node_id, 0) + step
        downed = tuple(sorted(k for k, v in depth.items() if v > 0))
        active = [x for x in leases if x.start <= lo and hi <= x.end]
        up = total - sum(gpus[k] for k in downed)
        guaranteed = sum(x.gpus for x in active)
        now_shares = shares(guaranteed - up, active)
        cause = (
            f"site {site_id}: {_named(downed)} down ({total - up} GPUs), {up} of {total} "
            f"GPUs up for {guaranteed} guaranteed"
        )
        for lease_id in sorted(set(open_spans) | set(now_shares)):
            kept = open_spans.get(lease_id)
            share = now_shares.get(lease_id, 0)
            if kept is not None and (kept[1], kept[2]) == (share, downed):
                continue
            if kept is not None:
                out.append(_degradation(lease_id, kept, lo))
                del open_spans[lease_id]
            if share:
                open_spans[lease_id] = (lo, share, downed, cause)
    for lease_id, kept in open_spans.items():
        out.append(_degradation(lease_id, kept, times[-1]))
    return out


def _named(nodes: Sequence[str]) -> str:
    """The nodes down, the first :data:`NAMED` by name (evidence stays readable)."""
    shown = ", ".join(nodes[:NAMED])
    return shown if len(nodes) <= NAMED else f"{shown} and {len(nodes) - NAMED} more nodes"


def _degradation(
    lease_id: str, kept: tuple[datetime, int, tuple[str, ...], str], end: datetime
) -> Degradation:
    start, share, _, cause = kept
    return Degradation(f"{lease_id}@{start.isoformat()}", lease_id, share, start, end, cause=cause)
