"""US Consolidated Screening List (trade.gov): CSV (current and legacy layouts) and JSON.

CSV layouts, told apart by the header:

* current, 29 columns starting with ``_id`` (a stable record id); ids read
  ``type, number, country`` (``"Passport, 836238033, KP"``);
* legacy, 28 columns without ``_id``; ids read ``number, type`` or
  ``country, number, type`` (``"US, 80-0890696, Tax ID No."``).

Multi-valued fields (addresses, alt names, programs, ids...) are joined with ``"; "``; an
address is ``street, city, state, postal code, country`` with empty parts left out, the
country as ISO alpha-2. Entries keep the CSL's record id (``_id``, else ``entity_number``,
else a digest of source, name, addresses and start date for the lists that publish no id).

The JSON is the API's ``{"results": [...]}`` document, one object per record with lists for
the multi-valued fields and dicts for addresses and ids.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gpulease.compliance.lists.common import (
    ListFormatError,
    decode,
    dedupe,
    is_country_code,
    is_identifier_type,
    load_json,
    normalize_country,
    split_multi,
    stable_id,
)
from gpulease.compliance.model import Address, ListEntry, PartyKind

__all__ = ["CURRENT_COLUMNS", "LEGACY_COLUMNS", "parse_csl_csv", "parse_csl_json"]

LEGACY_COLUMNS: tuple[str, ...] = (
    "source", "entity_number", "type", "programs", "name", "title", "addresses",
    "federal_register_notice", "start_date", "end_date", "standard_order",
    "license_requirement", "license_policy", "call_sign", "vessel_type", "gross_tonnage",
    "gross_registered_tonnage", "vessel_flag", "vessel_owner", "remarks", "source_list_url",
    "alt_names", "citizenships", "dates_of_birth", "nationalities", "places_of_birth",
    "source_information_url", "ids",
)  # fmt: skip
CURRENT_COLUMNS: tuple[str, ...] = ("_id", *LEGACY_COLUMNS)

SOURCE = "csl"
_KINDS = {
    "individual": PartyKind.PERSON,
    "entity": PartyKind.ORGANIZATION,
    "vessel": PartyKind.VESSEL,
    "aircraft": PartyKind.AIRCRAFT,
}


def _kind(value: str) -> PartyKind:
    return _KINDS.get(value.strip().casefold(), PartyKind.UNKNOWN)


def _parse_address(text: str) -> Address:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    country = ""
    if parts and is_country_code(parts[-1]):
        country = parts.pop()
    postal = ""
    if len(parts) >= 2 and any(ch.isdigit() for ch in parts[-1]) and len(parts[-1]) <= 10:
        postal = parts.pop()
    if len(parts) >= 2:
        return Address(
            street=", ".join(parts[:-1]), city=parts[-1], postal_code=postal, country=country
        )
    return Address(city=parts[0] if parts else "", postal_code=postal, country=country)


def _parse_csv_ids(value: str, *, legacy: bool) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in split_multi(value):
        parts = [p.strip() for p in item.split(", ")]
        if len(parts) < 2:
            continue
        if legacy:
            kind, number = parts[-1], parts[-2]
        else:
            kind, number = parts[0], parts[1]
        kind = kind.rstrip(":").strip()
        if number and is_identifier_type(kind):
            out.append((kind, number))
    return tuple(dict.fromkeys(out))


def _entry(
    *,
    record_id: str,
    list_name: str,
    kind: str,
    name: str,
    aliases: Iterable[str],
    addresses: tuple[Address, ...],
    citizenships: Iterable[str],
    identifiers: tuple[tuple[str, str], ...],
    programs: Iterable[str],
    remarks: str,
    start_date: str,
) -> ListEntry:
    countries = dedupe(
        [a.country for a in addresses] + [normalize_country(c) for c in citizenships]
    )
    name = name.strip()
    return ListEntry(
        source=SOURCE,
        entry_id=record_id or stable_id(list_name, name, repr(addresses), start_date),
        kind=_kind(kind),
        name=name,
        aliases=tuple(a for a in dedupe([a.strip() for a in aliases]) if a != name),
        countries=countries,
        identifiers=identifiers,
        addresses=addresses,
        programs=dedupe([p.strip() for p in programs]),
        list_name=list_name.strip(),
        remarks=remarks.strip(),
        start_date=start_date.strip(),
    )


def _unique(entries: list[tuple[int | None, ListEntry]], file: str) -> tuple[ListEntry, ...]:
    """Drop exact repeats; a record id used twice for different records is refused."""
    seen: dict[str, tuple[int | None, ListEntry]] = {}
    for line, entry in entries:
        prior = seen.get(entry.entry_id)
        if prior is None:
            seen[entry.entry_id] = (line, entry)
        elif prior[1] != entry:
            raise ListFormatError(
                file, line, f"record id {entry.entry_id!r} already used on line {prior[0]}"
            )
    return tuple(entry for _line, entry in seen.values())


def parse_csl_csv(data: bytes, *, file: str = "csl.csv") -> tuple[ListEntry, ...]:
    """Every record of a CSL CSV export (either layout); refuses the file on any defect."""
    text = decode(data, file=file)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ListFormatError(file, 1, "empty file: expected the CSL header row")
        columns = tuple(h.strip() for h in header)
        if columns == CURRENT_COLUMNS:
            legacy = False
        elif columns == LEGACY_COLUMNS:
            legacy = True
        else:
            raise ListFormatError(
                file,
                1,
                "header is neither the current (29 columns, with _id) nor the "
                f"legacy (28 columns) CSL layout; got {len(columns)} columns",
            )
        entries: list[tuple[int | None, ListEntry]] = []
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != len(columns):
                raise ListFormatError(
                    file, line, f"expected {len(columns)} columns, got {len(row)}"
                )
            rec = dict(zip(columns, row, strict=True))
            if not rec["name"].strip():
                raise ListFormatError(file, line, "empty name")
            entries.append(
                (
                    line,
                    _entry(
                        record_id=rec.get("_id", "").strip() or rec["entity_number"].strip(),
                        list_name=rec["source"],
                        kind=rec["type"],
                        name=rec["name"],
                        aliases=split_multi(rec["alt_names"]),
                        addresses=tuple(_parse_address(a) for a in split_multi(rec["addresses"])),
                        citizenships=split_multi(rec["citizenships"])
                        + split_multi(rec["nationalities"]),
                        identifiers=_parse_csv_ids(rec["ids"], legacy=legacy),
                        programs=split_multi(rec["programs"]),
                        remarks=rec["remarks"],
                        start_date=rec["start_date"],
                    ),
                )
            )
    except csv.Error as exc:
        raise ListFormatError(file, reader.line_num, f"malformed CSV: {exc}") from exc
    return _unique(entries, file)


def _strings(value: Any, *, file: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return split_multi(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ListFormatError(file, None, f"{where}: expected a list of strings")


def _json_address(value: Any, *, file: str, where: str) -> Address:
    if not isinstance(value, Mapping):
        raise ListFormatError(file, None, f"{where}: an address must be an object")

    def get(key: str) -> str:
        return str(value.get(key) or "").strip()

    return Address(
        street=get("address"),
        city=get("city"),
        region=get("state"),
        postal_code=get("postal_code"),
        country=normalize_country(get("country")),
    )


def _json_ids(value: Any, *, file: str, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ListFormatError(file, None, f"{where}: ids must be a list")
    out: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, Mapping):
            raise ListFormatError(file, None, f"{where}: an id must be an object")
        kind = str(item.get("type") or "").rstrip(":").strip()
        number = str(item.get("number") or "").strip()
        if number and is_identifier_type(kind):
            out.append((kind, number))
    return tuple(dict.fromkeys(out))


_RESULTS = re.compile(r'"results"\s*:\s*\[')
_DECODER = json.JSONDecoder()


def _record_lines(text: str, count: int) -> list[int | None]:
    """The line on which each element of the ``results`` array starts (None if unknown).

    ``json`` reports no positions for valid documents; this walks the array with
    ``raw_decode`` so that a record refused for its content can still be located."""
    lines: list[int | None] = [None] * count
    match = _RESULTS.search(text)
    if match is None:
        return lines
    pos = match.end()
    for i in range(count):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            _value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            return [None] * count
        lines[i] = text.count("\n", 0, pos) + 1
        pos = end
    return lines


def parse_csl_json(data: bytes, *, file: str = "csl.json") -> tuple[ListEntry, ...]:
    """Every record of a CSL JSON document (``{"results": [...]}``)."""
    text = decode(data, file=file)
    doc = load_json(text, file=file)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("results"), list):
        raise ListFormatError(file, 1, 'expected an object with a "results" list')
    entries: list[tuple[int | None, ListEntry]] = []
    lines = _record_lines(text, len(doc["results"]))
    for index, rec in enumerate(doc["results"]):
        try:
            entries.append((lines[index], _json_record(rec, file=file, where=f"results[{index}]")))
        except ListFormatError as exc:
            raise ListFormatError(file, lines[index], exc.reason, record=index) from None
    return _unique(entries, file)


def _json_record(rec: Any, *, file: str, where: str) -> ListEntry:
    if not isinstance(rec, Mapping):
        raise ListFormatError(file, None, f"{where}: a record must be an object")
    name = rec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ListFormatError(file, None, f"{where}: missing or empty name")
    addresses = rec.get("addresses") or []
    if not isinstance(addresses, list):
        raise ListFormatError(file, None, f"{where}: addresses must be a list")
    return _entry(
        record_id=str(rec.get("id") or rec.get("_id") or rec.get("entity_number") or ""),
        list_name=str(rec.get("source") or ""),
        kind=str(rec.get("type") or ""),
        name=name,
        aliases=_strings(rec.get("alt_names"), file=file, where=where),
        addresses=tuple(_json_address(a, file=file, where=where) for a in addresses),
        citizenships=_strings(rec.get("citizenships"), file=file, where=where)
        + _strings(rec.get("nationalities"), file=file, where=where),
        identifiers=_json_ids(rec.get("ids"), file=file, where=where),
        programs=_strings(rec.get("programs"), file=file, where=where),
        remarks=str(rec.get("remarks") or ""),
        start_date=str(rec.get("start_date") or ""),
    )
