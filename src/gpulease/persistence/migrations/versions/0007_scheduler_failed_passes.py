"""Scheduler heartbeat: the leading scheduler process's count of failed passes
(``scheduler_status.failed_passes``), so ``/health`` on an API-only process reports the
figure of the process that runs the passes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scheduler_status") as batch:
        batch.add_column(
            sa.Column("failed_passes", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduler_status") as batch:
        batch.drop_column("failed_passes")
