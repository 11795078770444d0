"""Invoices and credit notes: immutable values issued from a rated period.

Design. :func:`issue` turns a :class:`~.rating.Rated` period into an :class:`Invoice`: its
lines numbered from 1, its total the sum of the rounded line amounts, the issue time given by
the caller. An issued invoice is never changed (frozen dataclasses holding tuples,
Decimals and aware datetimes); a correction is a :class:`CreditNote` that references the
invoice, carries its own lines (negative amounts, each naming the invoice line it corrects)
and never credits more than the invoice's total less the notes before it.

Invariants (:func:`check` verifies them against the usage records):

* ``total`` is the exact sum of the lines' amounts, all in the invoice's currency and
  rounded to its minor units;
* each line's amount is ``round(gpu_seconds x unit_price / 3600)`` (an ``sla_cap`` line
  excepted); a usage line's ``gpu_seconds`` is the exact sum of the records it cites, and no
  record is cited by two usage lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gpulease.domain.errors import InvalidRequest
from gpulease.metering.money import round_money
from gpulease.metering.periods import Period, utc
from gpulease.metering.rating import USAGE_KINDS, Line, LineKind, Rated, price
from gpulease.metering.usage import UsageRecord


class InvoiceMismatch(InvalidRequest):
    """An invoice that does not add up, or does not match the usage it cites."""

    code = "invoice_mismatch"


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    tenant: str
    period: Period
    currency: str
    issued_at: datetime
    lines: tuple[Line, ...]
    total: Decimal

    @property
    def usage_ids(self) -> tuple[str, ...]:
        return tuple(u for ln in self.lines if ln.kind in USAGE_KINDS for u in ln.usage_ids)


@dataclass(frozen=True, slots=True)
class CreditLine:
    """A correction of invoice line ``invoice_line`` (1-based) by ``amount`` (< 0)."""

    invoice_line: int
    description: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class CreditNote:
    id: str
    invoice_id: str
    tenant: str
    currency: str
    issued_at: datetime
    reason: str
    lines: tuple[CreditLine, ...]
    total: Decimal


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))


def issue(rated: Rated, invoice_id: str, issued_at: datetime) -> Invoice:
    """The invoice of a rated period, issued at ``issued_at`` (given, never read)."""
    issued_at = utc(issued_at, "issued_at")
    if issued_at < rated.period.end:
        raise InvalidRequest("an invoice is issued once its period has ended", id=invoice_id)
    total = round_money(_sum(ln.amount for ln in rated.lines), rated.currency)
    return Invoice(
        invoice_id, rated.tenant, rated.period, rated.currency, issued_at, rated.lines, total
    )


def reversal(invoice: Invoice, numbers: Sequence[int]) -> tuple[CreditLine, ...]:
    """Credit lines that take back invoice lines ``numbers`` (1-based) in full."""
    out = []
    for n in numbers:
        if not 1 <= n <= len(invoice.lines):
            raise InvalidRequest(f"invoice {invoice.id} has no line {n}", line=n)
        ln = invoice.lines[n - 1]
        out.append(CreditLine(n, f"reversal of line {n}: {ln.description}", -ln.amount))
    return tuple(out)


def credit_note(
    invoice: Invoice,
    note_id: str,
    issued_at: datetime,
    reason: str,
    lines: Sequence[CreditLine],
    prior: Sequence[CreditNote] = (),
) -> CreditNote:
    """A correction of ``invoice``; ``prior`` are the notes already issued against it."""
    issued_at = utc(issued_at, "issued_at")
    if not reason.strip() or not lines:
        raise InvalidRequest("a credit note gives a reason and at least one line")
    for cl in lines:
        if not 1 <= cl.invoice_line <= len(invoice.lines):
            raise InvalidRequest(f"invoice {invoice.id} has no line {cl.invoice_line}")
        if cl.amount != round_money(cl.amount, invoice.currency):
            raise InvalidRequest("a credit line's amount is in the currency's minor units")
    if any(p.invoice_id != invoice.id for p in prior):
        raise InvalidRequest("prior credit notes must reference the same invoice")
    total = _sum(cl.amount for cl in lines)
    if total >= 0:
        raise InvalidRequest("a credit note credits (its total is negative)")
    credited = -_sum(p.total for p in prior) - total
    if credited > max(invoice.total, Decimal(0)):
        raise InvalidRequest(
            f"credit notes would credit {credited}, more than invoice {invoice.id}'s "
            f"{invoice.total}",
            invoice=invoice.id,
        )
    return CreditNote(
        note_id,
        invoice.id,
        invoice.tenant,
        invoice.currency,
        issued_at,
        reason,
        tuple(lines),
        total,
    )


def check(invoice: Invoice, records: Mapping[str, UsageRecord]) -> None:
    """Raise :class:`InvoiceMismatch` unless ``invoice`` adds up and matches ``records``
    (by id) for every usage it cites."""
    if invoice.total != _sum(ln.amount for ln in invoice.lines):
        raise InvoiceMismatch(f"invoice {invoice.id}: total is not the sum of its lines")
    if round_money(invoice.total, invoice.currency) != invoice.total:
        raise InvoiceMismatch(f"invoice {invoice.id}: total not in minor units")
    cited: set[str] = set()
    for n, ln in enumerate(invoice.lines, 1):
        if ln.kind is not LineKind.SLA_CAP and ln.amount != price(
            ln.gpu_seconds, ln.unit_price, invoice.currency
        ):
            raise InvoiceMismatch(f"invoice {invoice.id} line {n}: amount != quantity x price")
        if not ln.usage_ids:
            continue
        missing = [u for u in ln.usage_ids if u not in records]
        if missing:
            raise InvoiceMismatch(f"invoice {invoice.id} line {n} cites unknown usage {missing}")
        if ln.gpu_seconds != _sum(records[u].gpu_seconds for u in ln.usage_ids):
            raise InvoiceMismatch(f"invoice {invoice.id} line {n}: GPU-seconds != its usage")
        if ln.kind in USAGE_KINDS:
            twice = cited.intersection(ln.usage_ids)
            if twice:
                raise InvoiceMismatch(f"invoice {invoice.id}: usage {sorted(twice)} cited twice")
            cited.update(ln.usage_ids)
