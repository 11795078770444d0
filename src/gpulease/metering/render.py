"""CSV, JSON and HTML renderings of invoices and credit notes, and the JSON read back.

Design. All are plain text built from the immutable values, deterministic byte for byte:
Decimals are written as their strings (never floats), datetimes as ISO 8601 UTC, JSON keys
sorted. The CSV has one row per line with the columns a person checks (quantity, unit, unit
price, amount, the usage ids behind it) and a final ``total`` row; the HTML is one
self-contained page, every text escaped. :func:`invoice_from_dict` and
:func:`credit_note_from_dict` read :func:`invoice_dict` / :func:`credit_note_dict` back into
the values (how an issued invoice is stored): ``from_dict(to_dict(x)) == x``.
"""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from gpulease.metering.invoices import CreditLine, CreditNote, Invoice
from gpulease.metering.periods import Period
from gpulease.metering.rating import Line, LineKind

CSV_COLUMNS = (
    "line",
    "kind",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
    "gpu_seconds",
    "lease_id",
    "plan",
    "usage_ids",
    "evidence",
)


def _line(n: int, ln: Line, currency: str) -> dict[str, Any]:
    return {
        "line": n,
        "kind": ln.kind.value,
        "description": ln.description,
        "quantity": str(ln.quantity),
        "unit": ln.unit,
        "unit_price": str(ln.unit_price),
        "amount": str(ln.amount),
        "currency": currency,
        "gpu_seconds": str(ln.gpu_seconds),
        "lease_id": ln.lease_id,
        "plan": ln.plan,
        "usage_ids": list(ln.usage_ids),
        "evidence": list(ln.evidence),
    }


def invoice_dict(inv: Invoice) -> dict[str, Any]:
    return {
        "id": inv.id,
        "type": "invoice",
        "tenant": inv.tenant,
        "period": {"start": inv.period.start.isoformat(), "end": inv.period.end.isoformat()},
        "currency": inv.currency,
        "issued_at": inv.issued_at.isoformat(),
        "lines": [_line(n, ln, inv.currency) for n, ln in enumerate(inv.lines, 1)],
        "total": str(inv.total),
    }


def credit_note_dict(note: CreditNote) -> dict[str, Any]:
    return {
        "id": note.id,
        "type": "credit_note",
        "invoice_id": note.invoice_id,
        "tenant": note.tenant,
        "currency": note.currency,
        "issued_at": note.issued_at.isoformat(),
        "reason": note.reason,
        "lines": [
            {
                "invoice_line": cl.invoice_line,
                "description": cl.description,
                "amount": str(cl.amount),
            }
            for cl in note.lines
        ],
        "total": str(note.total),
    }


def to_json(doc: Invoice | CreditNote) -> str:
    data = invoice_dict(doc) if isinstance(doc, Invoice) else credit_note_dict(doc)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def to_csv(inv: Invoice) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for n, ln in enumerate(inv.lines, 1):
        row = _line(n, ln, inv.currency)
        row["usage_ids"] = " ".join(ln.usage_ids)
        row["evidence"] = " | ".join(ln.evidence)
        w.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    w.writerow(
        [
            "total",
            "",
            f"invoice {inv.id}",
            "",
            "",
            "",
            str(inv.total),
            inv.currency,
            "",
            "",
            "",
            "",
            "",
        ]
    )
    return out.getvalue()


def _line_from(data: dict[str, Any]) -> Line:
    return Line(
        kind=LineKind(data["kind"]),
        description=str(data["description"]),
        gpu_seconds=Decimal(data["gpu_seconds"]),
        unit_price=Decimal(data["unit_price"]),
        amount=Decimal(data["amount"]),
        unit=str(data["unit"]),
        lease_id=data["lease_id"],
        plan=data["plan"],
        usage_ids=tuple(data["usage_ids"]),
        evidence=tuple(data["evidence"]),
    )


def invoice_from_dict(data: dict[str, Any]) -> Invoice:
    """The invoice :func:`invoice_dict` wrote."""
    return Invoice(
        id=data["id"],
        tenant=data["tenant"],
        period=Period(
            datetime.fromisoformat(data["period"]["start"]),
            datetime.fromisoformat(data["period"]["end"]),
        ),
        currency=data["currency"],
        issued_at=datetime.fromisoformat(data["issued_at"]),
        lines=tuple(_line_from(ln) for ln in data["lines"]),
        total=Decimal(data["total"]),
    )


def credit_note_from_dict(data: dict[str, Any]) -> CreditNote:
    """The credit note :func:`credit_note_dict` wrote."""
    return CreditNote(
        id=data["id"],
        invoice_id=data["invoice_id"],
        tenant=data["tenant"],
        currency=data["currency"],
        issued_at=datetime.fromisoformat(data["issued_at"]),
        reason=data["reason"],
        lines=tuple(
            CreditLine(int(cl["invoice_line"]), str(cl["description"]), Decimal(cl["amount"]))
            for cl in data["lines"]
        ),
        total=Decimal(data["total"]),
    )


_HTML_COLUMNS = ("line", "kind", "description", "quantity", "unit", "unit_price", "amount")


def to_html(inv: Invoice, notes: tuple[CreditNote, ...] = ()) -> str:
    """One self-contained HTML page: the invoice's lines, its total, the usage and evidence
    behind each line, and the credit notes issued against it."""
    e = html.escape
    rows = []
    for n, ln in enumerate(inv.lines, 1):
        row = _line(n, ln, inv.currency)
        cells = "".join(f"<td>{e(str(row[c]))}</td>" for c in _HTML_COLUMNS)
        behind = [*ln.evidence]
        if ln.usage_ids:
            behind.append(f"{len(ln.usage_ids)} usage records: " + " ".join(ln.usage_ids))
        detail = "".join(f"<li>{e(x)}</li>" for x in behind)
        rows.append(f"<tr>{cells}</tr>")
        if detail:
            rows.append(f'<tr class="behind"><td></td><td colspan="6"><ul>{detail}</ul></td></tr>')
    head = "".join(f"<th>{e(c.replace('_', ' '))}</th>" for c in _HTML_COLUMNS)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Invoice {e(inv.id)}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;text-align:left}"
        ".behind td{font-size:smaller;color:#555}</style></head><body>",
        f"<h1>Invoice {e(inv.id)}</h1>",
        f"<p>Tenant {e(inv.tenant)}; period {e(inv.period.start.isoformat())} to "
        f"{e(inv.period.end.isoformat())}; issued {e(inv.issued_at.isoformat())}; "
        f"currency {e(inv.currency)}.</p>",
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>",
        f'<tfoot><tr><th colspan="6">total</th><th id="total">{e(str(inv.total))}</th></tr>'
        "</tfoot></table>",
    ]
    for note in notes:
        items = "".join(
            f"<li>line {cl.invoice_line}: {e(cl.description)}: {e(str(cl.amount))}</li>"
            for cl in note.lines
        )
        parts.append(
            f"<h2>Credit note {e(note.id)}</h2><p>{e(note.issued_at.isoformat())}: "
            f"{e(note.reason)}; total {e(str(note.total))} {e(note.currency)}</p><ul>{items}</ul>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)
