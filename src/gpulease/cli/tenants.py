"""``gpulease tenants``: the tenants you may see, by name, with standing and KYC state.

Thin over ``GET /tenants`` and ``GET /tenants/{ref}``: the server decides what the caller
may see (staff: every tenant; a tenant's users: their own) and resolves a name or a unique
id prefix among those only.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import safe

console = Console()
tenants_app = typer.Typer(
    help="List and show tenants (names, standing, KYC).", no_args_is_help=True
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def tenants_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title_justify="left")
    table.add_column("id", no_wrap=True, overflow="fold")
    for column in ("name", "country", "kind", "standing", "KYC", "users"):
        table.add_column(column, overflow="fold", justify="right" if column == "users" else "left")
    for row in rows:
        kyc = row["kyc_state"] or "no case"
        table.add_row(  # as written: a name is not markup
            safe(row["id"]),
            safe(row["name"]),
            safe(row["country"]),
            safe(row["kind"]),
            safe(row["standing"]),
            safe(kyc),
            str(row["users"]),
        )
    return table


@tenants_app.command("list")
def tenants_list(json_out: JsonFlag = False) -> None:
    """The tenants you may see (staff: all; a tenant's users: their own)."""
    rows = ApiClient().get("/tenants")
    if json_out:
        print(json.dumps(rows, indent=2))
    else:
        console.print(tenants_table(rows))


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
    console.print(tenants_table([row]))
    if row["kyc_case_id"]:
        console.print(f"latest KYC case: {safe(row['kyc_case_id'])} ({safe(row['kyc_state'])})")
    if row["approval_expires_at"]:
        console.print(f"approval expires: {safe(row['approval_expires_at'][:10])}")
