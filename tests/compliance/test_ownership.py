"""The 50 % rules (OFAC FAQ 398/401, BIS affiliates rule) and ownership red flags."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.compliance.model import ListEntry, PartyKind
from gpulease.compliance.ownership import (
    BIS_AFFILIATES_50,
    OFAC_50,
    ControlEdge,
    ControlRole,
    FiftyPercentRule,
    ListedParty,
    OwnershipEdge,
    RedFlagKind,
    Restriction,
    Verdict,
    apply_fifty_percent_rule,
    assess_ownership,
    chain_members,
    format_percent,
    listings_on,
    owners_on,
    restriction_for_entry,
)
from gpulease.domain.errors import InvalidRequest

DAY = date(2026, 1, 1)
SDN = Restriction.SDN
EL = Restriction.ENTITY_LIST


def edge(owner: str, owned: str, pct: str, **dates: date) -> OwnershipEdge:
    return OwnershipEdge(owner, owned, Decimal(pct), **dates)


def sdn(*parties: str) -> list[ListedParty]:
    return [ListedParty(p, SDN, "SDN List") for p in parties]


def entity_list(*parties: str) -> list[ListedParty]:
    return [ListedParty(p, EL) for p in parties]


# ---------------------------------------------------------------- OFAC examples


def test_faq_401_example_2_indirect_stakes_through_two_blocked_entities() -> None:
    # X owns 50 % of A and 50 % of B; A and B each own 25 % of C.
    edges = [edge("X", "A", "50"), edge("X", "B", "50"), edge("A", "C", "25"), edge("B", "C", "25")]
    result = assess_ownership("C", as_of=DAY, ownership=edges, listed=sdn("X"))
    assert result.restriction is SDN
    assert "C is 50 % owned by blocked parties under ofac-50" in result.reason
    assert "25 % by A (blocked: 50 % owned by X), 25 % by B (blocked: 50 % owned by X)" in (
        result.reason
    )


def test_faq_401_example_3_aggregate_through_a_blocked_entity() -> None:
    # X (blocked) owns 50 % of A and 10 % of B; A owns 40 % of B.
    edges = [edge("X", "A", "50"), edge("X", "B", "10"), edge("A", "B", "40")]
    a = assess_ownership("A", as_of=DAY, ownership=edges, listed=sdn("X"))
    b = assess_ownership("B", as_of=DAY, ownership=edges, listed=sdn("X"))
    assert a.verdict is Verdict.RESTRICTED
    assert a.restriction is SDN
    assert b.verdict is Verdict.RESTRICTED
    assert b.restriction is SDN
    (found,) = b.inherited
    assert found.total == Decimal(50)
    assert [(s.owner, s.percent, s.owner_listed) for s in found.stakes] == [
        ("A", Decimal(40), False),
        ("X", Decimal(10), True),
    ]
    assert "40 % by A (blocked: 50 % owned by X)" in b.reason
    assert "10 % by X (listed: sdn, SDN List)" in b.reason
    assert "A is 50 % owned by blocked parties under ofac-50" in b.reason
    assert b.explanation[0] == (
        "B is restricted on 2026-01-01: under ofac-50, 50 % owned by blocked parties "
        "(OFAC SDN (blocked))."
    )


def test_two_blocked_owners_of_25_percent_each_block_in_the_aggregate() -> None:
    edges = [edge("X", "A", "25"), edge("Y", "A", "25")]
    result = assess_ownership("A", as_of=DAY, ownership=edges, listed=sdn("X", "Y"))
    assert result.restriction is SDN
    assert result.inherited[0].total == Decimal(50)


def test_faq_401_example_1_fifty_percent_down_a_chain_blocks_every_level() -> None:
    edges = [edge("X", "A", "50"), edge("A", "B", "50"), edge("B", "C", "75")]
    for party in ("A", "B", "C"):
        result = assess_ownership(party, as_of=DAY, ownership=edges, listed=sdn("X"))
        assert result.restriction is SDN, party
    c = assess_ownership("C", as_of=DAY, ownership=edges, listed=sdn("X"))
    # the explanation walks up to the listed party
    assert any(line.startswith("A is 50 % owned") for line in c.explanation)
    assert any(line.startswith("B is 50 % owned") for line in c.explanation)


def test_stake_of_an_unblocked_entity_does_not_count() -> None:
    # X owns 40 % of A: A is not blocked, so A's 50 % of B does not count toward B.
    edges = [edge("X", "A", "40"), edge("A", "B", "50"), edge("X", "B", "10")]
    a = assess_ownership("A", as_of=DAY, ownership=edges, listed=sdn("X"))
    b = assess_ownership("B", as_of=DAY, ownership=edges, listed=sdn("X"), minority_threshold=None)
    assert a.restriction is Restriction.NONE
    assert b.restriction is Restriction.NONE
    assert b.verdict is Verdict.CLEAR
    assert "blocked parties hold 10 % of B, below the 50 % threshold" in b.reason


def test_just_below_fifty_does_not_block() -> None:
    edges = [edge("X", "A", "49.99")]
    assert assess_ownership("A", as_of=DAY, ownership=edges, listed=sdn("X")).restriction == 0


def test_control_without_ownership_does_not_block_but_flags() -> None:
    # FAQ 398: the 50 % rule concerns ownership, not control.
    control = [ControlEdge("X", "A", ControlRole.DIRECTOR)]
    result = assess_ownership("A", as_of=DAY, ownership=[], listed=sdn("X"), control=control)
    assert result.verdict is Verdict.FLAGGED
    assert [f.kind for f in result.flags] == [RedFlagKind.LISTED_CONTROLLER]
    assert "X (listed: sdn, SDN List) is director of A" in result.reason


# ---------------------------------------------------------------- levels and rules


def test_joint_venture_of_two_listed_parties_is_restricted_in_the_aggregate() -> None:
    edges = [edge("P", "JV", "50"), edge("Q", "JV", "50")]
    result = assess_ownership(
        "JV", as_of=DAY, ownership=edges, listed=entity_list("P", "Q"), rules=[BIS_AFFILIATES_50]
    )
    assert result.verdict is Verdict.RESTRICTED
    assert result.restriction is EL
    # the OFAC rule counts SDN owners only: the same JV is not blocked, only flagged
    ofac = assess_ownership("JV", as_of=DAY, ownership=edges, listed=entity_list("P", "Q"))
    assert ofac.restriction is Restriction.NONE
    assert ofac.verdict is Verdict.FLAGGED
    assert {f.kind for f in ofac.flags} == {RedFlagKind.MINORITY_STAKE}


def test_sdn_joint_venture_is_blocked() -> None:
    edges = [edge("P", "JV", "50"), edge("Q", "JV", "50")]
    result = assess_ownership("JV", as_of=DAY, ownership=edges, listed=sdn("P", "Q"))
    assert result.restriction is SDN


def test_mixed_owners_inherit_the_strictest_level_under_the_affiliates_rule() -> None:
    edges = [edge("S", "JV", "30"), edge("E", "JV", "30")]
    listed = [*sdn("S"), *entity_list("E")]
    ofac = assess_ownership("JV", as_of=DAY, ownership=edges, listed=listed)
    assert ofac.restriction is Restriction.NONE  # only 30 % is SDN-owned
    both = assess_ownership(
        "JV", as_of=DAY, ownership=edges, listed=listed, rules=[OFAC_50, BIS_AFFILIATES_50]
    )
    assert both.restriction is SDN
    assert [i.rule_id for i in both.inherited] == ["bis-affiliates-50"]
    assert "inherits the strictest level among them: sdn" in both.reason


def test_meu_owned_subsidiary_inherits_meu() -> None:
    listed = [ListedParty("M", Restriction.MEU_LIST)]
    result = assess_ownership(
        "S",
        as_of=DAY,
        ownership=[edge("M", "S", "100")],
        listed=listed,
        rules=[BIS_AFFILIATES_50],
    )
    assert result.restriction is Restriction.MEU_LIST


def test_listed_subject_keeps_its_own_level_and_says_so() -> None:
    result = assess_ownership("X", as_of=DAY, ownership=[], listed=sdn("X"))
    assert result.restriction is SDN
    assert result.listing is not None
    assert "X is listed: OFAC SDN (blocked) (SDN List)." in result.explanation


def test_unverified_listing_does_not_propagate() -> None:
    listed = [ListedParty("U", Restriction.UNVERIFIED_LIST)]
    rules = [OFAC_50, BIS_AFFILIATES_50]
    result = assess_ownership(
        "S", as_of=DAY, ownership=[edge("U", "S", "100")], listed=listed, rules=rules
    )
    assert result.restriction is Restriction.NONE
    assert result.flags[0].kind is RedFlagKind.MINORITY_STAKE  # still worth a look


# ---------------------------------------------------------------- the reference case


def test_one_third_owner_on_the_entity_list_flags_but_does_not_restrict() -> None:
    names = {"inspur": "Inspur Group", "aivres": "Aivres"}
    result = assess_ownership(
        "aivres",
        as_of=DAY,
        ownership=[edge("inspur", "aivres", "33.33")],
        listed=[ListedParty("inspur", EL, "Entity List, 2023")],
        rules=[OFAC_50, BIS_AFFILIATES_50],
        headquarters={"inspur": "CN", "aivres": "US"},
        high_risk_countries={"CN", "RU"},
        names=names,
    )
    assert result.verdict is Verdict.FLAGGED
    assert result.restriction is Restriction.NONE
    assert [f.kind for f in result.flags] == [
        RedFlagKind.MINORITY_STAKE,
        RedFlagKind.HIGH_RISK_OWNER,
    ]
    assert (
        "Inspur Group (listed: entity_list, Entity List, 2023) holds 33.33 % of Aivres"
        in result.reason
    )
    assert "restricted parties hold 33.33 % of Aivres, below the 50 % threshold" in result.reason
    assert "Inspur Group, an owner of Aivres, is headquartered in CN" in result.reason


def test_minority_threshold_is_configurable() -> None:
    args = {"as_of": DAY, "ownership": [edge("E", "S", "20")], "listed": entity_list("E")}
    assert assess_ownership("S", **args).verdict is Verdict.CLEAR  # type: ignore[arg-type]
    low = assess_ownership("S", minority_threshold=Decimal(10), **args)  # type: ignore[arg-type]
    assert low.verdict is Verdict.FLAGGED


def test_minority_stake_through_an_unrestricted_intermediary_is_looked_through() -> None:
    edges = [edge("E", "H", "60"), edge("H", "S", "50")]  # H is not restricted under OFAC
    result = assess_ownership("S", as_of=DAY, ownership=edges, listed=entity_list("E"))
    (flag,) = result.flags
    assert flag.kind is RedFlagKind.MINORITY_STAKE
    assert "E owns 60 % of H, which owns 50 % of S (30 % look-through)" in flag.reason


def test_stake_through_a_restricted_holder_is_attributed_to_that_holder() -> None:
    edges = [edge("E", "H", "100"), edge("H", "S", "30")]
    result = assess_ownership(
        "S", as_of=DAY, ownership=edges, listed=entity_list("E"), rules=[BIS_AFFILIATES_50]
    )
    assert [f.parties for f in result.flags] == [("H",)]
    assert "H (restricted by ownership: entity_list) holds 30 %" in result.reason


def test_several_small_restricted_stakes_flag_in_the_aggregate() -> None:
    edges = [edge("E1", "S", "10"), edge("E2", "S", "10"), edge("E3", "S", "10")]
    result = assess_ownership("S", as_of=DAY, ownership=edges, listed=entity_list("E1", "E2", "E3"))
    assert [f.kind for f in result.flags] == [RedFlagKind.AGGREGATE_MINORITY_STAKE]
    assert "restricted parties together hold 30 % of S" in result.reason


def test_shared_director_with_a_listed_party_flags() -> None:
    control = [
        ControlEdge("person", "S", ControlRole.DIRECTOR),
        ControlEdge("person", "E", ControlRole.OFFICER),
    ]
    result = assess_ownership(
        "S", as_of=DAY, ownership=[], listed=entity_list("E"), control=control
    )
    (flag,) = result.flags
    assert flag.kind is RedFlagKind.SHARED_CONTROLLER
    assert flag.reason == "person is director of S and officer of E (listed: entity_list)."


def test_high_risk_owner_at_depth() -> None:
    edges = [edge("R", "M", "10"), edge("M", "S", "100")]
    result = assess_ownership(
        "S",
        as_of=DAY,
        ownership=edges,
        listed=[],
        headquarters={"R": "ru"},
        high_risk_countries=["RU"],
    )
    (flag,) = result.flags
    assert flag.kind is RedFlagKind.HIGH_RISK_OWNER
    assert flag.parties == ("R",)
    assert "R owns 10 % of M, which owns 100 % of S (10 % look-through)" in flag.reason


# ---------------------------------------------------------------- cycles, sums, dates


def test_cross_shareholdings_terminate_and_do_not_restrict_on_their_own() -> None:
    edges = [edge("A", "B", "60"), edge("B", "A", "60")]
    result = assess_ownership("A", as_of=DAY, ownership=edges, listed=sdn("X"))
    assert result.verdict is Verdict.CLEAR


def test_cycle_with_a_blocked_entry_point() -> None:
    edges = [edge("X", "A", "50"), edge("A", "B", "60"), edge("B", "A", "40"), edge("B", "C", "50")]
    for party in ("A", "B", "C"):
        assert assess_ownership(party, as_of=DAY, ownership=edges, listed=sdn("X")).restriction
    result = assess_ownership("C", as_of=DAY, ownership=edges, listed=sdn("X"))
    assert "A is 90 % owned by blocked parties" in result.reason  # X 50 + B 40


def test_stakes_above_100_percent_are_refused_naming_the_party() -> None:
    edges = [edge("X", "A", "60"), edge("Y", "A", "50")]
    with pytest.raises(InvalidRequest, match=r"'A'.*110 %") as info:
        assess_ownership("B", as_of=DAY, ownership=edges, listed=[])
    assert info.value.details["party"] == "A"


def test_a_sold_stake_does_not_count_after_its_end() -> None:
    sold = edge("X", "A", "60", until=date(2025, 6, 1))
    bought = edge("Y", "A", "60", since=date(2025, 6, 1))
    edges = [sold, bought]
    assert assess_ownership("A", as_of=DAY, ownership=edges, listed=sdn("X")).restriction == 0
    before = assess_ownership("A", as_of=date(2025, 5, 31), ownership=edges, listed=sdn("X"))
    assert before.restriction is SDN
    # on the day of the sale the buyer holds it and the seller no longer does
    assert owners_on(edges, date(2025, 6, 1)) == {"A": {"Y": Decimal(60)}}


def test_a_future_stake_and_a_future_listing_do_not_count_yet() -> None:
    edges = [edge("X", "A", "100", since=date(2027, 1, 1))]
    assert assess_ownership("A", as_of=DAY, ownership=edges, listed=sdn("X")).restriction == 0
    listed = [ListedParty("X", SDN, since=date(2027, 1, 1))]
    assert not listings_on(listed, DAY)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("A", "A", Decimal(10)), "cannot own itself"),
        (("A", "B", Decimal(0)), "above 0"),
        (("A", "B", Decimal(101)), "at most 100"),
        (("A", "B", Decimal("NaN")), "Decimal"),
    ],
)
def test_malformed_edges_are_refused(args: tuple[str, str, Decimal], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        OwnershipEdge(*args)


def test_edge_period_must_not_be_empty() -> None:
    with pytest.raises(InvalidRequest, match="must be after"):
        edge("A", "B", "10", since=DAY, until=DAY)


def test_restriction_order_and_parsing() -> None:
    assert (
        Restriction.NONE
        < Restriction.UNVERIFIED_LIST
        < Restriction.MEU_LIST
        < Restriction.ENTITY_LIST
        < Restriction.DENIED_PERSON
        < Restriction.SDN
    )
    assert Restriction.parse("Entity List") is EL
    assert Restriction.parse("blocked") is SDN
    assert Restriction.parse("meu-list") is Restriction.MEU_LIST
    with pytest.raises(InvalidRequest, match="unknown restriction level"):
        Restriction.parse("grey list")


def test_format_percent() -> None:
    assert format_percent(Decimal("50.00")) == "50 %"
    assert format_percent(Decimal(100) / 3) == "33.33 %"


def test_rule_validation() -> None:
    with pytest.raises(InvalidRequest, match="applies_to"):
        FiftyPercentRule("r", frozenset())
    with pytest.raises(InvalidRequest, match="threshold"):
        FiftyPercentRule("r", frozenset({SDN}), Decimal(0))


# ---------------------------------------------------------------- properties

PARTIES = [f"P{i}" for i in range(7)]
LEVELS = [Restriction.MEU_LIST, EL, SDN]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[OwnershipEdge], list[ListedParty]]:
    raw = draw(
        st.lists(
            st.tuples(
                st.sampled_from(PARTIES),
                st.sampled_from(PARTIES),
                st.integers(min_value=1, max_value=12).map(lambda n: Decimal(n * 5)),
            ),
            max_size=18,
        )
    )
    held: dict[str, Decimal] = {}
    edges = []
    for owner, owned, pct in raw:
        if owner != owned and held.get(owned, Decimal(0)) + pct <= 100:
            held[owned] = held.get(owned, Decimal(0)) + pct
            edges.append(OwnershipEdge(owner, owned, pct))
    listed_ids = draw(st.lists(st.sampled_from(PARTIES), unique=True, max_size=3))
    listed = [ListedParty(p, draw(st.sampled_from(LEVELS))) for p in listed_ids]
    return edges, listed


def levels(edges: list[OwnershipEdge], listed: list[ListedParty]) -> dict[str, list[int]]:
    owners = owners_on(edges, DAY)
    listings = listings_on(listed, DAY)
    results = [
        apply_fifty_percent_rule(r, owners=owners, listings=listings)
        for r in (OFAC_50, BIS_AFFILIATES_50)
    ]
    return {p: [int(r.level(p)) for r in results] for p in PARTIES}


@settings(max_examples=150, deadline=None)
@given(
    graph=graphs(),
    owner_index=st.integers(min_value=0, max_value=2),
    target=st.sampled_from(PARTIES),
    pct=st.integers(min_value=1, max_value=20).map(lambda n: Decimal(n * 5)),
)
def test_adding_a_listed_owners_stake_never_lifts_a_restriction(
    graph: tuple[list[OwnershipEdge], list[ListedParty]],
    owner_index: int,
    target: str,
    pct: Decimal,
) -> None:
    edges, listed = graph
    if not listed:
        return
    owner = listed[owner_index % len(listed)].party
    room = 100 - sum((e.percent for e in edges if e.owned == target), Decimal(0))
    if owner == target or room <= 0:
        return
    before = levels(edges, listed)
    after = levels([*edges, OwnershipEdge(owner, target, min(pct, room))], listed)
    for party in PARTIES:
        assert all(b <= a for b, a in zip(before[party], after[party], strict=True)), party


@settings(max_examples=100, deadline=None)
@given(graph=graphs(), data=st.data())
def test_verdict_does_not_depend_on_edge_order(
    graph: tuple[list[OwnershipEdge], list[ListedParty]], data: st.DataObject
) -> None:
    edges, listed = graph
    shuffled = data.draw(st.permutations(edges))
    shuffled_listed = data.draw(st.permutations(listed))
    rules = [OFAC_50, BIS_AFFILIATES_50]
    for party in PARTIES:
        one = assess_ownership(party, as_of=DAY, ownership=edges, listed=listed, rules=rules)
        two = assess_ownership(
            party, as_of=DAY, ownership=shuffled, listed=shuffled_listed, rules=rules
        )
        assert one == two


@settings(max_examples=150, deadline=None)
@given(graph=graphs())
def test_fixed_point_is_closed_and_every_restriction_is_justified(
    graph: tuple[list[OwnershipEdge], list[ListedParty]],
) -> None:
    edges, listed = graph
    owners = owners_on(edges, DAY)
    listings = listings_on(listed, DAY)
    for rule in (OFAC_50, BIS_AFFILIATES_50):
        result = apply_fifty_percent_rule(rule, owners=owners, listings=listings)
        for party in PARTIES:
            held = [(result.level(o), p) for o, p in owners.get(party, {}).items()]
            restricted = [(lv, p) for lv, p in held if lv > Restriction.NONE]
            total = sum((p for _, p in restricted), Decimal(0))
            # closed: nobody left unrestricted with 50 % in restricted hands
            assert (total >= rule.threshold) == (party in result.restricted), party
            if party in result.restricted:
                # justified: the level is the strictest restricted owner's
                assert result.restricted[party].restriction == max(lv for lv, _ in restricted)
                assert result.restricted[party].total == total


def test_assessment_record_is_json_ready() -> None:
    edges = [edge("X", "A", "50"), edge("X", "B", "10"), edge("A", "B", "40")]
    result = assess_ownership("B", as_of=DAY, ownership=edges, listed=sdn("X"))
    record = json.loads(json.dumps(result.record()))
    assert record["verdict"] == "restricted"
    assert record["restriction"] == "sdn"
    assert record["inherited"][0]["rule"] == "ofac-50"
    assert record["inherited"][0]["stakes"][0] == {
        "owner": "A",
        "percent": "40",
        "owner_restriction": "sdn",
        "owner_listed": False,
    }
    assert record["explanation"] == list(result.explanation)


@pytest.mark.parametrize(
    ("source", "list_name", "expected"),
    [
        ("ofac-sdn", "SDN", SDN),
        ("bis-dpl", "Denied Persons List", Restriction.DENIED_PERSON),
        ("csl", "Entity List (EL) - Bureau of Industry and Security", EL),
        (
            "csl",
            "Military End User (MEU) List - Bureau of Industry and Security",
            Restriction.MEU_LIST,
        ),
        (
            "csl",
            "Unverified List (UVL) - Bureau of Industry and Security",
            Restriction.UNVERIFIED_LIST,
        ),
        ("csl", "Specially Designated Nationals (SDN) - Treasury Department", SDN),
        ("csl", "Non-SDN Menu-Based Sanctions List (NS-MBS List) - Treasury Department", None),
        ("csl", "Non-SDN Chinese Military-Industrial Complex Companies List (CMIC)", None),
        ("csl", "ITAR Debarred (DTC) - State Department", None),
        ("opensanctions", "Company", None),
    ],
)
def test_restriction_for_entry(source: str, list_name: str, expected: Restriction | None) -> None:
    entry = ListEntry(source, "1", PartyKind.ORGANIZATION, "Name", list_name=list_name)
    assert restriction_for_entry(entry) is expected


def test_the_chain_walk_reaches_owners_through_cycles_and_their_officers_only() -> None:
    """``chain_members``, the one walk of the case graph, the screening core and the stored
    rows: owners up the chain at any depth (a cycle followed once), holders of a role in any
    of them; a party owned by the chain, or beside it, and its officers are not reached."""
    stakes = [("a", "t"), ("b", "a"), ("a", "b"), ("t", "sub"), ("x", "y")]
    roles = [("chair", "b"), ("boss", "sub"), ("head", "y"), ("t", "a")]
    assert chain_members("t", stakes, roles) == {"t", "a", "b", "chair"}
    assert chain_members("t", [], []) == {"t"}
    assert chain_members("y", stakes, roles) == {"y", "x", "head"}
