"""``gpulease usage``, ``gpulease invoices``, ``gpulease plans``: metering and billing.

Thin over ``/api/v1/usage``, ``/invoices`` and ``/price-plans``: the server decides who sees
what (operator staff every tenant, a tenant its own) and bounds every period. Periods are
``--start``/``--end`` (ISO 8601, UTC when no offset is given), or ``--month 2026-03``; none:
the current month. Outputs: a table, or ``--format csv|json|html`` (an invoice's CSV and HTML
are rendered here from its JSON by the same code the server uses, ``metering.render``).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import WideFlag, key, num, safe, stdout, text, when
from gpulease.domain.errors import InvalidRequest
from gpulease.metering.render import credit_note_from_dict, invoice_from_dict, to_csv, to_html

invoices_app = typer.Typer(help="Invoices and credit notes (issued per tenant and period).",
                           no_args_is_help=True)  # fmt: skip
plans_app = typer.Typer(help="Price plans: versioned, dated, one currency each.",
                        no_args_is_help=True)  # fmt: skip


class Output(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


FormatOpt = Annotated[Output, typer.Option("--format", help="table, csv, json or html.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="A tenant (staff).")]
StartOpt = Annotated[str | None, typer.Option("--start", help="Period start (ISO 8601).")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Period end, exclusive.")]
MonthOpt = Annotated[str | None, typer.Option("--month", help="A calendar month: 2026-03.")]


def _moment(value: str, name: str) -> str:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"--{name}: not an ISO 8601 time: {value!r}") from None
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).isoformat()


def period_params(start: str | None, end: str | None, month: str | None) -> dict[str, str]:
    """The query's ``start``/``end`` from the options (none: the server's current month)."""
    if month is not None:
        if start is not None or end is not None:
            raise InvalidRequest("give --month or --start/--end, not both")
        try:
            first = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        except ValueError:
            raise InvalidRequest(f"--month: a month is YYYY-MM, not {month!r}") from None
        after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        return {"start": first.isoformat(), "end": after.isoformat()}
    out = {}
    if start is not None:
        out["start"] = _moment(start, "start")
    if end is not None:
        out["end"] = _moment(end, "end")
    return out


def _print_rows(fmt: Output, header: list[str], rows: list[list[str]], data: Any) -> bool:
    """CSV or JSON of a listing; False when the caller prints its table."""
    if fmt is Output.JSON:
        print(json.dumps(data, indent=2))
        return True
    if fmt is Output.CSV:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        sys.stdout.write(out.getvalue())
        return True
    if fmt is Output.HTML:
        raise InvalidRequest("--format html is for one invoice (gpulease invoices show)")
    return False


USAGE = (key("tenant", 1), key("job"), key("GPU", 2), when("start", 1), when("end", 2),
         num("GPU-seconds", 0), text("capacity", 0), key("lease", 3))  # fmt: skip


def usage_command(
    tenant: TenantOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    month: MonthOpt = None,
    summary: Annotated[bool, typer.Option("--summary", help="Totals by tenant.")] = False,
    offset: Annotated[int, typer.Option(help="Skip this many records.")] = 0,
    limit: Annotated[int, typer.Option(help="Records per page (1..1000).")] = 100,
    fmt: FormatOpt = Output.TABLE,
    wide: WideFlag = False,
) -> None:
    """Metered usage of a period: one GPU of one run per record (or --summary by tenant)."""
    params: dict[str, Any] = {"tenant_id": tenant, **period_params(start, end, month)}
    client = ApiClient()
    if summary:
        data = client.get("/usage/summary", **params)
        header = ["tenant", "guaranteed", "borrowed", "on_demand", "lent", "total"]
        rows = [
            [u["tenant_id"], u["guaranteed_gpu_seconds"], u["borrowed_gpu_seconds"],
             u["on_demand_gpu_seconds"], u["lent_gpu_seconds"], u["total_gpu_seconds"]]
            for u in data
        ]  # fmt: skip
        if not _print_rows(fmt, header, rows, data):
            cols = (key("tenant"), *(num(f"{h} GPU-s", 1) for h in header[1:]))
            tables.show(stdout(), cols, [[safe(c) for c in r] for r in rows], wide=wide)
        return
    page = client.get("/usage", offset=offset, limit=limit, **params)
    items = page["items"]
    header = ["id", "tenant", "job", "gpu", "start", "end", "gpu_seconds", "capacity", "lease"]
    rows = [
        [i["id"], i["tenant_id"], i["job_id"], i["gpu_serial"], i["start"], i["end"],
         i["gpu_seconds"], i["capacity"], i["lease_id"] or i["lender_lease_id"] or ""]
        for i in items
    ]  # fmt: skip
    if _print_rows(fmt, header, rows, page):
        return
    out = stdout()
    tables.show(out, USAGE, [[safe(c) for c in r[1:]] for r in rows], wide=wide)
    shown = offset + len(items)
    if shown < page["total"]:
        out.print(f"{shown} of {page['total']} records; next: --offset {shown}")


def _invoice_text(data: dict[str, Any], fmt: Output) -> str:
    invoice = invoice_from_dict(data["invoice"])
    if fmt is Output.CSV:
        return to_csv(invoice)
    if fmt is Output.HTML:
        notes = tuple(credit_note_from_dict(n) for n in data["credit_notes"])
        return to_html(invoice, notes)
    return json.dumps(data, indent=2) + "\n"


INVOICES = (key("invoice"), key("tenant", 1), when("period start", 1), when("period end", 2),
            num("total", 0), text("currency", 0), num("balance", 1))  # fmt: skip


@invoices_app.command("list")
def list_command(
    tenant: TenantOpt = None,
    offset: Annotated[int, typer.Option(help="Skip this many invoices.")] = 0,
    limit: Annotated[int, typer.Option(help="Invoices per page (1..500).")] = 50,
    fmt: FormatOpt = Output.TABLE,
    wide: WideFlag = False,
) -> None:
    """Issued invoices, newest period first."""
    data = ApiClient().get("/invoices", tenant_id=tenant, offset=offset, limit=limit)
    header = ["id", "tenant", "period_start", "period_end", "total", "currency", "balance"]
    rows = [
        [d["invoice"]["id"], d["invoice"]["tenant"], d["invoice"]["period"]["start"],
         d["invoice"]["period"]["end"], d["invoice"]["total"], d["invoice"]["currency"],
         d["balance"]]
        for d in data
    ]  # fmt: skip
    if not _print_rows(fmt, header, rows, data):
        tables.show(stdout(), INVOICES, [[safe(c) for c in r] for r in rows], wide=wide)


@invoices_app.command("show")
def show_command(
    invoice_id: Annotated[str, typer.Argument(help="The invoice's id.")],
    fmt: FormatOpt = Output.TABLE,
) -> None:
    """One invoice: its lines (quantity, unit price, amount, the usage behind each), its
    credit notes and balance."""
    data = ApiClient().get(f"/invoices/{segment(invoice_id)}")
    if fmt is not Output.TABLE:
        sys.stdout.write(_invoice_text(data, fmt))
        return
    _show_table(data)


def _show_table(data: dict[str, Any]) -> None:
    inv = data["invoice"]
    out = stdout()
    out.print(
        f"[bold]invoice {safe(inv['id'])}[/] for {safe(inv['tenant'])}, "
        f"{safe(inv['period']['start'])} .. {safe(inv['period']['end'])}, "
        f"issued {safe(inv['issued_at'])}"
    )
    cols = (num("#", 0), text("kind", 1), text("description", 0), num("GPU-hours", 0),
            num("unit price", 1), num("amount", 0))  # fmt: skip
    rows = [
        [str(ln["line"]), safe(ln["kind"]), safe(ln["description"]), safe(ln["quantity"]),
         safe(ln["unit_price"]), safe(ln["amount"])]
        for ln in inv["lines"]
    ]  # fmt: skip
    tables.show(out, cols, rows)
    out.print(f"total {safe(inv['total'])} {safe(inv['currency'])}")
    for note in data["credit_notes"]:
        out.print(f"credit note {safe(note['id'])}: {safe(note['total'])} ({safe(note['reason'])})")
    out.print(f"balance {safe(data['balance'])} {safe(inv['currency'])}")


@invoices_app.command("issue")
def issue_command(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant invoiced.")],
    start: StartOpt = None,
    end: EndOpt = None,
    month: MonthOpt = None,
    fmt: FormatOpt = Output.TABLE,
) -> None:
    """Operator-admin: issue a tenant's invoice for a period that is over (once)."""
    period = period_params(start, end, month)
    if set(period) != {"start", "end"}:
        raise InvalidRequest("say which period: --month, or --start and --end")
    data = ApiClient().post("/invoices", {"tenant_id": tenant, **period}, create=True)
    if fmt is Output.TABLE:
        _show_table(data)
    else:
        sys.stdout.write(_invoice_text(data, fmt))


@invoices_app.command("credit")
def credit_command(
    invoice_id: Annotated[str, typer.Argument(help="The invoice corrected.")],
    reason: Annotated[str, typer.Option(help="Why (the tenant reads it).")],
    line: Annotated[list[int] | None, typer.Option(help="A line reversed in full.")] = None,
    amount: Annotated[
        list[str] | None, typer.Option(help="LINE:AMOUNT, a negative amount on a line.")
    ] = None,
) -> None:
    """Operator-admin: a credit note against an issued invoice (it never changes itself)."""
    amounts = []
    for item in amount or []:
        number, _, value = item.partition(":")
        if not number.isdigit() or not value:
            raise InvalidRequest(f"--amount is LINE:AMOUNT, e.g. 2:-10.00, not {item!r}")
        amounts.append([int(number), value])
    body = {"reason": reason, "reverse_lines": line or [], "amounts": amounts}
    note = ApiClient().post(f"/invoices/{segment(invoice_id)}/credit-notes", body, create=True)
    stdout().print(
        f"credit note {safe(note['id'])} against {safe(note['invoice_id'])}: "
        f"{safe(note['total'])} {safe(note['currency'])}"
    )


@invoices_app.command("draft")
def draft_command(
    tenant: TenantOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    month: MonthOpt = None,
) -> None:
    """What a tenant's invoice for a period would say if rated now (nothing issued)."""
    data = ApiClient().get("/invoices/draft", tenant_id=tenant, **period_params(start, end, month))
    print(json.dumps(data, indent=2))


PLANS = (
    key("plan"),
    num("version", 0),
    when("from", 0),
    text("currency", 0),
    num("reserved", 1),
    num("on-demand", 1),
    num("borrowed", 1),
    num("lending share", 2),
)


@plans_app.command("list")
def plans_list_command(fmt: FormatOpt = Output.TABLE, wide: WideFlag = False) -> None:
    """Every version of every price plan (per GPU-hour)."""
    data = ApiClient().get("/price-plans")
    header = ["plan", "version", "effective_from", "currency", "reserved_rate",
              "on_demand_rate", "borrowed_rate", "lending_share"]  # fmt: skip
    rows = [
        [p["plan_id"], str(p["version"]), p["effective_from"], p["currency"],
         p["reserved_rate"], p["on_demand_rate"], p["borrowed_rate"], p["lending_share"]]
        for p in data
    ]  # fmt: skip
    if not _print_rows(fmt, header, rows, data):
        tables.show(stdout(), PLANS, [[safe(c) for c in r] for r in rows], wide=wide)


@plans_app.command("add")
def plans_add_command(
    plan: Annotated[str, typer.Argument(help="The plan's id (a new id creates it).")],
    effective_from: Annotated[str, typer.Option(help="In force from (ISO 8601).")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code, one per plan.")],
    reserved: Annotated[str, typer.Option(help="Reserved price per GPU-hour.")],
    on_demand: Annotated[str, typer.Option(help="On-demand price per GPU-hour.")],
    borrowed_discount: Annotated[str, typer.Option(help="Fraction off on-demand.")],
    lending_share: Annotated[str, typer.Option(help="Fraction credited to lenders.")],
) -> None:
    """Operator-admin: a new version of a plan (later versions take effect now or later)."""
    body = {
        "plan_id": plan,
        "effective_from": _moment(effective_from, "effective-from"),
        "currency": currency,
        "reserved_rate": reserved,
        "on_demand_rate": on_demand,
        "borrowed_discount": borrowed_discount,
        "lending_share": lending_share,
    }
    p = ApiClient().post("/price-plans", body, create=True)
    stdout().print(f"plan {safe(p['ref'])} in force from {safe(p['effective_from'])}")


@plans_app.command("assign")
def plans_assign_command(
    plan: Annotated[str, typer.Argument(help="The plan.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant rated on it.")],
) -> None:
    """Operator-admin: rate a tenant on a plan."""
    a = ApiClient().post("/price-plans/assignments", {"tenant_id": tenant, "plan_id": plan})
    stdout().print(f"tenant {safe(a['tenant_id'])} is rated on plan {safe(a['plan_id'])}")
