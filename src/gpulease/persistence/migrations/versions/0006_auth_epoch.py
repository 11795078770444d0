"""Authentication epoch (``auth_epoch``): one counter bumped with every revocation, disable,
enable or role change, so API processes may cache checked tokens and still see a revocation
on the very next request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_epoch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_epoch")),
    )
    # no row yet: a missing row reads as epoch 0, and the first bump writes it


def downgrade() -> None:
    op.drop_table("auth_epoch")
