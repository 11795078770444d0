"""Node states kept in step between gpulease and the executor's workload manager (Slurm).

Design. An executor that offers :class:`~gpulease.executors.base.NodeStates` (Slurm) is
compared with the database every ``node_sync_s`` seconds (not every pass: one ``sinfo``
per site), from the scheduler pass (:meth:`NodeSync.tick`). Each node is planned on its
own by :func:`plan`, a pure function of the two sides' (state, reason):

* **Slurm's own states** (its reason does not start with ``gpulease:``) are pulled: a node
  Slurm has down or draining that gpulease has up becomes so in gpulease through the
  operator's path (``inventory.set_node_state``: audited, actor ``slurm-sync``, a down
  node's running jobs requeued), with the reason ``slurm-sync: Slurm reports <state>:
  <Slurm's reason>``. That prefix is the memory of the cause: a node gpulease holds down or
  draining *because of Slurm* follows Slurm (draining -> down) and comes back up when Slurm
  has it up again.
* **gpulease's maintenance** (a node an operator drained or downed: any other reason) is
  pushed to Slurm (``scontrol update state=drain|down``) with the reason ``gpulease:
  <node id>: <reason>``; when the operator brings the node up, a Slurm node whose reason
  names that node id is resumed. Naming the node id lets several gpulease nodes share one
  Slurm node (the test cluster does) without one's "up" resuming another's maintenance,
  and survives a change of leader (the memory is in Slurm).

Invariants (never flap): gpulease's maintenance wins over Slurm's states, up or not (a node
drained in both stays drained; nothing is pulled over it); gpulease's own pushes are never
pulled back; a change is made only where the two sides disagree, so a sync of agreeing
sides writes nothing. Errors (``sinfo`` failing, one node's change refused) are logged and
counted and never stop the pass; the next sync retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpulease.domain.access import Principal, Role
from gpulease.domain.states import NODE_TRANSITIONS, NodeState
from gpulease.executors.base import Executor, NodeStates
from gpulease.persistence.tables import Node
from gpulease.services import inventory
from gpulease.services.context import ServiceContext

__all__ = ["ACTOR", "FROM_SLURM", "PUSHED", "Move", "NodeSync", "plan"]

log = logging.getLogger("gpulease.node_sync")

ACTOR = "slurm-sync"
SYNC_PRINCIPAL = Principal(ACTOR, Role.OPERATOR_ADMIN, None)
FROM_SLURM = "slurm-sync: "  # gpulease's reason of a state taken from Slurm
PUSHED = "gpulease:"  # how Slurm's reason of a state gpulease pushed starts (SlurmExecutor)


@dataclass(frozen=True, slots=True)
class Move:
    """One change of a sync: ``pull`` sets gpulease's node, else Slurm's."""

    node_id: str
    pull: bool
    state: NodeState
    reason: str


def pushed_by(node_id: str, slurm_reason: str) -> bool:
    """Whether Slurm's reason is gpulease's push for this very node."""
    return slurm_reason.startswith(f"{PUSHED} {node_id}:")


def plan(
    node_id: str, ours: NodeState, our_reason: str, theirs: NodeState, their_reason: str
) -> Move | None:
    """What one sync does for one node (module doc), or None when nothing is to be done."""
    from_slurm = ours is not NodeState.UP and our_reason.startswith(FROM_SLURM)
    slurm_own = theirs is not NodeState.UP and not their_reason.startswith(PUSHED)
    if ours is NodeState.UP:
        if slurm_own:
            why = f"{FROM_SLURM}Slurm reports {theirs.value}: {their_reason or 'no reason'}"
            return Move(node_id, True, theirs, why)
        if theirs is not NodeState.UP and pushed_by(node_id, their_reason):
            return Move(node_id, False, NodeState.UP, "back up in gpulease")
        return None
    if from_slurm:
        if theirs is NodeState.UP:
            return Move(node_id, True, NodeState.UP, f"{FROM_SLURM}Slurm reports the node up")
        if slurm_own and theirs is not ours and theirs in NODE_TRANSITIONS[ours]:
            why = f"{FROM_SLURM}Slurm reports {theirs.value}: {their_reason or 'no reason'}"
            return Move(node_id, True, theirs, why)
        return None
    # gpulease's maintenance: pushed unless Slurm agrees or holds the node for its own reasons
    if theirs is NodeState.UP or (theirs is not ours and pushed_by(node_id, their_reason)):
        return Move(node_id, False, ours, f"{node_id}: {our_reason or ours.value}")
    return None


class NodeSync:
    """The scheduler's node sync: :meth:`tick` every pass, a sync every ``node_sync_s``."""

    def __init__(self, ctx: ServiceContext, executor: Executor) -> None:
        self.ctx = ctx
        self.nodes: NodeStates | None = executor if isinstance(executor, NodeStates) else None
        self.due: datetime | None = None  # None: at the next tick
        self.failures = 0  # syncs or single moves that failed (logged; retried next sync)

    def tick(self, now: datetime) -> list[Move]:
        """Sync when due; never raises (the pass goes on)."""
        if self.nodes is None or (self.due is not None and now < self.due):
            return []
        self.due = now + timedelta(seconds=self.ctx.settings.node_sync_s)
        try:
            return self.sync(self.nodes)
        except Exception:
            self.failures += 1
            log.exception("node sync failed; retried in %ss", self.ctx.settings.node_sync_s)
            return []

    def sync(self, nodes: NodeStates) -> list[Move]:
        """Compare every node's state on both sides and make the moves; returns those made."""
        with self.ctx.db.transaction(write=False) as tx:
            ours = [
                (n.id, NodeState(n.state), n.state_reason)
                for n in tx.all(tx.select(Node).order_by(Node.id))
            ]
        theirs = nodes.node_states(node_id for node_id, _, _ in ours)
        made: list[Move] = []
        for node_id, state, reason in ours:
            if node_id not in theirs:
                continue  # a node of no site the executor serves
            move = plan(node_id, state, reason, *theirs[node_id])
            if move is None:
                continue
            try:
                if move.pull:
                    inventory.set_node_state(
                        self.ctx, SYNC_PRINCIPAL, move.node_id, move.state, move.reason
                    )
                else:
                    nodes.set_node_state(move.node_id, move.state, move.reason)
            except Exception:  # one node's trouble must not stop the others' sync
                self.failures += 1
                log.exception("node sync could not apply %s", move)
                continue
            log.info("node sync: %s", move)
            made.append(move)
        return made
