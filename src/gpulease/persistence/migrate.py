"""Schema migrations with Alembic, run from code (``gpulease init`` and the tests).

The migration scripts live in ``persistence/migrations`` and ship inside the package, so a
wheel carries them; no ``alembic.ini`` is needed. ``upgrade`` brings a database to the newest
schema; ``downgrade`` goes back (``base`` drops every table).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gpulease.persistence.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(db: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = db.engine
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    command.upgrade(_config(db), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    command.downgrade(_config(db), revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
