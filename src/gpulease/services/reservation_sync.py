"""Leases kept in step with their Slurm reservations, at the sites that mirror them.

Design. Like the node sync (``services.node_sync``, the model), the scheduler's leader runs
:meth:`ReservationSync.tick` every pass and a sync every ``reservation_sync_s`` seconds,
when its executor offers :class:`~gpulease.executors.base.LeaseReservations` (Slurm) and
some site opts in (``mirror_leases`` in ``GPULEASE_SLURM_SITES``). A sync is load, decide,
apply:

* load: the site's nodes (gpulease's state), Slurm's node states (one ``sinfo``), the
  leases that want a reservation (approved, scheduled or active, not ended) and the
  reservations Slurm holds (one ``scontrol show reservation``);
* decide: the pure :func:`gpulease.leasing.reservation_plan.plan` chooses whole Slurm nodes
  per lease (usable: every gpulease node on it up, and Slurm has it up), starting from the
  nodes each reservation holds now, so reservations stay put across syncs and leaders;
* apply: reservations of leases that no longer want one (cancelled, ended, suspended,
  rejected, gone, or covered by no whole node) are dropped first, then each wanted one is
  mirrored (``mirror_reservation``: created, or updated in what differs: nodes, window,
  users). Access: the tenant's Slurm users and/or account (``lease_users``,
  ``lease_account``) and gpulease's own ``runs_user``; a tenant with neither gets no
  reservation (a warning), as Slurm needs someone to let in.

Every change is audited (actor ``reservation-sync``, subject the lease, action
``lease.reservation.<what was done>``, with the nodes, window and coverage), and so is a
change of a lease's coverage (``lease.reservation.coverage``: a lease that whole nodes cover
short or rounded down, with the plan's sentence). :attr:`ReservationSync.covers` holds the
last plan for health reports.

Invariants. Never raises into the pass: a failing ``scontrol`` is logged and counted
(``failures``) and the next sync retries; one lease's failure does not stop the others'.
Idempotent: a sync of leases and reservations that agree changes nothing and audits
nothing. A suspended lease has no reservation: it guarantees nothing until resumed (it is
mirrored again then, on whatever whole nodes are free). A reservation of a lease the
database no longer has is dropped too (every reservation named with a site's prefix is
gpulease's).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpulease.domain.states import LeaseState, NodeState
from gpulease.executors.base import Executor, LeaseReservations, NodeStates
from gpulease.leasing.reservation_plan import Cover, Coverage, PlanLease, PlanNode, plan
from gpulease.persistence.tables import Lease, Node
from gpulease.services import audit
from gpulease.services.context import ServiceContext

__all__ = ["ACTOR", "MIRRORED_STATES", "Change", "ReservationSync"]

log = logging.getLogger("gpulease.reservation_sync")

ACTOR = "reservation-sync"
MIRRORED_STATES = frozenset({LeaseState.APPROVED, LeaseState.SCHEDULED, LeaseState.ACTIVE})


@dataclass(frozen=True, slots=True)
class Change:
    """One change a sync made to Slurm: ``what`` is created, updated, recreated, dropped."""

    lease_id: str
    what: str
    nodes: tuple[str, ...]  # Slurm nodes (none when dropped)


@dataclass(frozen=True, slots=True)
class _Wanted:
    lease: PlanLease
    tenant_id: str
    site_id: str


class ReservationSync:
    """The leader's reservation sync: :meth:`tick` every pass, a sync when due."""

    def __init__(self, ctx: ServiceContext, executor: Executor) -> None:
        self.ctx = ctx
        able = isinstance(executor, LeaseReservations) and isinstance(executor, NodeStates)
        self.executor: LeaseReservations | None = executor if able else None  # type: ignore[assignment]
        self.nodes: NodeStates | None = executor if able else None  # type: ignore[assignment]
        self.due: datetime | None = None  # None: at the next tick
        self.failures = 0  # syncs or single changes that failed (logged; retried next sync)
        self.covers: dict[str, Cover] = {}  # lease id -> its cover in the last plan
        self.lines: dict[str, str] = {}  # lease id -> its coverage as last audited

    def tick(self, now: datetime) -> list[Change]:
        """Sync when due; never raises (the pass goes on)."""
        if self.executor is None or not self.executor.mirrored_sites():
            return []
        if self.due is not None and now < self.due:
            return []
        self.due = now + timedelta(seconds=self.ctx.settings.reservation_sync_s)
        try:
            return self.sync(now)
        except Exception:
            self.failures += 1
            log.exception(
                "reservation sync failed; retried in %ss", self.ctx.settings.reservation_sync_s
            )
            return []

    def sync(self, now: datetime) -> list[Change]:
        """Reconcile every mirrored site's reservations with its leases; the changes made."""
        executor, states = self.executor, self.nodes
        assert executor is not None
        assert states is not None
        sites = executor.mirrored_sites()
        with self.ctx.db.transaction(write=False) as tx:
            rows = tx.all(tx.select(Node).where(Node.site_id.in_(sites)).order_by(Node.id))
            leases = tx.all(
                tx.select(Lease).where(
                    Lease.site_id.in_(sites),
                    Lease.state.in_([s.value for s in MIRRORED_STATES]),
                    Lease.end > now,
                )
            )
        ours = {n.id: (n.site_id, n.gpus, NodeState(n.state)) for n in rows}
        slurm_of = executor.reservable_nodes(ours)
        theirs = states.node_states(slurm_of)
        units: dict[str, dict[str, PlanNode]] = defaultdict(dict)  # site -> Slurm node
        members: dict[str, list[str]] = defaultdict(list)  # Slurm node -> gpulease ids
        for node_id, name in slurm_of.items():
            site_id, gpus, state = ours[node_id]
            up = state is NodeState.UP and theirs.get(node_id, (NodeState.DOWN, ""))[0] is (
                NodeState.UP
            )
            was = units[site_id].get(name, PlanNode(name, 0, True))
            units[site_id][name] = PlanNode(name, was.gpus + gpus, was.usable and up)
            members[f"{site_id}/{name}"].append(node_id)
        wanted = [
            _Wanted(PlanLease(x.id, x.gpus, x.start, x.end), x.tenant_id, x.site_id) for x in leases
        ]
        held = [r for r in executor.reservations() if r.site_id in sites]
        previous = {r.lease_id: list(r.nodes) for r in held}

        covers: dict[str, Cover] = {}
        for site_id in sites:
            mine = [w.lease for w in wanted if w.site_id == site_id]
            for cover in plan(units[site_id].values(), mine, previous):
                covers[cover.lease_id] = cover
        by_id = {w.lease.lease_id: w for w in wanted}
        access = {w.lease.lease_id: executor.lease_access(w.site_id, w.tenant_id) for w in wanted}
        keep = {lease_id for lease_id, cover in covers.items() if cover.nodes and access[lease_id]}
        self.covers = covers
        self.lines = {k: v for k, v in self.lines.items() if k in covers}
        made: list[Change] = []
        for reservation in held:  # drops first: they free nodes the others may take
            if reservation.lease_id in keep:
                continue
            made += self._apply(now, Change(reservation.lease_id, "dropped", ()), None, None)
        # reservations that exist first (they may shrink off nodes), new ones last
        order = sorted(keep, key=lambda lease_id: (lease_id not in previous, lease_id))
        for lease_id in order:
            w, cover = by_id[lease_id], covers[lease_id]
            change = Change(lease_id, "mirror", cover.nodes)
            node_ids = [m for name in cover.nodes for m in members[f"{w.site_id}/{name}"]]
            made += self._apply(now, change, w, node_ids)
        for lease_id, cover in covers.items():
            self._note_coverage(now, cover, bool(access[lease_id]), by_id[lease_id])
        return made

    # ------------------------------------------------------------------------ apply
    def _apply(
        self, now: datetime, change: Change, wanted: _Wanted | None, node_ids: list[str] | None
    ) -> list[Change]:
        executor = self.executor
        assert executor is not None
        try:
            if wanted is None:
                if not executor.drop_reservation(change.lease_id):
                    return []
                done = change
            else:
                access = executor.lease_access(wanted.site_id, wanted.tenant_id)
                lease = wanted.lease
                what = executor.mirror_reservation(
                    lease.lease_id,
                    node_ids or [],
                    lease.start,
                    lease.end,
                    users=access.users,
                    accounts=access.accounts,
                    flags=access.flags,
                    fresh=True,  # reservations() was read at the start of this sync
                )
                if what == "unchanged":
                    return []
                done = Change(change.lease_id, what, change.nodes)
        except Exception:  # one lease's trouble must not stop the others'
            self.failures += 1
            log.exception("reservation sync could not apply %s", change)
            return []
        log.info("reservation sync: %s", done)
        after: dict[str, object] = {"nodes": list(done.nodes)}
        if wanted is not None:
            cover = self.covers.get(wanted.lease.lease_id)
            after |= {
                "start": wanted.lease.start.isoformat(),
                "end": wanted.lease.end.isoformat(),
                "gpus": cover.gpus if cover else 0,
                "coverage": cover.coverage.value if cover else "",
            }
        reason = (
            "the lease no longer holds a reservation (cancelled, ended, suspended or covered "
            "by no whole node)"
            if wanted is None
            else f"the lease's reservation follows the lease ({done.what})"
        )
        self._audit(now, done.lease_id, f"lease.reservation.{done.what}", after, reason)
        return [done]

    def _note_coverage(self, now: datetime, cover: Cover, access: bool, wanted: _Wanted) -> None:
        """Audit and log a lease's coverage when it changes (not on every sync): a lease
        covered short or rounded down, or whose tenant has no one to let in."""
        line = cover.describe() if access else "no Slurm users or account for its tenant"
        healthy = access and cover.coverage is Coverage.FULL
        last = self.lines.get(cover.lease_id)
        self.lines[cover.lease_id] = line
        if line == last or (healthy and last is None):
            return
        if not healthy:
            log.warning("lease %s is not fully mirrored: %s", cover.lease_id, line)
        self._audit(
            now,
            cover.lease_id,
            "lease.reservation.coverage",
            {"nodes": list(cover.nodes), "gpus": cover.gpus, "coverage": cover.coverage.value},
            f"{wanted.site_id}: {line}",
        )

    def _audit(
        self, now: datetime, lease_id: str, action: str, after: dict[str, object], reason: str
    ) -> None:
        with self.ctx.db.transaction() as tx:
            audit.record(
                tx,
                at=now,
                actor=ACTOR,
                action=action,
                subject_type="lease",
                subject_id=lease_id,
                after=after,
                reason=audit.clip(reason),
            )
