"""The scheduler's change feed (``scheduler_changes``): job and node changes, written in the
same transaction as the change, read by the leader to keep its state without a rebuild.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_changes",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_scheduler_changes")),
    )
    op.create_index(
        "ix_scheduler_changes_site_seq", "scheduler_changes", ["site_id", "seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_scheduler_changes_site_seq", table_name="scheduler_changes")
    op.drop_table("scheduler_changes")
