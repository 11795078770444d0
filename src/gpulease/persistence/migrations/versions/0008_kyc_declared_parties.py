"""KYC cases as graphs: each case records the parties it declared
(``kyc_cases.declared_parties``: the submitter's ref -> the party's id), so that every declared
party is screened, linked to the tenant's chain or not. NULL for cases submitted before: their
parties are found by walking the chain, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kyc_cases") as batch:
        batch.add_column(sa.Column("declared_parties", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kyc_cases") as batch:
        batch.drop_column("declared_parties")
