"""Compliance commands over HTTP: ``gpulease kyc ...``, ``gpulease lists ...``, ``policy``,
``end-uses``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import WideFlag, stdout
from gpulease.compliance.policy_packs import CUSTOMER_FIELDS
from gpulease.data import plain_name
from gpulease.domain.errors import InvalidRequest

kyc_app = typer.Typer(help="Tenant approval cases (KYC).", no_args_is_help=True)
lists_app = typer.Typer(help="Screening lists: import, versions, diff.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
VERDICT_COLOUR = {"clear": "green", "review": "yellow", "block": "red"}


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


CASE_COLUMNS = (
    tables.key("case"),
    tables.text("tenant", 3),
    tables.text("state", 1),
    tables.text("verdict", 0),
    tables.text("end uses", 2),
)
TENANT_CASE_COLUMNS = (
    tables.key("case"),
    tables.text("state", 1),
    tables.text("end uses", 2),
    tables.text("status", 0),
)


def _case_cells(rows: list[dict[str, Any]]) -> tuple[tuple[tables.Col, ...], list[list[str]]]:
    if not any(r.get("view", "officer") == "officer" for r in rows):
        return TENANT_CASE_COLUMNS, [
            [
                r["id"],
                tables.safe(r["state"]),
                tables.safe(", ".join(r["end_uses"])),
                tables.safe(r["status"]),
            ]
            for r in rows
        ]
    return CASE_COLUMNS, [
        [
            r["id"],
            tables.named_cell(r.get("tenant_name"), r["tenant_id"]),
            tables.safe(r["state"]),
            _verdict(r.get("verdict", "")),
            tables.safe(", ".join(r["end_uses"])),
        ]
        for r in rows
    ]


def cases_table(
    rows: list[dict[str, Any]], *, width: int | None = None, wide: bool = False
) -> Group:
    """Cases as a table: officers' rows with the verdict, tenants' rows (``view: tenant``)
    with the status in plain words (they carry nothing else). An officer's reason is a
    paragraph: printed below the table, one per case, never squeezed into a column."""
    cols, cells = _case_cells(rows)
    parts: list[RenderableType] = [tables.render(cols, cells, width or stdout().width, wide=wide)]
    if cols is CASE_COLUMNS:
        parts += tables.paragraphs((r["id"], tables.safe(r.get("state_reason", ""))) for r in rows)
    return Group(*parts)


def show_cases(rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    cols, cells = _case_cells(rows)
    console = tables.widened(stdout(), cols, cells) if wide else stdout()
    console.print(cases_table(rows, width=console.width, wide=wide))


def _verdict(verdict: str) -> str:
    return f"[{VERDICT_COLOUR.get(verdict, 'white')}]{tables.safe(verdict)}[/]"


def case_view(case: dict[str, Any]) -> Group:
    """A case: officers see its screening (hits with scores, reasons, the policy); a tenant
    sees what it must supply, the end uses no approval allows, the approved ones and dates.
    Every value folds to the width, never cut."""
    pairs = [
        ("case", case["id"]),
        ("tenant", tables.named(case.get("tenant_name"), case["tenant_id"])),
        ("state", tables.safe(case["state"])),
    ]
    lines: list[RenderableType] = []
    if case.get("view") == "tenant":
        pairs += [
            ("status", tables.safe(case["status"])),
            ("end uses", tables.safe(", ".join(case["end_uses"]))),
            ("submitted", tables.moment(case.get("submitted_at"), seconds=True)),
            ("expires", tables.moment(case["expires_at"]) if case.get("expires_at") else ""),
        ]
        for field in case["missing_identification"]:
            lines.append(Text(f"more information needed: {CUSTOMER_FIELDS.get(field, field)}"))
        for code in case["prohibited_end_uses"]:
            lines.append(Text(f"end use no approval can allow (prohibited): {code}"))
        if case["approved_end_uses"]:
            approved = ", ".join(case["approved_end_uses"])
            lines.append(Text(f"approved end uses: {approved}", overflow="fold"))
        return Group(tables.fields(pairs), *lines, *_site_lines(case))
    pairs += [
        ("verdict", _verdict(case.get("verdict", ""))),
        ("end uses", tables.safe(", ".join(case["end_uses"]))),
        ("why", tables.safe(case.get("state_reason", ""))),
        ("submitted", tables.moment(case.get("submitted_at"), seconds=True)),
        ("expires", tables.moment(case["expires_at"]) if case.get("expires_at") else ""),
        ("policy", tables.safe(", ".join(case.get("policy_versions") or []))),
    ]
    screening = case.get("screening") or {}
    for reason in screening.get("reasons", []):
        lines.append(Padding(Text(f"- {reason}", overflow="fold"), (0, 0, 0, 2)))
    for party in screening.get("parties", []):
        for hit in party.get("hits", []):
            hit_line = (
                f"hit: {party['name']!r} ~ {hit['listed_name']!r} "
                f"({hit['source']} {hit['entry_id']}, score {hit['score']})"
            )
            lines.append(Padding(Text(hit_line, overflow="fold"), (0, 0, 0, 2)))
    return Group(tables.fields(pairs), *lines, *_site_lines(case))


def _site_lines(case: dict[str, Any]) -> list[RenderableType]:
    """One line per site: admitted there, or not and under which rule (in words)."""
    lines: list[RenderableType] = []
    for site in case.get("sites") or []:
        where = f"{site['site_id']} ({site['country']})"
        text = f"{where}: admitted" if site["admitted"] else f"{where}: {site['reason']}"
        lines.append(Text.from_markup(tables.safe(text), overflow="fold"))
    if lines:
        lines.insert(0, Text("admission per site:"))
    return lines


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
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Cases, newest first (tenants: their own); officers' reasons below the table."""
    rows = ApiClient().get("/kyc/cases", state=state)
    _print_json(rows) if json_out else show_cases(rows, wide=wide)


@kyc_app.command("show")
def kyc_show(case_id: str, json_out: JsonFlag = False) -> None:
    """A case: officers see its screening (hits, reasons, the policy that decided); tenants
    see its status and what they must supply."""
    case = ApiClient().get(f"/kyc/cases/{segment(case_id)}")
    _print_json(case) if json_out else _show(case)


def _show(case: dict[str, Any]) -> None:
    stdout().print(case_view(case))


@kyc_app.command("approve")
def kyc_approve(
    case_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    end_use: Annotated[list[str] | None, typer.Option(help="Approve only these.")] = None,
) -> None:
    """Compliance officer: approve a case."""
    body: dict[str, Any] = {"reason": reason, "end_uses": end_use or None}
    show_cases([ApiClient().post(f"/kyc/cases/{segment(case_id)}/approve", body)])


@kyc_app.command("reject")
def kyc_reject(case_id: str, reason: Annotated[str, typer.Option(help="Why (recorded).")]) -> None:
    """Compliance officer: reject a case."""
    show_cases([ApiClient().post(f"/kyc/cases/{segment(case_id)}/reject", {"reason": reason})])


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
    progress = Console(stderr=True)
    doing = f"uploading and screening {path.name}"
    if progress.is_terminal:
        with progress.status(f"{doing}..."):
            report = ApiClient(timeout=600).upload(
                "/lists", files, {"format": format, "label": label}
            )
    else:  # a pipe or a log: one line when it starts, one when it is done
        progress.print(f"{datetime.now(UTC):%H:%M:%S} {doing}", highlight=False, soft_wrap=True)
        report = ApiClient(timeout=600).upload("/lists", files, {"format": format, "label": label})
        progress.print(f"{datetime.now(UTC):%H:%M:%S} done", highlight=False)
    if json_out:
        _print_json(report)
        return
    snap = report["snapshot"]
    stdout().print(
        f"{tables.safe(snap['id'])}: {tables.safe(snap['source'])} {tables.safe(snap['label'])}, "
        f"{snap['entries']:,} "
        f"entries (+{report['added']} -{report['removed']} ~{report['changed']})"
    )
    if report.get("reverts"):
        stdout().print(f"  a revert: the same content as snapshot {tables.safe(report['reverts'])}")
    for r in report["rescreened"]:
        stdout().print(
            f"  {tables.safe(r['tenant_id'])}: {tables.safe(r['outcome'])} "
            f"({tables.safe(r['reason'])})"
        )


LIST_COLUMNS = (
    tables.key("id"),
    tables.text("source", 1),
    tables.text("label", 3),
    tables.num("entries", 0),
    tables.text("current", 2),
    tables.when("imported", 4),
)


@lists_app.command("list")
def lists_list(wide: WideFlag = False, json_out: JsonFlag = False) -> None:
    """Imported snapshots, newest first (``lists diff OLD NEW`` takes two of the ids)."""
    rows = ApiClient().get("/lists")
    if json_out:
        _print_json(rows)
        return
    cells = [
        [
            r["id"],
            tables.safe(r["source"]),
            tables.safe(r["label"]),
            f"{r['entries']:,}",
            ("yes" if r["current"] else "")
            + (f" (reverts {r['reverts']})" if r.get("reverts") else ""),
            tables.moment(r["imported_at"]),
        ]
        for r in rows
    ]
    tables.show(stdout(), LIST_COLUMNS, cells, wide=wide)


@lists_app.command("diff")
def lists_diff(old: str, new: str, json_out: JsonFlag = False) -> None:
    """What changed between two snapshots of one source."""
    change = ApiClient().get(f"/lists/{segment(old)}/diff/{segment(new)}")
    if json_out:
        _print_json(change)
        return
    for entry in change["added"]:
        stdout().print(f"[green]+[/] {tables.safe(entry['entry_id'])} {tables.safe(entry['name'])}")
    for entry in change["removed"]:
        stdout().print(f"[red]-[/] {tables.safe(entry['entry_id'])} {tables.safe(entry['name'])}")
    for entry in change["changed"]:
        stdout().print(
            f"[yellow]~[/] {tables.safe(entry['entry_id'])} {tables.safe(entry['name'])}: "
            f"{tables.safe(', '.join(entry['fields']))}"
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
        stdout().print(f"on {found['as_of']}:")
        stdout().print(f"  [red]prohibited[/] end uses: {', '.join(found['prohibited_end_uses'])}")
        for who, key in (
            ("every customer", "identification_required_of_all_customers"),
            ("foreign customers", "identification_required_of_foreign_customers"),
        ):
            if found[key]:
                wanted = "; ".join(CUSTOMER_FIELDS.get(f, f) for f in found[key])
                stdout().print(f"  to supply ({who}): {wanted}")
        return
    stdout().print(f"in force on {found['as_of']}: {', '.join(found['packs'])}")
    for rule in found["rules"]:
        stdout().print(f"  [green]active[/] {rule}")
    for rule, why in found["inactive"].items():
        stdout().print(f"  [dim]inactive {rule}: {why}[/]")


END_USE_COLUMNS = (tables.key("code"), tables.text("label", 1), tables.text("prohibited", 0))


def end_uses_command(wide: WideFlag = False, json_out: JsonFlag = False) -> None:
    """The end-use vocabulary."""
    rows = ApiClient().get("/end-uses")
    if json_out:
        _print_json(rows)
        return
    cells = [
        [r["code"], tables.safe(r["label"]), "[red]prohibited[/]" if r["prohibited"] else ""]
        for r in rows
    ]
    tables.show(stdout(), END_USE_COLUMNS, cells, wide=wide)
