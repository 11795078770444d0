"""The US 50 % rules on an ownership graph: restriction levels, edges, the fixed point.

Vocabulary. An :class:`OwnershipEdge` says that ``owner`` holds ``percent`` of ``owned`` over
``[since, until)`` (``until`` exclusive: the day a stake is sold it no longer counts). A
:class:`ControlEdge` says that a person or organisation holds a role (director, officer...)
in an organisation. A :class:`ListedParty` is a party named on a restricted-party list, with
its :class:`Restriction` level. A :class:`FiftyPercentRule` is one 50 % regime: the OFAC rule
(guidance of 13 August 2014, FAQ 398 and 401) counts SDN (blocked) owners only; the BIS
affiliates rule of 29 September 2025 counts Entity List, MEU List and SDN owners.

The 50 % rule. A party owned ``threshold`` (50) % or more, directly or indirectly,
individually or in the aggregate, by restricted parties is itself restricted. Indirect
ownership counts **only through entities that are themselves restricted** (FAQ 401): a
listed X holding 40 % of A and A holding 100 % of B restricts neither A nor B, however large
X's look-through interest in B. The set of restricted parties is the least fixed point
reached from the listed parties by marking every party whose restricted owners hold at least
the threshold, until nothing changes; cross-shareholdings (cycles) therefore terminate and
never restrict anyone on their own. An inherited restriction is the most restrictive level
among the restricted owners that hold the stake (BIS: "the most restrictive requirements of
any of the entities apply"); each rule is evaluated on its own, so an Entity List stake never
adds to an SDN stake under the OFAC rule.

Invariants. Pure: ``as_of`` and thresholds are arguments. Adding a restricted owner's stake
never lifts a restriction (the fixed point is monotone); the result does not depend on the
order of the edges. Stakes held on one day in one party may not exceed 100 %; such data is
refused with :class:`InvalidRequest` naming the party. Every restriction explains itself.
:mod:`gpulease.compliance.ownership` builds the full assessment (with red flags) on this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import IntEnum, StrEnum

from gpulease.compliance.model import ListEntry
from gpulease.domain.errors import InvalidRequest

HUNDRED = Decimal(100)
FIFTY = Decimal(50)


class Restriction(IntEnum):
    """How restricted a listed party is. A larger value is more restrictive.

    ``NONE`` < ``UNVERIFIED_LIST`` (BIS UVL: end use could not be verified; extra diligence)
    < ``MEU_LIST`` (BIS Military End-User List: licence for the items of Supp. 2 to part 744)
    < ``ENTITY_LIST`` (BIS Entity List: licence for every item subject to the EAR, usually
    presumption of denial) < ``DENIED_PERSON`` (BIS Denied Persons List: no export
    privileges at all) < ``SDN`` (OFAC Specially Designated Nationals: blocked; every
    dealing by a US person is prohibited).
    """

    NONE = 0
    UNVERIFIED_LIST = 1
    MEU_LIST = 2
    ENTITY_LIST = 3
    DENIED_PERSON = 4
    SDN = 5

    @property
    def code(self) -> str:
        """Stable text form, e.g. ``"entity_list"`` (stored and used in policy packs)."""
        return self.name.lower()

    @property
    def label(self) -> str:
        return _RESTRICTION_LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Restriction:
        """A code (``"entity_list"``), a common alias (``"blocked"``, ``"el"``) or a name."""
        key = re.sub(r"[\s\-]+", "_", text.strip().lower())
        key = _RESTRICTION_ALIASES.get(key, key)
        for member in cls:
            if member.code == key:
                return member
        known = ", ".join(m.code for m in cls)
        raise InvalidRequest(
            f"unknown restriction level {text!r}; expected one of: {known}",
            field="restriction",
            value=text,
        )


_RESTRICTION_LABELS: dict[Restriction, str] = {
    Restriction.NONE: "not restricted",
    Restriction.UNVERIFIED_LIST: "BIS Unverified List",
    Restriction.MEU_LIST: "BIS Military End-User List",
    Restriction.ENTITY_LIST: "BIS Entity List",
    Restriction.DENIED_PERSON: "BIS Denied Persons List",
    Restriction.SDN: "OFAC SDN (blocked)",
}
_RESTRICTION_ALIASES: dict[str, str] = {
    "blocked": "sdn",
    "ofac_sdn": "sdn",
    "el": "entity_list",
    "entity": "entity_list",
    "meu": "meu_list",
    "uvl": "unverified_list",
    "unverified": "unverified_list",
    "dpl": "denied_person",
    "denied_persons": "denied_person",
}


# Needles in a list entry's ``list_name`` (lower-cased), strictest first.
_LIST_LEVELS: tuple[tuple[str, Restriction], ...] = (
    ("specially designated nationals", Restriction.SDN),
    ("(sdn)", Restriction.SDN),
    ("denied persons", Restriction.DENIED_PERSON),
    ("(dpl)", Restriction.DENIED_PERSON),
    ("entity list", Restriction.ENTITY_LIST),
    ("(el)", Restriction.ENTITY_LIST),
    ("military end user", Restriction.MEU_LIST),
    ("(meu)", Restriction.MEU_LIST),
    ("unverified list", Restriction.UNVERIFIED_LIST),
    ("(uvl)", Restriction.UNVERIFIED_LIST),
)


def restriction_for_entry(entry: ListEntry) -> Restriction | None:
    """The level a list entry gives its party, or None for a list outside the ordering.

    ``ofac-sdn`` entries are SDN, ``bis-dpl`` entries Denied Persons; a Consolidated
    Screening List entry is placed by its component list (``list_name``). Other lists (ITAR
    debarred, non-SDN Treasury lists, OpenSanctions collections) return None: a hit on them
    is for an officer to weigh, it does not enter the 50 % rules.
    """
    if entry.source == "ofac-sdn":
        return Restriction.SDN
    if entry.source == "bis-dpl":
        return Restriction.DENIED_PERSON
    text = entry.list_name.lower()
    return next((level for needle, level in _LIST_LEVELS if needle in text), None)


class ControlRole(StrEnum):
    DIRECTOR = "director"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"  # supervisory board
    LEGAL_REPRESENTATIVE = "legal_representative"
    TRUSTEE = "trustee"
    OTHER = "other"


def _held(since: date | None, until: date | None, as_of: date) -> bool:
    return (since is None or since <= as_of) and (until is None or as_of < until)


def _check_period(since: date | None, until: date | None, what: str) -> None:
    if since is not None and until is not None and until <= since:
        raise InvalidRequest(f"{what}: 'until' ({until}) must be after 'since' ({since})")


@dataclass(frozen=True, slots=True)
class OwnershipEdge:
    """``owner`` holds ``percent`` (0 < percent <= 100) of ``owned`` on ``since <= d < until``."""

    owner: str
    owned: str
    percent: Decimal
    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        what = f"stake of {self.owner!r} in {self.owned!r}"
        if self.owner == self.owned:
            raise InvalidRequest(
                f"{self.owner!r} cannot own itself; leave treasury shares out",
                party=self.owner,
            )
        pct = self.percent
        if not isinstance(pct, Decimal) or not pct.is_finite() or not 0 < pct <= HUNDRED:
            raise InvalidRequest(
                f"{what}: percent must be a Decimal above 0 and at most 100, got {pct!r}",
                party=self.owned,
                field="percent",
            )
        _check_period(self.since, self.until, what)

    def held_on(self, as_of: date) -> bool:
        return _held(self.since, self.until, as_of)


@dataclass(frozen=True, slots=True)
class ControlEdge:
    """``person_or_org`` holds ``role`` in ``org`` on ``since <= d < until``."""

    person_or_org: str
    org: str
    role: ControlRole
    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        _check_period(self.since, self.until, f"{self.role} of {self.person_or_org!r}")

    def held_on(self, as_of: date) -> bool:
        return _held(self.since, self.until, as_of)


@dataclass(frozen=True, slots=True)
class ListedParty:
    """A party named on a list. ``basis`` says where, e.g. ``"Entity List, 2023-03-02"``."""

    party: str
    restriction: Restriction
    basis: str = ""
    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        if self.restriction is Restriction.NONE:
            raise InvalidRequest(f"listed party {self.party!r} needs a restriction level")
        _check_period(self.since, self.until, f"listing of {self.party!r}")


@dataclass(frozen=True, slots=True)
class FiftyPercentRule:
    """One 50 % regime: owners listed at a level in ``applies_to`` count toward it."""

    rule_id: str
    applies_to: frozenset[Restriction]
    threshold: Decimal = FIFTY

    def __post_init__(self) -> None:
        if not self.applies_to or Restriction.NONE in self.applies_to:
            raise InvalidRequest(
                f"50 % rule {self.rule_id!r}: applies_to must name restriction levels",
                rule=self.rule_id,
            )
        if not self.threshold.is_finite() or not 0 < self.threshold <= HUNDRED:
            raise InvalidRequest(
                f"50 % rule {self.rule_id!r}: threshold must be above 0 and at most 100",
                rule=self.rule_id,
            )

    @property
    def term(self) -> str:
        """The word for a party caught by this rule: OFAC blocks, BIS restricts."""
        return "blocked" if self.applies_to == {Restriction.SDN} else "restricted"


OFAC_50 = FiftyPercentRule("ofac-50", frozenset({Restriction.SDN}))
BIS_AFFILIATES_50 = FiftyPercentRule(
    "bis-affiliates-50",
    frozenset({Restriction.MEU_LIST, Restriction.ENTITY_LIST, Restriction.SDN}),
)


def format_percent(value: Decimal) -> str:
    """``Decimal("33.3333")`` -> ``"33.33 %"``; ``Decimal("50.00")`` -> ``"50 %"``."""
    q = value.quantize(Decimal("0.01")).normalize()
    return f"{q:f} %"


class PartyNames:
    """Display names of parties (the id when no name is known)."""

    def __init__(self, names: Mapping[str, str] | None) -> None:
        self._names = names or {}

    def __call__(self, party: str) -> str:
        return self._names.get(party, party)


# ---------------------------------------------------------------- the graph on one day


def owners_on(edges: Iterable[OwnershipEdge], as_of: date) -> dict[str, dict[str, Decimal]]:
    """``owned -> {owner: percent}`` for the stakes held on ``as_of``.

    Two edges between the same pair held on the same day add up. Refuses (InvalidRequest
    naming the party) if the stakes held in one party exceed 100 %.
    """
    owners: dict[str, dict[str, Decimal]] = {}
    for edge in edges:
        if edge.held_on(as_of):
            held = owners.setdefault(edge.owned, {})
            held[edge.owner] = held.get(edge.owner, Decimal(0)) + edge.percent
    for owned in sorted(owners):
        total = sum(owners[owned].values(), Decimal(0))
        if total > HUNDRED:
            stakes = ", ".join(
                f"{format_percent(p)} by {o}" for o, p in sorted(owners[owned].items())
            )
            raise InvalidRequest(
                f"the stakes in {owned!r} held on {as_of} add up to {format_percent(total)}, "
                f"more than 100 % ({stakes}); close the stakes that were sold "
                "(set 'until') or correct the percentages",
                party=owned,
                total=str(total),
            )
    return owners


def listings_on(listed: Iterable[ListedParty], as_of: date) -> dict[str, ListedParty]:
    """The listing of each party on ``as_of``; a party on several lists keeps the strictest."""
    out: dict[str, ListedParty] = {}
    for entry in sorted(listed, key=lambda e: (e.party, -e.restriction, e.basis)):
        if _held(entry.since, entry.until, as_of) and entry.party not in out:
            out[entry.party] = entry
    return out


# ---------------------------------------------------------------- the 50 % rule


@dataclass(frozen=True, slots=True)
class Stake:
    """A restricted owner's direct stake, as counted toward a 50 % determination."""

    owner: str
    percent: Decimal
    owner_restriction: Restriction
    owner_listed: bool  # True: listed at that level; False: restricted by its own owners


@dataclass(frozen=True, slots=True)
class OwnershipRestriction:
    """``party`` is restricted under ``rule_id`` because restricted owners hold ``total`` %."""

    party: str
    rule_id: str
    restriction: Restriction
    total: Decimal
    stakes: tuple[Stake, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class FiftyPercentResult:
    """The fixed point of one rule: every party's level under it, and why."""

    rule: FiftyPercentRule
    levels: Mapping[str, Restriction]  # listed (at an applicable level) or restricted
    restricted: Mapping[str, OwnershipRestriction]  # restricted by ownership

    def level(self, party: str) -> Restriction:
        return self.levels.get(party, Restriction.NONE)


def _stakes(
    owned: str,
    owners: Mapping[str, Mapping[str, Decimal]],
    levels: Mapping[str, Restriction],
    listed_levels: Mapping[str, Restriction],
) -> tuple[Stake, ...]:
    stakes = [
        Stake(o, p, levels[o], listed_levels.get(o, Restriction.NONE) >= levels[o])
        for o, p in owners.get(owned, {}).items()
        if o in levels
    ]
    return tuple(sorted(stakes, key=lambda s: (-s.percent, s.owner)))


def apply_fifty_percent_rule(
    rule: FiftyPercentRule,
    *,
    owners: Mapping[str, Mapping[str, Decimal]],
    listings: Mapping[str, ListedParty],
    names: Mapping[str, str] | None = None,
) -> FiftyPercentResult:
    """Every party restricted under ``rule``: the least fixed point from the listed parties.

    ``owners`` and ``listings`` are one day's view (:func:`owners_on`, :func:`listings_on`).
    """
    name = PartyNames(names)
    listed_levels = {
        p: e.restriction for p, e in listings.items() if e.restriction in rule.applies_to
    }
    levels: dict[str, Restriction] = dict(listed_levels)
    inherited: dict[str, Restriction] = {}
    # a worklist, not rounds over every party: a party is looked at again only when one of
    # its owners' levels rose (rounds cost depth x parties: a 480-deep chain, 240,000 looks)
    owns: dict[str, list[str]] = {}
    for owned in sorted(owners):
        for o in owners[owned]:
            owns.setdefault(o, []).append(owned)
    todo = sorted(owners, reverse=True)
    queued = set(todo)
    while todo:  # levels only rise, so each party is queued at most levels x owners times
        owned = todo.pop()
        queued.discard(owned)
        held = [(levels[o], p) for o, p in owners[owned].items() if o in levels]
        if not held or sum((p for _, p in held), Decimal(0)) < rule.threshold:
            continue
        level = max(lv for lv, _ in held)
        if level > inherited.get(owned, Restriction.NONE):
            inherited[owned] = level
            before = levels.get(owned, Restriction.NONE)
            levels[owned] = max(level, before)
            if levels[owned] > before:
                for child in owns.get(owned, ()):
                    if child not in queued:
                        queued.add(child)
                        todo.append(child)

    def owner_words(stake: Stake) -> str:
        if stake.owner_listed:
            entry = listings[stake.owner]
            basis = f", {entry.basis}" if entry.basis else ""
            return f"listed: {stake.owner_restriction.code}{basis}"
        inner = _stakes(stake.owner, owners, levels, listed_levels)
        total = sum((s.percent for s in inner), Decimal(0))
        by = ", ".join(name(s.owner) for s in inner)
        return f"{rule.term}: {format_percent(total)} owned by {by}"

    restricted: dict[str, OwnershipRestriction] = {}
    for party, level in sorted(inherited.items()):
        stakes = _stakes(party, owners, levels, listed_levels)
        total = sum((s.percent for s in stakes), Decimal(0))
        parts = ", ".join(
            f"{format_percent(s.percent)} by {name(s.owner)} ({owner_words(s)})" for s in stakes
        )
        reason = (
            f"{name(party)} is {format_percent(total)} owned by {rule.term} parties under "
            f"{rule.rule_id} (threshold {format_percent(rule.threshold)}): {parts}; "
            f"it inherits the strictest level among them: {level.code}."
        )
        restricted[party] = OwnershipRestriction(party, rule.rule_id, level, total, stakes, reason)
    return FiftyPercentResult(rule, levels, restricted)
