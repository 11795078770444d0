"""Sites as jurisdictions: a site's IANA time zone (``sites.timezone``) and, on a job, how
the control plane chose its site among several (``jobs.dispatch``, JSON).

Existing sites get their capital's zone for the countries listed below (a copy of
``compliance.countries.DEFAULT_TIMEZONES``), else ``UTC``. Existing jobs have no dispatch
record (they named their site or took the first one).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# a copy (migrations do not import code that may change): country -> the capital's zone
_ZONES = {
    "ID": "Asia/Jakarta",
    "MY": "Asia/Kuala_Lumpur",
    "SG": "Asia/Singapore",
    "TH": "Asia/Bangkok",
}


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dispatch", sa.JSON(), nullable=True))
    sites = sa.table("sites", sa.column("country", sa.String), sa.column("timezone", sa.String))
    for country, zone in _ZONES.items():
        op.execute(sites.update().where(sites.c.country == country).values(timezone=zone))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dispatch")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("timezone")
