"""Restricted-party list files written by tests: Consolidated Screening List CSVs of Entity
List rows, in the legacy layout (28 columns) or the current one (``_id`` first)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

from gpulease.compliance.lists.csl import LEGACY_COLUMNS

ENTITY_LIST = "Entity List (EL) - Bureau of Industry and Security"


def entity_list_csv(
    path: Path, rows: Iterable[Mapping[str, str]], *, with_ids: bool = False
) -> Path:
    """Write a CSL CSV at ``path``: each row its fields over an Entity List entry with every
    other column empty (``with_ids``: the current layout, each row giving its ``_id``)."""
    columns = ("_id", *LEGACY_COLUMNS) if with_ids else LEGACY_COLUMNS
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        for fields in rows:
            writer.writerow(dict.fromkeys(columns, "") | {"source": ENTITY_LIST} | dict(fields))
    return path


def entity_list_of(path: Path, names: Iterable[str], address: str = "1 Road, Shanghai, CN") -> Path:
    """A CSL CSV of Entity List entries with these names, all at ``address``."""
    return entity_list_csv(path, ({"name": name, "addresses": address} for name in names))
