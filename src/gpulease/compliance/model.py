"""Pure types shared by the compliance cores: parties, list entries, screening hits.

A *party* is anyone we must know: a tenant organisation, its owners up the chain, its
officers. A *list entry* is one record of a restricted-party list (an OFAC SDN entry, a
Consolidated Screening List row, a BIS Denied Person, an OpenSanctions entity), normalised to
one shape whatever its source. Both carry names in any script, aliases, countries (ISO 3166
alpha-2 where known), identifiers (``{"registration": "...", "lei": "...", "tax": "..."}``;
list entries keep their source's id types) and addresses.

Everything here is frozen; importers build entries, the matcher compares a party with entries
and returns hits that explain themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PartyKind(StrEnum):
    ORGANIZATION = "organization"
    PERSON = "person"
    VESSEL = "vessel"
    AIRCRAFT = "aircraft"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Address:
    street: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""  # ISO 3166 alpha-2 when known, else the source's text


@dataclass(frozen=True, slots=True)
class Party:
    id: str
    kind: PartyKind
    name: str
    aliases: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    identifiers: tuple[tuple[str, str], ...] = ()  # (type, value), e.g. ("lei", "5493...")
    addresses: tuple[Address, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One record of a screening list, whatever its source format."""

    source: str  # e.g. "ofac-sdn", "csl", "bis-dpl", "opensanctions"
    entry_id: str  # stable within the source (OFAC ent_num, CSL _id or entity_number...)
    kind: PartyKind
    name: str
    aliases: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    identifiers: tuple[tuple[str, str], ...] = ()
    addresses: tuple[Address, ...] = ()
    programs: tuple[str, ...] = ()  # sanctions programs or list names (SDGT, EL, ...)
    list_name: str = ""  # for the CSL: the component list (Entity List, SDN, ...)
    remarks: str = ""
    start_date: str = ""  # as published (ISO date when the source gives one)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.entry_id)


@dataclass(frozen=True, slots=True)
class Feature:
    """One reason a score moved: what was compared and how much it weighed."""

    name: str  # e.g. "name", "country_agrees", "identifier_match", "country_conflict"
    detail: str  # in words, e.g. "'huawei technologies' ~ 'huawei technologies co ltd'"
    weight: float  # contribution to the final score (may be negative)


@dataclass(frozen=True, slots=True)
class Hit:
    """A list entry that resembles a party, with the score's explanation."""

    entry: ListEntry
    score: float  # 0..100
    our_name: str  # which of the party's names matched
    listed_name: str  # which of the entry's names (primary or alias)
    features: tuple[Feature, ...] = field(default_factory=tuple)
    identifier_match: bool = False
