"""Alembic environment: runs migrations on the engine handed over by ``migrate.py``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from gpulease.persistence.tables import Base

engine: Engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
