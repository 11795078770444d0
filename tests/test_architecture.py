"""The import rules of docs/design.md, read off the source (every import, also inside functions).

* Only ``persistence/`` imports SQLAlchemy (or Alembic).
* Imports go one way: domain -> cores -> services -> api / cli / web / sim. ``domain`` imports
  nothing of the project's but itself; a core imports only ``domain`` and other cores, never
  services, persistence, executors, the edges, FastAPI or SQLAlchemy (the shipped files of
  ``gpulease.data`` are data, not a layer).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gpulease"
CORES = {"inventory", "scheduler", "leasing", "compliance", "metering", "ledger"}
DATABASE_LIBRARIES = {"sqlalchemy", "alembic"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, as dotted names (relative imports made absolute)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module == "gpulease":  # from gpulease import data
                found.update(f"gpulease.{alias.name}" for alias in node.names)
            elif node.module:
                found.add(node.module)
    return found


def _may_import(name: str, allowed: set[str], forbidden: set[str]) -> bool:
    top, _, rest = name.partition(".")
    if top == "gpulease":
        return rest.split(".")[0] in allowed
    return top not in forbidden


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def test_the_rules_see_every_module() -> None:
    modules = _modules()
    assert len(modules) > 100
    assert any(
        name.startswith("sqlalchemy") for name in _imports(PACKAGE / "persistence" / "db.py")
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_persistence_imports_the_database_library(path: Path) -> None:
    if _layer(path) == "persistence":
        return
    used = {name for name in _imports(path) if name.split(".")[0] in DATABASE_LIBRARIES}
    assert not used, f"{path.relative_to(PACKAGE)} imports {sorted(used)}: move it to persistence/"


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if _layer(p) in CORES | {"domain"}],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_domain_and_cores_import_only_downwards(path: Path) -> None:
    layer = _layer(path)
    allowed = {"domain"} if layer == "domain" else CORES | {"domain", "data"}
    edges = {"fastapi", "starlette", "typer"} | DATABASE_LIBRARIES
    wrong = {name for name in _imports(path) if not _may_import(name, allowed, edges)}
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(wrong)}"


FILE_IO = {"os", "pathlib", "shutil", "stat", "tempfile", "io"}


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if _layer(p) == "ledger"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_ledger_core_does_no_file_io(path: Path) -> None:
    """Key files are ``services.ledger_keys``'s: the ledger core only hashes and signs."""
    used = {name for name in _imports(path) if name.split(".")[0] in FILE_IO}
    assert not used, f"{path.relative_to(PACKAGE)} imports {sorted(used)}"
