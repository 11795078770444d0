"""Tenants under common ownership or control (pure): matched identities, majority chains."""

from __future__ import annotations

from decimal import Decimal

from gpulease.compliance.ownership_groups import GroupParty, Stake, controllers, groups


def party(pid: str, name: str, *ids: tuple[str, str], tenant: str | None = None) -> GroupParty:
    return GroupParty(pid, name, ("SG",), tuple(ids), tenant)


def test_two_shells_owned_by_one_holding_declared_twice_are_one_group() -> None:
    parties = [
        party("p-a", "Shell A", tenant="t-a"),
        party("p-b", "Shell B", tenant="t-b"),
        party("p-c", "Independent", tenant="t-c"),
        # the holding, declared by each shell's case with the same registration number
        party("p-h1", "Holding Pte Ltd", ("registration", "HOLD-1")),
        party("p-h2", "HOLDING PTE. LTD.", ("Registration", " hold-1 ")),
        party("p-m", "Minority Fund"),
    ]
    stakes = [
        Stake("p-h1", "p-a", Decimal(100)),
        Stake("p-h2", "p-b", Decimal(60)),
        Stake("p-m", "p-b", Decimal(40)),
        Stake("p-m", "p-c", Decimal(50)),  # exactly half: not a majority
    ]
    tenants = {"t-a": "p-a", "t-b": "p-b", "t-c": "p-c"}
    assert groups(tenants, parties, stakes) == {"p-h1": ("t-a", "t-b")}
    assert controllers(tenants, parties, stakes)["t-c"] == "p-c"


def test_a_chain_of_majorities_leads_to_the_top_and_a_cycle_ends() -> None:
    parties = [
        party("p-a", "A", tenant="t-a"),
        party("p-b", "B", tenant="t-b"),
        party("p-x", "X"),
        party("p-y", "Y"),
    ]
    stakes = [
        Stake("p-x", "p-a", Decimal(51)),
        Stake("p-y", "p-x", Decimal(75)),
        Stake("p-x", "p-y", Decimal(75)),  # a cross-holding: the walk stops, never loops
        Stake("p-y", "p-b", Decimal(90)),
    ]
    found = controllers({"t-a": "p-a", "t-b": "p-b"}, parties, stakes)
    assert found == {"t-a": "p-x", "t-b": "p-x"}  # the cycle's smallest, from either entry
    assert groups({"t-a": "p-a", "t-b": "p-b"}, parties, stakes) == {"p-x": ("t-a", "t-b")}
    # without the cycle: A's chain tops at Y, B's at Y too
    plain = [s for s in stakes if (s.owner, s.owned) != ("p-x", "p-y")]
    assert controllers({"t-a": "p-a", "t-b": "p-b"}, parties, plain) == {
        "t-a": "p-y",
        "t-b": "p-y",
    }
