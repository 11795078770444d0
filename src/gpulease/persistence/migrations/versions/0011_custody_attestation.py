"""Chain of custody and location attestation: a custody event's sale parties and papers
(``custody_events``: seller, buyer, invoice, export licence or licence exception, end-user
statement, note, who recorded it and when), node agents' public keys (``node_keys``), each
node's last attestation (``node_attestations``) and the alerts of nodes whose attestations
stopped or disagree with their site (``attestation_alerts``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gpulease.persistence.types import UtcDateTime as _Utc


def UtcDateTime() -> _Utc:  # noqa: N802 (a column type, named as the models name it)
    return _Utc(timezone=True)


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TEXTS = ("from_party", "to_party", "invoice", "export_authorization", "end_user_statement")


def upgrade() -> None:
    with op.batch_alter_table("custody_events") as batch:
        for name in TEXTS:
            batch.add_column(sa.Column(name, sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("note", sa.String(500), nullable=False, server_default=""))
        batch.add_column(sa.Column("recorded_by", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("recorded_at", UtcDateTime(), nullable=True))
    op.create_table(
        "node_keys",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_node_keys_node_id_nodes")),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_keys")),
    )
    op.create_table(
        "node_attestations",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("first_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_attestations_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_attestations")),
    )
    op.create_table(
        "attestation_alerts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("cleared_at", UtcDateTime(), nullable=True),
        sa.Column("cleared_by", sa.String(64), nullable=False),
        sa.Column("clear_reason", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_attestation_alerts_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attestation_alerts")),
    )
    with op.batch_alter_table("attestation_alerts") as batch:
        batch.create_index(batch.f("ix_attestation_alerts_node_id"), ["node_id"], unique=False)
        batch.create_index(batch.f("ix_attestation_alerts_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attestation_alerts") as batch:
        batch.drop_index(batch.f("ix_attestation_alerts_state"))
        batch.drop_index(batch.f("ix_attestation_alerts_node_id"))
    op.drop_table("attestation_alerts")
    op.drop_table("node_attestations")
    op.drop_table("node_keys")
    with op.batch_alter_table("custody_events") as batch:
        for name in ("recorded_at", "recorded_by", "note", *reversed(TEXTS)):
            batch.drop_column(name)
