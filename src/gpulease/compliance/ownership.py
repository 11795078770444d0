"""Ownership and control: the US 50 % rules and the red flags of an ownership chain.

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

Red flags do not restrict; they send a case to an officer: a significant minority stake
(default 25 %, look-through through unrestricted intermediaries), several restricted
minority owners that together reach that threshold, a listed controller, a person sitting
in both the subject and a restricted party, an owner at any depth headquartered in a
high-risk country. Control alone never restricts (FAQ 398).

Invariants. Pure: ``as_of`` and every threshold are arguments. Adding a restricted owner's
stake never lifts a restriction (the fixed point is monotone) and the verdict does not depend
on the order of the edges. Stakes held on one day in one party may not exceed 100 %; such
data is refused with :class:`InvalidRequest` naming the party. Every result explains itself
in words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any

from gpulease.compliance.model import ListEntry
from gpulease.domain.errors import InvalidRequest

HUNDRED = Decimal(100)
FIFTY = Decimal(50)
DEFAULT_MINORITY_THRESHOLD = Decimal(25)
MAX_CHAINS = 10_000  # ownership chains explored for one subject before refusing


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


class _Names:
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
    name = _Names(names)
    listed_levels = {
        p: e.restriction for p, e in listings.items() if e.restriction in rule.applies_to
    }
    levels: dict[str, Restriction] = dict(listed_levels)
    inherited: dict[str, Restriction] = {}
    changed = True
    while changed:  # levels only rise, so this ends after at most parties x levels rounds
        changed = False
        for owned in sorted(owners):
            held = [(levels[o], p) for o, p in owners[owned].items() if o in levels]
            if not held or sum((p for _, p in held), Decimal(0)) < rule.threshold:
                continue
            level = max(lv for lv, _ in held)
            if level > inherited.get(owned, Restriction.NONE):
                inherited[owned] = level
                levels[owned] = max(level, levels.get(owned, Restriction.NONE))
                changed = True

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


# ---------------------------------------------------------------- chains and red flags


@dataclass(frozen=True, slots=True)
class Chain:
    """An ownership path from an owner down to the subject: ``parties[0]`` owns ... the last."""

    parties: tuple[str, ...]
    percents: tuple[Decimal, ...]  # percents[i]: parties[i]'s stake in parties[i + 1]

    @property
    def look_through(self) -> Decimal:
        value = HUNDRED
        for p in self.percents:
            value = value * p / HUNDRED
        return value

    def describe(self, names: Mapping[str, str] | None = None) -> str:
        name = _Names(names)
        text = name(self.parties[0]) + ", which".join(
            f" owns {format_percent(p)} of {name(self.parties[i + 1])}"
            for i, p in enumerate(self.percents)
        )
        if len(self.percents) > 1:
            text += f" ({format_percent(self.look_through)} look-through)"
        return text


def ownership_chains(
    subject: str, owners: Mapping[str, Mapping[str, Decimal]], *, max_chains: int = MAX_CHAINS
) -> dict[str, tuple[Chain, ...]]:
    """Every owner at any depth of ``subject`` with the simple chains leading down to it.

    A chain never visits a party twice, so cycles end. Refuses a graph with more than
    ``max_chains`` chains rather than explore it without end.
    """
    found: dict[str, list[Chain]] = {}
    count = 0
    stack: list[tuple[tuple[str, ...], tuple[Decimal, ...]]] = [((subject,), ())]
    while stack:
        path, pcts = stack.pop()
        for owner, pct in sorted(owners.get(path[0], {}).items(), reverse=True):
            if owner in path:
                continue
            chain = Chain((owner, *path), (pct, *pcts))
            found.setdefault(owner, []).append(chain)
            count += 1
            if count > max_chains:
                raise InvalidRequest(
                    f"the ownership of {subject!r} has more than {max_chains} chains; "
                    "simplify the recorded structure or review it by hand",
                    party=subject,
                )
            stack.append((chain.parties, chain.percents))
    return {
        owner: tuple(sorted(chains, key=lambda c: (len(c.parties), c.parties)))
        for owner, chains in sorted(found.items())
    }


class RedFlagKind(StrEnum):
    MINORITY_STAKE = "minority_stake"
    AGGREGATE_MINORITY_STAKE = "aggregate_minority_stake"
    LISTED_CONTROLLER = "listed_controller"
    SHARED_CONTROLLER = "shared_controller"
    HIGH_RISK_OWNER = "high_risk_owner"


@dataclass(frozen=True, slots=True)
class RedFlag:
    """A reason for an officer to look, not a restriction."""

    kind: RedFlagKind
    parties: tuple[str, ...]  # the restricted or high-risk parties behind the flag
    reason: str


class Verdict(StrEnum):
    CLEAR = "clear"
    FLAGGED = "flagged"  # red flags only: an officer reviews
    RESTRICTED = "restricted"  # listed, or inherited through the 50 % rule


@dataclass(frozen=True, slots=True)
class OwnershipAssessment:
    subject: str
    as_of: date
    verdict: Verdict
    restriction: Restriction  # strictest of the subject's own listing and inheritances
    listing: ListedParty | None
    inherited: tuple[OwnershipRestriction, ...]  # one per rule that restricts the subject
    flags: tuple[RedFlag, ...]
    explanation: tuple[str, ...]  # sentences, verdict first

    @property
    def reason(self) -> str:
        return " ".join(self.explanation)

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary for the audit record (percentages as strings)."""
        return {
            "subject": self.subject,
            "as_of": self.as_of.isoformat(),
            "verdict": self.verdict.value,
            "restriction": self.restriction.code,
            "listing": None
            if self.listing is None
            else {"restriction": self.listing.restriction.code, "basis": self.listing.basis},
            "inherited": [
                {
                    "rule": i.rule_id,
                    "restriction": i.restriction.code,
                    "total": str(i.total),
                    "stakes": [
                        {
                            "owner": s.owner,
                            "percent": str(s.percent),
                            "owner_restriction": s.owner_restriction.code,
                            "owner_listed": s.owner_listed,
                        }
                        for s in i.stakes
                    ],
                }
                for i in self.inherited
            ],
            "flags": [
                {"kind": f.kind.value, "parties": list(f.parties), "reason": f.reason}
                for f in self.flags
            ],
            "explanation": list(self.explanation),
        }


def _restriction_words(
    party: str,
    level: Restriction,
    listings: Mapping[str, ListedParty],
    term: str = "restricted",
) -> str:
    entry = listings.get(party)
    if entry is not None and entry.restriction >= level:
        return f"listed: {level.code}" + (f", {entry.basis}" if entry.basis else "")
    return f"{term} by ownership: {level.code}"


def assess_ownership(
    subject: str,
    *,
    as_of: date,
    ownership: Iterable[OwnershipEdge],
    listed: Iterable[ListedParty],
    rules: Sequence[FiftyPercentRule] = (OFAC_50,),
    control: Iterable[ControlEdge] = (),
    headquarters: Mapping[str, str] | None = None,
    high_risk_countries: Iterable[str] = (),
    minority_threshold: Decimal | None = DEFAULT_MINORITY_THRESHOLD,
    names: Mapping[str, str] | None = None,
    max_chains: int = MAX_CHAINS,
) -> OwnershipAssessment:
    """The subject's restriction on ``as_of`` under ``rules``, its red flags, and why.

    ``headquarters`` maps parties to ISO country codes; ``minority_threshold=None`` turns the
    minority-stake flags off. Raises InvalidRequest for stakes above 100 % in a party.
    """
    name = _Names(names)
    owners = owners_on(ownership, as_of)
    listings = listings_on(listed, as_of)
    results = [
        apply_fifty_percent_rule(r, owners=owners, listings=listings, names=names) for r in rules
    ]

    levels: dict[str, Restriction] = {p: e.restriction for p, e in listings.items()}
    for result in results:
        for party, level in result.levels.items():
            levels[party] = max(level, levels.get(party, Restriction.NONE))
    restriction = levels.get(subject, Restriction.NONE)
    listing = listings.get(subject)
    inherited = tuple(
        sorted(
            (r.restricted[subject] for r in results if subject in r.restricted),
            key=lambda o: (-o.restriction, o.rule_id),
        )
    )

    chains = ownership_chains(subject, owners, max_chains=max_chains)
    flags: list[RedFlag] = []
    if minority_threshold is not None:
        flags += _minority_flags(
            subject, chains, levels, restriction, listings, minority_threshold, names
        )
    flags += _control_flags(subject, control, as_of, levels, listings, names)
    risky = {c.strip().upper() for c in high_risk_countries}
    for owner, owner_chains in chains.items():
        country = (headquarters or {}).get(owner, "").strip().upper()
        if country and country in risky:
            flags.append(
                RedFlag(
                    RedFlagKind.HIGH_RISK_OWNER,
                    (owner,),
                    f"{name(owner)}, an owner of {name(subject)}, is headquartered in "
                    f"{country}, a high-risk country: {_describe_chains(owner_chains, names)}.",
                )
            )

    # explanation: verdict, then the listing, the inheritances and their causes, the flags
    lines: list[str] = []
    if restriction > Restriction.NONE:
        verdict = Verdict.RESTRICTED
        how = [f"listed ({listing.restriction.code})"] if listing is not None else []
        how += [f"{i.restriction.code} under {i.rule_id}" for i in inherited]
        lines.append(
            f"{name(subject)} is restricted ({restriction.code}) on {as_of}: {'; '.join(how)}."
        )
    elif flags:
        verdict = Verdict.FLAGGED
        lines.append(
            f"{name(subject)} is not restricted on {as_of} but has {len(flags)} red "
            f"flag{'s' if len(flags) > 1 else ''} for an officer to review."
        )
    else:
        verdict = Verdict.CLEAR
        lines.append(f"{name(subject)} is not restricted and has no red flags on {as_of}.")
    if listing is not None:
        basis = f" ({listing.basis})" if listing.basis else ""
        lines.append(f"{name(subject)} is listed: {listing.restriction.label}{basis}.")
    for result in sorted(results, key=lambda r: subject not in r.restricted):
        if subject in result.restricted:
            lines += _causes(subject, result)
        else:
            lines.append(_below_threshold(subject, result, owners, listings, names))
    lines += [f.reason for f in flags]
    return OwnershipAssessment(
        subject, as_of, verdict, restriction, listing, inherited, tuple(flags), tuple(lines)
    )


def _causes(party: str, result: FiftyPercentResult) -> list[str]:
    """The reason ``party`` is restricted under one rule, then its restricted owners' reasons."""
    lines: list[str] = []
    seen: set[str] = set()
    todo = [party]
    while todo:
        current = todo.pop(0)
        if current in seen or current not in result.restricted:
            continue
        seen.add(current)
        found = result.restricted[current]
        lines.append(found.reason)
        todo += [s.owner for s in found.stakes if not s.owner_listed]
    return lines


def _below_threshold(
    subject: str,
    result: FiftyPercentResult,
    owners: Mapping[str, Mapping[str, Decimal]],
    listings: Mapping[str, ListedParty],
    names: Mapping[str, str] | None,
) -> str:
    name = _Names(names)
    rule = result.rule
    held = sorted(
        ((o, p) for o, p in owners.get(subject, {}).items() if o in result.levels),
        key=lambda item: (-item[1], item[0]),
    )
    if not held:
        return f"Under {rule.rule_id} no {rule.term} party holds a stake in {name(subject)}."
    total = sum((p for _, p in held), Decimal(0))
    parts = ", ".join(
        f"{format_percent(p)} by {name(o)} "
        f"({_restriction_words(o, result.levels[o], listings, rule.term)})"
        for o, p in held
    )
    return (
        f"Under {rule.rule_id} {rule.term} parties hold {format_percent(total)} of "
        f"{name(subject)}, below the {format_percent(rule.threshold)} threshold: {parts}."
    )


def _describe_chains(chains: Sequence[Chain], names: Mapping[str, str] | None) -> str:
    shown = "; ".join(c.describe(names) for c in chains[:3])
    more = len(chains) - 3
    return shown + (f"; and {more} more chain{'s' if more > 1 else ''}" if more > 0 else "")


def _minority_flags(
    subject: str,
    chains: Mapping[str, Sequence[Chain]],
    levels: Mapping[str, Restriction],
    subject_level: Restriction,
    listings: Mapping[str, ListedParty],
    threshold: Decimal,
    names: Mapping[str, str] | None,
) -> list[RedFlag]:
    """Stakes of restricted parties, each counted up to the nearest restricted holder."""
    name = _Names(names)
    flags: list[RedFlag] = []
    small: list[tuple[str, Decimal]] = []
    for owner, owner_chains in chains.items():
        level = levels.get(owner, Restriction.NONE)
        if level is Restriction.NONE or level <= subject_level:
            continue
        # a chain through another restricted party is that party's stake, not this one's
        direct = [c for c in owner_chains if all(p not in levels for p in c.parties[1:-1])]
        stake = sum((c.look_through for c in direct), Decimal(0))
        if stake <= 0:
            continue
        words = _restriction_words(owner, level, listings)
        if stake >= threshold:
            flags.append(
                RedFlag(
                    RedFlagKind.MINORITY_STAKE,
                    (owner,),
                    f"{name(owner)} ({words}) holds {format_percent(stake)} of {name(subject)}, "
                    f"at or above the {format_percent(threshold)} red-flag threshold, without "
                    f"restricting it: {_describe_chains(direct, names)}.",
                )
            )
        else:
            small.append((owner, stake))
    total = sum((s for _, s in small), Decimal(0))
    if len(small) > 1 and total >= threshold and subject_level is Restriction.NONE:
        parts = ", ".join(f"{format_percent(s)} by {name(o)}" for o, s in small)
        flags.append(
            RedFlag(
                RedFlagKind.AGGREGATE_MINORITY_STAKE,
                tuple(o for o, _ in small),
                f"restricted parties together hold {format_percent(total)} of {name(subject)}, "
                f"at or above the {format_percent(threshold)} red-flag threshold: {parts}.",
            )
        )
    return flags


def _control_flags(
    subject: str,
    control: Iterable[ControlEdge],
    as_of: date,
    levels: Mapping[str, Restriction],
    listings: Mapping[str, ListedParty],
    names: Mapping[str, str] | None,
) -> list[RedFlag]:
    name = _Names(names)
    held = sorted({(e.person_or_org, e.org, e.role) for e in control if e.held_on(as_of)})
    in_subject = {(p, role) for p, org, role in held if org == subject}
    flags: list[RedFlag] = []
    for person, role in sorted(in_subject):
        if person in levels:
            words = _restriction_words(person, levels[person], listings)
            flags.append(
                RedFlag(
                    RedFlagKind.LISTED_CONTROLLER,
                    (person,),
                    f"{name(person)} ({words}) is {role.value} of {name(subject)}; control "
                    "without 50 % ownership does not restrict, but needs review.",
                )
            )
    people = {p for p, _ in in_subject}
    for person, org, role in held:
        if person in people and org != subject and org in levels:
            mine = sorted(r.value for p, r in in_subject if p == person)
            words = _restriction_words(org, levels[org], listings)
            flags.append(
                RedFlag(
                    RedFlagKind.SHARED_CONTROLLER,
                    (org, person),
                    f"{name(person)} is {' and '.join(mine)} of {name(subject)} and "
                    f"{role.value} of {name(org)} ({words}).",
                )
            )
    return flags
