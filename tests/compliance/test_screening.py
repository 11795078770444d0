"""The pure screening core (``compliance.screening``): a case's declared parties and edges, a
real index of list entries, the shipped policy packs on a day -> a typed result.

No database: the facts are literal, the index is the real matcher over a few entries, the
policy is the shipped packs evaluated on a day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from gpulease.compliance.matching import Outcome, ScreeningIndex
from gpulease.compliance.model import ListEntry, Party, PartyKind
from gpulease.compliance.ownership import ControlEdge, ControlRole, OwnershipEdge
from gpulease.compliance.policy import CUSTOMER_FIELDS, EffectivePolicy, PolicySet
from gpulease.compliance.screening import (
    LISTED,
    NO_LIST_REASON,
    CaseFacts,
    ScreeningResult,
    ScreeningVerdict,
    Thresholds,
    recorded_hit_keys,
    recorded_rules,
    screen_case,
    worse,
)

EL = "Entity List (EL) - Bureau of Industry and Security"
SDN = "Specially Designated Nationals (SDN) - Treasury Department"
ENTRIES = (
    ListEntry("csl", "el-1", PartyKind.ORGANIZATION, "Northern Lights Microwave Institute", (),
              ("CN",), list_name=EL),
    ListEntry("csl", "sdn-1", PartyKind.ORGANIZATION, "Black Reef Maritime Holdings", (),
              ("IR",), list_name=SDN),
)  # fmt: skip
INDEX = ScreeningIndex(ENTRIES)
EMPTY = ScreeningIndex(())
THRESHOLDS = Thresholds(85.0, 95.0)
POLICIES = PolicySet.builtin()
SUSPENDED = POLICIES.evaluate(date(2026, 3, 2))  # the affiliates rule is suspended
AFFILIATES = POLICIES.evaluate(date(2026, 11, 10))  # in force again
AFFILIATES_RULE = "us-affiliates-rule-2025@1/affiliates-50"
ALL_FIELDS = frozenset(CUSTOMER_FIELDS)


def org(pid: str, name: str, country: str = "SG") -> Party:
    return Party(pid, PartyKind.ORGANIZATION, name, countries=(country,))


TENANT = org("t", "Harbourfront Compute")
EL_OWNER = org("el", "Northern Lights Microwave Institute", "CN")
SDN_OWNER = org("sdn", "Black Reef Maritime Holdings", "IR")
CLEAN = org("clean", "Lion City Partners")


def facts(
    parties: tuple[Party, ...],
    ownership: tuple[OwnershipEdge, ...] = (),
    control: tuple[ControlEdge, ...] = (),
) -> CaseFacts:
    return CaseFacts(
        subject="t",
        parties=(TENANT, *parties),
        ownership=ownership,
        control=control,
        end_uses=("drug-discovery",),
        identification=ALL_FIELDS,
    )


def screened(case: CaseFacts, policy: EffectivePolicy = AFFILIATES) -> ScreeningResult:
    """``case`` screened against the test lists at the default thresholds under ``policy``."""
    return screen_case(case, index=INDEX, lists_in_force=True, thresholds=THRESHOLDS, policy=policy)


def stake(owner: str, owned: str, pct: int) -> OwnershipEdge:
    return OwnershipEdge(owner, owned, Decimal(pct))


def test_verdicts_are_ordered_and_only_worsen() -> None:
    clear, review, block = ScreeningVerdict
    assert [v.rank for v in (clear, review, block)] == [0, 1, 2]
    assert worse(clear, review) is review
    assert worse(block, review) is block
    assert ScreeningVerdict.parse("") is None
    assert ScreeningVerdict.parse("block") is block


def test_clean_case_is_clear_and_records_the_policy_rules() -> None:
    result = screened(
        facts((CLEAN,), (stake("clean", "t", 100),)),
    )
    assert result.verdict is ScreeningVerdict.CLEAR
    assert result.blocks == ()
    assert [p.party_id for p in result.parties] == ["t", "clean"]  # the organisation first
    assert all(p.outcome is Outcome.CLEAR and p.linked for p in result.parties)
    record = result.record()
    assert record["verdict"] == "clear"
    assert recorded_rules(record) == frozenset(r.ref for r in AFFILIATES.rules)
    assert AFFILIATES_RULE in recorded_rules(record)  # type: ignore[operator]
    assert recorded_hit_keys(record) == frozenset()


def test_no_list_in_force_is_never_clear() -> None:
    result = screen_case(
        facts((CLEAN,), (stake("clean", "t", 100),)),
        index=EMPTY,
        lists_in_force=False,
        thresholds=THRESHOLDS,
        policy=AFFILIATES,
    )
    assert result.verdict is ScreeningVerdict.REVIEW
    assert result.reasons[0] == NO_LIST_REASON
    assert {p["outcome"] for p in result.record()["parties"]} == {"review"}


def test_the_affiliates_rule_decides_only_while_in_force() -> None:
    case = facts((EL_OWNER, CLEAN), (stake("el", "t", 60), stake("clean", "t", 40)))
    during = screened(case, SUSPENDED)
    after = screened(case, AFFILIATES)
    assert during.verdict is ScreeningVerdict.REVIEW  # the listed owner is a hit, not a block
    assert during.blocks == ()
    assert after.verdict is ScreeningVerdict.BLOCK
    [block] = after.blocks
    assert block.rule == AFFILIATES_RULE
    assert block.lists == (f"{EL}, csl el-1",)
    assert block.parties == ("el",)


def test_a_block_under_the_affiliates_rule_names_the_rule_and_the_lists_not_sdn() -> None:
    """Defect 10: 30 % SDN + 30 % Entity List owners block under the affiliates rule (not
    under the OFAC rule, which counts only the SDN stake): the block names that rule and
    both lists; no sentence calls the tenant "restricted (sdn)"."""
    result = screened(
        facts(
            (EL_OWNER, SDN_OWNER, CLEAN),
            (stake("el", "t", 30), stake("sdn", "t", 30), stake("clean", "t", 40)),
        ),
    )
    assert result.verdict is ScreeningVerdict.BLOCK
    [block] = result.blocks
    assert block.rule == AFFILIATES_RULE
    assert set(block.lists) == {f"{EL}, csl el-1", f"{SDN}, csl sdn-1"}
    assert AFFILIATES_RULE in block.reason
    assert EL in block.reason
    assert SDN in block.reason
    assert not any("(sdn)" in r or "sdn under" in r for r in result.reasons)
    assert result.record()["blocks"][0]["rule"] == AFFILIATES_RULE
    # each party's hit says which list it is on
    reasons = {p.party_id: p.reason for p in result.parties}
    assert reasons["el"].endswith(f"on the {EL}")
    assert reasons["sdn"].endswith(f"on the {SDN}")


def test_a_block_through_an_intermediate_names_the_lists_above_it() -> None:
    mid = org("mid", "Midway Holdings")
    result = screened(
        facts(
            (mid, EL_OWNER, CLEAN),
            (stake("el", "mid", 60), stake("clean", "mid", 40), stake("mid", "t", 70)),
        ),
    )
    [block] = result.blocks
    assert (block.rule, block.lists, block.parties) == (
        AFFILIATES_RULE,
        (f"{EL}, csl el-1",),
        ("mid",),
    )
    assert "Midway Holdings (itself restricted" in block.reason
    assert "through Northern Lights Microwave Institute" in block.reason


def test_a_listed_tenant_is_blocked_as_listed() -> None:
    listed_tenant = Party("t", PartyKind.ORGANIZATION, "Black Reef Maritime Holdings")
    case = CaseFacts("t", (listed_tenant,), identification=ALL_FIELDS, end_uses=("education",))
    result = screened(case, SUSPENDED)
    assert result.verdict is ScreeningVerdict.BLOCK
    assert [(b.rule, b.lists) for b in result.blocks] == [(LISTED, (f"{SDN}, csl sdn-1",))]


def test_every_declared_party_is_screened_even_outside_the_chain() -> None:
    """Defect 3: a listed party inside a cycle of its own, declared but not linked to the
    tenant, is screened and is a finding that says it is not linked."""
    result = screened(
        facts(
            (CLEAN, EL_OWNER, org("shell", "Cycle Shell Ltd")),
            (stake("clean", "t", 100), stake("el", "shell", 50), stake("shell", "el", 50)),
        ),
    )
    by_id = {p.party_id: p for p in result.parties}
    assert set(by_id) == {"t", "clean", "el", "shell"}
    assert not by_id["el"].linked
    assert not by_id["shell"].linked
    assert by_id["el"].outcome is Outcome.BLOCK
    assert "not linked" in by_id["el"].reason
    assert result.verdict is ScreeningVerdict.REVIEW
    assert any("Northern Lights" in r and "not linked" in r for r in result.reasons)
    assert result.record()["hit_keys"] == ["csl:el-1"]


def test_a_controller_shared_with_a_listed_owner_is_a_red_flag() -> None:
    """One person declared once, director of the tenant and of its 10 % listed owner."""
    person = Party("p", PartyKind.PERSON, "Wei Zhang Example")
    result = screened(
        facts(
            (EL_OWNER, CLEAN, person),
            (stake("el", "t", 10), stake("clean", "t", 90)),
            (
                ControlEdge("p", "t", ControlRole.DIRECTOR),
                ControlEdge("p", "el", ControlRole.DIRECTOR),
            ),
        ),
        SUSPENDED,
    )
    assert result.ownership is not None
    kinds = {f.kind.value for f in result.ownership.flags}
    assert "shared_controller" in kinds
    assert result.verdict is ScreeningVerdict.REVIEW


def test_an_ownership_that_cannot_be_assessed_goes_to_review_with_the_error() -> None:
    """Stored data a submission now refuses (130 % at an intermediate owner) never raises:
    review, the error as the reason; a listed party is still found by name."""
    mid = org("mid", "Midway Holdings")
    result = screened(
        facts(
            (mid, EL_OWNER, CLEAN),
            (stake("mid", "t", 100), stake("el", "mid", 70), stake("clean", "mid", 60)),
        ),
    )
    assert result.verdict is ScreeningVerdict.REVIEW
    assert result.ownership is None
    assert any("could not be assessed" in r and "130 %" in r for r in result.reasons)
    assert {p.party_id for p in result.parties if p.outcome is Outcome.BLOCK} == {"el"}


@pytest.mark.parametrize("policy", [SUSPENDED, AFFILIATES], ids=["suspended", "in-force"])
def test_the_same_inputs_give_the_same_record(policy: EffectivePolicy) -> None:
    case = facts((EL_OWNER, CLEAN), (stake("el", "t", 60), stake("clean", "t", 40)))
    shuffled = CaseFacts(
        case.subject,
        tuple(reversed(case.parties)),
        tuple(reversed(case.ownership)),
        end_uses=case.end_uses,
        identification=case.identification,
    )
    runs = [screened(c, policy) for c in (case, shuffled)]
    assert runs[0].record() == runs[1].record()
