"""CSV and JSON renderings of invoices and credit notes (HTML comes with the web layer).

Design. Both are plain text built from the immutable values, deterministic byte for byte:
Decimals are written as their strings (never floats), datetimes as ISO 8601 UTC, JSON keys
sorted. The CSV has one row per line with the columns a person checks (quantity, unit, unit
price, amount, the usage ids behind it) and a final ``total`` row.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from gpulease.metering.invoices import CreditNote, Invoice
from gpulease.metering.rating import Line

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
