"""Schema migrations with Alembic, run from code (``gpulease init`` and the tests).

The migration scripts live in ``persistence/migrations`` and ship inside the package, so a
wheel carries them; no ``alembic.ini`` is needed. ``upgrade`` brings a database to the newest
schema; ``downgrade`` goes back (``base`` drops every table).

Upgrades without downtime (docs/deployment.md). :data:`RELEASED` names the newest migration
of the last release: every migration after it must be *expand-only* (new tables, new
nullable or defaulted columns, new indexes; no drop, rename, retype or new NOT NULL without a
default on what exists), so that the released code keeps working on the new schema while
processes are replaced one at a time. ``tests/persistence/test_expand_only.py`` checks both
the migrations' operations and the released schema against the new one. Contracting (a
drop the new code no longer needs) waits for a release after the one that stopped using it,
and moves :data:`RELEASED` past it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gpulease.persistence.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
RELEASED = "0009"  # the newest migration of the last release (module doc)


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
