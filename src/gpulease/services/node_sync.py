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
  <node id>: <state>: <reason>``, and pushed again when gpulease's state or reason changes
  (the reasons are compared: Slurm shows a drained node later downed as ``drain``). When
  the operator brings the node up, a Slurm node whose reason names that node id is
  resumed. Naming the node id lets several gpulease nodes share one Slurm node (the test
  cluster does) without one's "up" resuming another's maintenance,
  and survives a change of leader (the memory is in Slurm).

A node Slurm has just resumed shows as not responding until its next ping; for
``RESUME_SETTLE_S`` after a resume it pushed, the sync does not pull such a state (no reason,
not responding) for any node: it cannot tell which gpulease nodes share the Slurm node.

Invariants (never flap): gpulease's maintenance wins over Slurm's states, up or not (a node
drained in both stays drained; nothing is pulled over it); gpulease's own pushes are never
pulled back; a change is made only where the two sides disagree, so a sync of agreeing
sides writes nothing. Errors (``sinfo`` failing, one node's change refused) are logged and
counted and never stop the pass; the next sync retries.
"""

from __future__ import annotations

import logging
import time
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
# Slurm has a node it resumes not responding ("idle*", no reason) until its next ping
# (every SlurmdTimeout / 3, 100 s by default): for this long after a resume gpulease pushed,
# such a state is not pulled, or the operator's "up" would flap to "draining" and back.
RESUME_SETTLE_S = 150.0


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
    node_id: str,
    ours: NodeState,
    our_reason: str,
    theirs: NodeState,
    their_reason: str,
    *,
    settling: bool = False,
) -> Move | None:
    """What one sync does for one node (module doc), or None when nothing is to be done.
    ``settling``: a resume was pushed lately, so a node Slurm has not responding without a
    reason (as it has a node it just resumed, until its next ping) is not pulled."""
    from_slurm = ours is not NodeState.UP and our_reason.startswith(FROM_SLURM)
    slurm_own = theirs is not NodeState.UP and not their_reason.startswith(PUSHED)
    if ours is NodeState.UP:
        if slurm_own and not (settling and not their_reason):
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
    # gpulease's maintenance: pushed unless Slurm has this very push or holds the node for
    # its own reasons. Compared by reason, which names the state: Slurm shows a drained
    # node it was then told is down as "drain" (DOWN+DRAIN), so states alone would differ.
    reason = f"{node_id}: {ours.value}: {our_reason}"
    if theirs is NodeState.UP or (
        pushed_by(node_id, their_reason) and their_reason != f"{PUSHED} {one_line(reason)}"
    ):
        return Move(node_id, False, ours, reason)
    return None


def one_line(text: str) -> str:
    """A reason as Slurm keeps it (``SlurmExecutor.set_node_state`` writes it so)."""
    return " ".join(text.split())[:200]


class NodeSync:
    """The scheduler's node sync: :meth:`tick` every pass, a sync every ``node_sync_s``."""

    def __init__(self, ctx: ServiceContext, executor: Executor) -> None:
        self.ctx = ctx
        self.nodes: NodeStates | None = executor if isinstance(executor, NodeStates) else None
        self.due: datetime | None = None  # None: at the next tick
        self.failures = 0  # syncs or single moves that failed (logged; retried next sync)
        # when this sync last resumed a Slurm node (monotonic: Slurm pings in real time)
        self.resumed_at: float | None = None

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
        settling = (
            self.resumed_at is not None and time.monotonic() - self.resumed_at < RESUME_SETTLE_S
        )
        for node_id, state, reason in ours:
            if node_id not in theirs:
                continue  # a node of no site the executor serves
            move = plan(node_id, state, reason, *theirs[node_id], settling=settling)
            if move is None:
                continue
            try:
                if move.pull:
                    inventory.set_node_state(
                        self.ctx, SYNC_PRINCIPAL, move.node_id, move.state, move.reason
                    )
                else:
                    nodes.set_node_state(move.node_id, move.state, move.reason)
                    if move.state is NodeState.UP:
                        self.resumed_at = time.monotonic()
            except Exception:  # one node's trouble must not stop the others' sync
                self.failures += 1
                log.exception("node sync could not apply %s", move)
                continue
            log.info("node sync: %s", move)
            made.append(move)
        return made
