"""A case's declared parties as a graph (``compliance.case_graph``): each party once with many
edges, the older list form turned into the same graph, and the whole case checked before
anything is stored (each refusal names the field and the refs the submitter typed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from itertools import pairwise

import pytest

from gpulease.compliance.case_graph import (
    TENANT,
    CaseGraph,
    DeclaredParty,
    DeclaredRole,
    DeclaredStake,
    LegacyOfficer,
    LegacyOwner,
    PartyDetails,
    validate_graph,
    with_country_codes,
)
from gpulease.compliance.model import Address
from gpulease.domain.errors import InvalidRequest

ORG = PartyDetails("Harbourfront Compute", countries=("SG",))


def party(ref: str, kind: str = "organization") -> DeclaredParty:
    return DeclaredParty(ref, PartyDetails(f"{ref} example", kind=kind))


def stake(owner: str, owned: str, pct: int, since: date | None = None) -> DeclaredStake:
    return DeclaredStake(owner, owned, Decimal(pct), since)


def refused(graph: CaseGraph) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        validate_graph(graph)
    return caught.value


def test_one_party_with_many_edges_cycles_and_a_shared_controller_are_accepted() -> None:
    graph = CaseGraph(
        ORG,
        (party("fund"), party("holdco"), party("sister"), party("chair", "person")),
        (
            stake("fund", TENANT, 40),
            stake("fund", "sister", 70),  # the same fund in two entities: declared once
            stake("holdco", TENANT, 60),
            stake("sister", "holdco", 20),
            stake("holdco", "sister", 30),  # a cross-shareholding
        ),
        (DeclaredRole("chair", TENANT, "director"), DeclaredRole("chair", "sister", "director")),
    )
    validate_graph(graph)
    assert graph.linked() == {TENANT, "fund", "holdco", "sister", "chair"}


def test_unlinked_parties_are_kept_and_known_as_unlinked() -> None:
    graph = CaseGraph(
        ORG,
        (party("a"), party("b"), party("c")),
        (stake("a", TENANT, 100), stake("b", "c", 50), stake("c", "b", 50)),
    )
    validate_graph(graph)
    assert graph.linked() == {TENANT, "a"}
    assert set(graph.refs) == {TENANT, "a", "b", "c"}


def test_more_than_100_percent_at_an_intermediate_owner_names_its_refs() -> None:
    error = refused(
        CaseGraph(
            ORG,
            (party("mid"), party("x"), party("y")),
            (stake("mid", TENANT, 100), stake("x", "mid", 70), stake("y", "mid", 60)),
        )
    )
    assert error.details["field"] == "ownership"
    assert error.details["refs"] == ["mid", "x", "y"]
    assert "'mid'" in error.message
    assert "130 %" in error.message


def test_more_than_100_percent_at_the_tenant_counts_only_stakes_held_together() -> None:
    sold = DeclaredStake("old", TENANT, Decimal(60), date(2020, 1, 1), date(2024, 1, 1))
    graph = CaseGraph(ORG, (party("old"), party("new")), (sold, stake("new", TENANT, 60)))
    error = refused(graph)  # "new" has no start: it was held beside "old"
    assert error.details["refs"] == [TENANT, "new", "old"]
    later = CaseGraph(
        ORG, (party("old"), party("new")), (sold, stake("new", TENANT, 60, date(2024, 1, 1)))
    )
    validate_graph(later)  # sold on the day the new stake was bought: never 120 %


def with_a(*stakes: DeclaredStake, roles: tuple[DeclaredRole, ...] = ()) -> CaseGraph:
    return CaseGraph(ORG, (party("a"),), stakes, roles)


def role(holder: str, org: str, what: str = "director") -> DeclaredRole:
    return DeclaredRole(holder, org, what)


@pytest.mark.parametrize(
    ("graph", "field", "refs"),
    [
        (with_a(stake("ghost", TENANT, 10)), "ownership[0].owner", ["ghost"]),
        (with_a(stake("a", "ghost", 10)), "ownership[0].owns", ["ghost"]),
        (with_a(stake("a", "a", 10)), "ownership[0]", ["a"]),
        (CaseGraph(ORG, (party("a"), party("a"))), "parties[1].ref", ["a"]),
        (CaseGraph(ORG, (party(TENANT),)), "parties[0].ref", [TENANT]),
        (with_a(stake("a", TENANT, 0)), "ownership[0].percent", ["a", TENANT]),
        (with_a(roles=(role("nobody", TENANT),)), "control[0].party", ["nobody"]),
        (with_a(roles=(role("a", "a"),)), "control[0]", ["a"]),
        (with_a(roles=(role("a", TENANT, "king"),)), "control[0].role", ["a"]),
    ],
    ids=["dangling-owner", "dangling-owned", "self-owned", "ref-twice", "ref-tenant",
         "zero-percent", "dangling-controller", "self-control", "unknown-role"],
)  # fmt: skip
def test_each_refusal_names_the_field_and_the_refs(
    graph: CaseGraph, field: str, refs: list[str]
) -> None:
    error = refused(graph)
    assert (error.details["field"], error.details["refs"]) == (field, refs)


def test_a_graph_with_too_many_ownership_chains_is_refused() -> None:
    layers = [[f"l{i}-{j}" for j in range(3)] for i in range(4)]
    stakes = [stake(p, TENANT, 10) for p in layers[0]]
    stakes += [stake(p, q, 10) for lower, upper in pairwise(layers) for p in upper for q in lower]
    graph = CaseGraph(ORG, tuple(party(p) for layer in layers for p in layer), tuple(stakes))
    validate_graph(graph, max_chains=200)  # 3 + 9 + 27 + 81 = 120 chains
    with pytest.raises(InvalidRequest) as caught:
        validate_graph(graph, max_chains=100)
    assert caught.value.details["field"] == "ownership"
    assert "more than 100 chains" in caught.value.message


def test_the_list_form_becomes_the_same_graph() -> None:
    owner = LegacyOwner("fund", PartyDetails("Fund example"), TENANT, Decimal(30))
    officer = LegacyOfficer(PartyDetails("Chair example", kind="person"), "director")
    graph = CaseGraph.build(ORG, owners=(owner,), officers=(officer,))
    assert graph.parties == (
        DeclaredParty("fund", owner.party),
        DeclaredParty("officers[0]", officer.party),
    )
    assert graph.stakes == (DeclaredStake("fund", TENANT, Decimal(30)),)
    assert graph.roles == (DeclaredRole("officers[0]", TENANT, "director"),)
    validate_graph(graph)


def test_countries_become_alpha_2_codes_and_an_unknown_one_names_its_field() -> None:
    graph = CaseGraph.build(
        PartyDetails(
            "Harbourfront Compute",
            countries=("singapore", "IDN"),
            addresses=(Address(city="Jakarta", country="Indonesia"), Address(city="x")),
        ),
        owners=(
            LegacyOwner("gulf", PartyDetails("Gulf Co", countries=("Iran",)), TENANT, Decimal(5)),
        ),
    )
    coded = with_country_codes(graph)
    assert coded.organization.countries == ("SG", "ID")
    assert [a.country for a in coded.organization.addresses] == ["ID", ""]
    assert coded.parties[0].details.countries == ("IR",)
    assert coded.stakes == graph.stakes
    validate_graph(coded)

    typo = replace(
        graph, parties=(DeclaredParty("gulf", PartyDetails("Gulf Co", countries=("Irann",))),)
    )
    with pytest.raises(InvalidRequest) as caught:
        with_country_codes(typo)
    assert caught.value.details["field"] == "owners[0].party.countries[0]"  # as the body wrote it
    assert caught.value.details["refs"] == ["gulf"]
    assert "IR (Iran" in caught.value.message  # the nearest country suggested
    address = replace(graph, organization=PartyDetails("X", addresses=(Address(country="Narnia"),)))
    with pytest.raises(InvalidRequest) as caught:
        with_country_codes(address)
    assert caught.value.details["field"] == "organization.addresses[0].country"
    assert caught.value.details["refs"] == [TENANT]
