"""``gpulease users`` and ``gpulease tokens``: who may use the API, and their credentials.

Thin over the REST API (``/users``, ``/users/{id}/tokens``, ``/tokens/{id}/revoke``): the
server decides who may do what (``domain.access.PERMISSIONS``); these commands only ask and
render. A token is printed once, on its own line, never inside a table (it must be copied
whole); listings show a token's id and prefix, never its value.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import WideFlag, stdout

users_app = typer.Typer(help="List, disable and enable users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Issue, list and revoke API tokens.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the audit trail).")]
UserOption = Annotated[
    str | None, typer.Option("--user", help="Whose tokens (a user id; default: yourself).")
]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _day(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "-"


def _me(client: ApiClient, user: str | None) -> str:
    return user or str(client.get("/me")["user_id"])


# ---------------------------------------------------------------------- users
USER_COLUMNS = (
    tables.key("id"),
    tables.text("name", 1),
    tables.Col("email", 2, keep=True),
    tables.text("role", 1),
    tables.key("tenant", 3),
    tables.text("state", 4),
    tables.key("created by", 5),
)


def _show_users(rows: list[dict[str, Any]], wide: bool = False) -> None:
    cells = []
    for row in rows:
        state = f"disabled {_day(row['disabled_at'])}" if row.get("disabled_at") else "active"
        tenant = row["tenant_id"] or "-"
        if row.get("tenant_name"):
            tenant = f"{tables.safe(row['tenant_name'])} ({tenant})"
        cells.append(
            [
                row["id"],
                tables.safe(row["name"]),
                tables.safe(row["email"]),
                row["role"],
                tenant,
                state,
                tables.safe(row.get("created_by") or "-"),
            ]
        )
    tables.show(stdout(), USER_COLUMNS, cells, wide=wide)


@users_app.command("list")
def users_list(
    tenant: Annotated[str | None, typer.Option(help="Staff: one tenant's users.")] = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """The users you may see (staff: all; a tenant-admin: its tenant's)."""
    rows = ApiClient().get("/users", tenant_id=tenant)
    if json_out:
        _print_json(rows)
    else:
        _show_users(rows, wide)


@users_app.command("disable")
def users_disable(user_id: str, reason: Reason) -> None:
    """Disable a user: its tokens stop working at once."""
    _show_users([ApiClient().post(f"/users/{segment(user_id)}/disable", {"reason": reason})])


@users_app.command("enable")
def users_enable(user_id: str, reason: Reason) -> None:
    """Enable a disabled user again (its unexpired, unrevoked tokens work again)."""
    _show_users([ApiClient().post(f"/users/{segment(user_id)}/enable", {"reason": reason})])


# --------------------------------------------------------------------- tokens
TOKEN_COLUMNS = (
    tables.key("id"),
    tables.key("prefix", 2),
    tables.text("label", 1),
    tables.when("created", 3),
    tables.when("expires", 2),
    tables.text("state", 0),
)


def _show_tokens(rows: list[dict[str, Any]], wide: bool = False) -> None:
    cells = [
        [
            row["id"],
            row["prefix"],
            tables.safe(row["label"] or "-"),
            _day(row["created_at"]),
            _day(row["expires_at"]),
            f"revoked {_day(row['revoked_at'])}" if row.get("revoked_at") else "live",
        ]
        for row in rows
    ]
    tables.show(stdout(), TOKEN_COLUMNS, cells, wide=wide)


@tokens_app.command("list")
def tokens_list(
    user: UserOption = None, wide: WideFlag = False, json_out: JsonFlag = False
) -> None:
    """A user's tokens: live, expired and revoked (never their values)."""
    client = ApiClient()
    rows = client.get(f"/users/{segment(_me(client, user))}/tokens")
    if json_out:
        _print_json(rows)
    else:
        _show_tokens(rows, wide)


@tokens_app.command("issue")
def tokens_issue(
    user: UserOption = None,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    days: Annotated[
        int | None, typer.Option(min=1, help="Lifetime in days (default: the server's).")
    ] = None,
) -> None:
    """Issue a new token (shown once: copy it now)."""
    client = ApiClient()
    body: dict[str, Any] = {"label": label}
    if days is not None:
        body["ttl_days"] = days
    made = client.post(f"/users/{segment(_me(client, user))}/tokens", body)
    stdout().print(f"token {made['id']}, expires {_day(made['expires_at'])} UTC (shown once):")
    print(made["token"])


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, reason: Reason = "") -> None:
    """Revoke a token at once (`gpulease tokens list` shows the ids)."""
    row = ApiClient().post(f"/tokens/{segment(token_id)}/revoke", {"reason": reason or "revoked"})
    _show_tokens([row])
