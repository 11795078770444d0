"""``gpulease audit``: the audit trail (operator staff), filtered and paged.

Thin over ``GET /audit``: the server refuses anyone but operator staff (``AUDIT_READ``) and
resolves ``--actor`` (a user's id, prefix, name or email) and ``--record`` (an id or a unique
prefix such as ``job-3f9a1c``). Actors are shown with their names where the caller may read
the users; a page ends with the option that fetches the next one.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, RemoteError
from gpulease.cli.tables import safe

PAGE = 50
AUDIT_COLUMNS = (  # ids whole (cli/tables): the actor's name above its id
    tables.num("id", 0),
    tables.when("at", 2),
    tables.text("actor", 1),
    tables.text("action", 0),
    tables.key("record", 0),
    tables.text("change", 4),
    tables.text("reason", 3),
)


def _names(client: ApiClient) -> dict[str, str]:
    """User and tenant ids to names, for the actor and subject columns (best effort)."""
    names: dict[str, str] = {}
    try:
        names.update({u["id"]: u["name"] for u in client.get("/users")})
        names.update({t["id"]: t["name"] for t in client.get("/tenants")})
    except RemoteError:
        pass  # names are a courtesy: the ids are shown anyway
    return names


def _change(row: dict[str, Any]) -> str:
    before, after = row.get("before") or {}, row.get("after") or {}
    keys = [k for k in after if before.get(k) != after.get(k)] or list(after)
    return ", ".join(f"{k}: {before.get(k, '-')} -> {after[k]}" for k in keys[:4])


def audit_command(
    actor: Annotated[
        str | None, typer.Option(help="Who: a user's id, prefix, name or email, or 'scheduler'.")
    ] = None,
    record: Annotated[
        str | None, typer.Option(help="Which record: its id or a unique prefix (job-3f9a1c).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--type", help="Only records of this type (job, lease...).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only from this ISO date-time on (UTC if bare).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Records per page.")] = PAGE,
    before: Annotated[
        int | None, typer.Option(min=1, help="The next page: records below this id.")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    wide: tables.WideFlag = False,
) -> None:
    """Operator staff: who did what to which record, and why, newest first."""
    client = ApiClient()
    rows = client.get(
        "/audit",
        actor=actor,
        subject_id=record,
        subject_type=kind,
        since=since,
        limit=limit,
        before_id=before,
    )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    names = _names(client)
    cells = [  # every cell as written (a reason or a name is a tenant's words)
        [
            str(row["id"]),
            tables.moment(row["at"], seconds=True),
            tables.named_cell(names.get(row["actor"]), row["actor"]),
            safe(row["action"]),
            safe(row["subject_id"]),
            safe(_change(row)),
            safe(row["reason"]),
        ]
        for row in rows
    ]
    out = tables.stdout()
    tables.show(out, AUDIT_COLUMNS, cells, title=f"{len(rows)} audit records", wide=wide)
    if len(rows) == limit:
        out.print(f"more: add --before {rows[-1]['id']}")
