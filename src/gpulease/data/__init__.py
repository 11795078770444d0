"""The data gpulease ships, and reading of compressed data files.

A clone or an installed package stands on its own: the demo, the tests and ``make simulate``
read the files below, installed as package data (``pyproject.toml``) and found through
``importlib.resources``. Their sources, licences, changes and checksums are in
``PROVENANCE.md`` beside this file.

* ``lists/ofac-sdn/{sdn,alt,add}.csv.xz``: the OFAC SDN list, legacy CSV layout (format
  ``ofac-sdn``);
* ``lists/csl-legacy-sample.csv.xz`` and ``lists/csl-consolidated-sample.csv.xz``: samples
  of the US Consolidated Screening List (format ``csl-csv``);
* ``lists/bis-denied-persons.tsv.xz``: the BIS Denied Persons List (format ``bis-dpl``);
* ``traces/philly.csv.xz``: the Microsoft Philly trace as digested by the Sia artifact
  (format ``philly``).

:func:`read_bytes` reads any
data file, decompressing it by suffix (``.xz``, ``.gz``; other names are read as they are),
so every importer and loader takes a compressed or a plain file alike; :func:`plain_name`
is the file's name without that suffix (what the file holds), and :func:`locate` finds
``NAME`` or, failing that, ``NAME.xz`` / ``NAME.gz``.

Invariants: this module imports nothing from gpulease, so every layer may use it; a file
that is damaged or not in the format its suffix says raises :class:`CompressedFileError`
(an ``OSError``, so a reader's ``except OSError`` reports it like an unreadable file) and
yields no partial content.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

__all__ = [
    "COMPRESSIONS",
    "CompressedFileError",
    "locate",
    "plain_name",
    "read_bytes",
    "shipped",
    "shipped_lists",
    "shipped_trace",
]

#: suffix -> how to decompress a whole file of that kind
COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    ".xz": lzma.decompress,
    ".gz": gzip.decompress,
}


class CompressedFileError(OSError):
    """A compressed data file that cannot be decompressed (damaged, or not that format)."""


def plain_name(path: str | Path) -> str:
    """The file's name without a compression suffix: ``sdn.csv.xz`` -> ``sdn.csv``."""
    name = Path(path).name
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in COMPRESSIONS else name


def read_bytes(path: str | Path) -> bytes:
    """The content of ``path``, decompressed when its suffix names a compression."""
    path = Path(path)
    data = path.read_bytes()
    decompress = COMPRESSIONS.get(path.suffix.lower())
    if decompress is None:
        return data
    try:
        return decompress(data)
    except (lzma.LZMAError, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise CompressedFileError(
            f"not a valid {path.suffix} file ({exc or type(exc).__name__})"
        ) from None


def locate(path: str | Path) -> Path | None:
    """``path`` if it exists, else the first of ``path.xz`` / ``path.gz`` that exists."""
    path = Path(path)
    for candidate in (path, *(path.with_name(path.name + s) for s in COMPRESSIONS)):
        if candidate.exists():
            return candidate
    return None


def shipped(*parts: str) -> Path:
    """The path of a shipped data file or folder (``shipped("lists", "ofac-sdn")``).

    The package is installed as files (setuptools does; a zipped install is not supported),
    so the resource is a real path that every reader can open."""
    found = resources.files(__name__).joinpath(*parts)
    if not isinstance(found, Path):  # pragma: no cover - only for a zipped install
        raise FileNotFoundError(f"gpulease's data is not on the file system: {found}")
    return found


def shipped_lists() -> Path:
    """The folder of the shipped screening lists (the demo imports them)."""
    return shipped("lists")


def shipped_trace() -> Path:
    """The shipped Philly trace (format ``philly``)."""
    return shipped("traces", "philly.csv.xz")
