"""Shared bits of the benchmark scripts: paths, resource figures, throwaway PostgreSQL
databases, percentiles, profile and side-by-side reports.

The data is what gpulease ships (``gpulease.data``: the screening lists and the Philly trace,
xz-compressed, read as they are), so the benchmarks run on a clone with nothing beside it.
"""

from __future__ import annotations

import cProfile
import io
import logging
import pstats
import re
import resource
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
try:  # a benchmark that runs older code beside this tree (``--baseline``) may lack it
    from gpulease.data import shipped_lists, shipped_trace
except ImportError:
    LISTS: Path | None = None
    PHILLY: Path | None = None
else:
    LISTS = shipped_lists()
    PHILLY = shipped_trace()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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


@contextmanager
def git_tree(ref: str) -> Iterator[Path]:
    """The sources of ``ref`` in a temporary ``git worktree`` (its ``src``), removed after:
    how a benchmark runs the code before a change beside this tree, in the same run."""
    where = Path(tempfile.mkdtemp(prefix="gpulease-baseline-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(where), ref],
        check=True,
    )
    try:
        yield where / "src"
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False
        )


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


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        data = data.get(key) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data


def side_by_side(sides: dict[str, dict[str, Any]], rows: tuple[tuple[str, str], ...]) -> str:
    """One row per (label, dotted path into each side's dict), with after/before ratios."""
    names = list(sides)
    lines = [
        f"{'':28}"
        + "".join(f"{n:>14}" for n in names)
        + ("   after/before" if len(names) == 2 else "")
    ]
    for label, path in rows:
        values = [_get(sides[n], path) for n in names]
        cells = "".join(f"{'-' if v is None else f'{v:,}':>14}" for v in values)
        ratio = ""
        if len(values) == 2 and all(isinstance(v, (int, float)) for v in values) and values[0]:
            ratio = f"   {values[1] / values[0]:.3g}x"
        lines.append(f"{label:28}{cells}{ratio}")
    return "\n".join(lines)
