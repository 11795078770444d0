"""Shared bits of the benchmark scripts (paths, resource figures)."""

from __future__ import annotations

import cProfile
import io
import logging
import pstats
import re
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PHILLY = SHARED / "traces" / "philly.csv"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def need_philly() -> None:
    if not PHILLY.exists():
        sys.exit(f"the Philly trace is missing at {PHILLY}")


# ---------------------------------------------------------------- added for bench_live_pass
PG_DSN = "host=127.0.0.1 port=5432 user=postgres"


def create_pg_database(prefix: str) -> tuple[str, str]:
    """A fresh, uniquely named PostgreSQL database: (name, SQLAlchemy URL)."""
    import secrets

    import psycopg
    from psycopg import sql

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_DSN, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(name: str) -> None:
    """Drop a database made by ``create_pg_database``, ending its sessions first."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_DSN, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the simulator's ``percentile``, without importing gpulease,
    so a driver script can run beside any version of the package)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def rss_mib() -> float:
    """Current resident memory of this process (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


class WarningCounter(logging.Handler):
    """Counts warnings and errors logged (e.g. a scheduler that lost leadership)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def profile_report(profile: cProfile.Profile, rows: int) -> str:
    """A profile's gpulease functions by cumulative time, then everything by own time."""
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    text.write(f"-- gpulease functions, top {rows} by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(r"gpulease/", rows)
    text.write(f"-- all functions, top {rows} by own time\n")
    stats.sort_stats("tottime").print_stats(rows)
    lines = [
        re.sub(r"\S*/site-packages/", "", re.sub(r"\S*/src/gpulease/", "gpulease/", line))
        for line in text.getvalue().splitlines()
        if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced"))
    ]
    return "\n".join(lines)
