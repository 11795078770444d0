"""Ownership and control: a party's restriction under the 50 % rules, its red flags, and why.

:func:`assess_ownership` evaluates one subject on ``as_of``: its own listing, every
:class:`~gpulease.compliance.fifty_percent.FiftyPercentRule` in force (the fixed point of
:mod:`gpulease.compliance.fifty_percent`: indirect ownership counts only through restricted
entities; the strictest owner's level is inherited), and the red flags of its ownership and
control. The graph's types are re-exported here, so callers import from this module.
:func:`chain_members` is the one walk up a subject's chain (its owners and their officers).

Red flags do not restrict; they send a case to an officer: a significant minority stake
(default 25 %, looked through unrestricted intermediaries and attributed to the nearest
restricted holder), several restricted minority owners that together reach that threshold,
a listed controller, a person sitting in both the subject and a restricted party, an owner at
any depth headquartered in a high-risk country. Control alone never restricts (FAQ 398).

Invariants. Pure: ``as_of``, thresholds and country sets are arguments. The verdict does not
depend on the order of the edges, and adding a restricted owner's stake never lifts a
restriction. Every assessment explains itself in sentences, the verdict first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from gpulease.compliance.fifty_percent import (
    BIS_AFFILIATES_50,
    FIFTY,
    HUNDRED,
    OFAC_50,
    ControlEdge,
    ControlRole,
    FiftyPercentResult,
    FiftyPercentRule,
    ListedParty,
    OwnershipEdge,
    OwnershipRestriction,
    PartyNames,
    Restriction,
    Stake,
    apply_fifty_percent_rule,
    format_percent,
    listings_on,
    owners_on,
    restriction_for_entry,
)
from gpulease.domain.errors import InvalidRequest

__all__ = [
    "BIS_AFFILIATES_50",
    "DEFAULT_MINORITY_THRESHOLD",
    "FIFTY",
    "HUNDRED",
    "MAX_CHAINS",
    "OFAC_50",
    "Chain",
    "ControlEdge",
    "ControlRole",
    "FiftyPercentResult",
    "FiftyPercentRule",
    "ListedParty",
    "OwnershipAssessment",
    "OwnershipEdge",
    "OwnershipRestriction",
    "RedFlag",
    "RedFlagKind",
    "Restriction",
    "Stake",
    "Verdict",
    "apply_fifty_percent_rule",
    "assess_ownership",
    "count_chains",
    "format_percent",
    "listings_on",
    "owners_on",
    "ownership_chains",
    "restriction_for_entry",
]

DEFAULT_MINORITY_THRESHOLD = Decimal(25)
MAX_CHAINS = 10_000  # ownership chains explored for one subject before refusing


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
        name = PartyNames(names)
        text = name(self.parties[0]) + ", which".join(
            f" owns {format_percent(p)} of {name(self.parties[i + 1])}"
            for i, p in enumerate(self.percents)
        )
        if len(self.percents) > 1:
            text += f" ({format_percent(self.look_through)} look-through)"
        return text


def chain_members(
    subject: str, stakes: Iterable[tuple[str, str]], roles: Iterable[tuple[str, str]]
) -> frozenset[str]:
    """The subject, its owners up the chain (every ``(owner, owned)`` stake, on any day) and
    the holders of a role in any of them (every ``(holder, org)``): the parties a screening
    of the subject's chain sees. The one walk, for graphs, typed edges and stored rows."""
    owners: dict[str, set[str]] = {}
    for owner, owned in stakes:
        owners.setdefault(owned, set()).add(owner)
    found, todo = {subject}, [subject]
    while todo:
        for owner in sorted(owners.get(todo.pop(), ())):
            if owner not in found:
                found.add(owner)
                todo.append(owner)
    return frozenset(found | {holder for holder, org in roles if org in found})


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
                raise _too_many_chains(subject, max_chains)
            stack.append((chain.parties, chain.percents))
    return {
        owner: tuple(sorted(chains, key=lambda c: (len(c.parties), c.parties)))
        for owner, chains in sorted(found.items())
    }


def count_chains(
    subject: str, owners: Mapping[str, Iterable[str]], *, max_chains: int = MAX_CHAINS
) -> int:
    """How many chains :func:`ownership_chains` would find, refusing past ``max_chains`` the
    same way, without building them: one path kept, so memory is the depth of the graph and
    time one step per chain (a deep fan of 9,600 chains of 250 links is 2.4 million links)."""
    count = 0
    path, on_path = [subject], {subject}
    todo = [iter(owners.get(subject, ()))]
    while todo:
        owner = next(todo[-1], None)
        if owner is None:
            todo.pop()
            on_path.discard(path.pop())
        elif owner not in on_path:
            count += 1
            if count > max_chains:
                raise _too_many_chains(subject, max_chains)
            path.append(owner)
            on_path.add(owner)
            todo.append(iter(owners.get(owner, ())))
    return count


def _too_many_chains(subject: str, max_chains: int) -> InvalidRequest:
    return InvalidRequest(
        f"the ownership of {subject!r} has more than {max_chains} chains; "
        "simplify the recorded structure or review it by hand",
        party=subject,
    )


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
    name = PartyNames(names)
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
        # which rule and which lists, never a bare level: an affiliate of an SDN party under
        # the BIS affiliates rule is restricted by that rule, it is not itself an SDN
        how = [f"listed on the {listing.restriction.label}"] if listing is not None else []
        terms = {r.rule.rule_id: r.rule.term for r in results}
        for i in inherited:
            owner_levels = sorted({s.owner_restriction for s in i.stakes}, reverse=True)
            how.append(
                f"under {i.rule_id}, {format_percent(i.total)} owned by {terms[i.rule_id]} "
                f"parties ({', '.join(level.label for level in owner_levels)})"
            )
        lines.append(f"{name(subject)} is restricted on {as_of}: {'; '.join(how)}.")
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
    name = PartyNames(names)
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
    name = PartyNames(names)
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
    name = PartyNames(names)
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
