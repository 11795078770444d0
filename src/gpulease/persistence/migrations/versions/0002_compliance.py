"""Compliance: parties, ownership and control, list snapshots and entries, KYC cases,
decisions, API access records; the approval standing of tenants.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gpulease.persistence.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column(
            "first_seen", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "last_seen", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_records")),
        sa.UniqueConstraint("user_id", "ip", name="uq_access_user_ip"),
    )
    with op.batch_alter_table("access_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_records_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "list_snapshots",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column(
            "imported_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_snapshots")),
        sa.UniqueConstraint("source", "checksum", name="uq_list_snapshots_checksum"),
    )
    with op.batch_alter_table("list_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_list_snapshots_source"), ["source"], unique=False)

    op.create_table(
        "list_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("snapshot_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["list_snapshots.id"],
            name=op.f("fk_list_entries_snapshot_id_list_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_entries")),
    )
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_list_entries_snapshot_id"), ["snapshot_id"], unique=False
        )

    op.create_table(
        "parties",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        sa.Column("identifiers", sa.JSON(), nullable=False),
        sa.Column("addresses", sa.JSON(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_parties_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parties")),
    )
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parties_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "control_edges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["parties.id"], name=op.f("fk_control_edges_org_id_parties")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["parties.id"], name=op.f("fk_control_edges_person_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_control_edges")),
    )
    with op.batch_alter_table("control_edges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_control_edges_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_control_edges_person_id"), ["person_id"], unique=False)

    op.create_table(
        "kyc_cases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("party_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.String(length=1000), nullable=False),
        sa.Column("end_uses", sa.JSON(), nullable=False),
        sa.Column("end_use_statement", sa.Text(), nullable=False),
        sa.Column("identification", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("screening", sa.JSON(), nullable=True),
        sa.Column("policy_versions", sa.JSON(), nullable=False),
        sa.Column("lists_screened", sa.JSON(), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column(
            "submitted_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "screened_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "decided_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "expires_at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name=op.f("fk_kyc_cases_party_id_parties")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_kyc_cases_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kyc_cases")),
    )
    with op.batch_alter_table("kyc_cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_cases_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_kyc_cases_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "ownership_edges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("owned_id", sa.String(length=64), nullable=False),
        sa.Column("percent", gpulease.persistence.types.Money(length=40), nullable=False),
        sa.Column("since", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("until", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("evidence", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["owned_id"], ["parties.id"], name=op.f("fk_ownership_edges_owned_id_parties")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["parties.id"], name=op.f("fk_ownership_edges_owner_id_parties")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ownership_edges")),
    )
    with op.batch_alter_table("ownership_edges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ownership_edges_owned_id"), ["owned_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ownership_edges_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "kyc_decisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("officer_id", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("screening_round", sa.Integer(), nullable=False),
        sa.Column("at", gpulease.persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["kyc_cases.id"], name=op.f("fk_kyc_decisions_case_id_kyc_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kyc_decisions")),
    )
    with op.batch_alter_table("kyc_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_decisions_case_id"), ["case_id"], unique=False)

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("approval", sa.String(length=16), server_default="none", nullable=False)
        )
        batch_op.add_column(
            sa.Column("approval_reason", sa.String(length=1000), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("approved_end_uses", sa.JSON(), server_default="[]", nullable=False)
        )
        batch_op.add_column(sa.Column("approval_case_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column(
                "approval_expires_at",
                gpulease.persistence.types.UtcDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("approval_expires_at")
        batch_op.drop_column("approval_case_id")
        batch_op.drop_column("approved_end_uses")
        batch_op.drop_column("approval_reason")
        batch_op.drop_column("approval")

    with op.batch_alter_table("kyc_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_decisions_case_id"))

    op.drop_table("kyc_decisions")
    with op.batch_alter_table("ownership_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ownership_edges_owner_id"))
        batch_op.drop_index(batch_op.f("ix_ownership_edges_owned_id"))

    op.drop_table("ownership_edges")
    with op.batch_alter_table("kyc_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_cases_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_kyc_cases_state"))

    op.drop_table("kyc_cases")
    with op.batch_alter_table("control_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_control_edges_person_id"))
        batch_op.drop_index(batch_op.f("ix_control_edges_org_id"))

    op.drop_table("control_edges")
    with op.batch_alter_table("parties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parties_tenant_id"))

    op.drop_table("parties")
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_list_entries_snapshot_id"))

    op.drop_table("list_entries")
    with op.batch_alter_table("list_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_list_snapshots_source"))

    op.drop_table("list_snapshots")
    with op.batch_alter_table("access_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_records_tenant_id"))

    op.drop_table("access_records")
