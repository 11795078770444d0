"""Compute reviews: training compute that reached a threshold of the packs, raised for an
officer (``compute_reviews``). A new table only (expand-only).

Revision ID: 0019
Revises: 0015
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gpulease.persistence.types import UtcDateTime

revision = "0019"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_reviews",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("subject_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("subject_name", sa.String(200), nullable=False),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("threshold_ref", sa.String(200), nullable=False),
        sa.Column("threshold_ops", sa.String(64), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("estimated_ops", sa.String(64), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(1000), nullable=False),
    )
    op.create_index("ix_compute_reviews_subject_key", "compute_reviews", ["subject_key"])
    op.create_index("ix_compute_reviews_subject_id", "compute_reviews", ["subject_id"])
    op.create_index("ix_compute_reviews_state", "compute_reviews", ["state"])


def downgrade() -> None:
    op.drop_table("compute_reviews")
