"""Running the ``gpulease`` command in-process against the real app, and golden files.

* ``cli``: ``cli(who, *args)`` runs the command as a demo user (``"operator"``,
  ``"officer"``, ``"inftech"``, ``"bank"``, ``"university"``) at 80 columns, every
  request going through an in-process client of the real FastAPI app over this test's
  PostgreSQL database (``tests/conftest.py``); a domain error is printed as ``main()``
  prints it and exits 2. Answers a :class:`Run` (stdout, stderr, exit code).
* ``golden(name, text)``: compares ``text``, normalised (:func:`normalise`), with
  ``tests/cli/golden/<name>.txt``. ``GPULEASE_UPDATE_GOLDEN=1`` writes the files instead.

Ids are random (``job-3f9a1c2b7d4e``): the golden text numbers them in order of first
appearance with a placeholder of the same length (``job-000000000001``), so the layout the
file shows is the layout printed. Every other figure comes from the demo, built at a fixed
time on a manual clock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.cells import cell_len
from typer.testing import CliRunner

from gpulease.cli.app import app
from gpulease.cli.client import injected
from gpulease.domain.errors import DomainError
from gpulease.services.demo import DemoUser

GOLDEN = Path(__file__).parent / "golden"
WIDTH = 80
USERS = {
    "operator": "ops@indosat.example",
    "officer": "compliance@indosat.example",
    "inftech": "admin@inftech.example",
    "bank": "admin@bank.example",
    "university": "admin@university.example",
}
ID = re.compile(
    r"\b(lease|job|tenant|user|kyc|party|list|token|maint)-[0-9a-f]{12}\b"
    r"|\b(glt)_[0-9a-f]{4}\b"  # a token's prefix
)


@pytest.fixture
def db_backend() -> str:
    """The CLI's output does not depend on the backend: PostgreSQL only (the real one)."""
    return "postgresql"


@dataclass(frozen=True, slots=True)
class Run:
    stdout: str
    stderr: str
    exit_code: int


Cli = Callable[..., Run]


@pytest.fixture
def cli(api: Callable[[str | None], TestClient], demo: list[DemoUser], tmp_path: Path) -> Cli:
    tokens = {who: next(u.token for u in demo if u.email == email) for who, email in USERS.items()}
    http = api(None)
    runner = CliRunner()

    def run(who: str, *args: str, columns: int = WIDTH, check: bool = True) -> Run:
        env = {
            "GPULEASE_TOKEN": tokens[who],
            "GPULEASE_URL": "http://testserver",
            "COLUMNS": str(columns),
            "GPULEASE_CONFIG": str(tmp_path / "no-config.json"),
        }
        with injected(http):
            result = runner.invoke(app, list(args), env=env, catch_exceptions=True)
        code, stderr = result.exit_code, result.stderr
        if isinstance(result.exception, DomainError):  # as main() shows it
            code, stderr = 2, f"error ({result.exception.code}): {result.exception.message}\n"
        elif result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        if check:
            assert code == 0, f"gpulease {' '.join(args)} exited {code}: {stderr}"
        return Run(result.stdout, stderr, code)

    return run


def normalise(text: str) -> str:
    """Ids numbered in order of appearance (same length), trailing blanks removed."""
    seen: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        found = match.group(0)
        if found not in seen:
            if match.group(1):
                seen[found] = f"{match.group(1)}-{len(seen) + 1:012d}"
            else:
                seen[found] = f"glt_{len(seen) + 1:04d}"
        return seen[found]

    return "\n".join(ID.sub(placeholder, line).rstrip() for line in text.splitlines()) + "\n"


def golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    got = normalise(text)
    if os.environ.get("GPULEASE_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path.name}: run with GPULEASE_UPDATE_GOLDEN=1"
    assert got == path.read_text(encoding="utf-8"), f"output differs from golden/{path.name}"


def fits(text: str, width: int = WIDTH) -> None:
    """No line of ``text`` is wider than ``width`` columns."""
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} columns: {line!r}"


def whole_ids(text: str, ids: list[str]) -> None:
    """Each id appears in ``text`` whole (on one line, not cut)."""
    for each in ids:
        assert each in text, f"{each} is not printed whole"
