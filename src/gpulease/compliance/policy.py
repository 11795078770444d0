"""The policy in force on a day: which packs and rules apply, and what they require.

:class:`PolicySet` holds every loaded pack (the shipped ones, see
:func:`~gpulease.compliance.policy_packs.builtin_packs`, plus operator files);
:meth:`PolicySet.evaluate` returns the :class:`EffectivePolicy` of one day: the active rules,
the packs in force as ``id@version`` (what a decision records), the inactive rules with their
status in words, and accessors for what the cores need (50 % rules, screening lists,
prohibited end uses, country tiers, customer fields, red-flag settings). Pure once loaded:
the day is an argument. Two versions of one pack may not be in force on the same day.
The pack types are re-exported here.

Sites. ``evaluate(day)`` is the operator-wide policy (packs without a scope: what KYC
screening applies to every tenant); ``evaluate(day, SiteScope(site, country))`` adds the
packs scoped to that site or its country (what admission at that site applies).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from gpulease.compliance.ownership import (
    ControlEdge,
    FiftyPercentRule,
    ListedParty,
    OwnershipAssessment,
    OwnershipEdge,
    assess_ownership,
)
from gpulease.compliance.policy_packs import (
    CUSTOMER_FIELDS,
    RULE_STATUS_TRANSITIONS,
    CountryTiersParams,
    CustomerIdentificationParams,
    HighRiskCountriesParams,
    InvalidPolicyPack,
    MinorityStakeParams,
    Ownership50Params,
    PolicyPack,
    PolicyRule,
    ProhibitedEndUsesParams,
    RuleKind,
    RuleParams,
    RuleStatus,
    ScreeningParams,
    TenantCountriesParams,
    TrainingComputeParams,
    builtin_packs,
    load_pack_file,
    parse_pack,
)

__all__ = [
    "CUSTOMER_FIELDS",
    "RULE_STATUS_TRANSITIONS",
    "ActiveRule",
    "CountryTier",
    "CountryTiersParams",
    "CustomerIdentificationParams",
    "EffectivePolicy",
    "HighRiskCountriesParams",
    "InactiveRule",
    "InvalidPolicyPack",
    "MinorityStakeParams",
    "Ownership50Params",
    "PolicyPack",
    "PolicyRule",
    "PolicySet",
    "ProhibitedEndUsesParams",
    "RuleKind",
    "RuleParams",
    "RuleStatus",
    "ScreeningParams",
    "SiteScope",
    "TenantCountriesParams",
    "TrainingComputeParams",
    "builtin_packs",
    "load_pack_file",
    "parse_pack",
]


@dataclass(frozen=True, slots=True)
class ActiveRule:
    pack: PolicyPack
    rule: PolicyRule

    @property
    def ref(self) -> str:
        """``pack@version/rule``: what a decision records."""
        return f"{self.pack.ref}/{self.rule.id}"


@dataclass(frozen=True, slots=True)
class InactiveRule:
    ref: str
    status: RuleStatus
    detail: str  # e.g. "suspended since 2025-11-10, in_force from 2026-11-10"


@dataclass(frozen=True, slots=True)
class CountryTier:
    country: str
    tier: int
    licence_required: bool
    rules: tuple[str, ...]  # refs of the tier rules that placed it


@dataclass(frozen=True, slots=True)
class SiteScope:
    """Where a policy is evaluated: a site and its country (ISO alpha-2)."""

    site_id: str
    country: str


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The rules in force on ``as_of`` (at ``site``, or operator-wide), and the accessors a
    decision needs."""

    as_of: date
    packs: tuple[str, ...]  # "id@version" of every pack in force
    rules: tuple[ActiveRule, ...]
    inactive: tuple[InactiveRule, ...]
    site: SiteScope | None = None

    @property
    def site_rules(self) -> frozenset[str]:
        """Refs of the active rules that apply here only (packs scoped to the site)."""
        return frozenset(r.ref for r in self.rules if not r.pack.operator_wide)

    def tenant_country_rules(self) -> tuple[tuple[ActiveRule, TenantCountriesParams], ...]:
        return tuple(
            (r, r.rule.params)
            for r in self.of_kind(RuleKind.TENANT_COUNTRIES)
            if isinstance(r.rule.params, TenantCountriesParams)
        )

    def of_kind(self, kind: RuleKind) -> tuple[ActiveRule, ...]:
        return tuple(r for r in self.rules if r.rule.kind is kind)

    def _params(self, kind: RuleKind) -> list[tuple[str, Any]]:
        return [(r.ref, r.rule.params) for r in self.of_kind(kind)]

    @property
    def screening_lists(self) -> frozenset[str]:
        return frozenset(
            name
            for _, p in self._params(RuleKind.SCREENING)
            if isinstance(p, ScreeningParams)
            for name in p.lists
        )

    def fifty_percent_rules(self) -> tuple[FiftyPercentRule, ...]:
        """One :class:`FiftyPercentRule` per active ownership rule, named by its ref."""
        return tuple(
            FiftyPercentRule(ref, p.applies_to, p.threshold)
            for ref, p in self._params(RuleKind.OWNERSHIP_50)
            if isinstance(p, Ownership50Params)
        )

    @property
    def prohibited_end_uses(self) -> frozenset[str]:
        return frozenset(
            code
            for _, p in self._params(RuleKind.PROHIBITED_END_USES)
            if isinstance(p, ProhibitedEndUsesParams)
            for code in p.end_uses
        )

    def prohibiting_rules(self, end_use: str) -> tuple[str, ...]:
        return tuple(
            ref
            for ref, p in self._params(RuleKind.PROHIBITED_END_USES)
            if isinstance(p, ProhibitedEndUsesParams) and end_use in p.end_uses
        )

    @property
    def minority_threshold(self) -> Decimal | None:
        """The lowest (most cautious) active threshold; None if no such rule is in force."""
        found = [
            p.threshold
            for _, p in self._params(RuleKind.MINORITY_STAKE_FLAG)
            if isinstance(p, MinorityStakeParams)
        ]
        return min(found) if found else None

    def training_compute_thresholds(self) -> tuple[tuple[str, TrainingComputeParams], ...]:
        """Each active training-compute rule's ref and parameters, lowest threshold first."""
        found = [
            (ref, p)
            for ref, p in self._params(RuleKind.TRAINING_COMPUTE)
            if isinstance(p, TrainingComputeParams)
        ]
        return tuple(sorted(found, key=lambda item: (item[1].threshold_ops, item[0])))

    @property
    def high_risk_countries(self) -> frozenset[str]:
        return frozenset(
            c
            for _, p in self._params(RuleKind.HIGH_RISK_COUNTRIES)
            if isinstance(p, HighRiskCountriesParams)
            for c in p.countries
        )

    def country_tier(self, country: str) -> CountryTier | None:
        """The strictest tier any active tier rule gives ``country``; None if no such rule."""
        code = country.strip().upper()
        placed = [
            (p.tiers.get(code, p.default_tier), ref, p)
            for ref, p in self._params(RuleKind.COUNTRY_TIERS)
            if isinstance(p, CountryTiersParams)
        ]
        if not placed:
            return None
        tier = max(t for t, _, _ in placed)
        at_tier = [(ref, p) for t, ref, p in placed if t == tier]
        licence = any(tier in p.licence_required_tiers for _, p in at_tier)
        return CountryTier(code, tier, licence, tuple(ref for ref, _ in at_tier))

    def required_customer_fields(self, *, foreign: bool) -> tuple[str, ...]:
        """Fields to collect from a customer, in first-required order (empty if none)."""
        fields: list[str] = []
        for _, p in self._params(RuleKind.CUSTOMER_IDENTIFICATION):
            if isinstance(p, CustomerIdentificationParams) and (foreign or p.applies_to == "all"):
                fields += [f for f in p.required_fields if f not in fields]
        return tuple(fields)

    def missing_customer_fields(
        self, provided: Collection[str], *, foreign: bool
    ) -> tuple[str, ...]:
        """The required customer fields absent from ``provided`` (names of filled fields)."""
        return tuple(f for f in self.required_customer_fields(foreign=foreign) if f not in provided)

    def assess_ownership(
        self,
        subject: str,
        *,
        ownership: Iterable[OwnershipEdge],
        listed: Iterable[ListedParty],
        control: Iterable[ControlEdge] = (),
        headquarters: Mapping[str, str] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> OwnershipAssessment:
        """:func:`~gpulease.compliance.ownership.assess_ownership` on ``as_of`` under the
        active 50 % rules, minority threshold and high-risk countries of this policy."""
        return assess_ownership(
            subject,
            as_of=self.as_of,
            ownership=ownership,
            listed=listed,
            rules=self.fifty_percent_rules(),
            control=control,
            headquarters=headquarters,
            high_risk_countries=self.high_risk_countries,
            minority_threshold=self.minority_threshold,
            names=names,
        )

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary for the audit record of a decision."""
        return {
            "as_of": self.as_of.isoformat(),
            "packs": list(self.packs),
            "rules": [r.ref for r in self.rules],
            "inactive": {r.ref: r.detail for r in self.inactive},
        }


_SET_VERSIONS = itertools.count(1)


class PolicySet:
    """Every loaded pack; :meth:`evaluate` says which rules are in force on a day.

    ``version``: a number no other set of this process has (a set is immutable, so what a
    cache decided under one version stays true of it; a new set, e.g. packs added with
    :meth:`with_packs`, has another). Unlike ``id()`` it is never reused."""

    def __init__(self, packs: Iterable[PolicyPack]) -> None:
        self.version = next(_SET_VERSIONS)
        self._packs: tuple[PolicyPack, ...] = tuple(sorted(packs, key=lambda p: (p.id, p.version)))
        refs = [p.ref for p in self._packs]
        for ref in refs:
            if refs.count(ref) > 1:
                raise InvalidPolicyPack(f"policy pack {ref} is loaded twice", pack=ref)
        self._check_versions_do_not_overlap()

    @classmethod
    def builtin(cls, extra_files: Iterable[Path] = ()) -> PolicySet:
        """The packs shipped with gpulease plus operator-provided files."""
        return cls([*builtin_packs(), *(load_pack_file(Path(f)) for f in extra_files)])

    @property
    def packs(self) -> tuple[PolicyPack, ...]:
        return self._packs

    def with_packs(self, *packs: PolicyPack) -> PolicySet:
        return PolicySet([*self._packs, *packs])

    def evaluate(self, as_of: date, site: SiteScope | None = None) -> EffectivePolicy:
        """The rules in force on ``as_of``: operator-wide, or at ``site`` (module doc)."""
        active: list[ActiveRule] = []
        inactive: list[InactiveRule] = []
        here = tuple(
            p
            for p in self._packs
            if p.operator_wide or (site is not None and p.applies_at(site.site_id, site.country))
        )
        for pack in here:
            for rule in pack.rules:
                if rule.active_on(as_of):
                    active.append(ActiveRule(pack, rule))
                else:
                    inactive.append(
                        InactiveRule(
                            f"{pack.ref}/{rule.id}",
                            rule.status_at(as_of),
                            rule.describe_status(as_of),
                        )
                    )
        packs = tuple(p.ref for p in here if p.in_force(as_of))
        return EffectivePolicy(as_of, packs, tuple(active), tuple(inactive), site)

    def _check_versions_do_not_overlap(self) -> None:
        # status is constant between changes, so checking every change day is exact
        for i, one in enumerate(self._packs):
            for two in self._packs[i + 1 :]:
                if one.id != two.id:
                    continue
                days = {d for p in (one, two) for r in p.rules for d, _ in r.timeline}
                clash = sorted(d for d in days if one.in_force(d) and two.in_force(d))
                if clash:
                    raise InvalidPolicyPack(
                        f"policy packs {one.ref} and {two.ref} are both in force on {clash[0]}; "
                        "end the old version's rules (status 'rescinded' or an 'in_force' "
                        "with 'to') before the new one starts",
                        pack=one.id,
                    )
