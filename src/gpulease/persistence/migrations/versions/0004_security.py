"""Security: disabled users, token expiry and labels, expiring lease holds, and scheduler
leadership as a lease with a heartbeat (``leader_leases``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gpulease.persistence.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, gpulease.persistence.types.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(_when("disabled_at"))
        batch.add_column(
            sa.Column("disabled_reason", sa.String(500), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("disabled_by", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(_when("expires_at"))
        batch.add_column(sa.Column("label", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("created_by", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("revoked_by", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("leases") as batch:
        batch.add_column(_when("hold_expires_at"))
    op.create_table(
        "leader_leases",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        _when("acquired_at", nullable=False),
        _when("renewed_at", nullable=False),
        _when("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leader_leases")),
    )


def downgrade() -> None:
    op.drop_table("leader_leases")
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("hold_expires_at")
    with op.batch_alter_table("api_tokens") as batch:
        for column in ("revoked_by", "created_by", "label", "expires_at"):
            batch.drop_column(column)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_by")
        batch.drop_column("disabled_reason")
        batch.drop_column("disabled_at")
