"""Location attestation of nodes: signed statements from node agents, the executor's sweeps,
the alerts of nodes whose attestations stop or disagree, and the drain that follows.

Design. Two sources say where a node is (``inventory.attestation``):

* a **node agent** (``gpulease attest --node N --site S --key FILE``) signs a statement
  with the node's own Ed25519 key; an operator registered its public key for that node
  (:func:`register_key`). :func:`submit` verifies the signature against that key only,
  refuses a replay or a mis-dated statement, and records it: the node's last attestation
  (``node_attestations``) and an audit record holding the signed statement, so the ledger
  keeps evidence anyone can re-check with the public key;
* the **executor** (simulated, local) reports where it sees each node
  (``executors.base.LocationReports``); :class:`Attestor`, started by the scheduler loop every
  ``attestation_interval_s`` in a thread beside the pass (never inside it), records that,
  one audit record per site sweep.

:func:`check` (every sweep, and after each agent statement) assesses every node that is
expected to attest (it has a registered key or has attested): one attested at another site
than the inventory's, or not attested for ``attestation_stale_s``, gets an open alert
(``attestation_alerts``; listed to operator staff, officers included) and its node is drained
through ``inventory.set_node_state`` (reason ``attestation <kind>: ...``). It stays drained
until an operator clears the alert (:func:`clear_alert`), which brings the node back up
unless asked not to. A node never attested and without a key is not expected to attest (a
Slurm site without agents): the story says "never attested", nothing is drained.

Invariants: at most one open alert per node and kind; a forged or replayed statement
changes nothing; a public key is registered for one node at most (an agent holding one
node's key must not vouch for another: a stolen node's agent keeping a sibling "at
home"); every accepted statement, sweep, alert and clearance writes an audit record in its
transaction.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpulease.domain.access import Action, Principal, Role
from gpulease.domain.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from gpulease.domain.states import NodeState, transition
from gpulease.executors.base import Executor, LocationReports
from gpulease.inventory import attestation as core
from gpulease.inventory.attestation import AlertKind, AlertState, AttestationSource, Statement
from gpulease.ledger.heads import format_time
from gpulease.ledger.keys import key_id
from gpulease.persistence import attestation_store
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AttestationAlert, Node, NodeAttestation, NodeKey
from gpulease.services import audit, inventory
from gpulease.services.context import ServiceContext, new_id

__all__ = [
    "ACTOR",
    "Attestor",
    "check",
    "clear_alert",
    "list_alerts",
    "register_key",
    "submit",
    "sweep",
]

log = logging.getLogger("gpulease.attestation")
ACTOR = "attestation"
PRINCIPAL = Principal(ACTOR, Role.OPERATOR_ADMIN, None)
REASON_PREFIX = "attestation "


def _node(tx: Tx, ref: str) -> Node:
    node = tx.get(Node, ref)
    if node is None:
        node = tx.first(tx.select(Node).where(Node.serial == ref))
    if node is None:
        raise NotFound(f"no node {ref!r}", node_id=ref)
    return node


# ------------------------------------------------------------------------- keys
def register_key(ctx: ServiceContext, actor: Principal, node_ref: str, public_key: str) -> NodeKey:
    """Register (or replace) the public key a node's agent signs with; operator-admins. A key
    registered for another node is a conflict (module doc)."""
    actor.scope(Action.CUSTODY_RECORD)
    raw = core.public_key_from_hex(public_key)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        node = _node(tx, node_ref.strip())
        tx.lock("attestation:keys")  # two registrations of one key never both pass
        holder = tx.first(
            tx.select(NodeKey).where(NodeKey.public_key == raw.hex(), NodeKey.node_id != node.id)
        )
        if holder is not None:  # its agent could sign for this node too
            raise Conflict(
                "this key is registered for another node; each node's agent has a key of its "
                "own, or one node's agent could vouch for another",
                field="public_key",
            )
        row = tx.get(NodeKey, node.id)
        before = None if row is None else {"key_id": row.key_id}
        if row is None:
            row = NodeKey(node_id=node.id, registered_at=now, registered_by=actor.user_id)
            tx.add(row)
        row.public_key = raw.hex()
        row.key_id = key_id(raw)
        row.registered_at = now
        row.registered_by = actor.user_id
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="attestation.key",
            subject_type="node",
            subject_id=node.id,
            before=before,
            after={"key_id": row.key_id, "public_key": row.public_key},
        )
    return row


# ------------------------------------------------------------------ agent statements
def submit(ctx: ServiceContext, statement: dict[str, object], signature: str) -> NodeAttestation:
    """Accept a node agent's signed statement (module doc). A signature that does not verify
    against the node's registered key (or a node with no key) is ``unauthenticated``; a
    replayed or mis-dated statement is ``invalid_request``."""
    parsed = Statement.from_dict(statement)
    now = ctx.now()
    skew = timedelta(seconds=ctx.settings.attestation_skew_s)
    refused = Unauthenticated(
        "the statement's signature does not verify against the key registered for "
        f"node {parsed.node_id!r}"
    )
    # checked first in a read: a forged or replayed statement never takes the write lock
    with ctx.db.transaction(write=False) as tx:
        key = tx.get(NodeKey, parsed.node_id)
        public = None if key is None else key.public_key
        seen = tx.get(NodeAttestation, parsed.node_id)
        seen_at = None if seen is None else seen.at
    if public is None or not core.signature_valid(bytes.fromhex(public), parsed, signature):
        raise refused
    core.check_freshness(parsed, seen_at, now, skew)
    with ctx.db.transaction() as tx:
        tx.lock(f"attestation:{parsed.node_id}")
        key = tx.get(NodeKey, parsed.node_id)
        if key is None or key.public_key != public:  # replaced since it was read
            raise refused
        last = tx.get(NodeAttestation, parsed.node_id)
        core.check_freshness(parsed, last.at if last is not None else None, now, skew)
        row = _seen(tx, last, parsed.node_id, parsed.site_id, parsed.at, now)
        row.source = AttestationSource.AGENT.value
        row.key_id = key.key_id
        row.nonce = parsed.nonce
        row.signature = signature
        audit.record(
            tx,
            at=now,
            actor=f"node:{parsed.node_id}",
            action="attestation.accept",
            subject_type="node",
            subject_id=parsed.node_id,
            after={
                "statement": parsed.as_dict(),
                "signature": signature,
                "key_id": key.key_id,
            },
        )
    try:  # accepted whatever happens next; the scheduler's periodic check catches up
        check(ctx, now, nodes=[parsed.node_id])
    except Exception:
        log.exception("checking node %s after its attestation failed", parsed.node_id)
    return row


def _seen(
    tx: Tx, row: NodeAttestation | None, node_id: str, site_id: str, at: datetime, now: datetime
) -> NodeAttestation:
    if row is None:
        row = NodeAttestation(node_id=node_id, first_at=at, key_id="", nonce="", signature="")
        tx.add(row)
    row.site_id = site_id
    row.at = at
    row.received_at = now
    return row


# ------------------------------------------------------------------- executor sweep
def sweep(ctx: ServiceContext, reports: LocationReports, now: datetime) -> int:
    """Record where the executor sees every node (one audit record per site); returns the
    number of nodes attested (a node with an agent key is left to its agent)."""
    with ctx.db.transaction(write=False) as tx:
        recorded = {n.id: n.site_id for n in tx.all(tx.select(Node))}
    seen = {n: s for n, s in reports.locations(recorded).items() if n in recorded}
    if not seen:
        return 0
    with ctx.db.transaction() as tx:
        written = attestation_store.refresh(tx, seen, now)
        by_site: dict[str, Counter[str]] = {}
        for node_id, site_id in seen.items():
            by_site.setdefault(recorded[node_id], Counter())[site_id] += 1
        for site_id, counts in sorted(by_site.items()):
            audit.record(
                tx,
                at=now,
                actor=ACTOR,
                action="attestation.sweep",
                subject_type="site",
                subject_id=site_id,
                after={"seen_at": dict(sorted(counts.items())), "at": format_time(now)},
            )
    return written


# ----------------------------------------------------------------------- alerts
def check(ctx: ServiceContext, now: datetime, *, nodes: list[str] | None = None) -> list[str]:
    """Open the alerts due and drain their nodes (module doc); returns the new alerts' ids."""
    stale_after = timedelta(seconds=ctx.settings.attestation_stale_s)
    opened: list[tuple[str, str]] = []  # (alert id, node id)
    with ctx.db.transaction() as tx:
        # one check at a time (the scheduler's, an API process's after a statement): two
        # must not both find a node without its alert and open two
        tx.lock("attestation:check")
        rows = attestation_store.sightings(tx, nodes)
        open_alerts = attestation_store.open_alerts(tx, nodes)
        cleared = attestation_store.last_cleared(tx, nodes)
        open_now = {(a.node_id, a.kind) for a in open_alerts}
        site_of = {row.node_id: row.recorded_site for row in rows}
        sightings = [
            core.NodeSighting(
                node_id=row.node_id,
                recorded_site=row.recorded_site,
                since=min(m for m in (row.first_at, row.key_registered_at) if m is not None),
                last_at=row.last_at,
                last_site=row.last_site,
                cleared_stale=cleared.get((row.node_id, AlertKind.STALE.value)),
                cleared_mismatch=cleared.get((row.node_id, AlertKind.MISMATCH.value)),
            )
            for row in rows
        ]
        for finding in core.assess(sightings, now, stale_after):
            if (finding.node_id, finding.kind.value) in open_now:
                continue
            alert = AttestationAlert(
                id=new_id("alert"),
                node_id=finding.node_id,
                site_id=site_of[finding.node_id],
                kind=finding.kind.value,
                state=AlertState.OPEN.value,
                detail=audit.clip(finding.detail),
                opened_at=now,
                cleared_by="",
                clear_reason="",
            )
            tx.add(alert)
            open_alerts.append(alert)
            audit.record(
                tx,
                at=now,
                actor=ACTOR,
                action="attestation.alert",
                subject_type="node",
                subject_id=finding.node_id,
                after={"alert": alert.id, "kind": alert.kind, "detail": alert.detail},
                reason=finding.detail,
            )
            opened.append((alert.id, finding.node_id))
            open_now.add((finding.node_id, finding.kind.value))
        # every node with an open alert is kept out of new work (repairs a drain that failed,
        # or an operator bringing the node up without clearing the alert)
        due = {a.node_id: f"{REASON_PREFIX}{a.kind}: {a.detail}" for a in open_alerts}
        states = attestation_store.node_states(tx, sorted(due))
        to_drain = {n: why for n, why in due.items() if states.get(n) == NodeState.UP.value}
    for node_id, reason in sorted(to_drain.items()):
        try:
            inventory.set_node_state(ctx, PRINCIPAL, node_id, NodeState.DRAINING, reason)
        except Exception:  # the next check drains it again
            log.exception("could not drain node %s for its attestation alert", node_id)
    return [alert_id for alert_id, _node in opened]


def list_alerts(
    ctx: ServiceContext, actor: Principal, *, state: str | None = None, limit: int = 500
) -> list[AttestationAlert]:
    """Alerts newest first, for operator staff (officers included)."""
    actor.scope(Action.CUSTODY_READ)
    if not 1 <= limit <= 10_000:
        raise InvalidRequest("limit must be between 1 and 10000", field="limit")
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(AttestationAlert).order_by(
            AttestationAlert.opened_at.desc(), AttestationAlert.id
        )
        if state is not None:
            try:
                query = query.where(AttestationAlert.state == AlertState(state).value)
            except ValueError:
                raise InvalidRequest("state is open or cleared", field="state") from None
        return tx.all(query.limit(limit))


@dataclass(frozen=True, slots=True)
class Cleared:
    alert: AttestationAlert
    node_state: str


def clear_alert(
    ctx: ServiceContext, actor: Principal, alert_id: str, reason: str, *, resume: bool = True
) -> Cleared:
    """An operator decides an open alert: it is cleared and, with ``resume`` and no other
    open alert on the node, the node drained for it comes back up."""
    actor.scope(Action.CUSTODY_RECORD)
    if not reason.strip():
        raise InvalidRequest("say why the alert is cleared", field="reason")
    now = ctx.now()
    with ctx.db.transaction() as tx:
        alert = tx.require(AttestationAlert, alert_id, "alert", for_update=True)
        alert.state = transition(
            core.ALERT_TRANSITIONS,
            AlertState(alert.state),
            AlertState.CLEARED,
            subject=f"alert {alert_id}",
        ).value
        alert.cleared_at = now
        alert.cleared_by = actor.user_id
        alert.clear_reason = audit.clip(reason)
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="attestation.clear",
            subject_type="node",
            subject_id=alert.node_id,
            before={"alert": alert.id, "state": AlertState.OPEN.value},
            after={"alert": alert.id, "state": alert.state, "resume": resume},
            reason=reason,
        )
        others = tx.first(
            tx.select(AttestationAlert).where(
                AttestationAlert.node_id == alert.node_id,
                AttestationAlert.state == AlertState.OPEN.value,
                AttestationAlert.id != alert.id,
            )
        )
        node = tx.require(Node, alert.node_id, "node")
        bring_up = (
            resume
            and others is None
            and node.state == NodeState.DRAINING.value
            and node.state_reason.startswith(REASON_PREFIX)
        )
    state = node.state
    if bring_up:
        node, _hit = inventory.set_node_state(
            ctx, actor, alert.node_id, NodeState.UP, f"attestation alert cleared: {reason}"
        )
        state = node.state
    return Cleared(alert, state)


# ----------------------------------------------------------- the scheduler's hook
class Attestor:
    """The scheduler loop's attestation: :meth:`tick` every pass starts a sweep and a check
    every ``attestation_interval_s``, in a thread of its own.

    The sweep and the check read every node (tens of milliseconds on the demo site, more on
    a bigger one); run inside the pass they would make one pass a minute that much longer.
    So the pass only notes that one is due and starts it beside itself: the work writes in
    its own transactions, and a drain it decides reaches the passes through the change feed
    like an operator's. At most one runs at a time: when the previous one is still running,
    the due one is skipped (the next interval covers it). :meth:`wait` waits for the one
    under way (tests, and a scheduler stopping)."""

    def __init__(self, ctx: ServiceContext, executor: Executor) -> None:
        self.ctx = ctx
        self.reports: LocationReports | None = (
            executor if isinstance(executor, LocationReports) else None
        )
        self.due: datetime | None = None
        self.failures = 0
        self.skipped = 0
        self.alerts: list[str] = []  # the alerts opened by the last sweep and check
        self._worker: threading.Thread | None = None

    def tick(self, now: datetime) -> bool:
        """Start a sweep and a check when due; never raises (the pass goes on). Returns True
        if one was started. The first sweep comes one interval after the first pass: a new
        leader's first pass has more urgent work, and the sweep always precedes the check,
        so a leader back after a long gap never takes its own silence for the nodes'."""
        interval = timedelta(seconds=self.ctx.settings.attestation_interval_s)
        if self.due is None:
            self.due = now + interval
            return False
        if now < self.due:
            return False
        self.due = now + interval
        if self._worker is not None and self._worker.is_alive():
            self.skipped += 1
            log.warning("attestation sweep still running after an interval; this one skipped")
            return False
        self._worker = threading.Thread(
            target=self._sweep_and_check, args=(now,), name="attestation", daemon=True
        )
        self._worker.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the sweep and check under way, if any (True: none is running now)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def _sweep_and_check(self, now: datetime) -> None:
        try:
            if self.reports is not None:
                sweep(self.ctx, self.reports, now)
            self.alerts = check(self.ctx, now)
        except Exception:
            self.failures += 1
            log.exception("attestation sweep failed; retried in the next interval")
