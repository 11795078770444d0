"""A KYC case's declared parties as a graph: each party once, with as many edges as it has.

Vocabulary. The submitter names every party of the case by a *ref* of its own choosing
(``"tenant"`` is the organisation itself). A :class:`DeclaredStake` says that one ref owns a
percentage of another over a period; a :class:`DeclaredRole` that one ref holds a role
(director, officer...) in another. One party may hold stakes in several entities and roles in
several organisations, so cross-shareholdings (cycles) and a controller shared between the
tenant and another entity can be written down as they are.

The older list form (``owners``: a party per stake, each owning ``"tenant"`` or another
owner's ref; ``officers``: a party per role) is still accepted: :meth:`CaseGraph.build`
turns each owner into a party and a stake, each officer into a party (ref ``officers[i]``)
and a role.

Countries. :func:`with_country_codes` turns every party's countries (and its addresses'
country) into ISO 3166-1 alpha-2 codes, names and alpha-3 codes accepted, as the API does,
so a case submitted through the service or the CLI is stored as one through the API.

Invariants, checked by :func:`validate_graph` before anything is stored (each refusal is an
:class:`InvalidRequest` naming the field and the refs the submitter typed):
refs are distinct and not ``"tenant"``; every edge joins two declared refs and never a ref to
itself; a stake is above 0 and at most 100 %, its period ends after it starts and, given the
submission day (``today``), it starts no later than that day: a case is screened on the day it
is submitted and only re-screened on a list or policy change, so a stake dated later (a listed
owner's 60 % from tomorrow, say) would never be screened as held; the stakes held in any one
party on any one day add up to at most 100 % (the organisation and every intermediate owner
alike); the tenant's ownership chains stay within ``max_chains``. A graph that passes can be
screened: the screening core never meets these errors later. The checks do bounded work on
any body the API accepts: the 100 % check is one sweep over the stakes' start and end days,
the chains are counted, not built.
Pure: no I/O, no clock (the submission day is an argument).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from functools import partial

from gpulease.compliance.countries import country_code
from gpulease.compliance.fifty_percent import HUNDRED, ControlRole, format_percent
from gpulease.compliance.model import Address, PartyKind
from gpulease.compliance.ownership import MAX_CHAINS, chain_members, count_chains
from gpulease.domain.errors import InvalidRequest

TENANT = "tenant"  # the ref of the organisation the case is about


@dataclass(frozen=True, slots=True)
class PartyDetails:
    """Who a party is, as declared: names, countries, identifiers, addresses."""

    name: str
    kind: str = "organization"
    aliases: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    identifiers: tuple[tuple[str, str], ...] = ()
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class DeclaredParty:
    ref: str
    details: PartyDetails


@dataclass(frozen=True, slots=True)
class DeclaredStake:
    """``owner`` holds ``percent`` of ``owned`` (refs) on ``since <= day < until``."""

    owner: str
    owned: str
    percent: Decimal
    since: date | None = None
    until: date | None = None  # the day the stake was sold: it no longer counts from it


@dataclass(frozen=True, slots=True)
class DeclaredRole:
    """``holder`` (a person or an organisation) holds ``role`` in ``org`` (refs)."""

    holder: str
    org: str
    role: str


@dataclass(frozen=True, slots=True)
class LegacyOwner:
    """The list form: a party and its one stake; ``owns`` is ``"tenant"`` or an owner's ref."""

    ref: str
    party: PartyDetails
    owns: str
    percent: Decimal
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True, slots=True)
class LegacyOfficer:
    """The list form: a party and its one role in ``of`` (``"tenant"`` or an owner's ref)."""

    party: PartyDetails
    role: str
    of: str = TENANT


@dataclass(frozen=True, slots=True)
class CaseGraph:
    organization: PartyDetails
    parties: tuple[DeclaredParty, ...] = ()
    stakes: tuple[DeclaredStake, ...] = ()
    roles: tuple[DeclaredRole, ...] = ()
    # how many parties, stakes and roles came in the graph form (the rest: owners, officers)
    graph_form: tuple[int, int, int] | None = None

    @classmethod
    def build(
        cls,
        organization: PartyDetails,
        *,
        parties: Iterable[DeclaredParty] = (),
        stakes: Iterable[DeclaredStake] = (),
        roles: Iterable[DeclaredRole] = (),
        owners: Iterable[LegacyOwner] = (),
        officers: Iterable[LegacyOfficer] = (),
    ) -> CaseGraph:
        """The graph of a submission in either form (both may be mixed)."""
        all_parties = list(parties)
        all_stakes = list(stakes)
        all_roles = list(roles)
        counts = (len(all_parties), len(all_stakes), len(all_roles))
        for owner in owners:
            all_parties.append(DeclaredParty(owner.ref, owner.party))
            all_stakes.append(
                DeclaredStake(owner.ref, owner.owns, owner.percent, owner.since, owner.until)
            )
        for i, officer in enumerate(officers):
            ref = f"officers[{i}]"
            all_parties.append(DeclaredParty(ref, officer.party))
            all_roles.append(DeclaredRole(ref, officer.of, officer.role))
        return cls(organization, tuple(all_parties), tuple(all_stakes), tuple(all_roles), counts)

    def party_field(self, i: int) -> tuple[str, str]:
        """Where the body declared party ``i``: its ref's field and its details' field."""
        parties, _, _ = self.graph_form or (len(self.parties), 0, 0)
        if i < parties:
            return f"parties[{i}].ref", f"parties[{i}]"
        owners = len(self.stakes) - (self.graph_form or (0, len(self.stakes), 0))[1]
        if i < parties + owners:
            return f"owners[{i - parties}].ref", f"owners[{i - parties}].party"
        k = i - parties - owners
        return f"officers[{k}]", f"officers[{k}].party"

    def stake_field(self, i: int, end: str = "") -> str:
        """Where the body declared stake ``i`` (``end``: owner, owns, percent, since...)."""
        stakes = (self.graph_form or (0, len(self.stakes), 0))[1]
        if i < stakes:
            return f"ownership[{i}]" + (f".{end}" if end else "")
        end = "ref" if end == "owner" else end
        return f"owners[{i - stakes}]" + (f".{end}" if end else "")

    def role_field(self, i: int, end: str = "") -> str:
        """Where the body declared role ``i`` (``end``: party, of, role)."""
        roles = (self.graph_form or (0, 0, len(self.roles)))[2]
        if i < roles:
            return f"control[{i}]" + (f".{end}" if end else "")
        return f"officers[{i - roles}]" + (f".{end}" if end else "")

    @property
    def refs(self) -> tuple[str, ...]:
        return (TENANT, *(p.ref for p in self.parties))

    def details(self) -> dict[str, PartyDetails]:
        return {TENANT: self.organization} | {p.ref: p.details for p in self.parties}

    def linked(self) -> frozenset[str]:
        """The refs reached from the tenant: its owners up the chain, and the holders of a
        role in any of them (the parties a chain-only screening would have seen)."""
        return chain_members(
            TENANT,
            ((s.owner, s.owned) for s in self.stakes),
            ((r.holder, r.org) for r in self.roles),
        )


def with_country_codes(graph: CaseGraph) -> CaseGraph:
    """The graph with every party's countries and address countries as ISO 3166-1 alpha-2
    codes (``compliance.countries``: codes, alpha-3 and names accepted), as the API stores
    them; an unknown country is an :class:`InvalidRequest` naming the field and the ref."""

    def coded(details: PartyDetails, field: str, ref: str) -> PartyDetails:
        def code(value: str, at: str) -> str:
            try:
                return country_code(value, field=at)
            except InvalidRequest as error:
                raise _refuse(error.message, at, [ref]) from None

        return replace(
            details,
            countries=tuple(
                code(c, f"{field}.countries[{j}]") for j, c in enumerate(details.countries)
            ),
            addresses=tuple(
                replace(a, country=code(a.country, f"{field}.addresses[{k}].country"))
                if a.country.strip()
                else replace(a, country="")
                for k, a in enumerate(details.addresses)
            ),
        )

    return replace(
        graph,
        organization=coded(graph.organization, "organization", TENANT),
        parties=tuple(
            DeclaredParty(p.ref, coded(p.details, graph.party_field(i)[1], p.ref))
            for i, p in enumerate(graph.parties)
        ),
    )


# ---------------------------------------------------------------- validation


def _refuse(message: str, field: str, refs: Sequence[str]) -> InvalidRequest:
    return InvalidRequest(message, field=field, refs=list(refs))


def _check_ends(
    field: str, ends: dict[str, str], known: set[str], field_of: Callable[[str], str]
) -> None:
    """Each end of an edge (its name in the body -> the ref given) names a declared party."""
    for end, ref in ends.items():
        if ref not in known:
            raise _refuse(
                f"{field}: {end} {ref!r} is not a declared party (declared: "
                f"{', '.join(sorted(known))})",
                field_of(end),
                [ref],
            )


def _check_party(details: PartyDetails, field: str, ref: str) -> None:
    if not details.name.strip():
        raise _refuse(f"party {ref!r} needs a name", f"{field}.name", [ref])
    if details.kind not in {k.value for k in PartyKind}:
        kinds = ", ".join(k.value for k in PartyKind)
        raise _refuse(
            f"party {ref!r}: kind {details.kind!r} is not one of {kinds}", f"{field}.kind", [ref]
        )


def validate_graph(
    graph: CaseGraph, *, max_chains: int = MAX_CHAINS, today: date | None = None
) -> None:
    """Refuse a graph that could not be screened (the module docstring lists the checks);
    ``today``: the submission day, no stake may start after it."""
    _check_party(graph.organization, "organization", TENANT)
    seen: set[str] = set()
    for i, party in enumerate(graph.parties):
        ref = party.ref
        ref_field, details_field = graph.party_field(i)
        if not ref.strip() or ref == TENANT:
            raise _refuse(
                f"{ref_field}: a ref must be a non-empty name other than 'tenant' "
                "(which is the organisation itself)",
                ref_field,
                [ref],
            )
        if ref in seen:
            raise _refuse(
                f"ref {ref!r} is declared twice; declare each party once and give it as many "
                "ownership and control edges as it has",
                ref_field,
                [ref],
            )
        seen.add(ref)
        _check_party(party.details, details_field, ref)
    known = seen | {TENANT}

    for i, stake in enumerate(graph.stakes):
        field = graph.stake_field(i)
        _check_ends(
            field, {"owner": stake.owner, "owns": stake.owned}, known, partial(graph.stake_field, i)
        )
        if stake.owner == stake.owned:
            raise _refuse(
                f"{field}: {stake.owner!r} cannot own itself; leave treasury shares out",
                field,
                [stake.owner],
            )
        pct = stake.percent
        if not isinstance(pct, Decimal) or not pct.is_finite() or not 0 < pct <= HUNDRED:
            raise _refuse(
                f"{field}: the stake of {stake.owner!r} in {stake.owned!r} must be above 0 "
                f"and at most 100 %, got {pct}",
                graph.stake_field(i, "percent"),
                [stake.owner, stake.owned],
            )
        if stake.since and stake.until and stake.until <= stake.since:
            raise _refuse(
                f"{field}: the stake of {stake.owner!r} in {stake.owned!r}: until "
                f"({stake.until}) must be after since ({stake.since})",
                graph.stake_field(i, "until"),
                [stake.owner, stake.owned],
            )
        if today is not None and stake.since is not None and stake.since > today:
            raise _refuse(
                f"{field}: the stake of {stake.owner!r} in {stake.owned!r} starts on "
                f"{stake.since}, after today ({today}); declare the ownership held today and "
                "submit a new case once a later stake is held",
                graph.stake_field(i, "since"),
                [stake.owner, stake.owned],
            )

    for i, role in enumerate(graph.roles):
        field = graph.role_field(i)
        _check_ends(
            field, {"party": role.holder, "of": role.org}, known, partial(graph.role_field, i)
        )
        if role.holder == role.org:
            raise _refuse(
                f"{field}: {role.holder!r} cannot hold a role in itself", field, [role.holder]
            )
        if role.role not in {r.value for r in ControlRole}:
            roles = ", ".join(r.value for r in ControlRole)
            raise _refuse(
                f"{field}: role {role.role!r} is not one of {roles}",
                graph.role_field(i, "role"),
                [role.holder],
            )

    _check_totals(graph.stakes, max_chains)


def _check_totals(stakes: Sequence[DeclaredStake], max_chains: int) -> None:
    """At most 100 % held in any party on any day, and a bounded number of chains.

    One sweep per owned party over the days its stakes start and end (``until`` is
    exclusive: a stake sold on a day and one bought that day never count together): the
    total only grows where a stake starts, so checking after each day's changes covers every
    day, in time linear in the stakes (after sorting), not stakes times days."""
    into: dict[str, list[tuple[int, DeclaredStake]]] = {}
    for i, stake in enumerate(stakes):
        into.setdefault(stake.owned, []).append((i, stake))
    for owned, held_in in sorted(into.items()):
        events: list[tuple[date, int, int]] = []  # (day, +1 starts / -1 ends, stake)
        for i, stake in held_in:
            events.append((stake.since or date.min, 1, i))
            if stake.until is not None:
                events.append((stake.until, -1, i))
        events.sort(key=lambda e: (e[0], e[1]))  # a day's ends before its starts
        held: dict[int, DeclaredStake] = {}
        total = Decimal(0)
        for n, (day, change, i) in enumerate(events):
            stake = stakes[i]
            if change > 0:
                held[i] = stake
                total += stake.percent
            else:
                del held[i]
                total -= stake.percent
            last_of_day = n + 1 == len(events) or events[n + 1][0] != day
            if last_of_day and total > HUNDRED:
                owners = sorted((s.owner, s.percent) for s in held.values())
                when = "" if day == date.min else f" on {day}"
                parts = ", ".join(f"{format_percent(p)} by {o!r}" for o, p in owners)
                raise _refuse(
                    f"the stakes in {owned!r}{when} add up to {format_percent(total)}, more "
                    f"than 100 % ({parts}); correct the percentages or close the stakes that "
                    "were sold ('until')",
                    "ownership",
                    [owned, *sorted(o for o, _ in owners)],
                )
    # chains only grow with edges: bounded over every stake ever held, bounded on every day;
    # counted without building them (the screening builds those of one day)
    every: dict[str, dict[str, None]] = {}
    for stake in stakes:
        every.setdefault(stake.owned, {})[stake.owner] = None
    try:
        count_chains(TENANT, every, max_chains=max_chains)
    except InvalidRequest as error:
        raise _refuse(error.message, "ownership", [TENANT]) from None
