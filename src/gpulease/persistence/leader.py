"""Leader election for the scheduler: exactly one process decides at a time.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a dedicated
connection. The database releases it when that connection ends, so when the leader process
dies (or its connection drops) another process's next ``acquire`` wins. Before every pass the
leader checks its connection is alive (``still_held``); if not, it stops deciding.

SQLite: one machine, one database file, so an exclusive ``flock`` on ``<db>.leader`` does the
same job between processes; the kernel releases it when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from gpulease.persistence.db import Database, advisory_key

LOCK_NAME = "gpulease-scheduler-leader"


class LeaderLock(Protocol):
    def acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class PostgresLeaderLock:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return self.still_held()
        conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            won = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(LOCK_NAME)}
            ).scalar_one()
        except DBAPIError:
            conn.close()
            return False
        if won:
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(LOCK_NAME)}
                )
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except DBAPIError:
                pass
            self._conn = None


class FileLeaderLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        if self._handle is not None:
            return True
        handle = self._path.open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return True

    def still_held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def leader_lock(db: Database) -> LeaderLock:
    if db.is_sqlite:
        database = db.engine.url.database
        path = Path(f"{database}.leader") if database else Path("gpulease-memory.leader")
        return FileLeaderLock(path)
    return PostgresLeaderLock(db)
