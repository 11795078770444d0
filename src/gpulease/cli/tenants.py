"""``gpulease tenants``: the tenants you may see, by name, with standing and KYC state.

Thin over ``GET /tenants`` and ``GET /tenants/{ref}``: the server decides what the caller
may see (staff: every tenant; a tenant's users: their own) and resolves a name or a unique
id prefix among those only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import safe

tenants_app = typer.Typer(
    help="List and show tenants (names, standing, KYC).", no_args_is_help=True
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


TENANT_COLUMNS = (
    tables.key("id"),
    tables.text("name", 0),
    tables.text("country", 3),
    tables.text("kind", 4),
    tables.text("standing", 1),
    tables.text("KYC", 2),
    tables.num("users", 5),
)


def tenants_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The table's cells, every text as written (a name is not markup)."""
    return [
        [
            safe(row["id"]),
            safe(row["name"]),
            safe(row["country"]),
            safe(row["kind"]),
            safe(row["standing"]),
            safe(row["kyc_state"] or "no case"),
            str(row["users"]),
        ]
        for row in rows
    ]


@tenants_app.command("list")
def tenants_list(json_out: JsonFlag = False) -> None:
    """The tenants you may see (staff: all; a tenant's users: their own)."""
    rows = ApiClient().get("/tenants")
    if json_out:
        print(json.dumps(rows, indent=2))
    else:
        tables.show(tables.stdout(), TENANT_COLUMNS, tenants_cells(rows))


@tenants_app.command("show")
def tenants_show(
    tenant: Annotated[str, typer.Argument(help="Its id, a unique prefix of it, or its name.")],
    json_out: JsonFlag = False,
) -> None:
    """One tenant: standing, its latest KYC case and how many users it has."""
    row = ApiClient().get(f"/tenants/{segment(tenant)}")
    if json_out:
        print(json.dumps(row, indent=2))
        return
    console = tables.stdout()
    tables.show(console, TENANT_COLUMNS, tenants_cells([row]))
    if row["kyc_case_id"]:
        console.print(f"latest KYC case: {safe(row['kyc_case_id'])} ({safe(row['kyc_state'])})")
    if row["approval_expires_at"]:
        console.print(f"approval expires: {safe(row['approval_expires_at'][:10])}")
