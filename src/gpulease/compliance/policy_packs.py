"""Policy packs: declarative, versioned rules with effective dates, loaded from TOML.

A *pack* is a TOML file (``packs/*.toml`` ship with gpulease; an operator may load more)::

    id = "us-affiliates-rule-2025"       # slug, stable
    version = "1"                        # recorded with every decision as id@version
    title = "..."
    source = "..."                       # who issued it
    citation = "..."                     # optional: the instrument
    status = [ { state = "in_force", from = 2025-09-29 } ]   # optional default for rules
    scope = { countries = ["MY"] }       # optional: only at sites in these countries
                                         # (or sites = ["jhb1"]); none: operator-wide

    [[rules]]
    id = "affiliates-50"
    kind = "ownership_50"                # one of RuleKind
    applies_to = ["entity_list", "meu_list", "sdn"]
    status = [
      { state = "in_force", from = 2025-09-29 },
      { state = "suspended", from = 2025-11-10, to = 2026-11-09 },
    ]

Status periods: ``in_force`` from a day (optional ``to``: last day, then the rule expires),
``suspended`` from a day to a day (both inclusive; in force again the day after ``to``;
without ``to`` until further notice), ``rescinded`` from a day (final). The periods are
turned into a timeline of :class:`RuleStatus` changes checked against
:data:`RULE_STATUS_TRANSITIONS`, so a suspension before the rule is in force, overlapping
suspensions or a rule revived after its rescission are refused on load. A rule is *active*
on a day iff its status that day is ``in_force``; a pack is in force iff one of its rules is.

Scope. A pack without ``scope`` applies operator-wide (the US rules on US-origin chips follow
the chips to every site); one with ``scope.countries`` (ISO 3166 alpha-2) and/or
``scope.sites`` (site ids) applies only at those sites (:meth:`PolicyPack.applies_at`): a
country's own trade controls. KYC screening uses the operator-wide packs; admission at a site
uses those plus the site's (:meth:`gpulease.compliance.policy.PolicySet.evaluate`).
:mod:`gpulease.compliance.policy` evaluates a set of packs on a day.

Every error names the file, the rule and the field. Parsing (:func:`parse_pack`) is pure;
only :func:`load_pack_file` and :func:`builtin_packs` read files.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from gpulease.compliance.end_uses import is_end_use
from gpulease.compliance.fifty_percent import HUNDRED, Restriction
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import can_transition


class InvalidPolicyPack(InvalidRequest):
    """A pack file that cannot be loaded; ``details`` names ``file``, ``rule``, ``field``."""


class RuleKind(StrEnum):
    SCREENING = "screening"  # lists = [...]: screen parties against these list sources
    OWNERSHIP_50 = "ownership_50"  # applies_to = [levels], threshold = 50
    PROHIBITED_END_USES = "prohibited_end_uses"  # end_uses = [codes]
    COUNTRY_TIERS = "country_tiers"  # tiers = {1 = [...], 3 = [...]}, default_tier, ...
    CUSTOMER_IDENTIFICATION = "customer_identification"  # applies_to, required_fields
    MINORITY_STAKE_FLAG = "minority_stake_flag"  # threshold = 25
    HIGH_RISK_COUNTRIES = "high_risk_countries"  # countries = [...]: owners there flag
    TRAINING_COMPUTE = "training_compute"  # threshold_ops = "1e26", window_days = 365
    # countries = [...], notice_days = 30, permit = "...": at the pack's sites, a tenant
    # headquartered there is not admitted (until the notice/permit named is on record)
    TENANT_COUNTRIES = "tenant_countries"


class RuleStatus(StrEnum):
    NOT_YET_IN_FORCE = "not_yet_in_force"
    IN_FORCE = "in_force"
    SUSPENDED = "suspended"
    EXPIRED = "expired"  # an in_force period with a 'to' has ended
    RESCINDED = "rescinded"  # final


RULE_STATUS_TRANSITIONS: dict[RuleStatus, frozenset[RuleStatus]] = {
    RuleStatus.NOT_YET_IN_FORCE: frozenset({RuleStatus.IN_FORCE}),
    RuleStatus.IN_FORCE: frozenset(
        {RuleStatus.SUSPENDED, RuleStatus.EXPIRED, RuleStatus.RESCINDED}
    ),
    RuleStatus.SUSPENDED: frozenset({RuleStatus.IN_FORCE, RuleStatus.RESCINDED}),
    RuleStatus.EXPIRED: frozenset({RuleStatus.IN_FORCE, RuleStatus.RESCINDED}),
}

# Fields a customer-identification rule may require (the IaaS customer identification
# programme proposed under Executive Order 13984).
CUSTOMER_FIELDS: dict[str, str] = {
    "name": "name",
    "address": "address",
    "national_or_registration_id": "national identity or company registration number",
    "payment_means": "means of payment (card, account)",
    "payment_source": "source of payment (who pays)",
    "emails": "e-mail addresses",
    "phone_numbers": "telephone numbers",
    "access_ips_with_times": "IP addresses used for access, with the date and time of each",
}

_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


# ---------------------------------------------------------------- rule parameters


@dataclass(frozen=True, slots=True)
class ScreeningParams:
    lists: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ownership50Params:
    applies_to: frozenset[Restriction]
    threshold: Decimal


@dataclass(frozen=True, slots=True)
class ProhibitedEndUsesParams:
    end_uses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CountryTiersParams:
    tiers: Mapping[str, int]  # ISO alpha-2 -> tier
    default_tier: int
    licence_required_tiers: frozenset[int]


@dataclass(frozen=True, slots=True)
class CustomerIdentificationParams:
    applies_to: str  # "foreign" or "all"
    required_fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MinorityStakeParams:
    threshold: Decimal


@dataclass(frozen=True, slots=True)
class HighRiskCountriesParams:
    countries: frozenset[str]


@dataclass(frozen=True, slots=True)
class TrainingComputeParams:
    """Report training compute of ``threshold_ops`` operations or more: one job's, or the
    sum of a tenant's (or one of its campaigns') jobs active in the last ``window_days``."""

    threshold_ops: Decimal
    window_days: int


@dataclass(frozen=True, slots=True)
class TenantCountriesParams:
    """Tenants headquartered in ``countries`` are not admitted where the pack applies; the
    refusal says what would lift it (``permit``) and the notice the rule asks for."""

    countries: frozenset[str]
    notice_days: int
    permit: str


RuleParams = (
    ScreeningParams
    | Ownership50Params
    | ProhibitedEndUsesParams
    | CountryTiersParams
    | CustomerIdentificationParams
    | MinorityStakeParams
    | HighRiskCountriesParams
    | TrainingComputeParams
    | TenantCountriesParams
)


# ---------------------------------------------------------------- rules and packs


@dataclass(frozen=True, slots=True)
class PolicyRule:
    id: str
    kind: RuleKind
    params: RuleParams
    timeline: tuple[tuple[date, RuleStatus], ...]  # changes, in date order
    title: str = ""

    def status_at(self, as_of: date) -> RuleStatus:
        status = RuleStatus.NOT_YET_IN_FORCE
        for day, change in self.timeline:
            if day > as_of:
                break
            status = change
        return status

    def active_on(self, as_of: date) -> bool:
        return self.status_at(as_of) is RuleStatus.IN_FORCE

    def describe_status(self, as_of: date) -> str:
        """E.g. ``"suspended since 2025-11-10, in_force from 2026-11-10"``."""
        since = next((d for d, _ in reversed(self.timeline) if d <= as_of), None)
        after = next(((d, s) for d, s in self.timeline if d > as_of), None)
        text = self.status_at(as_of).value + (f" since {since}" if since else "")
        if after is not None:
            text += f", {after[1].value} from {after[0]}"
        return text


@dataclass(frozen=True, slots=True)
class PolicyPack:
    id: str
    version: str
    title: str
    source: str
    rules: tuple[PolicyRule, ...]
    citation: str = ""
    description: str = ""
    origin: str = ""  # the file it came from
    countries: frozenset[str] = frozenset()  # scope: sites in these countries (ISO alpha-2)
    sites: frozenset[str] = frozenset()  # scope: these site ids

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def operator_wide(self) -> bool:
        return not self.countries and not self.sites

    def applies_at(self, site_id: str | None, country: str | None) -> bool:
        """Whether the pack applies at a site (``None``: the operator-wide view)."""
        if self.operator_wide:
            return True
        return (site_id is not None and site_id in self.sites) or (
            country is not None and country.upper() in self.countries
        )

    @property
    def scope_text(self) -> str:
        """E.g. ``"sites in MY"``, ``"operator-wide"``."""
        parts = [f"sites in {', '.join(sorted(self.countries))}"] if self.countries else []
        parts += [f"site {', '.join(sorted(self.sites))}"] if self.sites else []
        return "; ".join(parts) or "operator-wide"

    def in_force(self, as_of: date) -> bool:
        return any(r.active_on(as_of) for r in self.rules)


# ---------------------------------------------------------------- loading


def builtin_packs() -> tuple[PolicyPack, ...]:
    """The packs shipped in ``gpulease/compliance/packs/*.toml``, sorted by file name."""
    folder = resources.files("gpulease.compliance").joinpath("packs")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)
    return tuple(parse_pack(f.read_text(encoding="utf-8"), origin=f.name) for f in files)


def load_pack_file(path: Path) -> PolicyPack:
    """An operator-provided pack, validated like the shipped ones."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidPolicyPack(
            f"policy pack {path}: cannot read: {exc.strerror}", file=str(path)
        ) from exc
    return parse_pack(text, origin=str(path))


class _Where:
    """Builds errors that name the file, the rule and the field."""

    def __init__(self, origin: str, rule: str | None = None) -> None:
        self.origin = origin
        self.rule = rule

    def error(self, message: str, field: str | None = None) -> InvalidPolicyPack:
        where = f"policy pack {self.origin}"
        if self.rule is not None:
            where += f", rule {self.rule!r}"
        if field is not None:
            where += f", field {field!r}"
        return InvalidPolicyPack(
            f"{where}: {message}", file=self.origin, rule=self.rule, field=field
        )

    def text(self, table: Mapping[str, Any], key: str, *, required: bool = True) -> str:
        value = table.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise self.error("must be a non-empty string", key)
        return value.strip()

    def strings(self, table: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = table.get(key)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise self.error("must be a non-empty list of strings", key)
        return tuple(v.strip() for v in value)

    def percent(self, table: Mapping[str, Any], key: str, default: Decimal) -> Decimal:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise self.error(f"must be a number, got {value!r}", key)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise self.error(f"must be a number, got {value!r}", key) from None
        if not number.is_finite() or not 0 < number <= HUNDRED:
            raise self.error(f"must be above 0 and at most 100, got {value!r}", key)
        return number

    def day(self, table: Mapping[str, Any], key: str, field: str) -> date:
        value = table[key]
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise self.error(f"{key!r} is not a date: {value!r}", field) from None
        if not isinstance(value, date) or hasattr(value, "hour"):
            raise self.error(f"{key!r} must be a date such as 2025-09-29, got {value!r}", field)
        return value

    def countries(self, values: tuple[str, ...], field: str) -> tuple[str, ...]:
        codes = tuple(v.upper() for v in values)
        bad = [v for v in codes if not _COUNTRY.match(v)]
        if bad:
            raise self.error(f"not ISO 3166 alpha-2 country codes: {', '.join(bad)}", field)
        return codes

    def unknown_keys(self, table: Mapping[str, Any], allowed: Iterable[str]) -> None:
        extra = sorted(set(table) - set(allowed))
        if extra:
            raise self.error(
                f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; "
                f"expected: {', '.join(sorted(allowed))}"
            )


_PACK_KEYS = {
    "id",
    "version",
    "title",
    "source",
    "citation",
    "description",
    "status",
    "rules",
    "scope",
}
_RULE_KEYS = {"id", "kind", "title", "description", "status"}
_KIND_KEYS: dict[RuleKind, set[str]] = {
    RuleKind.SCREENING: {"lists"},
    RuleKind.OWNERSHIP_50: {"applies_to", "threshold"},
    RuleKind.PROHIBITED_END_USES: {"end_uses"},
    RuleKind.COUNTRY_TIERS: {"tiers", "default_tier", "licence_required_tiers"},
    RuleKind.CUSTOMER_IDENTIFICATION: {"applies_to", "required_fields"},
    RuleKind.MINORITY_STAKE_FLAG: {"threshold"},
    RuleKind.HIGH_RISK_COUNTRIES: {"countries"},
    RuleKind.TRAINING_COMPUTE: {"threshold_ops", "window_days"},
    RuleKind.TENANT_COUNTRIES: {"countries", "notice_days", "permit"},
}


def parse_pack(text: str, *, origin: str) -> PolicyPack:
    """A pack from TOML text; ``origin`` (a file name) appears in every error."""
    where = _Where(origin)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise where.error(f"not valid TOML: {exc}") from None
    where.unknown_keys(doc, _PACK_KEYS)
    pack_id = where.text(doc, "id")
    if not _SLUG.match(pack_id):
        raise where.error(f"{pack_id!r} is not a slug (a-z, 0-9, '.', '_', '-')", "id")
    version = doc.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    version = where.text({"version": version}, "version")
    default_status = doc.get("status")
    rules_raw = doc.get("rules")
    if not isinstance(rules_raw, list) or not rules_raw:
        raise where.error("a pack needs at least one [[rules]] table", "rules")
    rules: list[PolicyRule] = []
    for index, raw in enumerate(rules_raw):
        if not isinstance(raw, dict):
            raise where.error(f"rules[{index}] must be a table", "rules")
        rule = _parse_rule(raw, index, origin, default_status)
        if any(r.id == rule.id for r in rules):
            raise _Where(origin, rule.id).error("rule id used twice in the pack", "id")
        rules.append(rule)
    countries, sites = _scope(doc.get("scope"), where)
    return PolicyPack(
        id=pack_id,
        version=version,
        title=where.text(doc, "title"),
        source=where.text(doc, "source"),
        rules=tuple(rules),
        citation=where.text(doc, "citation", required=False),
        description=where.text(doc, "description", required=False),
        origin=origin,
        countries=countries,
        sites=sites,
    )


def _scope(raw: Any, where: _Where) -> tuple[frozenset[str], frozenset[str]]:
    """``scope = { countries = [...], sites = [...] }`` (absent: operator-wide)."""
    if raw is None:
        return frozenset(), frozenset()
    if not isinstance(raw, dict) or not raw:
        raise where.error("must be a table such as { countries = ['MY'] }", "scope")
    where.unknown_keys(raw, {"countries", "sites"})
    countries: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    if "countries" in raw:
        countries = where.countries(where.strings(raw, "countries"), "scope.countries")
    if "sites" in raw:
        sites = where.strings(raw, "sites")
        bad = [s for s in sites if not _SLUG.match(s)]
        if bad:
            raise where.error(f"not site ids: {', '.join(bad)}", "scope.sites")
    return frozenset(countries), frozenset(sites)


def _parse_rule(raw: Mapping[str, Any], index: int, origin: str, default_status: Any) -> PolicyRule:
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not _SLUG.match(rule_id):
        raise _Where(origin, f"#{index + 1}").error(
            f"a rule needs an 'id' slug, got {rule_id!r}", "id"
        )
    where = _Where(origin, rule_id)
    kind_text = raw.get("kind")
    try:
        kind = RuleKind(str(kind_text))
    except ValueError:
        raise where.error(
            f"unknown kind {kind_text!r}; expected one of: {', '.join(k.value for k in RuleKind)}",
            "kind",
        ) from None
    where.unknown_keys(raw, _RULE_KEYS | _KIND_KEYS[kind])
    status = raw.get("status", default_status)
    if status is None:
        raise where.error("no status periods (give the rule or the pack a 'status')", "status")
    return PolicyRule(
        id=rule_id,
        kind=kind,
        params=_parse_params(kind, raw, where),
        timeline=_timeline(status, where),
        title=where.text(raw, "title", required=False),
    )


def _parse_params(kind: RuleKind, raw: Mapping[str, Any], where: _Where) -> RuleParams:
    if kind is RuleKind.SCREENING:
        return ScreeningParams(where.strings(raw, "lists"))
    if kind is RuleKind.OWNERSHIP_50:
        levels: set[Restriction] = set()
        for text in where.strings(raw, "applies_to"):
            try:
                levels.add(Restriction.parse(text))
            except InvalidRequest as exc:
                raise where.error(exc.message, "applies_to") from None
        if Restriction.NONE in levels:
            raise where.error("'none' is not a restriction level", "applies_to")
        return Ownership50Params(frozenset(levels), where.percent(raw, "threshold", Decimal(50)))
    if kind is RuleKind.PROHIBITED_END_USES:
        codes = where.strings(raw, "end_uses")
        unknown = [c for c in codes if not is_end_use(c)]
        if unknown:
            raise where.error(
                f"unknown end-use codes: {', '.join(unknown)} (see gpulease.compliance.end_uses)",
                "end_uses",
            )
        return ProhibitedEndUsesParams(codes)
    if kind is RuleKind.COUNTRY_TIERS:
        return _parse_tiers(raw, where)
    if kind is RuleKind.CUSTOMER_IDENTIFICATION:
        applies_to = raw.get("applies_to", "foreign")
        if applies_to not in ("foreign", "all"):
            raise where.error(f"must be 'foreign' or 'all', got {applies_to!r}", "applies_to")
        fields = where.strings(raw, "required_fields")
        unknown = [f for f in fields if f not in CUSTOMER_FIELDS]
        if unknown:
            raise where.error(
                f"unknown fields: {', '.join(unknown)}; expected some of: "
                f"{', '.join(CUSTOMER_FIELDS)}",
                "required_fields",
            )
        return CustomerIdentificationParams(applies_to, fields)
    if kind is RuleKind.MINORITY_STAKE_FLAG:
        return MinorityStakeParams(where.percent(raw, "threshold", Decimal(25)))
    if kind is RuleKind.TRAINING_COMPUTE:
        return _parse_training_compute(raw, where)
    if kind is RuleKind.TENANT_COUNTRIES:
        days = raw.get("notice_days", 0)
        if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 365:
            raise where.error(f"whole days from 0 to 365, got {days!r}", "notice_days")
        return TenantCountriesParams(
            frozenset(where.countries(where.strings(raw, "countries"), "countries")),
            days,
            where.text(raw, "permit", required=False),
        )
    return HighRiskCountriesParams(
        frozenset(where.countries(where.strings(raw, "countries"), "countries"))
    )


def _parse_training_compute(raw: Mapping[str, Any], where: _Where) -> TrainingComputeParams:
    text = raw.get("threshold_ops")
    try:
        ops = Decimal(str(text)) if isinstance(text, str | int) else Decimal("NaN")
    except InvalidOperation:
        ops = Decimal("NaN")
    if not ops.is_finite() or ops <= 0:
        raise where.error(
            f'a positive number of operations such as "1e26", got {text!r}', "threshold_ops"
        )
    days = raw.get("window_days", 365)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
        raise where.error(f"whole days from 1 to 3660, got {days!r}", "window_days")
    return TrainingComputeParams(ops, days)


def _tier_number(value: Any, where: _Where, field: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or str(number) != str(value).strip():
        raise where.error(f"tiers are whole numbers from 1, got {value!r}", field)
    return number


def _parse_tiers(raw: Mapping[str, Any], where: _Where) -> CountryTiersParams:
    table = raw.get("tiers")
    if not isinstance(table, dict) or not table:
        raise where.error("must be a table such as {1 = ['US'], 3 = ['CN']}", "tiers")
    tiers: dict[str, int] = {}
    for key, values in table.items():
        tier = _tier_number(key, where, "tiers")
        if not isinstance(values, list):
            raise where.error(f"tier {key} must list countries", "tiers")
        for country in where.countries(where.strings({"tiers": values}, "tiers"), "tiers"):
            if country in tiers:
                raise where.error(f"{country} is in tier {tiers[country]} and tier {tier}", "tiers")
            tiers[country] = tier
    default = _tier_number(raw.get("default_tier", 2), where, "default_tier")
    licence_raw = raw.get("licence_required_tiers", [])
    if not isinstance(licence_raw, list):
        raise where.error("must be a list of tiers", "licence_required_tiers")
    licence = frozenset(_tier_number(t, where, "licence_required_tiers") for t in licence_raw)
    return CountryTiersParams(dict(sorted(tiers.items())), default, licence)


_PERIOD_KEYS = {"state", "from", "to"}


def _timeline(status: Any, where: _Where) -> tuple[tuple[date, RuleStatus], ...]:
    """Status periods -> dated changes, checked against RULE_STATUS_TRANSITIONS."""
    if not isinstance(status, list) or not status:
        raise where.error("must be a non-empty list of periods", "status")
    changes: list[tuple[date, bool, RuleStatus]] = []  # (day, explicit, status)
    for i, period in enumerate(status):
        field = f"status[{i}]"
        if not isinstance(period, dict) or "state" not in period or "from" not in period:
            raise where.error("each period needs 'state' and 'from'", field)
        extra = sorted(set(period) - _PERIOD_KEYS)
        if extra:
            raise where.error(f"unknown key {extra[0]!r}; expected state, from, to", field)
        state = period["state"]
        start = where.day(period, "from", field)
        end = where.day(period, "to", field) if "to" in period else None
        if end is not None and end < start:
            raise where.error(f"'to' ({end}) is before 'from' ({start})", field)
        if state == "in_force":
            changes.append((start, True, RuleStatus.IN_FORCE))
            if end is not None:
                changes.append((end + timedelta(days=1), False, RuleStatus.EXPIRED))
        elif state == "suspended":
            changes.append((start, True, RuleStatus.SUSPENDED))
            if end is not None:
                changes.append((end + timedelta(days=1), False, RuleStatus.IN_FORCE))
        elif state == "rescinded":
            if end is not None:
                raise where.error("a rescission is final; it has no 'to'", field)
            changes.append((start, True, RuleStatus.RESCINDED))
        else:
            raise where.error(
                f"unknown state {state!r}; expected in_force, suspended or rescinded", field
            )
    timeline: list[tuple[date, RuleStatus]] = []
    current = RuleStatus.NOT_YET_IN_FORCE
    for day in sorted({d for d, _, _ in changes}):
        same = [(explicit, s) for d, explicit, s in changes if d == day]
        explicit = [s for e, s in same if e]
        chosen = explicit if explicit else [s for _, s in same]
        if len(chosen) > 1:
            raise where.error(
                f"two status changes on {day} ({', '.join(s.value for s in chosen)})", "status"
            )
        target = chosen[0]
        if not can_transition(RULE_STATUS_TRANSITIONS, current, target):
            raise where.error(
                f"cannot become {target.value} on {day} while {current.value}", "status"
            )
        timeline.append((day, target))
        current = target
    return tuple(timeline)
