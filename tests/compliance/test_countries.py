"""Countries: ISO 3166-1 alpha-2 from codes and names, the refusal with suggestions, and the
screening's check of the tenant's own country (issue 14, defect 5)."""

from __future__ import annotations

import pytest

from gpulease.compliance.countries import country_code, home_country
from gpulease.domain.errors import InvalidRequest

HIGH_RISK = frozenset({"CN", "IR", "RU", "KP"})


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("ID", "ID"),
        ("id", "ID"),
        ("IDN", "ID"),
        ("Indonesia", "ID"),
        ("  indonesia ", "ID"),
        ("IR", "IR"),
        ("Iran", "IR"),
        ("Iran, Islamic Republic of", "IR"),
        ("IRN", "IR"),
        ("Russia", "RU"),
        ("Russian Federation", "RU"),
        ("UK", "GB"),
        ("North Korea", "KP"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Macau", "MO"),
        ("Kosovo", "XK"),
    ],
)
def test_codes_and_names_give_the_alpha_2_code(given: str, code: str) -> None:
    assert country_code(given) == code


@pytest.mark.parametrize(
    ("given", "suggested"),
    [("Indonsia", "ID (Indonesia)"), ("Singapur", "SG (Singapore)"), ("XX", None), ("", None)],
)
def test_an_unknown_country_is_refused_naming_the_field(given: str, suggested: str | None) -> None:
    with pytest.raises(InvalidRequest) as refused:
        country_code(given, field="organization.countries")
    assert refused.value.details["field"] == "organization.countries"
    assert "is not a country" in refused.value.message
    if suggested is not None:
        assert f"did you mean {suggested}" in refused.value.message
        assert suggested in refused.value.details["suggestions"]


def test_the_tenants_own_high_risk_country_is_flagged_whatever_its_spelling() -> None:
    for spelling in ("IR", "Iran", "IRN", "iran"):
        home = home_country([spelling], operator_country="ID", high_risk=HIGH_RISK)
        assert home.country == "IR"
        assert home.foreign
        assert home.flags == (
            "the organisation itself is in Iran (IR), a high-risk country under the policy "
            "in force",
        )
    # a second declared country counts too
    both = home_country(["SG", "CN"], operator_country="ID", high_risk=HIGH_RISK)
    assert both.country == "SG"
    assert len(both.flags) == 1
    assert "China (CN)" in both.flags[0]


def test_a_missing_or_unknown_country_is_flagged_and_treated_as_foreign() -> None:
    missing = home_country([], operator_country="ID", high_risk=HIGH_RISK)
    assert missing.country == ""
    assert missing.foreign
    assert "declares no country" in missing.flags[0]
    unknown = home_country(["Atlantis"], operator_country="ID", high_risk=HIGH_RISK)
    assert unknown.foreign
    assert "'Atlantis' is not an ISO 3166 country" in unknown.flags[0]


def test_a_domestic_low_risk_tenant_is_not_flagged() -> None:
    for spelling in ("ID", "Indonesia"):
        home = home_country([spelling], operator_country="ID", high_risk=HIGH_RISK)
        assert home == home.__class__("ID", False, ())
