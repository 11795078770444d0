"""The price of a lease: a flat rate per GPU-hour, in Decimal money.

Kept deliberately simple until metering and billing exist: ``gpus x hours x rate``, rounded
half-up to the cent. The rate is a setting of the operator, never a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Quote:
    gpu_hours: Decimal
    rate_per_gpu_hour: Decimal
    amount: Decimal
    currency: str


def quote(gpus: int, start: datetime, end: datetime, rate: Decimal, currency: str) -> Quote:
    seconds = Decimal(int((end - start).total_seconds()))
    gpu_hours = (Decimal(gpus) * seconds / Decimal(3600)).quantize(CENT, ROUND_HALF_UP)
    amount = (Decimal(gpus) * seconds * rate / Decimal(3600)).quantize(CENT, ROUND_HALF_UP)
    return Quote(gpu_hours, rate, amount, currency)
