"""Invoices and credit notes: totals add up, lines match the usage they cite, issued values
never change, and the CSV and JSON renderings carry the same figures."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from metering_support import PLANS, at

from gpulease.domain.errors import InvalidRequest
from gpulease.metering.invoices import (
    CreditLine,
    Invoice,
    InvoiceMismatch,
    check,
    credit_note,
    issue,
    reversal,
)
from gpulease.metering.periods import Granularity, Period
from gpulease.metering.rating import (
    Degradation,
    LeaseTerm,
    LineKind,
    SlaEvidence,
    SlaRule,
    rate_period,
)
from gpulease.metering.render import CSV_COLUMNS, to_csv, to_json
from gpulease.metering.usage import Allocation, CapacityClass, UsageRecord, meter

FEB = Period.of(at("2026-02-01 00:00"), Granularity.MONTH)
ISSUED = at("2026-03-01 09:00")


def acme_february() -> tuple[Invoice, dict[str, UsageRecord]]:
    """acme: lease L1 (8 GPUs, 48 h), 4 GPU-h used in it, 90 min of borrowed work elsewhere,
    a lending credit from cargo's use of L1, and an SLA credit for a degraded tray.

    By hand: reserved 384 GPU-h x 2.00 = 768.00; included 4 GPU-h at 0 = 0.00; borrowed
    1.5 GPU-h x 1.80 = 2.70; lending 2 GPU-h x -(1.80 x 0.25) = -0.90; degraded 4 GPUs x 1 h
    x -2.00 = -8.00. Total 768.00 + 0 + 2.70 - 0.90 - 8.00 = 761.80."""
    lease = LeaseTerm("L1", "acme", 8, at("2026-02-10 00:00"), at("2026-02-12 00:00"))
    allocations = [
        Allocation("g1", "acme", "j1", "S1", at("2026-02-10 08:00"), at("2026-02-10 12:00"),
                   CapacityClass.GUARANTEED, lease_id="L1"),
        Allocation("b1", "acme", "j2", "S20", at("2026-02-20 10:15"), at("2026-02-20 11:45"),
                   CapacityClass.BORROWED),
        Allocation("x1", "cargo", "j3", "S2", at("2026-02-11 01:00"), at("2026-02-11 03:00"),
                   CapacityClass.BORROWED, lender_lease_id="L1", lender_tenant="acme"),
    ]  # fmt: skip
    records = meter(allocations, ISSUED, Granularity.HOUR, PLANS["acme"].change_times())
    rule = SlaRule(timedelta(minutes=30), Decimal(2), Decimal(1))
    tray = Degradation("tray-3", "L1", 4, at("2026-02-11 22:00"), at("2026-02-11 23:00"))
    evidence = SlaEvidence(degradations=[tray])
    rated = rate_period("acme", FEB, records, [lease], PLANS, rule, evidence)
    return issue(rated, "INV-2026-02-acme", ISSUED), {r.id: r for r in records}


def test_invoice_total_is_the_sum_of_its_lines_and_of_its_usage() -> None:
    invoice, records = acme_february()
    assert [(ln.kind, ln.amount) for ln in invoice.lines] == [
        (LineKind.RESERVED, Decimal("768.00")),
        (LineKind.INCLUDED, Decimal("0.00")),
        (LineKind.BORROWED, Decimal("2.70")),
        (LineKind.LENDING_CREDIT, Decimal("-0.90")),
        (LineKind.SLA_DEGRADED, Decimal("-8.00")),
    ]
    assert invoice.total == Decimal("761.80")
    check(invoice, records)
    borrowed = invoice.lines[2]
    # 10:15..11:00 and 11:00..11:45: 2700 s + 2700 s = 1.5 GPU-h
    assert [records[u].gpu_seconds for u in borrowed.usage_ids] == [Decimal(2700)] * 2
    assert set(invoice.usage_ids) == {r.id for r in records.values() if r.tenant == "acme"}


def test_check_finds_an_invoice_that_does_not_add_up() -> None:
    invoice, records = acme_february()
    lines = list(invoice.lines)
    bad_total = dataclasses.replace(invoice, total=invoice.total + Decimal("0.01"))
    with pytest.raises(InvoiceMismatch, match="sum of its lines"):
        check(bad_total, records)
    lines[2] = dataclasses.replace(lines[2], amount=Decimal("2.71"))
    bad_line = dataclasses.replace(
        invoice, lines=tuple(lines), total=invoice.total + Decimal("0.01")
    )
    with pytest.raises(InvoiceMismatch, match="quantity x price"):
        check(bad_line, records)
    lines[2] = dataclasses.replace(invoice.lines[2], usage_ids=invoice.lines[2].usage_ids[:1])
    with pytest.raises(InvoiceMismatch, match="GPU-seconds"):
        check(dataclasses.replace(invoice, lines=tuple(lines)), records)
    lines[2] = dataclasses.replace(invoice.lines[2], usage_ids=invoice.lines[1].usage_ids)
    with pytest.raises(InvoiceMismatch):
        check(dataclasses.replace(invoice, lines=tuple(lines)), records)
    with pytest.raises(InvoiceMismatch, match="unknown usage"):
        check(invoice, {})


def test_issued_invoice_is_immutable() -> None:
    invoice, _ = acme_february()
    with pytest.raises(dataclasses.FrozenInstanceError):
        invoice.total = Decimal(0)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        invoice.lines[0].amount = Decimal(0)  # type: ignore[misc]
    assert isinstance(invoice.lines, tuple)
    assert isinstance(invoice.lines[0].usage_ids, tuple)
    rated = rate_period("acme", FEB, [], [], PLANS)
    with pytest.raises(InvalidRequest, match="period has ended"):
        issue(rated, "early", at("2026-02-28 23:59"))


def test_corrections_are_credit_notes_referencing_the_invoice() -> None:
    invoice, _ = acme_february()
    note = credit_note(
        invoice, "CN-1", ISSUED, "borrowed line billed in error", reversal(invoice, [3])
    )
    assert (note.invoice_id, note.total) == ("INV-2026-02-acme", Decimal("-2.70"))
    assert invoice.total == Decimal("761.80")  # the invoice itself is unchanged
    partial = credit_note(invoice, "CN-2", ISSUED, "goodwill",
                          [CreditLine(1, "goodwill on the reservation", Decimal("-100.00"))],
                          prior=[note])  # fmt: skip
    assert partial.total == Decimal("-100.00")
    # 2.70 + 100.00 credited so far; the remaining 659.10 may be credited, not a cent more.
    with pytest.raises(InvalidRequest, match="more than"):
        credit_note(invoice, "CN-3", ISSUED, "too much",
                    [CreditLine(1, "x", Decimal("-659.11"))], prior=[note, partial])  # fmt: skip
    credit_note(invoice, "CN-3", ISSUED, "the rest",
                [CreditLine(1, "x", Decimal("-659.10"))], prior=[note, partial])  # fmt: skip
    with pytest.raises(InvalidRequest, match="minor units"):
        credit_note(invoice, "CN-4", ISSUED, "x", [CreditLine(1, "x", Decimal("-0.001"))])
    with pytest.raises(InvalidRequest, match="credits"):
        credit_note(invoice, "CN-5", ISSUED, "x", [CreditLine(1, "x", Decimal("1.00"))])
    with pytest.raises(InvalidRequest, match="no line"):
        reversal(invoice, [9])


def test_csv_and_json_carry_the_same_figures() -> None:
    invoice, records = acme_february()
    rows = list(csv.DictReader(io.StringIO(to_csv(invoice))))
    assert tuple(rows[0]) == CSV_COLUMNS
    body, total = rows[:-1], rows[-1]
    assert total["line"] == "total"
    assert Decimal(total["amount"]) == invoice.total
    assert sum(Decimal(r["amount"]) for r in body) == invoice.total
    assert body[2]["unit"] == "GPU-hour"
    assert (body[2]["quantity"], body[2]["unit_price"]) == ("1.500000", "1.8000")
    assert body[2]["usage_ids"].split() == list(invoice.lines[2].usage_ids)
    assert "tray-3" in body[4]["evidence"]
    doc = json.loads(to_json(invoice), parse_float=Decimal)
    assert doc["total"] == "761.80"
    assert sum(Decimal(ln["amount"]) for ln in doc["lines"]) == Decimal(doc["total"])
    cited = {u for ln in doc["lines"] for u in ln["usage_ids"] if ln["kind"] != "lending_credit"}
    assert cited == {r.id for r in records.values() if r.tenant == "acme"}
    assert to_json(invoice) == to_json(acme_february()[0])  # deterministic, byte for byte
    note = credit_note(invoice, "CN-1", ISSUED, "error", reversal(invoice, [3]))
    assert json.loads(to_json(note))["invoice_id"] == invoice.id
