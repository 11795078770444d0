"""Screening-list importers: real list files in, :class:`~gpulease.compliance.model.ListEntry`
tuples out, whole or not at all (see :mod:`.snapshot`)."""

from gpulease.compliance.lists.common import ListFormatError, normalize_country
from gpulease.compliance.lists.snapshot import (
    FORMATS,
    EntryChange,
    ListDiff,
    ListSnapshot,
    diff,
    load,
    snapshot_from_bytes,
)

__all__ = [
    "FORMATS",
    "EntryChange",
    "ListDiff",
    "ListFormatError",
    "ListSnapshot",
    "diff",
    "load",
    "normalize_country",
    "snapshot_from_bytes",
]
