"""Attack: records named by id prefix or name (``services.lookup``), and the CLI printing
what the server says (``cli/tables``).

The promises under attack: a tenant cannot tell another tenant's record from one that does
not exist (same status, same body); a token revoked answers like one never issued; a name
chosen by a tenant never makes someone act on another record than the one they typed the id
prefix of; and text a tenant wrote (a job's or user's name, a reason) prints in the
operator's terminal exactly as written: never as Rich markup, never as an escape sequence.
"""

from __future__ import annotations

import io
import secrets
import sys
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from gpulease.cli import app as cli_app
from gpulease.cli import tables
from gpulease.cli.client import injected
from gpulease.domain.access import Principal
from gpulease.domain.errors import DomainError
from gpulease.persistence.tables import Job, KycCase, Tenant
from gpulease.services import demo as demo_service
from gpulease.services import jobs

Client = Callable[[str | None], TestClient]  # the ``api`` fixture

OPS = "ops@indosat.example"
BANK = "admin@bank.example"
# Markup that, printed as markup, closes a tag nobody opened (Rich raises: the command
# dies) or dresses a tenant's words as the operator's own
BROKEN = "[/]"
DRESSED = "[bold green]approved by the operator[/]"


def _submit(ctx: Any, who: Principal, name: str = "") -> str:
    submission = jobs.JobSubmission(
        gpus=4, purpose="financial AI", command="true", name=name, duration_s=60
    )
    return jobs.submit(ctx, who, submission).id


def _without(body: dict[str, Any], ref: str) -> str:
    return repr(body).replace(ref, "<ref>")


# --------------------------------------------------------------------- the server
def test_another_tenants_kyc_case_answers_exactly_like_a_missing_one(
    api: Client,
    ctx: Any,
    by_email: dict[str, demo_service.DemoUser],
    inftech: Principal,
) -> None:
    # The case's service said ``details: {"kyc case_id": ...}`` for a missing case and
    # ``{"kyc_case_id": ...}`` for another tenant's: an oracle for a case id seen elsewhere.
    with ctx.db.transaction(write=False) as tx:
        theirs = tx.all(select(KycCase).where(KycCase.tenant_id == inftech.tenant_id))[0].id
    client = api(by_email[BANK].token)
    for foreign, missing in (
        (theirs, f"kyc-{secrets.token_hex(6)}"),
        (theirs[:10], f"kyc-{secrets.token_hex(3)}"),
    ):
        seen, unseen = client.get(f"/kyc/cases/{foreign}"), client.get(f"/kyc/cases/{missing}")
        assert seen.status_code == unseen.status_code == 404, seen.text
        assert _without(seen.json(), foreign) == _without(unseen.json(), missing)
        assert unseen.json()["details"] == {"kyc_case_id": missing}


def test_a_revoked_token_of_a_disabled_user_answers_like_an_unknown_token(
    api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    # A token leaks; its user is disabled (which revokes the token). Whoever holds the
    # leaked token must not learn that it was real and its user now disabled.
    bank = api(by_email[BANK].token)
    made = bank.post(
        "/users", json={"name": "Quant", "email": "quant@bank.example", "role": "tenant-member"}
    )
    assert made.status_code == 201, made.text
    user_id, leaked = made.json()["user"]["id"], made.json()["token"]
    assert bank.post(f"/users/{user_id}/disable", json={"reason": "leaked"}).status_code == 200

    revoked = api(leaked).get("/me")
    unknown = api("glt_" + secrets.token_urlsafe(32)).get("/me")
    assert revoked.status_code == unknown.status_code == 401
    assert revoked.json() == unknown.json()


def test_a_name_never_shadows_another_tenants_id_prefix_for_the_operator(
    api: Client,
    ctx: Any,
    by_email: dict[str, demo_service.DemoUser],
    inftech: Principal,
    bank: Principal,
) -> None:
    # The bank names its jobs like the id prefix of INF Tech's job (with and without the
    # kind's prefix). The operator, typing that prefix to stop INF Tech's job, must never
    # act on the bank's instead: the reference is ambiguous and lists both.
    target = _submit(ctx, inftech, name="big-run")
    decoys = {
        target[:11]: _submit(ctx, bank, name=target[:11]),
        target[4:12]: _submit(ctx, bank, name=target[4:12]),
    }
    ops = api(by_email[OPS].token)
    for typed, decoy in decoys.items():
        shown = ops.get(f"/jobs/{typed}")
        assert shown.status_code == 409, shown.text
        assert shown.json()["code"] == "ambiguous"
        assert {c["id"] for c in shown.json()["details"]["candidates"]} == {target, decoy}
        cancelled = ops.post(f"/jobs/{typed}/cancel", json={"reason": "stop INF Tech's run"})
        assert cancelled.status_code == 409, cancelled.text
    with ctx.db.transaction(write=False) as tx:
        states = {
            j.id: j.state for j in tx.all(select(Job).where(Job.id.in_([target, *decoys.values()])))
        }
    assert "cancelled" not in states.values()
    # the whole id still names the one record, and the bank still finds its job by name
    assert ops.get(f"/jobs/{target}").json()["id"] == target
    assert api(by_email[BANK].token).get(f"/jobs/{target[:11]}").json()["id"] == decoys[target[:11]]


# --------------------------------------------------------------------- the CLI
@pytest.fixture
def gpulease(
    api: Client, by_email: dict[str, demo_service.DemoUser], tmp_path: Any
) -> Callable[..., tuple[int, str, str]]:
    """``gpulease(who, *args)``: the command as a demo user (by email) or a token, against
    the in-process app, as ``main()`` runs it (a domain error printed on stderr, exit 2):
    (code, stdout, stderr)."""
    http = api(None)

    def run(who: str, *args: str, columns: int = 200) -> tuple[int, str, str]:
        env = {
            "GPULEASE_TOKEN": by_email[who].token if who in by_email else who,
            "GPULEASE_URL": "http://testserver",
            "COLUMNS": str(columns),
            "GPULEASE_CONFIG": str(tmp_path / "no-config.json"),
        }
        with injected(http):
            result = CliRunner().invoke(cli_app.app, list(args), env=env, catch_exceptions=True)
        error = result.exception
        if isinstance(error, DomainError):  # what main() prints
            buffer = io.StringIO()
            saved, sys.stderr = sys.stderr, buffer
            try:
                with pytest.raises(SystemExit):
                    _main_prints(error)
            finally:
                sys.stderr = saved
            return 2, result.stdout, buffer.getvalue()
        if error is not None and not isinstance(error, SystemExit):
            raise error
        return result.exit_code, result.stdout, result.stderr

    return run


def _main_prints(error: DomainError) -> None:
    """``cli.app.main`` given a command that raised ``error``."""
    saved = cli_app.app

    def failing(**_options: object) -> None:
        raise error

    cli_app.app = failing  # type: ignore[assignment]
    try:
        cli_app.main()
    finally:
        cli_app.app = saved


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_an_ambiguity_error_prints_tenant_names_as_written(
    gpulease: Callable[..., tuple[int, str, str]], ctx: Any
) -> None:
    # Candidates' names are in the error's message; main() printed it as markup, so a name
    # closing a tag killed the command with a traceback, and another could restyle it.
    with ctx.db.transaction() as tx:
        for n, name in enumerate((BROKEN, DRESSED), start=1):
            tx.add(
                Tenant(
                    id=f"tenant-cccccc00000{n}",
                    name=name,
                    country="SG",
                    kind="lab",
                    created_at=ctx.now(),
                )
            )
    code, _out, err = gpulease(OPS, "tenants", "show", "tenant-cccccc")
    assert code == 2
    assert "(ambiguous)" in err
    assert f"({BROKEN})" in _flat(err)
    assert f"({DRESSED})" in _flat(err)


def test_the_audit_table_prints_a_tenants_reason_as_written(
    gpulease: Callable[..., tuple[int, str, str]], ctx: Any, bank: Principal
) -> None:
    # A tenant's cancel reason lands in the audit trail the operator reads.
    jobs.cancel(ctx, bank, _submit(ctx, bank), reason=f"{DRESSED} {BROKEN}")
    code, out, _err = gpulease(OPS, "audit", "--limit", "5")
    assert code == 0
    assert "[bold green]approved" in out  # the markup shown, not obeyed (cells fold)
    assert BROKEN in out


def test_tenant_and_user_names_print_as_written(
    gpulease: Callable[..., tuple[int, str, str]],
    api: Client,
    by_email: dict[str, demo_service.DemoUser],
    ctx: Any,
) -> None:
    with ctx.db.transaction() as tx:
        tx.add(
            Tenant(
                id="tenant-dddddd000001",
                name=BROKEN,
                country="SG",
                kind="lab",
                created_at=ctx.now(),
            )
        )
    code, out, _err = gpulease(OPS, "tenants", "list")
    assert code == 0
    assert BROKEN in out

    # a tenant admin names a user; the user's own `gpulease whoami` prints the name
    made = api(by_email[BANK].token).post(
        "/users", json={"name": DRESSED, "email": "dressed@bank.example", "role": "tenant-admin"}
    )
    assert made.status_code == 201, made.text
    code, out, _err = gpulease(made.json()["token"], "whoami")
    assert code == 0
    assert DRESSED in _flat(out)


def test_audit_and_tenant_tables_never_cut_an_id(
    gpulease: Callable[..., tuple[int, str, str]],
    api: Client,
    by_email: dict[str, demo_service.DemoUser],
    ctx: Any,
    bank: Principal,
) -> None:
    # An operator copies ids out of these tables into the next command: an id folded over
    # two lines (``(user-b9`` / ``fad2d338`` / ``b4)``) is a wrong id pasted.
    jobs.cancel(ctx, bank, _submit(ctx, bank), reason="not needed")
    ops = api(by_email[OPS].token)
    records = ops.get("/audit", params={"limit": 5}).json()
    tenant_ids = [t["id"] for t in ops.get("/tenants").json()]
    for columns in (80, 60):
        code, out, _err = gpulease(OPS, "audit", "--limit", "5", columns=columns)
        assert code == 0
        for row in records:
            assert row["actor"] in out, (columns, row["actor"])  # whole, on one line
            assert row["subject_id"] in out, (columns, row["subject_id"])
        code, out, _err = gpulease(OPS, "tenants", "list", columns=columns)
        assert code == 0
        for tenant_id in tenant_ids:
            assert tenant_id in out, (columns, tenant_id)


def test_control_characters_from_the_server_never_reach_the_terminal() -> None:
    # The API refuses control characters in what tenants write, but the CLI prints what a
    # server sends (an older server, a proxy, a list entry's name): an OSC 52 sequence writes
    # the clipboard, a carriage return rewrites the line, a bidi override reorders it.
    hostile = "x\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rok\u202etxt.exe"
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True, color_system=None)
    cols = (tables.key("id"), tables.text("tenant"))
    row = ["job-0123456789ab", tables.named_cell(hostile, "tenant-0123456789ab")]
    console.print(tables.render(cols, [row], 120))
    console.print(tables.fields([("tenant", tables.named(hostile, "tenant-0123456789ab"))]))
    printed = out.getvalue()
    for code in ("\x1b]", "\x1b[2J", "\x07", "\r", "\u202e"):
        assert code not in printed, repr(code)
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in printed  # shown, not obeyed
    assert "job-0123456789ab" in printed
    assert "tenant-0123456789ab" in printed
    # every other text a command prints goes through tables.safe (a reason, a list entry)
    console.print(f"why: {tables.safe(hostile)}")
    assert "\x1b" not in out.getvalue()
