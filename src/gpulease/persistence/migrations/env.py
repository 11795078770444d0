"""Alembic environment: runs migrations on the engine handed over by ``migrate.py``.

SQLite alters a table by copying it (batch mode); with foreign keys enforced, dropping the
old copy of a referenced table fails. As Alembic advises, foreign keys are switched off for
the migration (a PRAGMA that only takes effect outside a transaction, hence on the raw
connection before anything begins) and switched back on afterwards.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from gpulease.persistence.tables import Base

engine: Engine = context.config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    if sqlite:
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
