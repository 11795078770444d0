"""Policy packs: the shipped packs on dates around their changes, and refused pack files."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from gpulease.compliance.ownership import (
    ListedParty,
    OwnershipEdge,
    RedFlagKind,
    Restriction,
    Verdict,
)
from gpulease.compliance.policy import (
    RULE_STATUS_TRANSITIONS,
    InvalidPolicyPack,
    PolicySet,
    RuleKind,
    RuleStatus,
    builtin_packs,
    load_pack_file,
    parse_pack,
)
from gpulease.domain.errors import InvalidRequest

POLICY = PolicySet.builtin()
AFFILIATES = "us-affiliates-rule-2025@1"
DIFFUSION = "ai-diffusion-2025@1"


def test_builtin_packs_load() -> None:
    assert sorted(p.ref for p in builtin_packs()) == [
        "ai-diffusion-2025@1",
        "baseline@1",
        "iaas-customer-identification@1",
        "my-strategic-trade-2010@1",  # the country packs: scoped to their sites' countries
        "sg-strategic-goods-control@1",
        "th-wmd-trade-controls@1",
        "us-affiliates-rule-2025@1",
    ]


@pytest.mark.parametrize(
    ("day", "in_force", "status"),
    [
        (date(2025, 9, 28), False, RuleStatus.NOT_YET_IN_FORCE),
        (date(2025, 9, 29), True, RuleStatus.IN_FORCE),
        (date(2025, 10, 15), True, RuleStatus.IN_FORCE),
        (date(2025, 11, 9), True, RuleStatus.IN_FORCE),
        (date(2025, 11, 10), False, RuleStatus.SUSPENDED),
        (date(2026, 1, 1), False, RuleStatus.SUSPENDED),
        (date(2026, 11, 9), False, RuleStatus.SUSPENDED),
        (date(2026, 11, 10), True, RuleStatus.IN_FORCE),
    ],
)
def test_affiliates_rule_around_its_suspension(
    day: date, in_force: bool, status: RuleStatus
) -> None:
    effective = POLICY.evaluate(day)
    assert (AFFILIATES in effective.packs) is in_force
    levels = [r.applies_to for r in effective.fifty_percent_rules()]
    assert (frozenset({Restriction.SDN}) in levels) is True  # the OFAC rule always applies
    extended = frozenset({Restriction.ENTITY_LIST, Restriction.MEU_LIST, Restriction.SDN})
    assert (extended in levels) is in_force
    if not in_force:
        (inactive,) = [r for r in effective.inactive if r.ref == f"{AFFILIATES}/affiliates-50"]
        assert inactive.status is status


def test_suspension_is_explained() -> None:
    effective = POLICY.evaluate(date(2026, 1, 1))
    detail = effective.record()["inactive"][f"{AFFILIATES}/affiliates-50"]
    assert detail == "suspended since 2025-11-10, in_force from 2026-11-10"


@pytest.mark.parametrize(
    ("day", "tier_rule"),
    [
        (date(2025, 1, 12), False),
        (date(2025, 1, 13), True),
        (date(2025, 5, 12), True),
        (date(2025, 5, 13), False),
        (date(2026, 1, 1), False),
    ],
)
def test_ai_diffusion_before_inside_and_after_rescission(day: date, tier_rule: bool) -> None:
    effective = POLICY.evaluate(day)
    assert (DIFFUSION in effective.packs) is tier_rule
    china = effective.country_tier("cn")
    if tier_rule:
        assert china is not None
        assert china.tier == 3
        assert china.licence_required
        assert china.rules == (f"{DIFFUSION}/country-tiers",)
        indonesia = effective.country_tier("ID")
        assert indonesia is not None
        assert (indonesia.tier, indonesia.licence_required) == (2, False)
        us = effective.country_tier("US")
        assert us is not None
        assert us.tier == 1
    else:
        assert china is None


def test_baseline_accessors() -> None:
    effective = POLICY.evaluate(date(2026, 1, 1))
    assert effective.screening_lists == {"ofac-sdn", "csl", "bis-dpl", "opensanctions"}
    assert effective.prohibited_end_uses == {
        "military-end-use",
        "military-intelligence",
        "nuclear-weapons",
        "missile-uav",
        "chemical-weapons",
        "biological-weapons",
    }
    assert effective.prohibiting_rules("missile-uav") == ("baseline@1/prohibited-end-uses",)
    assert effective.minority_threshold == Decimal(25)
    assert {"CN", "MO", "RU", "IR", "KP"} <= effective.high_risk_countries
    assert effective.required_customer_fields(foreign=False) == ()
    assert effective.required_customer_fields(foreign=True) == (
        "name",
        "address",
        "national_or_registration_id",
        "payment_means",
        "payment_source",
        "emails",
        "phone_numbers",
        "access_ips_with_times",
    )
    (ofac,) = effective.fifty_percent_rules()
    assert ofac.rule_id == "baseline@1/ofac-50"
    assert ofac.threshold == Decimal(50)


def test_nothing_in_force_before_the_baseline() -> None:
    effective = POLICY.evaluate(date(2010, 1, 1))
    assert effective.packs == ()
    assert effective.rules == ()
    assert effective.minority_threshold is None


def test_transition_table_of_rule_status() -> None:
    allowed = {
        (a.value, b.value) for a, targets in RULE_STATUS_TRANSITIONS.items() for b in targets
    }
    assert allowed == {
        ("not_yet_in_force", "in_force"),
        ("in_force", "suspended"),
        ("in_force", "expired"),
        ("in_force", "rescinded"),
        ("suspended", "in_force"),
        ("suspended", "rescinded"),
        ("expired", "in_force"),
        ("expired", "rescinded"),
    }
    assert RuleStatus.RESCINDED not in RULE_STATUS_TRANSITIONS  # terminal


# ---------------------------------------------------------------- operator packs

GOOD = """
id = "operator-extra"
version = "2026.1"
title = "Operator's extra rules"
source = "Operator compliance committee"

[[rules]]
id = "lower-flag"
kind = "minority_stake_flag"
threshold = 10
status = [
  { state = "in_force", from = 2026-01-01, to = 2026-06-30 },
  { state = "in_force", from = "2026-09-01" },
  { state = "rescinded", from = 2027-01-01 },
]
"""


def test_operator_pack_file_is_loaded_and_evaluated(tmp_path: Path) -> None:
    path = tmp_path / "extra.toml"
    path.write_text(GOOD, encoding="utf-8")
    policy = PolicySet.builtin([path])
    assert "operator-extra@2026.1" in policy.evaluate(date(2026, 3, 1)).packs
    assert policy.evaluate(date(2026, 3, 1)).minority_threshold == Decimal(10)
    assert policy.evaluate(date(2026, 7, 1)).minority_threshold == Decimal(25)  # expired
    assert policy.evaluate(date(2026, 9, 1)).minority_threshold == Decimal(10)
    assert policy.evaluate(date(2027, 1, 1)).minority_threshold == Decimal(25)
    (rule,) = load_pack_file(path).rules
    assert rule.kind is RuleKind.MINORITY_STAKE_FLAG
    assert (
        rule.describe_status(date(2026, 7, 1))
        == "expired since 2026-07-01, in_force from 2026-09-01"
    )


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidPolicyPack, match="cannot read"):
        load_pack_file(tmp_path / "absent.toml")


def test_same_pack_loaded_twice_is_refused() -> None:
    pack = parse_pack(GOOD, origin="a.toml")
    with pytest.raises(InvalidPolicyPack, match="loaded twice"):
        PolicySet([pack, pack])


def test_two_versions_in_force_together_are_refused() -> None:
    one = parse_pack(GOOD, origin="a.toml")
    two = parse_pack(GOOD.replace('"2026.1"', '"2026.2"'), origin="b.toml")
    with pytest.raises(InvalidPolicyPack, match="both in force on 2026-01-01"):
        PolicySet([one, two])


RULE_HEAD = """
id = "bad"
version = "1"
title = "t"
source = "s"

[[rules]]
id = "r1"
"""
IN_FORCE = 'status = [{ state = "in_force", from = 2026-01-01 }]\n'


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ('kind = "sanctions"\n' + IN_FORCE, "kind", "unknown kind 'sanctions'"),
        ('kind = "screening"\n' + IN_FORCE, "lists", "non-empty list of strings"),
        ('kind = "screening"\nlists = []\n' + IN_FORCE, "lists", "non-empty list"),
        ('kind = "screening"\nlists = ["csl"]\n', "status", "no status periods"),
        (
            'kind = "ownership_50"\napplies_to = ["grey_list"]\n' + IN_FORCE,
            "applies_to",
            "unknown restriction level 'grey_list'",
        ),
        (
            'kind = "ownership_50"\napplies_to = ["sdn"]\nthreshold = 150\n' + IN_FORCE,
            "threshold",
            "at most 100",
        ),
        (
            'kind = "ownership_50"\napplies_to = ["sdn"]\nthreshold = true\n' + IN_FORCE,
            "threshold",
            "must be a number",
        ),
        (
            'kind = "prohibited_end_uses"\nend_uses = ["space-lasers"]\n' + IN_FORCE,
            "end_uses",
            "unknown end-use codes: space-lasers",
        ),
        (
            'kind = "country_tiers"\ntiers = { 1 = ["US"], 3 = ["US"] }\n' + IN_FORCE,
            "tiers",
            "US is in tier 1 and tier 3",
        ),
        (
            'kind = "country_tiers"\ntiers = { 3 = ["China"] }\n' + IN_FORCE,
            "tiers",
            "not ISO 3166 alpha-2",
        ),
        (
            'kind = "country_tiers"\ntiers = { high = ["CN"] }\n' + IN_FORCE,
            "tiers",
            "whole numbers",
        ),
        (
            'kind = "customer_identification"\nrequired_fields = ["shoe_size"]\n' + IN_FORCE,
            "required_fields",
            "unknown fields: shoe_size",
        ),
        (
            'kind = "customer_identification"\napplies_to = "some"\n'
            'required_fields = ["name"]\n' + IN_FORCE,
            "applies_to",
            "'foreign' or 'all'",
        ),
        (
            'kind = "minority_stake_flag"\nthreshold = 25\ncolour = "red"\n' + IN_FORCE,
            None,
            "unknown key 'colour'",
        ),
        (
            'kind = "minority_stake_flag"\nstatus = [{ state = "suspended", from = 2026-01-01 }]\n',
            "status",
            "cannot become suspended on 2026-01-01 while not_yet_in_force",
        ),
        (
            'kind = "minority_stake_flag"\nstatus = [\n'
            '  { state = "in_force", from = 2025-01-01 },\n'
            '  { state = "suspended", from = 2025-02-01, to = 2025-06-01 },\n'
            '  { state = "suspended", from = 2025-03-01, to = 2025-04-01 },\n]\n',
            "status",
            "cannot become suspended on 2025-03-01 while suspended",
        ),
        (
            'kind = "minority_stake_flag"\nstatus = [\n'
            '  { state = "in_force", from = 2025-01-01 },\n'
            '  { state = "rescinded", from = 2025-02-01 },\n'
            '  { state = "in_force", from = 2025-03-01 },\n]\n',
            "status",
            "cannot become in_force on 2025-03-01 while rescinded",
        ),
        (
            'kind = "minority_stake_flag"\n'
            'status = [{ state = "in_force", from = 2025-03-01, to = 2025-01-01 }]\n',
            "status[0]",
            "is before 'from'",
        ),
        (
            'kind = "minority_stake_flag"\nstatus = [{ state = "repealed", from = 2025-03-01 }]\n',
            "status[0]",
            "unknown state 'repealed'",
        ),
        (
            'kind = "minority_stake_flag"\n'
            'status = [{ state = "in_force", from = "13 May 2025" }]\n',
            "status[0]",
            "is not a date",
        ),
        (
            'kind = "minority_stake_flag"\n'
            'status = [{ state = "in_force", from = 2025-03-01T10:00:00 }]\n',
            "status[0]",
            "must be a date",
        ),
        (
            'kind = "minority_stake_flag"\nstatus = [\n'
            '  { state = "in_force", from = 2025-01-01 },\n'
            '  { state = "rescinded", from = 2025-01-01 },\n]\n',
            "status",
            "two status changes on 2025-01-01",
        ),
    ],
)
def test_malformed_rules_are_refused_naming_file_and_rule(
    body: str, field: str | None, message: str
) -> None:
    with pytest.raises(InvalidPolicyPack, match=message) as info:
        parse_pack(RULE_HEAD + body, origin="operator/bad.toml")
    error = info.value
    assert isinstance(error, InvalidRequest)
    assert error.code == "invalid_request"
    assert error.details["file"] == "operator/bad.toml"
    assert error.details["rule"] == "r1"
    assert error.details["field"] == field
    assert error.message.startswith("policy pack operator/bad.toml, rule 'r1'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id = [", "not valid TOML"),
        ('id = "Bad Id"\nversion = "1"\ntitle = "t"\nsource = "s"\n', "not a slug"),
        ('id = "ok"\nversion = "1"\ntitle = "t"\nsource = "s"\n', "at least one"),
        ('id = "ok"\nversion = "1"\ntitle = "t"\nsource = "s"\nowner = "me"\n', "unknown key"),
        ('id = "ok"\ntitle = "t"\nsource = "s"\n[[rules]]\nid = "r"\n', "'version'"),
        (
            'id = "ok"\nversion = 1\ntitle = "t"\nsource = "s"\n[[rules]]\nkind = "screening"\n',
            "rule '#1'.*needs an 'id'",
        ),
        (
            RULE_HEAD
            + 'kind = "screening"\nlists = ["csl"]\n'
            + IN_FORCE
            + '[[rules]]\nid = "r1"\nkind = "screening"\nlists = ["csl"]\n'
            + IN_FORCE,
            "used twice",
        ),
    ],
)
def test_malformed_packs_are_refused_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(InvalidPolicyPack, match=message) as info:
        parse_pack(text, origin="x.toml")
    assert info.value.details["file"] == "x.toml"


# ---------------------------------------------------------------- the reference case over time


def test_ownership_under_the_policy_in_force_follows_the_affiliates_rule() -> None:
    edges = [
        OwnershipEdge("inspur", "aivres", Decimal("33.33")),
        OwnershipEdge("inspur", "inspur-hk", Decimal(60)),
    ]
    listed = [ListedParty("inspur", Restriction.ENTITY_LIST, "Entity List, 2023")]
    hq = {"inspur": "CN", "aivres": "US", "inspur-hk": "HK"}

    def verdict(day: date, subject: str) -> Verdict:
        policy = POLICY.evaluate(day)
        return policy.assess_ownership(
            subject, ownership=edges, listed=listed, headquarters=hq
        ).verdict

    for day in (date(2025, 9, 28), date(2025, 10, 15), date(2026, 1, 1), date(2026, 11, 10)):
        assert verdict(day, "aivres") is Verdict.FLAGGED  # one third: a red flag, never a block
    assert verdict(date(2025, 9, 28), "inspur-hk") is Verdict.FLAGGED
    assert verdict(date(2025, 10, 15), "inspur-hk") is Verdict.RESTRICTED
    assert verdict(date(2026, 1, 1), "inspur-hk") is Verdict.FLAGGED  # rule suspended
    assert verdict(date(2026, 11, 10), "inspur-hk") is Verdict.RESTRICTED

    result = POLICY.evaluate(date(2025, 10, 15)).assess_ownership(
        "inspur-hk", ownership=edges, listed=listed, headquarters=hq
    )
    assert result.restriction is Restriction.ENTITY_LIST
    assert [i.rule_id for i in result.inherited] == [f"{AFFILIATES}/affiliates-50"]
    assert RedFlagKind.HIGH_RISK_OWNER in {f.kind for f in result.flags}


def test_missing_customer_fields() -> None:
    policy = POLICY.evaluate(date(2026, 1, 1))
    provided = {"name", "address", "emails"}
    assert policy.missing_customer_fields(provided, foreign=False) == ()
    assert policy.missing_customer_fields(provided, foreign=True) == (
        "national_or_registration_id",
        "payment_means",
        "payment_source",
        "phone_numbers",
        "access_ips_with_times",
    )
