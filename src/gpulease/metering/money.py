"""Money: currency codes and rounding to a currency's minor units.

Design. The number of minor units of a currency (USD 2, JPY 0, BHD 3, ...) comes from the
Unicode CLDR data shipped with Babel (``babel.numbers.get_currency_precision``), never from a
table kept here; the rounding itself is ``Decimal.quantize`` half-up (the commercial rule
that ``leasing.pricing`` already quotes with). Amounts are computed exactly and rounded once,
per invoice line: a total is the sum of rounded lines, so it always equals what a person
adds up from the lines.

Invariants: ``round_money`` returns a Decimal with exactly the currency's minor units; an
unknown currency code is an error, not a guess of two decimals.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision, is_currency

from gpulease.domain.errors import InvalidRequest


class UnknownCurrency(InvalidRequest):
    code = "unknown_currency"


def check_currency(code: str) -> str:
    """``code`` when it is an ISO 4217 currency known to CLDR; raises otherwise."""
    if not is_currency(code):
        raise UnknownCurrency(f"unknown currency code {code!r}", currency=code)
    return code


def minor_units(currency: str) -> int:
    """Digits after the decimal point in ``currency``'s amounts (CLDR)."""
    return int(get_currency_precision(check_currency(currency)))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-up to ``currency``'s minor units."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), ROUND_HALF_UP)
