"""OFAC SDN list in OFAC's legacy CSV files: ``sdn.csv``, ``alt.csv``, ``add.csv``.

No header rows; ``-0-`` (often followed by a space) means empty; the files may end with a
DOS end-of-file byte (``\\x1a``) and use Windows line ends. Layouts:

* sdn.csv: ``ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage,
  GRT, Vess_flag, Vess_owner, Remarks``;
* alt.csv: ``ent_num, alt_num, alt_type, alt_name, alt_remarks`` (aliases of an entry);
* add.csv: ``ent_num, add_num, address, city_state_zip, country, add_remarks``.

SDN_Type ``individual`` is a person, ``vessel`` and ``aircraft`` themselves, ``-0-`` an
organisation. Programs are written ``SDGT] [IFSR``. Identifiers (passport, registration,
tax, LEI, IMO...) and nationalities are only in the free-text remarks: the usual phrasings
are read from there. An alias or address naming an entry that sdn.csv lacks refuses the set.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace

from gpulease.compliance.lists.common import (
    ListFormatError,
    decode,
    dedupe,
    normalize_country,
)
from gpulease.compliance.model import Address, ListEntry, PartyKind

__all__ = ["parse_ofac_sdn"]

SOURCE = "ofac-sdn"
_KINDS = {
    "individual": PartyKind.PERSON,
    "vessel": PartyKind.VESSEL,
    "aircraft": PartyKind.AIRCRAFT,
    "": PartyKind.ORGANIZATION,
}
_ID_TYPES = (
    "Passport", "National ID No.", "Cedula No.", "Registration ID", "Registration Number",
    "Business Registration Number", "Business Registration Document #", "Tax ID No.",
    "Vessel Registration Identification IMO",
    "Company Number", "Legal Entity Number", "LEI", "SWIFT/BIC", "Vessel Registration "
    "Identification", "IMO", "MMSI", "RFC", "CURP", "NIT #", "RUC #", "C.U.I.T.", "D-U-N-S Number",
    "Government Gazette Number", "Identification Number", "Aircraft Manufacturer's Serial "
    "Number (MSN)", "UK Company Number", "Trade License No.", "Commercial Registry Number",
)  # fmt: skip
_ID_RE = re.compile(
    r"(?:^|;\s*)("
    + "|".join(re.escape(t) for t in sorted(_ID_TYPES, key=len, reverse=True))
    + r")\s+"
    r"([A-Za-z0-9][A-Za-z0-9\-/.]*(?: [0-9][0-9\-/.]*)*)"
)
_NATIONALITY_RE = re.compile(
    r"(?:^|;\s*)(?:nationality(?: of registration)?|citizen)\s+(?:possibly\s+)?([^;.()]+)",
    re.IGNORECASE,
)


def _field(value: str) -> str:
    value = value.strip()
    return "" if value == "-0-" else value


def _rows(data: bytes, *, file: str, columns: int) -> list[tuple[int, list[str]]]:
    text = decode(data, file=file, fallback="cp1252")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and row[0].strip() in ("", "\x1a")):
                continue
            if len(row) != columns:
                raise ListFormatError(file, line, f"expected {columns} fields, got {len(row)}")
            fields = [_field(v) for v in row]
            if not fields[0].isdigit():
                raise ListFormatError(file, line, f"ent_num {row[0]!r} is not a number")
            rows.append((line, fields))
    except csv.Error as exc:
        raise ListFormatError(file, reader.line_num, f"malformed CSV: {exc}") from exc
    return rows


def _programs(value: str) -> tuple[str, ...]:
    return dedupe([p.strip(" []") for p in value.split("] [")])


def _identifiers(remarks: str) -> tuple[tuple[str, str], ...]:
    found = ((m.group(1), m.group(2).rstrip(".")) for m in _ID_RE.finditer(remarks))
    return tuple(dict.fromkeys(found))


def _nationalities(remarks: str) -> list[str]:
    return [normalize_country(m.group(1)) for m in _NATIONALITY_RE.finditer(remarks)]


def parse_ofac_sdn(
    sdn: bytes,
    alt: bytes,
    add: bytes,
    *,
    files: tuple[str, str, str] = ("sdn.csv", "alt.csv", "add.csv"),
) -> tuple[ListEntry, ...]:
    """The SDN entries with their aliases and addresses, in sdn.csv order."""
    sdn_file, alt_file, add_file = files
    entries: dict[str, ListEntry] = {}
    for line, f in _rows(sdn, file=sdn_file, columns=12):
        ent_num, name, sdn_type, program, _title, call_sign = f[:6]
        vess_flag, remarks = f[9], f[11]
        if not name:
            raise ListFormatError(sdn_file, line, "empty SDN_Name")
        if ent_num in entries:
            raise ListFormatError(sdn_file, line, f"ent_num {ent_num} appears twice")
        kind = _KINDS.get(sdn_type.casefold())
        if kind is None:
            raise ListFormatError(sdn_file, line, f"unknown SDN_Type {sdn_type!r}")
        identifiers = _identifiers(remarks)
        if call_sign:
            identifiers = (*identifiers, ("Call Sign", call_sign))
        entries[ent_num] = ListEntry(
            source=SOURCE,
            entry_id=ent_num,
            kind=kind,
            name=name,
            countries=dedupe([*_nationalities(remarks), normalize_country(vess_flag)]),
            identifiers=identifiers,
            programs=_programs(program),
            list_name="SDN",
            remarks=remarks,
        )
    aliases: dict[str, list[str]] = {}
    for line, f in _rows(alt, file=alt_file, columns=5):
        if f[0] not in entries:
            raise ListFormatError(alt_file, line, f"alias of unknown ent_num {f[0]}")
        if not f[3]:
            raise ListFormatError(alt_file, line, "empty alt_name")
        aliases.setdefault(f[0], []).append(f[3])
    addresses: dict[str, list[Address]] = {}
    for line, f in _rows(add, file=add_file, columns=6):
        if f[0] not in entries:
            raise ListFormatError(add_file, line, f"address of unknown ent_num {f[0]}")
        address = Address(street=f[2], city=f[3], country=normalize_country(f[4]))
        if address != Address():
            addresses.setdefault(f[0], []).append(address)
    out: list[ListEntry] = []
    for ent_num, entry in entries.items():
        addrs = tuple(addresses.get(ent_num, ()))
        out.append(
            replace(
                entry,
                aliases=tuple(a for a in dedupe(aliases.get(ent_num, [])) if a != entry.name),
                addresses=addrs,
                countries=dedupe([*entry.countries, *(a.country for a in addrs)]),
            )
        )
    return tuple(out)
