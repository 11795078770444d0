"""``initialise`` and the screening lists: ``init --demo`` screens the demo against the lists
gpulease ships, and an installation left with no list in force says so (a warning, logged
and printed on stderr by ``gpulease init``), while its cases say that no list was in force."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from gpulease.persistence.tables import KycCase, Tenant
from gpulease.services import kyc_screening
from gpulease.services.setup import initialise, open_context
from gpulease.settings import Settings


def settings_for(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'init.db'}", data_dir=tmp_path / "var")


def demo_cases(settings: Settings) -> dict[str, KycCase]:
    ctx = open_context(settings)
    try:
        with ctx.db.transaction(write=False) as tx:
            names = {t.id: t.name for t in tx.all(select(Tenant))}
            return {names[c.tenant_id]: c for c in tx.all(select(KycCase))}
    finally:
        ctx.db.dispose()


def test_demo_imports_the_shipped_lists_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path)
    with caplog.at_level(logging.WARNING, logger="gpulease.setup"):
        done = initialise(settings, demo=True)
    assert sorted(label.split()[0] for label in done.lists) == ["bis-dpl", "csl", "ofac-sdn"]
    assert done.warnings == ()
    assert not caplog.records
    for name, case in demo_cases(settings).items():
        assert len(case.lists_screened) == 3, name
        assert case.screening is not None
        assert kyc_screening.NO_LIST_REASON not in case.screening["reasons"], name
    # a later `init` (an upgrade) of the same database: the lists are still in force
    assert initialise(settings).warnings == ()


def test_no_list_in_force_warns_and_no_case_is_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path)
    empty = tmp_path / "no-lists"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="gpulease.setup"):
        done = initialise(settings, demo=True, lists=empty)
    assert done.lists == ()
    (warning,) = done.warnings
    assert warning.startswith("no screening list is in force")
    assert "gpulease lists import" in warning
    assert [r.getMessage() for r in caplog.records] == [f"warning: {warning}"]
    cases = demo_cases(settings)
    assert len(cases) == 3
    for name, case in cases.items():  # the officer approved them, but none was called clear
        assert case.lists_screened == [], name
        assert case.verdict in ("review", "block"), name
        assert case.screening is not None
        assert case.screening["reasons"][0] == kyc_screening.NO_LIST_REASON, name


def test_gpulease_init_prints_the_warning_on_stderr(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        GPULEASE_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        GPULEASE_DATA_DIR=str(tmp_path / "var"),  # the ledger's key file goes there
    )
    done = subprocess.run(
        [sys.executable, "-m", "gpulease.cli", "init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "warning: no screening list is in force" in done.stderr
    assert "warning" not in done.stdout
