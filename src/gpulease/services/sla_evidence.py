"""SLA evidence read from the database: guarantee waits and degraded leased capacity.

Waits (:func:`read_waits`): runs that started after a guarantee claim (the ``claimed_at``
their allocation rows carry) and queued jobs still claiming (``jobs.guaranteed_since``).

Degradations (:func:`read_degradations`, load and call the pure core). Every node state
change goes through ``inventory.set_node_state`` (an operator's, or the Slurm sync's under
its own actor), which writes a ``node.state`` audit record: its ``at``, ``before`` and
``after`` states are the history of node states with times, kept as long as the audit
trail (which the ledger seals). :func:`read_degradations` reads, for the sites of the
leases of the tenants asked, the billed leases there (every tenant's: a shortfall is shared
among all of a site's leases), the site's nodes and their ``node.state`` records up to the
period's end, and hands them to ``metering.degradation``: a node's state before its first
record is that record's ``before`` (a node without records has its current state
throughout).

Bounds: the allocation rows and the audit records are read by key in pages of :data:`PAGE`
(columns only, never the rows' objects); the node changes are folded into each node's down
spans as they come: memory is one entry per node and its spans in the period, whatever the
length of the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from gpulease.domain.states import JobState, NodeState
from gpulease.metering.degradation import DownHistory, SiteLease, SiteNode, degradations
from gpulease.metering.periods import Period
from gpulease.metering.rating import Degradation, GuaranteeWait
from gpulease.metering.usage import CapacityClass
from gpulease.persistence import metering_reads as reads
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Job, Lease

PAGE = 2000


def read_waits(
    tx: Tx,
    period: Period,
    tenants: Sequence[str] | None,
    billed_states: Iterable[str],
    page: int = PAGE,
) -> list[GuaranteeWait]:
    """Demand within a guarantee that waited into the period: runs that started after a
    claim (their rows' ``claimed_at``, read by key a page at a time), and queued jobs still
    claiming."""
    runs: dict[tuple[str, datetime], tuple[datetime | None, str | None, int]] = {}
    after = 0
    guaranteed = CapacityClass.GUARANTEED.value
    while True:
        rows = reads.claimed_page(tx, period.start, period.end, tenants, guaranteed, after, page)
        for row in rows:
            key = (row.job_id, row.start)
            first = runs.get(key)
            runs[key] = (
                (row.claimed_at, row.lease_id, 1) if first is None else (*first[:2], first[2] + 1)
            )
        if len(rows) < page:
            break
        after = rows[-1].id
    waits = []
    for (job_id, start), (claimed_at, lease_id, gpus) in sorted(runs.items()):
        if claimed_at is None or lease_id is None:
            continue
        waits.append(
            GuaranteeWait(f"{job_id}@{start.isoformat()}", lease_id, gpus, claimed_at, start)
        )
    queued = tx.select(Job).where(
        Job.state == JobState.QUEUED.value,
        Job.guaranteed_since.is_not(None),
        Job.guaranteed_since < period.end,
    )
    if tenants is not None:
        queued = queued.where(Job.tenant_id.in_(list(tenants)))
    jobs = tx.all(queued.order_by(Job.id))
    if jobs:
        leases = tx.all(
            tx.select(Lease)
            .where(
                Lease.tenant_id.in_(sorted({j.tenant_id for j in jobs})),
                Lease.state.in_(sorted(billed_states)),
            )
            .order_by(Lease.start, Lease.id)
        )
        for job in jobs:
            since = job.guaranteed_since
            assert since is not None
            lease = next(
                (x for x in leases if x.tenant_id == job.tenant_id and x.start <= since < x.end),
                None,
            )
            if lease is not None:
                waits.append(GuaranteeWait(f"{job.id}@queued", lease.id, job.gpus, since, None))
    return waits


def _down(state: Any) -> bool | None:
    """Whether a recorded ``{"state": ...}`` is DOWN (None: not a state)."""
    if not isinstance(state, dict):
        return None
    value = state.get("state")
    return None if value is None else value == NodeState.DOWN.value


def read_degradations(
    tx: Tx,
    period: Period,
    tenants: Sequence[str] | None,
    billed_states: Iterable[str],
    page: int = PAGE,
) -> list[Degradation]:
    """Degraded spans of the leases of ``tenants`` (None: every tenant) in ``period``."""
    rows = reads.billed_leases(tx, period.start, period.end, billed_states)
    wanted = None if tenants is None else set(tenants)
    sites = sorted({r.site_id for r in rows if wanted is None or r.tenant_id in wanted})
    if not sites:
        return []
    leases = [
        SiteLease(r.id, r.site_id, r.gpus, r.start, r.end) for r in rows if r.site_id in sites
    ]
    node_rows = reads.site_nodes(tx, sites)
    nodes = [SiteNode(r.id, r.site_id, r.gpus) for r in node_rows]
    history = DownHistory(period)
    seen: set[str] = set()
    ids = [n.id for n in nodes]
    for i in range(0, len(ids), reads.CHUNK):
        chunk = ids[i : i + reads.CHUNK]
        after = 0
        while True:
            batch = reads.node_change_page(tx, chunk, period.end, after, page)
            for r in batch:
                if r.subject_id not in seen:
                    seen.add(r.subject_id)
                    history.initial(r.subject_id, bool(_down(r.before)))
                down = _down(r.after)
                if down is not None:
                    history.change(r.subject_id, r.at, down)
            if len(batch) < page:
                break
            after = batch[-1].id
    unseen = [r for r in node_rows if r.id not in seen]
    firsts = reads.first_node_states(tx, [r.id for r in unseen])
    for r in unseen:  # no change before the period's end: the state before its first one,
        first = firsts.get(r.id)  # or, never changed, its state now
        down = _down(first) if first is not None else r.state == NodeState.DOWN.value
        history.initial(r.id, bool(down))
    found = degradations(nodes, history.spans(), leases, period)
    if wanted is None:
        return found
    mine = {r.id for r in rows if r.tenant_id in wanted}
    return [d for d in found if d.lease_id in mine]
