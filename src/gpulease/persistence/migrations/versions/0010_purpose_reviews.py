"""Purpose reviews: a declared purpose the end-use classifier sent to a compliance officer
(``purpose_reviews``), and the purposes an officer cleared for each tenant
(``tenants.cleared_purposes``), which admission reads beside the approved end uses.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gpulease.persistence.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purpose_reviews",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "opened_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column(
            "decided_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("decision_reason", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_purpose_reviews_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purpose_reviews")),
    )
    with op.batch_alter_table("purpose_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_purpose_reviews_tenant_id"), ["tenant_id"])
        batch_op.create_index(batch_op.f("ix_purpose_reviews_subject_id"), ["subject_id"])
        batch_op.create_index(batch_op.f("ix_purpose_reviews_state"), ["state"])
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cleared_purposes", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("cleared_purposes")
    with op.batch_alter_table("purpose_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purpose_reviews_state"))
        batch_op.drop_index(batch_op.f("ix_purpose_reviews_subject_id"))
        batch_op.drop_index(batch_op.f("ix_purpose_reviews_tenant_id"))
    op.drop_table("purpose_reviews")
