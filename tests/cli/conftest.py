"""Running the ``gpulease`` command in-process against the real app.

``cli(who, *args)`` runs the command as a demo user (``"operator"``, ``"officer"``,
``"inftech"``, ``"bank"``, ``"university"``) at 80 columns, every request going through an
in-process client of the real FastAPI app over this test's PostgreSQL database
(``tests/conftest.py``, ``cli.client.injected``); a domain error is printed as ``main()``
prints it and exits 2. It answers a ``Run`` (stdout, stderr, exit code). Golden files and
the width and id checks are in ``cli_support``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import USERS, WIDTH, Cli, Run
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gpulease.cli.app import app
from gpulease.cli.client import injected
from gpulease.domain.errors import DomainError
from gpulease.services.demo import DemoUser


@pytest.fixture
def db_backend() -> str:
    """The CLI's output does not depend on the backend: PostgreSQL only (the real one)."""
    return "postgresql"


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
