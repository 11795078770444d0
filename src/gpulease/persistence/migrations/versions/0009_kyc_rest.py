"""Four-eyes and list reverts: who created each user (``users.created_by``), who could act
as each deciding officer (``kyc_decisions.controllers``), and list snapshots that repeat an
earlier one (``list_snapshots.reverts``; the same checksum may now be imported again, so the
unique constraint on ``(source, checksum)`` becomes a plain index).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("created_by", sa.String(length=64), nullable=False, server_default="")
        )
    with op.batch_alter_table("kyc_decisions") as batch:
        batch.add_column(sa.Column("controllers", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("list_snapshots") as batch:
        batch.add_column(sa.Column("reverts", sa.String(length=64), nullable=True))
        batch.drop_constraint("uq_list_snapshots_checksum", type_="unique")
        batch.create_index("ix_list_snapshots_source_checksum", ["source", "checksum"])


def downgrade() -> None:
    # a revert repeats an earlier snapshot's checksum: the unique constraint cannot come back
    # while both rows exist, so the repeats are removed first (their entries with them)
    op.execute(
        "DELETE FROM list_entries WHERE snapshot_id IN "
        "(SELECT id FROM list_snapshots WHERE reverts IS NOT NULL)"
    )
    op.execute("DELETE FROM list_snapshots WHERE reverts IS NOT NULL")
    with op.batch_alter_table("list_snapshots") as batch:
        batch.drop_index("ix_list_snapshots_source_checksum")
        batch.create_unique_constraint("uq_list_snapshots_checksum", ["source", "checksum"])
        batch.drop_column("reverts")
    with op.batch_alter_table("kyc_decisions") as batch:
        batch.drop_column("controllers")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("created_by")
