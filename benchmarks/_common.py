"""Shared bits of the benchmark scripts (paths, resource figures).

The data is what gpulease ships (``gpulease.data``: the screening lists and the Philly trace,
xz-compressed, read as they are), so the benchmarks run on a clone with nothing beside it.
"""

from __future__ import annotations

import resource
from pathlib import Path

from gpulease.data import shipped_lists, shipped_trace

ROOT = Path(__file__).resolve().parents[1]
LISTS = shipped_lists()
PHILLY = shipped_trace()


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
