"""Optimistic concurrency: an update on a row changed since it was read changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gpulease.domain.errors import Conflict
from gpulease.persistence.db import Database
from gpulease.persistence.tables import Node, Rack, Site

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _seed(db: Database) -> None:
    with db.transaction() as tx:
        tx.add(
            Site(id="s", name="S", country="ID", city="J", hardware="gb200-nvl72", created_at=T0)
        )
        tx.flush()
        tx.add(Rack(id="r", site_id="s", index=0, serial="R1", model="gb200-nvl72"))
        tx.flush()
        tx.add(Node(id="n", site_id="s", rack_id="r", index=0, serial="N1", gpus=4, state="up"))


def test_stale_versioned_update_is_a_conflict(db: Database) -> None:
    _seed(db)
    with db.transaction(write=False) as tx:
        assert tx.require(Node, "n", "node").version == 1

    def stale_write() -> None:
        with db.transaction() as tx:
            mine = tx.require(Node, "n", "node")  # read at version 1 (SQLite: no writer yet)
            if not db.is_sqlite:
                # another transaction commits a change in between (PostgreSQL, READ COMMITTED)
                with db.transaction() as other:
                    other.require(Node, "n", "node").state = "draining"
            else:
                # SQLite serialises writers; simulate the interleaving on a raw connection
                tx.session.connection().exec_driver_sql(
                    "UPDATE nodes SET state = 'draining', version = version + 1 WHERE id = 'n'"
                )
            mine.state = "down"

    with pytest.raises(Conflict, match="changed concurrently"):
        stale_write()
    with db.transaction(write=False) as tx:
        node = tx.require(Node, "n", "node")
    if db.is_sqlite:  # the whole transaction rolled back, the raw update included
        assert (node.state, node.version) == ("up", 1)
    else:  # the other transaction's change stands; ours changed nothing
        assert (node.state, node.version) == ("draining", 2)
