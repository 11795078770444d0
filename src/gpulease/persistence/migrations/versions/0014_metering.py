"""Metering: whose capacity each allocation was, price plans, invoices and credit notes.

``gpu_allocations`` gains ``capacity``, ``lease_id``, ``lender_lease_id``, ``lender_tenant``
and ``claimed_at`` (NULL on rows written before: the metering reads those as unleased
borrowed capacity, ``services.metering``); new tables ``price_plan_versions``,
``plan_assignments``, ``invoices`` and ``credit_notes`` (``persistence.tables``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gpulease.persistence.types import Money, UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ALLOCATION_COLUMNS = ("capacity", "lease_id", "lender_lease_id", "lender_tenant", "claimed_at")


def upgrade() -> None:
    with op.batch_alter_table("gpu_allocations") as batch:
        batch.add_column(sa.Column("capacity", sa.String(16), nullable=True))
        batch.add_column(sa.Column("lease_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lender_lease_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lender_tenant", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_at", UtcDateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_gpu_allocations_lender_lease_id"), "gpu_allocations", ["lender_lease_id"]
    )
    op.create_table(
        "price_plan_versions",
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("effective_from", UtcDateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reserved_rate", Money(), nullable=False),
        sa.Column("on_demand_rate", Money(), nullable=False),
        sa.Column("borrowed_discount", Money(), nullable=False),
        sa.Column("lending_share", Money(), nullable=False),
        sa.Column("sla_wait_slo_s", sa.Integer(), nullable=False),
        sa.Column("sla_wait_multiple", Money(), nullable=False),
        sa.Column("sla_degraded_multiple", Money(), nullable=False),
        sa.Column("sla_cap_share", Money(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", "version", name=op.f("pk_price_plan_versions")),
    )
    op.create_table(
        "plan_assignments",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("assigned_by", sa.String(64), nullable=False),
        sa.Column("assigned_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_plan_assignments_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_plan_assignments")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("period_start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("period_end", UtcDateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("issued_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invoices_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("tenant_id", "period_start", "period_end", name="uq_invoices_period"),
    )
    op.create_index(op.f("ix_invoices_tenant_id"), "invoices", ["tenant_id"])
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("issued_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
    )
    op.create_index(op.f("ix_credit_notes_invoice_id"), "credit_notes", ["invoice_id"])
    op.create_index(op.f("ix_credit_notes_tenant_id"), "credit_notes", ["tenant_id"])


def downgrade() -> None:
    for name in ("credit_notes", "invoices", "plan_assignments", "price_plan_versions"):
        op.drop_table(name)
    op.drop_index(op.f("ix_gpu_allocations_lender_lease_id"), table_name="gpu_allocations")
    with op.batch_alter_table("gpu_allocations") as batch:
        for name in reversed(_ALLOCATION_COLUMNS):
            batch.drop_column(name)
