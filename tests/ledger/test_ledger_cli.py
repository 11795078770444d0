"""``gpulease ledger``: verify, export, head and rotate-key on the operator's host, and
``verify-bundle`` on an auditor's machine that has only the bundle: a subprocess with no
database configured, in an empty folder, that must import no server-side module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from gpulease.cli.app import app
from gpulease.cli.ledger import check_bundle
from gpulease.domain.clock import ManualClock
from gpulease.ledger.heads import KeyPeriod
from gpulease.ledger.keys import generate_private_key, public_key_bytes
from gpulease.services import audit, ledger
from gpulease.services.context import ServiceContext

SERVER_SIDE = ("sqlalchemy", "gpulease.services", "gpulease.persistence", "gpulease.settings")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def db_backend() -> str:
    return "sqlite"  # the commands run the services the database tests cover on both


def _env(ctx: ServiceContext) -> dict[str, str]:
    return {
        "GPULEASE_DATABASE_URL": ctx.settings.database_url,
        "GPULEASE_DATA_DIR": str(ctx.settings.data_dir),
    }


def _fill(ctx: ServiceContext, clock: ManualClock, n: int) -> None:
    for i in range(n):
        clock.advance(1)
        with ctx.db.transaction() as tx:
            audit.record(
                tx,
                at=clock.now(),
                actor="ops",
                action="thing.done",
                subject_type="thing",
                subject_id=f"thing-{i}",
                after={"i": i},
            )


def _auditor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m gpulease.cli.ledger ARGS`` with no GPULEASE_* setting, then a report of
    the server-side modules it loaded (none may be)."""
    probe = (
        "import sys\n"
        "from gpulease.cli.ledger import main\n"
        f"status = main({list(args)!r})\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({SERVER_SIDE!r}))\n"
        "print('LOADED=' + ','.join(loaded))\n"
        "sys.exit(status)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        check=False,
    )


@pytest.mark.slow  # three Python subprocesses
def test_export_then_verify_the_bundle_with_nothing_else(
    ctx: ServiceContext, clock: ManualClock, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = _env(ctx)
    ledger.ensure_key(ctx)
    _fill(ctx, clock, 6)
    signed = runner.invoke(app, ["ledger", "head", "--sign"], env=env)
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.stdout)["tree_size"] == 7
    _fill(ctx, clock, 2)
    rotated = runner.invoke(app, ["ledger", "rotate-key", "--reason", "drill"], env=env)
    assert rotated.exit_code == 0, rotated.output
    verified = runner.invoke(app, ["ledger", "verify", "--json"], env=env)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"] is True

    auditor = tmp_path / "auditor"
    auditor.mkdir()
    bundle = auditor / "ledger.bundle.json"
    exported = runner.invoke(app, ["ledger", "export", str(bundle)], env=env)
    assert exported.exit_code == 0, exported.output
    assert runner.invoke(app, ["ledger", "export", str(bundle)], env=env).exit_code != 0

    ok = _auditor("verify-bundle", bundle.name, "--json", cwd=auditor)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith("LOADED=")  # no database, settings or services
    report = json.loads(ok.stdout[: ok.stdout.rindex("LOADED=")])
    assert report["ok"] is True
    assert report["records"] == 10
    assert len(report["key_ids"]) == 2  # the rotation: both keys' heads verified

    document = json.loads(bundle.read_text())
    document["records"][3]["reason"] = "it never happened"
    tampered = auditor / "tampered.json"
    tampered.write_text(json.dumps(document))
    bad = _auditor("verify-bundle", tampered.name, cwd=auditor)
    assert bad.returncode == 1
    assert "first bad record: record 3 was modified" in bad.stdout
    garbage = auditor / "garbage.json"
    garbage.write_text("{not json")
    assert _auditor("verify-bundle", garbage.name, cwd=auditor).returncode == 2


def test_verify_fails_and_names_the_record(ctx: ServiceContext, clock: ManualClock) -> None:
    runner = CliRunner()
    env = _env(ctx)
    ledger.ensure_key(ctx)
    _fill(ctx, clock, 4)
    ledger.sign_head(ctx)
    with ctx.db.connect() as conn:
        conn.execute(text("UPDATE audit_log SET reason = 'edited' WHERE subject_id = 'thing-2'"))
        conn.commit()
    answer = runner.invoke(app, ["ledger", "verify"], env=env)
    assert answer.exit_code == 1
    assert "first bad record: position 3" in answer.stdout
    assert "modified" in answer.stdout


def test_verify_reports_records_left_unsequenced_longer_than_the_merge_delay(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    """No sequencer ran for 30 s (the scheduler is down): a fault, then sequenced, and the
    next verify passes."""
    runner = CliRunner()
    env = {**_env(ctx), "GPULEASE_LEDGER_MAX_MERGE_DELAY_S": "5"}
    ledger.ensure_key(ctx)
    ledger.sign_head(ctx)
    _fill(ctx, clock, 2)
    with ctx.db.connect() as conn:
        conn.execute(text("UPDATE ledger_pending SET queued_at = queued_at - 30"))
        conn.commit()
    answer = runner.invoke(app, ["ledger", "verify", "--json"], env=env)
    assert answer.exit_code == 1, answer.stdout
    found = json.loads(answer.stdout)
    (late,) = found["problems"]
    assert late["kind"] == "unsequenced"
    assert "2 audit record(s) waited longer than the maximum merge delay (5 s)" in late["message"]
    assert found["size"] == 3  # sequenced by the verify itself
    again = runner.invoke(app, ["ledger", "verify"], env=env)
    assert again.exit_code == 0, again.stdout


def test_a_bundle_with_a_key_its_records_never_named_fails(
    ctx: ServiceContext, clock: ManualClock, tmp_path: Path
) -> None:
    ledger.ensure_key(ctx)
    _fill(ctx, clock, 3)
    clock.advance(60)
    ledger.rotate_key(ctx, reason="drill")
    bundle = tmp_path / "b.json"
    bundle.write_bytes(ledger.export(ctx).dumps())
    status, result = check_bundle(bundle)
    assert status == 0, result
    assert result["warnings"] == []

    document = json.loads(bundle.read_text())
    extra = KeyPeriod(public_key_bytes(generate_private_key()), clock.now())
    document["keys"].append(extra.to_json())
    bundle.write_text(json.dumps(document))
    status, result = check_bundle(bundle)
    assert status == 1
    assert [f["kind"] for f in result["findings"]] == ["bad_key"]
    assert extra.key_id in result["findings"][0]["message"]
