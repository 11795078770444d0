"""Groups of tenants under common ownership or control: who adds up as one for compliance.

Vocabulary. A **party** is a declared party row (a tenant's organisation, an owner, an
officer); the same real party is declared again by each case that names it, so parties are
first made one **identity** when they share an identifier (type and value, compared without
case and blanks), or the same normalised name and countries, or (a tenant's organisation)
the same tenant. A tenant's **controller** is found by walking up its majority owners: the
owner holding more than half of the current party (at most one can), then that owner's,
until none; the top identity of that walk controls the tenant (itself if no one holds a
majority; in a cycle of majority cross-holdings, the cycle's smallest identity, whichever
tenant the walk started from). Tenants with the same controller form a **group**: two shell
tenants owned by one holding, a subsidiary and its parent.

The rule this serves (``compliance.training_compute``): a campaign split across tenants under
common control is seen as one, as one split across jobs or sites is.

Limits (said in the report): only majority ownership is followed (control through a role, a
board seat or a minority with veto rights is not); identities are matched exactly after
normalisation (no fuzzy names); stakes are those in force at the report's moment.

Pure: no I/O, no clock; the same parties and stakes give the same groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

MAJORITY = Decimal(50)


@dataclass(frozen=True, slots=True)
class GroupParty:
    id: str
    name: str
    countries: tuple[str, ...] = ()
    identifiers: tuple[tuple[str, str], ...] = ()
    tenant_id: str | None = None  # the tenant this party is, if one


@dataclass(frozen=True, slots=True)
class Stake:
    owner: str  # party id
    owned: str  # party id
    percent: Decimal


def _keys(party: GroupParty) -> list[str]:
    keys = [
        f"id:{kind.strip().lower()}:{''.join(value.split()).upper()}"
        for kind, value in party.identifiers
    ]
    name = " ".join(party.name.lower().split())
    if name:
        keys.append(f"name:{name}|{','.join(sorted(c.upper() for c in party.countries))}")
    if party.tenant_id is not None:
        keys.append(f"tenant:{party.tenant_id}")
    return keys


def identities(parties: Iterable[GroupParty]) -> dict[str, str]:
    """Party id -> its identity (the smallest party id among those it is matched with)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_with: dict[str, str] = {}
    for party in sorted(parties, key=lambda p: p.id):
        parent.setdefault(party.id, party.id)
        for key in _keys(party):
            other = first_with.setdefault(key, party.id)
            a, b = find(party.id), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {pid: find(pid) for pid in parent}


def controllers(
    tenant_parties: Mapping[str, str], parties: Iterable[GroupParty], stakes: Iterable[Stake]
) -> dict[str, str]:
    """Tenant id -> the identity that controls it (module docstring)."""
    ident = identities(parties)
    owners: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for stake in stakes:
        if stake.owner in ident and stake.owned in ident:
            owners[ident[stake.owned]][ident[stake.owner]] += stake.percent
    found: dict[str, str] = {}
    for tenant_id, party_id in tenant_parties.items():
        path = [ident.get(party_id, party_id)]
        while True:
            majority = [(s, o) for o, s in owners.get(path[-1], {}).items() if s > MAJORITY]
            if not majority:
                top = path[-1]
                break
            owner = max(majority)[1]
            if owner in path:  # a cross-holding: the cycle's smallest identity, from any entry
                top = min(path[path.index(owner) :])
                break
            path.append(owner)
        found[tenant_id] = top
    return found


def groups(
    tenant_parties: Mapping[str, str], parties: Iterable[GroupParty], stakes: Iterable[Stake]
) -> dict[str, tuple[str, ...]]:
    """Controller identity -> its tenants, for every controller of two tenants or more."""
    members: dict[str, list[str]] = defaultdict(list)
    for tenant_id, controller in controllers(tenant_parties, parties, stakes).items():
        members[controller].append(tenant_id)
    return {c: tuple(sorted(ts)) for c, ts in sorted(members.items()) if len(ts) > 1}
