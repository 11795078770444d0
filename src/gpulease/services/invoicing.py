"""Invoices and credit notes: issued from a rated period, stored once, corrected by notes.

Design. :func:`draft` rates a tenant's period now (``services.metering``) without storing
anything: what the invoice would say. :func:`issue` does the same for a period that has
ended, checks the result against the usage it cites (``metering.invoices.check``) and stores
it as the JSON of ``metering.render.invoice_dict`` with an audit record (which enters the
ledger with it, in the same transaction). A stored invoice is never updated; a correction is
a credit note (:func:`credit`), checked by ``metering.invoices.credit_note`` against the
invoice and the notes before it, stored and audited the same way.

Who: issuing and crediting are the operator-admin's; operator staff read every invoice, a
tenant-admin its tenant's (another tenant's is *not found*, as a missing one). Invariants:
one invoice per tenant and period (a unique key; a second issue is a conflict naming the
first); an invoice's total is the sum of its lines and of the usage they cite, checked
before it is stored; a note never credits more than the invoice's total less earlier notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Conflict, InvalidRequest, NotFound
from gpulease.metering import invoices as core
from gpulease.metering.invoices import CreditLine, CreditNote, Invoice
from gpulease.metering.periods import Period
from gpulease.metering.rating import Rated
from gpulease.metering.render import (
    credit_note_dict,
    credit_note_from_dict,
    invoice_dict,
    invoice_from_dict,
)
from gpulease.persistence.tables import CreditNoteRow, InvoiceRow, Tenant
from gpulease.services import audit, metering
from gpulease.services.context import ServiceContext, new_id

MAX_LIST = 500
MAX_NOTES = 100  # credit notes against one invoice


@dataclass(frozen=True, slots=True)
class IssuedInvoice:
    invoice: Invoice
    notes: tuple[CreditNote, ...]

    @property
    def balance(self) -> Decimal:
        """What the tenant owes after the credit notes."""
        return self.invoice.total + sum((n.total for n in self.notes), Decimal(0))


def _tenant_exists(ctx: ServiceContext, tenant: str) -> None:
    with ctx.db.transaction(write=False) as tx:
        if tx.get(Tenant, tenant) is None:
            raise NotFound(f"no tenant {tenant!r}", tenant_id=tenant)


def draft(ctx: ServiceContext, principal: Principal, tenant: str, period: Period) -> Rated:
    """What ``tenant``'s invoice for ``period`` would say if rated now (nothing stored);
    a period not over is rated up to now."""
    principal.authorize(Action.INVOICE_READ, tenant_id=tenant, record_id=tenant, kind="tenant")
    _tenant_exists(ctx, tenant)
    return metering.rate_tenant(metering.load_period(ctx, period, [tenant]), tenant)


def issue(ctx: ServiceContext, principal: Principal, tenant: str, period: Period) -> Invoice:
    """Issue ``tenant``'s invoice for ``period`` (over by now), once."""
    principal.authorize(Action.INVOICE_ISSUE, tenant_id=tenant, record_id=tenant, kind="tenant")
    _tenant_exists(ctx, tenant)
    now = ctx.now()
    if now < period.end:
        raise InvalidRequest(
            f"the period ends {period.end.isoformat()}: an invoice is issued once it is over",
            field="end",
        )
    usage = metering.load_period(ctx, period, [tenant])
    rated = metering.rate_tenant(usage, tenant)
    invoice = core.issue(rated, new_id("inv"), now)
    core.check(invoice, {r.id: r for r in usage.records})
    with ctx.db.transaction() as tx:
        first = tx.first(
            tx.select(InvoiceRow).where(
                InvoiceRow.tenant_id == tenant,
                InvoiceRow.period_start == period.start,
                InvoiceRow.period_end == period.end,
            )
        )
        if first is not None:
            raise Conflict(
                f"invoice {first.id} was issued for this tenant and period; correct it with a "
                "credit note",
                invoice_id=first.id,
            )
        tx.add(
            InvoiceRow(
                id=invoice.id,
                tenant_id=tenant,
                period_start=period.start,
                period_end=period.end,
                currency=invoice.currency,
                total=invoice.total,
                issued_at=now,
                issued_by=principal.user_id,
                document=invoice_dict(invoice),
            )
        )
        audit.record(
            tx,
            at=now,
            actor=principal.user_id,
            action="invoice.issue",
            subject_type="invoice",
            subject_id=invoice.id,
            after={
                "tenant": tenant,
                "period": [period.start.isoformat(), period.end.isoformat()],
                "currency": invoice.currency,
                "total": str(invoice.total),
                "lines": len(invoice.lines),
                "usage_records": len(invoice.usage_ids),
            },
        )
    return invoice


def _load(ctx: ServiceContext, principal: Principal, invoice_id: str) -> IssuedInvoice:
    with ctx.db.transaction(write=False) as tx:
        row = tx.get(InvoiceRow, invoice_id)
        if row is None:
            raise NotFound(f"no invoice {invoice_id!r}", invoice_id=invoice_id)
        principal.authorize(
            Action.INVOICE_READ, tenant_id=row.tenant_id, record_id=invoice_id, kind="invoice"
        )
        notes = tx.all(
            tx.select(CreditNoteRow)
            .where(CreditNoteRow.invoice_id == invoice_id)
            .order_by(CreditNoteRow.issued_at, CreditNoteRow.id)
        )
        return IssuedInvoice(
            invoice_from_dict(row.document),
            tuple(credit_note_from_dict(n.document) for n in notes),
        )


def get(ctx: ServiceContext, principal: Principal, invoice_id: str) -> IssuedInvoice:
    """An issued invoice with its credit notes."""
    return _load(ctx, principal, invoice_id)


def list_invoices(
    ctx: ServiceContext,
    principal: Principal,
    *,
    tenant: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[IssuedInvoice]:
    """Issued invoices the principal may read, newest period first (a tenant: its own)."""
    if not 1 <= limit <= MAX_LIST or not 0 <= offset <= 1_000_000:
        raise InvalidRequest(f"limit is 1..{MAX_LIST}, offset 0..1000000", field="limit")
    principal.scope(Action.INVOICE_READ)
    if not principal.is_operator:
        tenant = principal.acting_tenant(tenant)
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(InvoiceRow).order_by(
            InvoiceRow.period_start.desc(), InvoiceRow.tenant_id, InvoiceRow.id
        )
        if tenant is not None:
            query = query.where(InvoiceRow.tenant_id == tenant)
        rows = tx.all(query.offset(offset).limit(limit))
        ids = [r.id for r in rows]
        notes: dict[str, list[CreditNote]] = {}
        if ids:
            for n in tx.all(
                tx.select(CreditNoteRow)
                .where(CreditNoteRow.invoice_id.in_(ids))
                .order_by(CreditNoteRow.issued_at, CreditNoteRow.id)
            ):
                notes.setdefault(n.invoice_id, []).append(credit_note_from_dict(n.document))
        return [
            IssuedInvoice(invoice_from_dict(r.document), tuple(notes.get(r.id, ()))) for r in rows
        ]


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """Reverse ``lines`` (1-based) in full, and/or credit ``amounts`` (line -> a negative
    amount in the currency's minor units) against single lines."""

    reason: str
    lines: Sequence[int] = ()
    amounts: Sequence[tuple[int, Decimal]] = ()


def credit(
    ctx: ServiceContext, principal: Principal, invoice_id: str, request: CreditRequest
) -> CreditNote:
    """Issue a credit note against an issued invoice (the invoice itself never changes)."""
    principal.scope(Action.INVOICE_ISSUE)  # a role that never may: denied, before any lookup
    issued = _load(ctx, principal, invoice_id)
    invoice = issued.invoice
    principal.authorize(
        Action.INVOICE_ISSUE, tenant_id=invoice.tenant, record_id=invoice_id, kind="invoice"
    )
    if len(issued.notes) >= MAX_NOTES:
        raise InvalidRequest(f"invoice {invoice_id} has {MAX_NOTES} credit notes already")
    if len(request.reason) > 1000:
        raise InvalidRequest("a reason is at most 1000 characters", field="reason")
    lines = list(core.reversal(invoice, request.lines))
    for number, amount in request.amounts:
        if not 1 <= number <= len(invoice.lines):
            raise InvalidRequest(f"invoice {invoice_id} has no line {number}", line=number)
        lines.append(
            CreditLine(number, f"credit on line {number}: {request.reason.strip()}", amount)
        )
    now = ctx.now()
    with ctx.db.transaction() as tx:
        # the notes again, under this transaction: two credits at once cannot both pass
        row = tx.get(InvoiceRow, invoice_id, for_update=True)
        assert row is not None
        prior = [
            credit_note_from_dict(n.document)
            for n in tx.all(tx.select(CreditNoteRow).where(CreditNoteRow.invoice_id == invoice_id))
        ]
        note = core.credit_note(invoice, new_id("cn"), now, request.reason, lines, prior)
        tx.add(
            CreditNoteRow(
                id=note.id,
                invoice_id=invoice_id,
                tenant_id=invoice.tenant,
                total=note.total,
                issued_at=now,
                issued_by=principal.user_id,
                document=credit_note_dict(note),
            )
        )
        audit.record(
            tx,
            at=now,
            actor=principal.user_id,
            action="invoice.credit",
            subject_type="invoice",
            subject_id=invoice_id,
            after={
                "credit_note": note.id,
                "total": str(note.total),
                "lines": [[cl.invoice_line, str(cl.amount)] for cl in note.lines],
            },
            reason=request.reason,
        )
    return note
