"""The ledger's sequencer: audit records wait in ``ledger_pending`` (their leaf hash fixed
in their own transaction, no position) until the sequencer gives them the next positions
(``persistence.ledger_store.sequence``), so writers no longer serialise on the counter row.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_pending",
        sa.Column("audit_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("queued_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_ledger_pending")),
    )


def downgrade() -> None:
    # entries still waiting are sequenced the old way: at the end, in audit id order
    op.execute(
        "INSERT INTO ledger_entries (position, audit_id, leaf_hash) "
        "SELECT (SELECT count(*) FROM ledger_entries) - 1 + "
        "(SELECT count(*) FROM ledger_pending q WHERE q.audit_id <= p.audit_id), "
        "p.audit_id, p.leaf_hash FROM ledger_pending p "
        "WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.audit_id = p.audit_id)"
    )
    op.execute(
        "INSERT INTO ledger_state (id, size) SELECT 1, 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM ledger_state WHERE id = 1)"
    )
    op.execute("UPDATE ledger_state SET size = (SELECT count(*) FROM ledger_entries)")
    op.drop_table("ledger_pending")
