"""The dashboard's shipped files: the vendored htmx is the file its PROVENANCE.md names
(SHA-256), and every template and static file is package data (an installed gpulease
serves them too)."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "gpulease"
WEB = PACKAGE / "web"


def test_vendored_htmx_is_the_file_its_provenance_names() -> None:
    provenance = (WEB / "static" / "PROVENANCE.md").read_text(encoding="utf-8")
    rows = {name: digest for digest, name in re.findall(r"([0-9a-f]{64})  (\S+)", provenance)}
    assert set(rows) == {"htmx.min.js"}
    for name, digest in rows.items():
        assert hashlib.sha256((WEB / "static" / name).read_bytes()).hexdigest() == digest
    assert "htmx.org@2.0.11" in provenance
    assert 'version:"2.0.11"' in (WEB / "static" / "htmx.min.js").read_text(encoding="utf-8")
    assert "Zero-Clause BSD" in (WEB / "static" / "htmx-LICENSE.txt").read_text(encoding="utf-8")


def test_templates_and_static_files_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gpulease"]
    files = [p for folder in ("templates", "static") for p in (WEB / folder).rglob("*")]
    assert len(files) > 10
    for path in files:
        relative = PurePosixPath(path.relative_to(PACKAGE).as_posix())
        assert any(
            relative.match(p) and len(relative.parts) == len(PurePosixPath(p).parts)
            for p in patterns
        ), f"{relative} is not in pyproject's package-data"
