"""BIS Denied Persons List: tab-separated, a header row, every field quoted.

Columns: ``Name, Street_Address, City, State, Country, Postal_Code, Effective_Date,
Expiration_Date, Standard_Order, Last_Update, Action, FR_Citation``. The list publishes no
record id, and one person may have several rows (one per address), so each row is one entry
whose id is a digest of name, address and effective date. Dates (``MM/DD/YYYY``) become ISO.
"""

from __future__ import annotations

import csv
import io
import re

from gpulease.compliance.lists.common import (
    ListFormatError,
    decode,
    normalize_country,
    stable_id,
)
from gpulease.compliance.model import Address, ListEntry, PartyKind

__all__ = ["COLUMNS", "parse_bis_dpl"]

SOURCE = "bis-dpl"
COLUMNS: tuple[str, ...] = (
    "Name", "Street_Address", "City", "State", "Country", "Postal_Code", "Effective_Date",
    "Expiration_Date", "Standard_Order", "Last_Update", "Action", "FR_Citation",
)  # fmt: skip
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _iso_date(value: str, *, file: str, line: int) -> str:
    value = value.strip()
    if not value:
        return ""
    match = _US_DATE.match(value)
    if match is None:
        raise ListFormatError(file, line, f"date {value!r} is not MM/DD/YYYY")
    month, day, year = match.groups()
    return f"{year}-{int(month):02d}-{int(day):02d}"


def parse_bis_dpl(data: bytes, *, file: str = "dpl.tsv") -> tuple[ListEntry, ...]:
    """Every row of the Denied Persons List as a :class:`ListEntry`."""
    text = decode(data, file=file)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True)
    entries: dict[str, ListEntry] = {}
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[: len(COLUMNS)]) != COLUMNS:
            raise ListFormatError(
                file, 1, "expected the Denied Persons header: " + ", ".join(COLUMNS)
            )
        width = len(header)
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != width:
                raise ListFormatError(file, line, f"expected {width} fields, got {len(row)}")
            rec = dict(zip(COLUMNS, (v.strip() for v in row), strict=False))
            if not rec["Name"]:
                raise ListFormatError(file, line, "empty Name")
            address = Address(
                street=rec["Street_Address"],
                city=rec["City"],
                region=rec["State"],
                postal_code=rec["Postal_Code"],
                country=normalize_country(rec["Country"]),
            )
            start = _iso_date(rec["Effective_Date"], file=file, line=line)
            _iso_date(rec["Expiration_Date"], file=file, line=line)
            entry_id = stable_id(rec["Name"], repr(address), start)
            entry = ListEntry(
                source=SOURCE,
                entry_id=entry_id,
                kind=PartyKind.UNKNOWN,
                name=rec["Name"],
                countries=(address.country,) if address.country else (),
                addresses=(address,),
                programs=("DPL",),
                list_name="Denied Persons List",
                remarks="; ".join(v for v in (rec["Action"], rec["FR_Citation"]) if v),
                start_date=start,
            )
            if entries.get(entry_id, entry) != entry:
                raise ListFormatError(file, line, "two different rows with the same id")
            entries[entry_id] = entry
    except csv.Error as exc:
        raise ListFormatError(file, reader.line_num, f"malformed TSV: {exc}") from exc
    return tuple(entries.values())
