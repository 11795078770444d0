"""The ledger: positions and leaf hashes of audit records, the size counter, signed tree
heads and the signing keys' public halves (``persistence.tables``: ``LedgerEntry``,
``LedgerState``, ``LedgerHead``, ``LedgerKey``).

Audit records written before this revision are not in the ledger: ``gpulease ledger
verify`` names them as records outside it (an installation upgraded with history keeps it
as it was; the ledger starts at the upgrade).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gpulease.persistence.types import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("audit_id", name=op.f("uq_ledger_entries_audit_id")),
    )
    op.create_table(
        "ledger_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_state")),
    )
    op.create_table(
        "ledger_heads",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("signed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_ledger_heads")),
    )
    op.create_table(
        "ledger_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("valid_from", UtcDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_ledger_keys")),
    )


def downgrade() -> None:
    for name in ("ledger_keys", "ledger_heads", "ledger_state", "ledger_entries"):
        op.drop_table(name)
