"""The data gpulease ships (``src/gpulease/data``): every file is the original its
PROVENANCE.md names (the SHA-256 of the decompressed bytes), every file is described there,
and every file is package data, so an installed gpulease has it too."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path, PurePosixPath

from gpulease import data

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "gpulease"
DATA = PACKAGE / "data"
PROVENANCE = (DATA / "PROVENANCE.md").read_text()
# a checksum row: | `lists/ofac-sdn/sdn.csv` | `<original sha256>` | `<shipped sha256>` |
ROW = re.compile(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|$", re.MULTILINE)


def shipped_files() -> list[Path]:
    return sorted(
        p
        for p in DATA.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "__init__.py"
    )


def test_every_shipped_file_is_its_original() -> None:
    rows = {name: (original, packed) for name, original, packed in ROW.findall(PROVENANCE)}
    compressed = [p for p in shipped_files() if p.suffix == ".xz"]
    assert len(compressed) == 7
    assert sorted(rows) == sorted(
        str(p.relative_to(DATA).with_suffix("")) for p in compressed
    )  # every file has its row, every row its file
    for path in compressed:
        original, packed = rows[str(path.relative_to(DATA).with_suffix(""))]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == packed, path
        assert hashlib.sha256(data.read_bytes(path)).hexdigest() == original, path


def test_every_shipped_file_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gpulease"]
    for path in shipped_files():
        relative = PurePosixPath(path.relative_to(PACKAGE).as_posix())
        assert any(
            relative.match(p) and len(relative.parts) == len(PurePosixPath(p).parts)
            for p in patterns
        ), f"{relative} is not in pyproject's package-data"


def test_the_helpers_find_the_shipped_files() -> None:
    assert data.shipped_lists() == DATA / "lists"
    assert data.shipped_trace() == DATA / "traces" / "philly.csv.xz"
    assert data.locate(DATA / "lists" / "ofac-sdn" / "sdn.csv") == (
        DATA / "lists" / "ofac-sdn" / "sdn.csv.xz"
    )
    assert data.locate(DATA / "lists" / "nothing.csv") is None
    assert data.plain_name("philly.csv.xz") == "philly.csv"
    assert data.plain_name("philly.csv") == "philly.csv"
    assert data.read_bytes(data.shipped_trace()).startswith(
        b"timestamp,duration,num_gpus,gpu_time,cluster\n"
    )
