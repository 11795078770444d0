"""Policy packs scoped to a site's country, admission at a site, and the dispatch core: pure,
no database (issue 19)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gpulease.compliance.admission import Standing, admission, site_refusal
from gpulease.compliance.policy import (
    InvalidPolicyPack,
    PolicySet,
    RuleKind,
    SiteScope,
    builtin_packs,
    parse_pack,
)
from gpulease.scheduler.dispatch import SiteOption, Start, dispatch

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
JOHOR = SiteScope("jhb1", "MY")
SCOPED = """
id = "test-scoped"
version = "1"
title = "t"
source = "s"
scope = { countries = ["my"], sites = ["sgp1"] }
status = [{ state = "in_force", from = 2025-01-01 }]

[[rules]]
id = "no-cn"
kind = "tenant_countries"
title = "no tenants from CN"
countries = ["CN"]
notice_days = 30
permit = "a permit"
"""


def test_a_scoped_pack_applies_only_at_its_countries_and_sites() -> None:
    pack = parse_pack(SCOPED, origin="t.toml")
    assert pack.countries == frozenset({"MY"})
    assert pack.sites == frozenset({"sgp1"})
    assert not pack.operator_wide
    assert pack.applies_at("jhb1", "MY")
    assert pack.applies_at("sgp1", "SG")
    assert not pack.applies_at("jkt1", "ID")
    assert not pack.applies_at(None, None)
    policies = PolicySet([pack])
    assert policies.evaluate(DAY).packs == ()  # the operator-wide view leaves it out
    assert policies.evaluate(DAY, JOHOR).packs == ("test-scoped@1",)
    assert policies.evaluate(DAY, JOHOR).site_rules == frozenset({"test-scoped@1/no-cn"})


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        ('scope = { countries = ["Malaysia"] }', "scope.countries"),
        ('scope = { planets = ["MY"] }', None),
        ("scope = {}", "scope"),
        ('scope = { sites = ["Bad Site"] }', "scope.sites"),
    ],
)
def test_a_bad_scope_is_refused_naming_the_field(scope: str, field: str | None) -> None:
    text = SCOPED.replace('scope = { countries = ["my"], sites = ["sgp1"] }', scope)
    with pytest.raises(InvalidPolicyPack) as caught:
        parse_pack(text, origin="t.toml")
    assert caught.value.details["field"] == field


def test_tenant_countries_rule_bounds_are_checked() -> None:
    with pytest.raises(InvalidPolicyPack, match="notice_days"):
        parse_pack(SCOPED.replace("notice_days = 30", "notice_days = 400"), origin="t.toml")


def test_shipped_country_packs_are_scoped_cited_and_mark_what_is_uncertain() -> None:
    packs = {p.id: p for p in builtin_packs()}
    scoped = {pid: p.countries for pid, p in packs.items() if not p.operator_wide}
    assert scoped == {
        "my-strategic-trade-2010": frozenset({"MY"}),
        "sg-strategic-goods-control": frozenset({"SG"}),
        "th-wmd-trade-controls": frozenset({"TH"}),
    }
    for pid in scoped:
        assert packs[pid].citation, pid
        assert "uncertain" in (packs[pid].citation + packs[pid].description).lower(), pid
    malaysia = packs["my-strategic-trade-2010"]
    assert "Section 12".lower() in malaysia.citation.lower()
    assert "14 July 2025" in malaysia.citation
    assert "30 days" in malaysia.citation
    [rule] = [r for r in malaysia.rules if r.kind is RuleKind.TENANT_COUNTRIES]
    assert rule.active_on(date(2025, 7, 14))
    assert not rule.active_on(date(2025, 7, 13))
    # the US packs stay operator-wide: they follow the chips to every site
    assert packs["baseline"].operator_wide
    assert packs["us-affiliates-rule-2025"].operator_wide


def test_one_approval_admission_per_site_names_the_rule() -> None:
    policies = PolicySet.builtin()
    inftech = Standing("t-inf", "approved", None, ("financial-services-ai",), (), "CN")
    bank = Standing("t-bank", "approved", None, ("financial-services-ai",), (), "ID")
    jakarta = admission([inftech, bank], policies.evaluate(DAY, SiteScope("jkt1", "ID")), NOW)
    johor = admission([inftech, bank], policies.evaluate(DAY, JOHOR), NOW)
    assert jakarta.held == {}
    assert set(johor.held) == {"t-inf"}
    reason = johor.held["t-inf"]
    assert reason.startswith(
        "held at jhb1: tenant not admitted under pack my-strategic-trade-2010@1"
    )
    assert "rule ai-chips-suspected-restricted-activity" in reason
    assert "headquartered in China (CN); 30 days' notice first; needs notice to" in reason
    refused = site_refusal("CN", policies.evaluate(DAY, JOHOR))
    assert refused is not None
    assert refused.rule == "my-strategic-trade-2010@1/ai-chips-suspected-restricted-activity"
    # before the directive (14 July 2025) Johor admitted it
    assert admission([inftech], policies.evaluate(date(2025, 7, 13), JOHOR), NOW).held == {}
    # a site's prohibited end use holds that purpose there only
    weapons = Standing("t-x", "approved", None, ("chemical-weapons",), (), "SG")
    singapore = policies.evaluate(DAY, SiteScope("sgp1", "SG"))
    assert admission([weapons], singapore, NOW).purpose("t-x", "chemical-weapons") is not None


def option(site: str, **facts: object) -> SiteOption:
    values: dict[str, object] = {
        "country": "XX",
        "refusal": None,
        "never_fits": None,
        "lease_gpus": 0,
        "lease_free": 0,
        "idle_gpus": 0,
    }
    values.update(facts)
    return SiteOption(site, **values)  # type: ignore[arg-type]


def test_dispatch_prefers_its_lease_then_borrowed_and_says_why_not_for_every_site() -> None:
    options = [
        option("sgp1", refusal="tenant not admitted under pack sg@1 (t), rule r: x"),
        option("bkk1", never_fits="never fits this site: no 72-GPU NVLink domain", idle_gpus=32),
        option("jhb1", idle_gpus=32),
        option("jkt1", lease_gpus=576, lease_free=72, idle_gpus=100),
    ]
    decision = dispatch(72, options)
    assert (decision.site_id, decision.start) == ("jkt1", Start.NOW_ON_LEASE)
    assert dict(decision.passed) == {
        "sgp1": "tenant not admitted under pack sg@1 (t), rule r: x",
        "bkk1": "never fits this site: no 72-GPU NVLink domain",
        "jhb1": "admitted, but it waits for capacity to borrow there",
    }
    assert decision.summary().startswith("jkt1: admitted; it starts now on the tenant's lease")
    assert decision.record()["passed"][0] == {
        "site_id": "sgp1",
        "reason": "tenant not admitted under pack sg@1 (t), rule r: x",
    }
    # its lease busy: idle capacity elsewhere starts it sooner (borrowed)
    busy = [option("jkt1", lease_gpus=576, lease_free=0, idle_gpus=0), option("jhb1", idle_gpus=8)]
    assert dispatch(8, busy).site_id == "jhb1"
    assert dict(dispatch(8, busy).passed)["jkt1"] == (
        "admitted, but it waits for the tenant's lease there to free"
    )
    # ties go to the most headroom, then the id
    even = [option("sgp1", idle_gpus=32), option("bkk1", idle_gpus=32)]
    assert dispatch(8, even).site_id == "bkk1"
    assert "comes first by id" in dict(dispatch(8, even).passed)["sgp1"]


def test_dispatch_with_no_site_able_to_take_the_job_refuses_with_every_reason() -> None:
    decision = dispatch(8, [option("a", refusal="no"), option("b", never_fits="never fits")])
    assert decision.refused_everywhere
    assert decision.start is None
    assert decision.passed == (("a", "no"), ("b", "never fits"))
    with pytest.raises(ValueError, match="twice"):
        dispatch(8, [option("a"), option("a")])
