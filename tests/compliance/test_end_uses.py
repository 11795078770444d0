"""The end-use vocabulary, parsing declared purposes, and checking them under a policy."""

from __future__ import annotations

from datetime import date

import pytest

from gpulease.compliance.end_uses import (
    END_USES,
    PROHIBITED_END_USES,
    PurposeOutcome,
    check_purpose,
    end_use,
    parse_purpose,
)
from gpulease.compliance.policy import PolicySet, parse_pack
from gpulease.domain.errors import InvalidRequest

POLICY = PolicySet.builtin().evaluate(date(2026, 1, 1))
NO_POLICY = PolicySet([]).evaluate(date(2026, 1, 1))
INF_TECH = {"financial-services-ai", "health-research", "drug-discovery"}


def test_vocabulary_is_consistent() -> None:
    codes = [e.code for e in END_USES]
    assert len(codes) == len(set(codes))
    assert {
        "military-end-use",
        "military-intelligence",
        "nuclear-weapons",
        "missile-uav",
        "chemical-weapons",
        "biological-weapons",
    } == PROHIBITED_END_USES
    assert end_use("drug-discovery").label == "Drug discovery"
    with pytest.raises(InvalidRequest, match="unknown end-use code 'mining'"):
        end_use("mining")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("drug-discovery", ("drug-discovery", "")),
        ("  Drug Discovery ", ("drug-discovery", "")),
        ("DRUG_DISCOVERY", ("drug-discovery", "")),
        ("Financial services AI", ("financial-services-ai", "")),
        (
            "drug-discovery: protein folding for oncology",
            ("drug-discovery", "protein folding for oncology"),
        ),
        ("Health Research:  trial data", ("health-research", "trial data")),
        ("Financial AI", ("financial-services-ai", "")),
        ("Missiles: guidance", ("missile-uav", "guidance")),
        ("drones: crop surveys", (None, "drones: crop surveys")),
        ("credit scoring models", (None, "credit scoring models")),
        ("note: unknown prefix", (None, "note: unknown prefix")),
        ("", (None, "")),
    ],
)
def test_parse_purpose(text: str, expected: tuple[str | None, str]) -> None:
    assert parse_purpose(text) == expected


def test_approved_purpose_is_allowed_and_names_the_policy() -> None:
    decision = check_purpose("Financial services AI: credit risk models", INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.ALLOW
    assert decision.allowed
    assert decision.code == "financial-services-ai"
    assert decision.free_text == "credit risk models"
    assert "baseline@1" in decision.reason
    assert decision.packs_in_force == POLICY.packs
    assert decision.record()["outcome"] == "allow"
    assert decision.record()["packs_in_force"] == list(POLICY.packs)


def test_prohibited_use_is_refused_even_if_approved() -> None:
    decision = check_purpose("missile-uav", {*INF_TECH, "missile-uav"}, POLICY)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert decision.policy_rules == ("baseline@1/prohibited-end-uses",)
    assert "prohibited by the policy in force (baseline@1/prohibited-end-uses)" in decision.reason


def test_prohibited_use_is_refused_without_any_policy() -> None:
    decision = check_purpose("Military intelligence", INF_TECH, NO_POLICY)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert "prohibited in every case" in decision.reason


def test_policy_can_prohibit_more() -> None:
    pack = parse_pack(
        """
id = "no-media"
version = "1"
title = "t"
source = "s"
[[rules]]
id = "media"
kind = "prohibited_end_uses"
end_uses = ["media-generation"]
status = [{ state = "in_force", from = 2025-01-01 }]
""",
        origin="no-media.toml",
    )
    policy = PolicySet([pack]).evaluate(date(2026, 1, 1))
    decision = check_purpose("media-generation", {"media-generation"}, policy)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert decision.policy_rules == ("no-media@1/media",)


def test_code_outside_the_approved_set_is_refused_with_the_approved_set() -> None:
    decision = check_purpose("inference-serving", INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert "not among the end uses approved for this tenant" in decision.reason
    assert "drug-discovery, financial-services-ai, health-research" in decision.reason


def test_unrecognised_purpose_is_refused() -> None:
    decision = check_purpose("mining crypto", INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert decision.code is None
    assert "names no known end use" in decision.reason


@pytest.mark.parametrize("text", ["weapons research", "military research", "Missile guidance"])
def test_unrecognised_purpose_naming_weapons_is_refused_as_prohibited(text: str) -> None:
    decision = check_purpose(text, INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert "prohibited kind of end use" in decision.reason
    assert "never allowed" in decision.reason


def test_suspect_free_text_goes_to_review() -> None:
    decision = check_purpose("health-research: pathogen enhancement", INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.REVIEW
    assert "'pathogen enhancement' (biological; BWC Article I)" in decision.reason
    assert not decision.allowed


def test_unknown_approved_code_is_a_configuration_error() -> None:
    with pytest.raises(InvalidRequest, match="unknown codes: astrology"):
        check_purpose("drug-discovery", {"drug-discovery", "astrology"}, POLICY)


def test_ordinary_free_text_is_not_sent_to_review() -> None:
    decision = check_purpose("health-research: disease surveillance in Java", INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.ALLOW
