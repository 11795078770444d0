"""A list snapshot: one import of one list, whole, with its checksum; and the diff of two.

``load(path, format)`` reads a file (or, for ``ofac-sdn``, a directory holding sdn.csv,
alt.csv and add.csv), parses it with the format's importer and returns a
:class:`ListSnapshot`. Every file may be compressed (``.xz``, ``.gz``; ``sdn.csv.xz`` stands
for ``sdn.csv``): :func:`read_files` decompresses it by its suffix. A defect anywhere raises
:class:`ListFormatError` and yields nothing: there is no partial snapshot. The checksum is
the SHA-256 of the (decompressed) input bytes (for the OFAC set, of the three files in the
order sdn, alt, add, each preceded by its name), so the same lists always give the same
checksum, compressed or not.

``diff(old, new)`` compares entries by :attr:`ListEntry.key`: added, removed, and changed
(any field differs; the changed fields are named).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from gpulease import data
from gpulease.compliance.lists.bis import parse_bis_dpl
from gpulease.compliance.lists.common import ListFormatError
from gpulease.compliance.lists.csl import parse_csl_csv, parse_csl_json
from gpulease.compliance.lists.ofac import parse_ofac_sdn
from gpulease.compliance.lists.opensanctions import parse_opensanctions
from gpulease.compliance.model import ListEntry

__all__ = [
    "FORMATS",
    "EntryChange",
    "ListDiff",
    "ListFormatError",
    "ListSnapshot",
    "diff",
    "load",
    "read_files",
    "snapshot_from_bytes",
]

#: format -> the ``source`` its entries carry
FORMATS: dict[str, str] = {
    "csl-csv": "csl",
    "csl-json": "csl",
    "ofac-sdn": "ofac-sdn",
    "bis-dpl": "bis-dpl",
    "opensanctions": "opensanctions",
}
_OFAC_FILES = ("sdn.csv", "alt.csv", "add.csv")


@dataclass(frozen=True, slots=True)
class ListSnapshot:
    source: str
    version_label: str
    published: str  # the date the list was published or imported, as given by the caller
    checksum: str  # sha256 hex of the input bytes
    entries: tuple[ListEntry, ...]
    counts: dict[str, int] = field(default_factory=dict, hash=False)

    def by_key(self) -> dict[tuple[str, str], ListEntry]:
        return {e.key: e for e in self.entries}


@dataclass(frozen=True, slots=True)
class EntryChange:
    old: ListEntry
    new: ListEntry
    fields: tuple[str, ...]  # names of the ListEntry fields that differ


@dataclass(frozen=True, slots=True)
class ListDiff:
    added: tuple[ListEntry, ...]
    removed: tuple[ListEntry, ...]
    changed: tuple[EntryChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _counts(entries: tuple[ListEntry, ...]) -> dict[str, int]:
    counts: dict[str, int] = {
        "entries": len(entries),
        "aliases": sum(len(e.aliases) for e in entries),
        "addresses": sum(len(e.addresses) for e in entries),
        "identifiers": sum(len(e.identifiers) for e in entries),
    }
    for kind, n in sorted(Counter(e.kind.value for e in entries).items()):
        counts[f"kind:{kind}"] = n
    return counts


def snapshot_from_bytes(
    fmt: str,
    files: dict[str, bytes],
    *,
    version_label: str = "",
    published: str = "",
) -> ListSnapshot:
    """Parse in-memory files (name -> bytes). ``ofac-sdn`` needs sdn.csv, alt.csv, add.csv;
    the other formats exactly one file."""
    if fmt not in FORMATS:
        raise ListFormatError(
            "(format)", None, f"unknown list format {fmt!r}; expected one of {sorted(FORMATS)}"
        )
    digest = hashlib.sha256()
    if fmt == "ofac-sdn":
        missing = [n for n in _OFAC_FILES if n not in files]
        if missing:
            raise ListFormatError(", ".join(missing), None, "missing file of the OFAC SDN set")
        for name in _OFAC_FILES:
            digest.update(name.encode() + b"\0" + files[name])
        entries = parse_ofac_sdn(*(files[n] for n in _OFAC_FILES), files=_OFAC_FILES)
    else:
        if len(files) != 1:
            raise ListFormatError("(files)", None, f"{fmt} takes exactly one file")
        ((name, data),) = files.items()
        digest.update(data)
        parser: Callable[..., tuple[ListEntry, ...]] = {
            "csl-csv": parse_csl_csv,
            "csl-json": parse_csl_json,
            "bis-dpl": parse_bis_dpl,
            "opensanctions": parse_opensanctions,
        }[fmt]
        entries = parser(data, file=name)
    checksum = digest.hexdigest()
    return ListSnapshot(
        source=FORMATS[fmt],
        version_label=version_label or checksum[:12],
        published=published,
        checksum=checksum,
        entries=entries,
        counts=_counts(entries),
    )


def read_files(path: str | Path, fmt: str) -> dict[str, bytes]:
    """The files of a list as ``snapshot_from_bytes`` takes them (name -> bytes): the file at
    ``path``, or for ``ofac-sdn`` sdn.csv, alt.csv and add.csv of the folder ``path`` (or of
    the folder of the file ``path``). Compressed files are decompressed by their suffix (an
    OFAC file ``sdn.csv.xz`` stands for ``sdn.csv``). Raises :class:`ListFormatError` naming
    what is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise ListFormatError(str(path), None, "cannot read: no such file or folder")
    try:
        if fmt == "ofac-sdn":
            base = path if path.is_dir() else path.parent
            files = {}
            for name in _OFAC_FILES:
                target = data.locate(base / name)
                if target is None or not target.is_file():
                    raise ListFormatError(
                        str(base / name), None, "missing file of the OFAC SDN set"
                    )
                files[name] = data.read_bytes(target)
            return files
        return {path.name: data.read_bytes(path)}
    except OSError as exc:
        raise ListFormatError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc


def load(
    path: str | Path,
    fmt: str,
    *,
    version_label: str = "",
    published: str = "",
) -> ListSnapshot:
    """Read and parse a list file (a directory for ``ofac-sdn``); see the module docstring."""
    files = read_files(path, fmt)
    return snapshot_from_bytes(fmt, files, version_label=version_label, published=published)


def diff(old: ListSnapshot, new: ListSnapshot) -> ListDiff:
    """What changed from ``old`` to ``new``, keyed by entry key, in a stable order."""
    before, after = old.by_key(), new.by_key()
    added = tuple(after[k] for k in sorted(after.keys() - before.keys()))
    removed = tuple(before[k] for k in sorted(before.keys() - after.keys()))
    changed: list[EntryChange] = []
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        if a != b:
            names = tuple(
                f.name for f in fields(ListEntry) if getattr(a, f.name) != getattr(b, f.name)
            )
            changed.append(EntryChange(old=a, new=b, fields=names))
    return ListDiff(added=added, removed=removed, changed=tuple(changed))
