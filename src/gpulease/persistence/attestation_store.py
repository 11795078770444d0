"""Set-at-a-time reads and writes of node attestations (``services.attestation``).

The executor's sweep re-attests every node of a site each interval: done row by row through
the ORM, that is hundreds of UPDATEs per sweep. Here a sweep is one UPDATE per site seen for
the nodes already attested there (the usual case), and an insert or a per-row change only
for the few nodes that are new or moved. The check reads the columns it needs as tuples.

Invariant: a node with a registered agent key is never written by a sweep (its signed
statements are the evidence; the executor's word must not hide an agent falling silent).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select, update

from gpulease.persistence.bulk import among, chunks, insert_rows
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AttestationAlert, Node, NodeAttestation, NodeKey

EXECUTOR = "executor"


def refresh(tx: Tx, seen: Mapping[str, str], now: datetime) -> int:
    """Record that the executor sees each node of ``seen`` (node id -> site) now; returns the
    number of nodes written (nodes with an agent key are left out)."""
    keyed = set(tx.session.scalars(select(NodeKey.node_id)))
    wanted = {node: site for node, site in seen.items() if node not in keyed}
    present: dict[str, str] = {}
    for part in chunks(sorted(wanted)):
        for node_id, site_id in tx.session.execute(
            select(NodeAttestation.node_id, NodeAttestation.site_id).where(
                among(tx, NodeAttestation.node_id, part)
            )
        ):
            present[node_id] = site_id
    same: dict[str, list[str]] = {}
    for node_id, site_id in wanted.items():
        if present.get(node_id) == site_id:
            same.setdefault(site_id, []).append(node_id)
    values = {"at": now, "received_at": now, "source": EXECUTOR}
    values |= {"key_id": "", "nonce": "", "signature": ""}
    for site_id, nodes in same.items():
        for part in chunks(sorted(nodes)):
            tx.session.execute(
                update(NodeAttestation)
                .where(among(tx, NodeAttestation.node_id, part), NodeAttestation.site_id == site_id)
                .values(**values),
                execution_options={"synchronize_session": False},
            )
    moved = [n for n in wanted if n in present and present[n] != wanted[n]]
    for part in chunks(sorted(moved)):
        for row in tx.session.scalars(
            select(NodeAttestation).where(among(tx, NodeAttestation.node_id, part))
        ):
            row.site_id = wanted[row.node_id]
            row.at = row.received_at = now
            row.source, row.key_id, row.nonce, row.signature = EXECUTOR, "", "", ""
    new = [
        {"node_id": n, "site_id": wanted[n], "first_at": now, **values}
        for n in sorted(wanted)
        if n not in present
    ]
    insert_rows(tx, NodeAttestation, new)
    return len(wanted)


class Sighting(NamedTuple):
    node_id: str
    recorded_site: str
    node_state: str
    first_at: datetime | None
    last_at: datetime | None
    last_site: str | None
    key_registered_at: datetime | None


def sightings(tx: Tx, node_ids: list[str] | None = None) -> list[Sighting]:
    """Every node expected to attest (it has attested, or has an agent key), with what the
    check needs; ``node_ids``: only these."""
    query = (
        select(
            Node.id,
            Node.site_id,
            Node.state,
            NodeAttestation.first_at,
            NodeAttestation.at,
            NodeAttestation.site_id,
            NodeKey.registered_at,
        )
        .outerjoin(NodeAttestation, NodeAttestation.node_id == Node.id)
        .outerjoin(NodeKey, NodeKey.node_id == Node.id)
        .where((NodeAttestation.node_id.is_not(None)) | (NodeKey.node_id.is_not(None)))
        .order_by(Node.id)
    )
    if node_ids is not None:
        query = query.where(Node.id.in_(node_ids))
    return [Sighting(*row) for row in tx.session.execute(query)]


def node_states(tx: Tx, node_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in chunks(sorted(node_ids)):
        for node_id, state in tx.session.execute(
            select(Node.id, Node.state).where(among(tx, Node.id, part))
        ):
            found[node_id] = state
    return found


def open_alerts(tx: Tx, node_ids: list[str] | None = None) -> list[AttestationAlert]:
    query = select(AttestationAlert).where(AttestationAlert.state == "open")
    if node_ids is not None:
        query = query.where(AttestationAlert.node_id.in_(node_ids))
    return list(tx.session.scalars(query.order_by(AttestationAlert.opened_at, AttestationAlert.id)))


def last_cleared(tx: Tx, node_ids: list[str] | None = None) -> dict[tuple[str, str], datetime]:
    """(node id, alert kind) -> when an operator last cleared such an alert."""
    query = (
        select(
            AttestationAlert.node_id, AttestationAlert.kind, func.max(AttestationAlert.cleared_at)
        )
        .where(AttestationAlert.cleared_at.is_not(None))
        .group_by(AttestationAlert.node_id, AttestationAlert.kind)
    )
    if node_ids is not None:
        query = query.where(AttestationAlert.node_id.in_(node_ids))
    return {(node, kind): at for node, kind, at in tx.session.execute(query) if at is not None}
