"""Compliance commands over HTTP: ``gpulease kyc ...``, ``gpulease lists ...``, ``policy``,
``end-uses``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table

from gpulease.cli.client import ApiClient
from gpulease.cli.remote import ID_COLUMN
from gpulease.compliance.policy_packs import CUSTOMER_FIELDS
from gpulease.data import plain_name
from gpulease.domain.errors import InvalidRequest

console = Console()
kyc_app = typer.Typer(help="Tenant approval cases (KYC).", no_args_is_help=True)
lists_app = typer.Typer(help="Screening lists: import, versions, diff.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
VERDICT_COLOUR = {"clear": "green", "review": "yellow", "block": "red"}


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def cases_table(rows: list[dict[str, Any]]) -> Table:
    """Cases as a table: officers' rows with the verdict and the internal reason, tenants'
    rows (``view: tenant``) with the status in plain words (they carry nothing else)."""
    table = Table(title_justify="left")
    officer = any(r.get("view", "officer") == "officer" for r in rows)
    last = ("verdict", "end uses", "why") if officer else ("end uses", "status")
    for column in ("case", "tenant", "state", *last):
        table.add_column(column, **ID_COLUMN if column in ("case", "tenant") else {})
    for r in rows:
        cells: tuple[str, ...]
        if officer:
            colour = VERDICT_COLOUR.get(r.get("verdict", ""), "white")
            verdict = f"[{colour}]{r.get('verdict', '')}[/]"
            cells = (verdict, ", ".join(r["end_uses"]), r.get("state_reason", ""))
        else:
            cells = (", ".join(r["end_uses"]), r["status"])
        table.add_row(r["id"], r["tenant_id"], r["state"], *cells)
    return table


def case_view(case: dict[str, Any]) -> Group:
    """A case: officers see its screening (hits with scores, reasons, the policy); a tenant
    sees what it must supply, the end uses no approval allows, the approved ones and dates."""
    lines: list[RenderableType] = [cases_table([case])]
    if case.get("view") == "tenant":
        for field in case["missing_identification"]:
            lines.append(f"  more information needed: {CUSTOMER_FIELDS.get(field, field)}")
        for code in case["prohibited_end_uses"]:
            lines.append(f"  end use no approval can allow (prohibited): {code}")
        if case["approved_end_uses"]:
            lines.append(f"  approved end uses: {', '.join(case['approved_end_uses'])}")
        for label, key in (("submitted", "submitted_at"), ("expires", "expires_at")):
            if case.get(key):
                lines.append(f"  {label}: {case[key][:19]}")
        return Group(*lines)
    screening = case.get("screening") or {}
    for reason in screening.get("reasons", []):
        lines.append(f"  - {reason}")
    for party in screening.get("parties", []):
        for hit in party.get("hits", []):
            lines.append(
                f"  hit: {party['name']!r} ~ {hit['listed_name']!r} "
                f"({hit['source']} {hit['entry_id']}, score {hit['score']})"
            )
    if case.get("policy_versions"):
        lines.append(f"  policy in force: {', '.join(case['policy_versions'])}")
    return Group(*lines)


@kyc_app.command("submit")
def kyc_submit(
    file: Annotated[Path, typer.Argument(help="The case as JSON (see POST /kyc/cases).")],
    tenant: Annotated[str | None, typer.Option(help="Operators: for which tenant.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Submit a case; it is screened at once and waits for an officer."""
    try:
        body = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidRequest(f"cannot read {file}: {error}", field="file") from None
    if tenant:
        body["tenant_id"] = tenant
    case = ApiClient().post("/kyc/cases", body)
    _print_json(case) if json_out else _show(case)


@kyc_app.command("list")
def kyc_list(
    state: Annotated[str | None, typer.Option(help="Only cases in this state.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Cases, newest first (tenants: their own)."""
    rows = ApiClient().get("/kyc/cases", state=state)
    _print_json(rows) if json_out else console.print(cases_table(rows))


@kyc_app.command("show")
def kyc_show(case_id: str, json_out: JsonFlag = False) -> None:
    """A case: officers see its screening (hits, reasons, the policy that decided); tenants
    see its status and what they must supply."""
    case = ApiClient().get(f"/kyc/cases/{case_id}")
    _print_json(case) if json_out else _show(case)


def _show(case: dict[str, Any]) -> None:
    console.print(case_view(case))


@kyc_app.command("approve")
def kyc_approve(
    case_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    end_use: Annotated[list[str] | None, typer.Option(help="Approve only these.")] = None,
) -> None:
    """Compliance officer: approve a case."""
    body: dict[str, Any] = {"reason": reason, "end_uses": end_use or None}
    console.print(cases_table([ApiClient().post(f"/kyc/cases/{case_id}/approve", body)]))


@kyc_app.command("reject")
def kyc_reject(case_id: str, reason: Annotated[str, typer.Option(help="Why (recorded).")]) -> None:
    """Compliance officer: reject a case."""
    console.print(
        cases_table([ApiClient().post(f"/kyc/cases/{case_id}/reject", {"reason": reason})])
    )


@lists_app.command("import")
def lists_import(
    path: Annotated[
        Path,
        typer.Argument(help="The list file (a folder for ofac-sdn); .xz and .gz are read too."),
    ],
    format: Annotated[
        str, typer.Option(help="csl-csv, csl-json, ofac-sdn, bis-dpl, opensanctions")
    ],
    label: Annotated[str, typer.Option(help="A version label.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Import a list snapshot; every tenant is then re-screened."""
    from gpulease.compliance.lists.snapshot import read_files  # here: other commands skip it

    # read (and decompress: .xz, .gz) here, so a missing file is named before any upload
    files = {plain_name(n): b for n, b in read_files(path, format).items()}
    with console.status(f"uploading and screening {path.name}..."):
        report = ApiClient(timeout=600).upload("/lists", files, {"format": format, "label": label})
    if json_out:
        _print_json(report)
        return
    snap = report["snapshot"]
    console.print(
        f"{snap['id']}: {snap['source']} {snap['label']}, {snap['entries']:,} "
        f"entries (+{report['added']} -{report['removed']} ~{report['changed']})"
    )
    for r in report["rescreened"]:
        console.print(f"  {r['tenant_id']}: {r['outcome']} ({r['reason']})")


@lists_app.command("list")
def lists_list(json_out: JsonFlag = False) -> None:
    """Imported snapshots, newest first."""
    rows = ApiClient().get("/lists")
    if json_out:
        _print_json(rows)
        return
    table = Table(title_justify="left")
    for column in ("id", "source", "label", "entries", "current", "imported"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["id"],
            r["source"],
            r["label"],
            f"{r['entries']:,}",
            "yes" if r["current"] else "",
            r["imported_at"][:19],
        )
    console.print(table)


@lists_app.command("diff")
def lists_diff(old: str, new: str, json_out: JsonFlag = False) -> None:
    """What changed between two snapshots of one source."""
    change = ApiClient().get(f"/lists/{old}/diff/{new}")
    if json_out:
        _print_json(change)
        return
    for entry in change["added"]:
        console.print(f"[green]+[/] {entry['entry_id']} {entry['name']}")
    for entry in change["removed"]:
        console.print(f"[red]-[/] {entry['entry_id']} {entry['name']}")
    for entry in change["changed"]:
        console.print(
            f"[yellow]~[/] {entry['entry_id']} {entry['name']}: {', '.join(entry['fields'])}"
        )


def policy_command(
    as_of: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """The policy on a day: packs and rules (operator staff), or what is prohibited and what
    to supply (tenants)."""
    found = ApiClient().get("/policy", as_of=as_of)
    if json_out:
        _print_json(found)
        return
    if found.get("view") == "tenant":
        console.print(f"on {found['as_of']}:")
        console.print(f"  [red]prohibited[/] end uses: {', '.join(found['prohibited_end_uses'])}")
        for who, key in (
            ("every customer", "identification_required_of_all_customers"),
            ("foreign customers", "identification_required_of_foreign_customers"),
        ):
            if found[key]:
                wanted = "; ".join(CUSTOMER_FIELDS.get(f, f) for f in found[key])
                console.print(f"  to supply ({who}): {wanted}")
        return
    console.print(f"in force on {found['as_of']}: {', '.join(found['packs'])}")
    for rule in found["rules"]:
        console.print(f"  [green]active[/] {rule}")
    for rule, why in found["inactive"].items():
        console.print(f"  [dim]inactive {rule}: {why}[/]")


def end_uses_command(json_out: JsonFlag = False) -> None:
    """The end-use vocabulary."""
    rows = ApiClient().get("/end-uses")
    if json_out:
        _print_json(rows)
        return
    table = Table(title_justify="left")
    for column in ("code", "label", "prohibited"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["code"], r["label"], "[red]prohibited[/]" if r["prohibited"] else "")
    console.print(table)
