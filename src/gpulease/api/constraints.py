"""The constrained types every request model and query parameter is built from.

Design: one place says what the edge accepts, as pydantic ``Annotated`` types, so that a
bad value is refused as HTTP 422 ``invalid_request`` naming its field before any service,
database row or scheduler pass sees it. The rules:

* numbers are finite and bounded: integers are strict (``true``, ``"8"`` and ``8.0`` are
  not 8), floats refuse ``NaN``/``Infinity`` and anything past their upper bound (a
  duration or walltime is at most :data:`MAX_SECONDS`, 366 days);
* text never holds NUL, other control characters (single-line fields refuse newlines and
  tabs too) or lone UTF-16 surrogates, which PostgreSQL, SQLite, a shell and a log all
  choke on; every string has a length bound at its field;
* times are aware and lie in :data:`TIME_WINDOW` (2000-01-01 .. 2100-01-01 UTC, fixed so
  that validation needs no clock); dates of record (an ownership stake) lie in
  :data:`DATE_WINDOW`; lease windows are further held to ``lease_horizon_days`` by the service;
* free-form JSON objects (:data:`FreeJson`) are bounded in depth, entries and string size,
  and hold only finite, JSON-safe numbers.

Invariants: every alias here is pure validation (no I/O, no clock); a value that passes
round-trips through JSON and both databases unchanged.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, Strict
from pydantic_core import PydanticCustomError

from gpulease.compliance.countries import country_code
from gpulease.domain.errors import InvalidRequest

MAX_SECONDS = 366 * 24 * 3600.0  # a duration or walltime
TIME_WINDOW = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
DATE_WINDOW = (date(1800, 1, 1), date(2100, 1, 1))
# free-form JSON objects (KYC identification): depth (the object itself is 1), entries in
# all, characters of a key and of a string value
FREE_JSON_DEPTH = 16
FREE_JSON_ENTRIES = 2000
FREE_JSON_KEY = 200
FREE_JSON_STRING = 10_000
MAX_SAFE_INTEGER = 2**53  # what every JSON reader keeps exactly

# C0 controls but tab, LF and CR; DEL; C1 controls; UTF-16 surrogates (invalid in UTF-8)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_BREAKS = re.compile("[\t\n\r]")


def _text(value: str) -> str:
    found = _CONTROL.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters or invalid code points "
            "(found {code} at {position})",
            {"code": f"U+{ord(found.group()):04X}", "position": found.start()},
        )
    return value


def _line(value: str) -> str:
    _text(value)
    found = _LINE_BREAKS.search(value)
    if found is not None:
        raise PydanticCustomError(
            "line_break",
            "must be a single line (found {code} at {position})",
            {"code": f"U+{ord(found.group()):04X}", "position": found.start()},
        )
    return value


def _in_time_window(value: datetime) -> datetime:
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    low, high = TIME_WINDOW
    if not low <= moment < high:
        raise PydanticCustomError(
            "time_window",
            "must lie between {low} and {high}",
            {"low": low.date().isoformat(), "high": high.date().isoformat()},
        )
    return value


def _in_date_window(value: date) -> date:
    low, high = DATE_WINDOW
    if not low <= value < high:
        raise PydanticCustomError(
            "date_window",
            "must lie between {low} and {high}",
            {"low": low.isoformat(), "high": high.isoformat()},
        )
    return value


def _report_day(value: date) -> date:
    _in_time_window(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return value


PERCENT_STEP = Decimal("1e-10")
PERCENT_PLACES = 10


def _percent(value: Decimal) -> Decimal:
    """A share with at most 10 decimal places (a float such as 100/3 is rounded to them);
    one that rounds to nothing is refused."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PERCENT_PLACES:
        value = value.quantize(PERCENT_STEP)
    if value <= 0:
        raise PydanticCustomError("percent", "must be at least {step}", {"step": "1e-10"})
    return value


# ------------------------------------------------------------------------------ text
# Length bounds go on each field (``Field(max_length=...)``); a test checks that none is
# missing. ``Line``: one line of text (names, ids, reasons); ``Text``: may span lines.
Line = Annotated[str, AfterValidator(_line)]
Text = Annotated[str, AfterValidator(_text)]
# an id or code given by reference (tenant, site, lease, end use...): one short line
Ref = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_line)]
ShortLine = Annotated[str, Field(max_length=500), AfterValidator(_line)]


def _country(value: str) -> str:
    """ISO 3166-1 alpha-2 of a code or name (``compliance.countries``); 422 suggesting the
    nearest countries otherwise."""
    try:
        return country_code(value)
    except InvalidRequest as error:
        raise PydanticCustomError("country", "{message}", {"message": error.message}) from None


def _optional_country(value: str) -> str:
    return _country(value) if value.strip() else ""


COUNTRY_HELP = (
    "ISO 3166-1 alpha-2; an alpha-3 code or the country's name is accepted and stored as "
    "its alpha-2 code"
)
CountryCode = Annotated[
    str,
    Field(min_length=2, max_length=100, description=COUNTRY_HELP, examples=["ID"]),
    AfterValidator(_country),
]
# a country that may be left empty (an address's)
OptionalCountry = Annotated[
    str, Field(max_length=100, description=COUNTRY_HELP), AfterValidator(_optional_country)
]

# ---------------------------------------------------------------------------- numbers
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
GpuCount = Annotated[int, Strict(), Field(ge=1, le=1_000_000)]
Seconds = Annotated[float, Strict(), Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Percent = Annotated[  # pydantic refuses true/false for a Decimal
    Decimal, Field(gt=0, le=100, allow_inf_nan=False), AfterValidator(_percent)
]

# ------------------------------------------------------------------------------ times
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_time_window)]
# a report's moment: a bare date-time is UTC
ReportTime = Annotated[datetime, AfterValidator(_in_time_window)]
Day = Annotated[date, AfterValidator(_in_date_window)]  # a date of record
ReportDay = Annotated[date, AfterValidator(_report_day)]  # a day in TIME_WINDOW


# -------------------------------------------------------------------- free-form JSON
def bounded_json(value: dict[str, object]) -> dict[str, object]:
    """Refuse a free-form object that nests too deep, is too big, or holds a value that
    does not survive JSON (NaN, infinities, integers past 2**53, control characters).

    Walks without recursion, and stops at the first problem."""
    stack: list[tuple[object, int]] = [(value, 1)]
    entries = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > FREE_JSON_DEPTH:
                raise PydanticCustomError(
                    "json_depth", "nested deeper than {limit} levels", {"limit": FREE_JSON_DEPTH}
                )
            entries += len(item)
            if entries > FREE_JSON_ENTRIES:
                raise PydanticCustomError(
                    "json_size", "holds more than {limit} entries", {"limit": FREE_JSON_ENTRIES}
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _free_string(str(key), FREE_JSON_KEY)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _free_string(item, FREE_JSON_STRING)
        elif isinstance(item, float) and not math.isfinite(item):
            raise PydanticCustomError("finite_number", "numbers must be finite")
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > MAX_SAFE_INTEGER:
                raise PydanticCustomError("number_too_big", "integers must lie within +-2**53")
        elif item is not None and not isinstance(item, bool | float):
            raise PydanticCustomError("json_type", "holds a value that is not JSON")
    return value


def _free_string(text: str, limit: int) -> None:
    if len(text) > limit:
        raise PydanticCustomError(
            "string_too_long", "holds a string of more than {limit} characters", {"limit": limit}
        )
    _text(text)


FreeJson = Annotated[
    dict[str, object],
    AfterValidator(bounded_json),
    Field(
        description=f"a JSON object: at most {FREE_JSON_DEPTH} levels deep, "
        f"{FREE_JSON_ENTRIES} entries, strings of {FREE_JSON_STRING} characters"
    ),
]
