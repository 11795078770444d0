"""Shared bits of the benchmark scripts (paths, resource figures)."""

from __future__ import annotations

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
