"""OpenSanctions entities in FollowTheMoney JSON lines (one entity per line).

Each line: ``{"id": ..., "schema": "Company", "properties": {"name": [...], ...}}``. The
first ``name`` is the entry's name; the other names, ``alias``, ``previousName`` and
``weakAlias`` are aliases. Countries come from ``country``, ``jurisdiction``,
``nationality``, ``citizenship`` (lower-case ISO codes, upper-cased here); identifiers from
``registrationNumber``, ``leiCode``, ``taxNumber``, ``innCode``, ``ogrnCode``, ``imoNumber``,
``swiftBic``, ``passportNumber``, ``idNumber``. Entities of schemas that are not parties
(``Sanction``, ``Ownership``, ``Address``...) are skipped: a full export carries them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpulease.compliance.lists.common import (
    ListFormatError,
    decode,
    dedupe,
    load_json,
    normalize_country,
)
from gpulease.compliance.model import Address, ListEntry, PartyKind

__all__ = ["parse_opensanctions"]

SOURCE = "opensanctions"
_KINDS = {
    "Person": PartyKind.PERSON,
    "Company": PartyKind.ORGANIZATION,
    "Organization": PartyKind.ORGANIZATION,
    "LegalEntity": PartyKind.ORGANIZATION,
    "PublicBody": PartyKind.ORGANIZATION,
    "Vessel": PartyKind.VESSEL,
    "Airplane": PartyKind.AIRCRAFT,
}
_ALIAS_PROPS = ("alias", "previousName", "weakAlias")
_COUNTRY_PROPS = ("country", "jurisdiction", "nationality", "citizenship", "flag")
_ID_PROPS = (
    "registrationNumber", "leiCode", "taxNumber", "innCode", "ogrnCode", "imoNumber",
    "swiftBic", "passportNumber", "idNumber", "vatCode",
)  # fmt: skip


def _values(props: Mapping[str, Any], key: str, *, file: str, line: int) -> list[str]:
    value = props.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ListFormatError(file, line, f"property {key!r} must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def parse_opensanctions(data: bytes, *, file: str = "entities.ftm.json") -> tuple[ListEntry, ...]:
    """Every party entity of a FollowTheMoney JSON-lines export."""
    text = decode(data, file=file)
    entries: dict[str, ListEntry] = {}
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        obj = load_json(raw, file=file, line=line)
        if not isinstance(obj, Mapping):
            raise ListFormatError(file, line, "each line must be a JSON object")
        entity_id, schema, props = obj.get("id"), obj.get("schema"), obj.get("properties")
        if not isinstance(entity_id, str) or not entity_id:
            raise ListFormatError(file, line, 'missing "id"')
        if not isinstance(schema, str) or not isinstance(props, Mapping):
            raise ListFormatError(file, line, 'missing "schema" or "properties"')
        kind = _KINDS.get(schema)
        if kind is None:
            continue
        names = _values(props, "name", file=file, line=line)
        if not names:
            raise ListFormatError(file, line, f"entity {entity_id} has no name")
        aliases = names[1:]
        for key in _ALIAS_PROPS:
            aliases += _values(props, key, file=file, line=line)
        countries = [
            normalize_country(c)
            for key in _COUNTRY_PROPS
            for c in _values(props, key, file=file, line=line)
        ]
        identifiers = tuple(
            dict.fromkeys(
                (key, v) for key in _ID_PROPS for v in _values(props, key, file=file, line=line)
            )
        )
        addresses = tuple(
            Address(street=a) for a in _values(props, "address", file=file, line=line)
        )
        datasets = obj.get("datasets", [])
        programs = [d for d in datasets if isinstance(d, str)] if isinstance(datasets, list) else []
        if entity_id in entries:
            raise ListFormatError(file, line, f"entity {entity_id} appears twice")
        entries[entity_id] = ListEntry(
            source=SOURCE,
            entry_id=entity_id,
            kind=kind,
            name=names[0],
            aliases=tuple(a for a in dedupe(aliases) if a != names[0]),
            countries=dedupe(countries),
            identifiers=identifiers,
            addresses=addresses,
            programs=dedupe(programs + _values(props, "program", file=file, line=line)),
            list_name=schema,
            remarks="; ".join(_values(props, "notes", file=file, line=line)),
            start_date=str(obj.get("first_seen") or "")[:10],
        )
    return tuple(entries.values())
