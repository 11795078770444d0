"""Leader election: one scheduler leader at a time, and a new one when the holder goes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import text

from gpulease.persistence.db import Database, advisory_key
from gpulease.persistence.leader import (
    LOCK_NAME,
    FileLeaderLock,
    PostgresLeaderLock,
    leader_lock,
)


def test_postgres_lock_one_holder_then_handover(postgres_url: str) -> None:
    first_db, second_db = Database(postgres_url), Database(postgres_url)
    try:
        first, second = PostgresLeaderLock(first_db), PostgresLeaderLock(second_db)
        assert first.acquire()
        assert first.still_held()
        assert first.acquire()  # re-entrant for the holder
        assert not second.acquire()
        assert not second.still_held()

        first.release()
        assert not first.still_held()
        assert second.acquire()
        assert second.still_held()
        assert not first.acquire()
        second.release()
    finally:
        first_db.dispose()
        second_db.dispose()


def test_postgres_lock_passes_on_when_holder_connection_dies(postgres_url: str) -> None:
    first_db, second_db = Database(postgres_url), Database(postgres_url)
    try:
        first, second = PostgresLeaderLock(first_db), PostgresLeaderLock(second_db)
        assert first.acquire()
        assert not second.acquire()
        # the holder's session is killed from outside (a crashed process, a dropped link)
        with second_db.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
                    "JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND d.datname = current_database() "
                    "AND l.classid = ((:k >> 32) & 4294967295) "
                    "AND l.objid = (:k & 4294967295) AND l.pid <> pg_backend_pid()"
                ),
                {"k": advisory_key(LOCK_NAME)},
            ).all()
        assert killed == [(True,)]
        assert not first.still_held()  # it notices and stops deciding
        assert second.acquire()
        assert not first.acquire()
        second.release()
    finally:
        first_db.dispose()
        second_db.dispose()


def test_postgres_lock_freed_when_holder_connection_closed(postgres_url: str) -> None:
    first_db, second_db = Database(postgres_url), Database(postgres_url)
    try:
        first, second = PostgresLeaderLock(first_db), PostgresLeaderLock(second_db)
        assert first.acquire()
        first._drop()  # the connection is invalidated and closed without unlocking
        assert second.acquire()
        second.release()
    finally:
        first_db.dispose()
        second_db.dispose()


def test_leader_lock_picks_the_backend(db: Database) -> None:
    lock = leader_lock(db)
    assert isinstance(lock, FileLeaderLock if db.is_sqlite else PostgresLeaderLock)
    second_db = Database(db.url)
    try:
        other = leader_lock(second_db)
        assert lock.acquire()
        assert not other.acquire()
        lock.release()
        assert other.acquire()
        other.release()
    finally:
        second_db.dispose()


def test_file_lock_one_holder_then_handover(tmp_path: Path) -> None:
    path = tmp_path / "gpulease.db.leader"
    first, second = FileLeaderLock(path), FileLeaderLock(path)
    assert first.acquire()
    assert first.acquire()
    assert first.still_held()
    assert not second.acquire()
    assert not second.still_held()
    first.release()
    assert not first.still_held()
    assert second.acquire()
    assert not first.acquire()
    second.release()


def test_file_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "gpulease.db.leader"
    holder = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from gpulease.persistence.leader import FileLeaderLock
        lock = FileLeaderLock(Path({str(path)!r}))
        print("won" if lock.acquire() else "lost", flush=True)
        sys.stdin.readline()  # hold until told to go
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline().strip() == "won"
        mine = FileLeaderLock(path)
        assert not mine.acquire()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0  # the process ends; the kernel frees its lock
        assert mine.acquire()
        mine.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
