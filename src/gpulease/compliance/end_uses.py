"""End uses: the controlled vocabulary a tenant declares, and the check of a declaration.

A tenant is approved for a set of end-use codes (``financial-services-ai``,
``drug-discovery``...). Every lease or job declares its purpose as a code or a label,
optionally followed by free text: ``"drug-discovery: protein folding for oncology"``.
:func:`check_purpose` refuses a prohibited end use always (the vocabulary marks the weapons
and military ones; an active policy pack may prohibit more), refuses a code outside the
tenant's approved set, and reads the free text with the purpose classifier
(:mod:`gpulease.compliance.purpose_classifier`): free text naming a prohibited end use is
refused, free text naming an agent or a dual-use activity goes to an officer (review), and
every reason names the term, its category and its source. :func:`check_statement` reads a
KYC end-use statement the same way.

Pure: the policy in force is an argument (a :class:`PoliciesInForce`, such as
``compliance.policy.EffectivePolicy``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gpulease.compliance.purpose_classifier import Classification, Level, classify
from gpulease.domain.errors import InvalidRequest


class PoliciesInForce(Protocol):
    """What a purpose decision records of the policy in force (``policy.EffectivePolicy``
    is one; naming it here would make the policy modules import each other in a circle)."""

    @property
    def packs(self) -> tuple[str, ...]: ...

    def prohibiting_rules(self, end_use: str) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class EndUse:
    code: str
    label: str
    prohibited: bool = False
    description: str = ""
    aliases: tuple[str, ...] = ()  # other names a tenant may write, e.g. "financial AI"


_TABLE: tuple[EndUse, ...] = (
    EndUse(
        "financial-services-ai",
        "Financial services AI",
        False,
        "credit, fraud, risk and trading models",
    ),
    EndUse("health-research", "Health research", False, "clinical and biomedical research"),
    EndUse("drug-discovery", "Drug discovery", False, "molecular modelling, protein folding"),
    EndUse(
        "general-model-training",
        "General model training",
        False,
        "training or fine-tuning general-purpose models",
    ),
    EndUse("inference-serving", "Inference serving", False, "serving trained models"),
    EndUse(
        "scientific-computing",
        "Scientific computing",
        False,
        "simulation and data analysis for open research",
    ),
    EndUse("education", "Education", False, "teaching and coursework"),
    EndUse("climate-weather", "Climate and weather", False, "forecasting and climate models"),
    EndUse("media-generation", "Media generation", False, "images, video, audio, text"),
    EndUse(
        "autonomous-driving",
        "Autonomous driving",
        False,
        "perception and planning for civilian vehicles",
    ),
    EndUse(
        "industrial-engineering",
        "Industrial engineering",
        False,
        "design, CFD, materials, digital twins",
    ),
    EndUse(
        "military-end-use",
        "Military end use",
        True,
        "use by or for armed forces, or for weapons development, production or maintenance",
    ),
    EndUse(
        "military-intelligence",
        "Military intelligence",
        True,
        "intelligence, surveillance or reconnaissance for a military or intelligence service",
    ),
    EndUse(
        "nuclear-weapons", "Nuclear weapons", True, "nuclear explosive devices and their delivery"
    ),
    EndUse("missile-uav", "Missiles and UAVs", True, "rocket systems and unmanned aerial vehicles"),
    EndUse("chemical-weapons", "Chemical weapons", True, "chemical weapons and precursors"),
    EndUse("biological-weapons", "Biological weapons", True, "biological weapons and agents"),
)


def _key(text: str) -> str:
    return re.sub(r"[\s\-_]+", " ", text.strip().lower())


# Extra names, kept apart from the table so each entry stays one readable line.
_ALIASES: dict[str, tuple[str, ...]] = {
    "financial-services-ai": ("financial AI", "fintech AI"),
    "health-research": ("medical research", "healthcare research"),
    "drug-discovery": ("drug research", "pharmaceutical research"),
    "general-model-training": ("model training", "LLM training", "foundation model training"),
    "inference-serving": ("inference", "model serving"),
    "scientific-computing": ("HPC", "scientific research"),
    "climate-weather": ("weather forecasting", "climate modelling", "climate modeling"),
    "military-end-use": ("military", "defence", "defense"),
    "military-intelligence": ("ISR", "military ISR"),
    "nuclear-weapons": ("nuclear weapon",),
    "missile-uav": ("missiles", "missile", "military drones"),  # not "drones": crop surveys
    "chemical-weapons": ("chemical weapon",),
    "biological-weapons": ("biological weapon", "bioweapons"),
}
END_USES: tuple[EndUse, ...] = tuple(
    EndUse(e.code, e.label, e.prohibited, e.description, _ALIASES.get(e.code, ())) for e in _TABLE
)

_BY_CODE: dict[str, EndUse] = {e.code: e for e in END_USES}
PROHIBITED_END_USES: frozenset[str] = frozenset(e.code for e in END_USES if e.prohibited)
_BY_KEY: dict[str, str] = {}
for _e in END_USES:
    for _name in (_e.code, _e.label, *_e.aliases):
        if _BY_KEY.setdefault(_key(_name), _e.code) != _e.code:  # pragma: no cover
            raise AssertionError(f"end-use name {_name!r} is ambiguous")


def end_use(code: str) -> EndUse:
    """The end use of ``code``; InvalidRequest naming the known codes otherwise."""
    try:
        return _BY_CODE[code]
    except KeyError:
        raise InvalidRequest(
            f"unknown end-use code {code!r}; known codes: {', '.join(_BY_CODE)}",
            field="end_use",
            value=code,
        ) from None


def is_end_use(code: str) -> bool:
    return code in _BY_CODE


def parse_purpose(text: str) -> tuple[str | None, str]:
    """``(code, free_text)`` from a declaration; ``code`` is None if none was recognised.

    Accepts a code, a label or an alias, case and spacing ignored (``"Drug Discovery"``,
    ``"drug_discovery"``), alone or as ``"code: free text"``. Text that names no known
    end use comes back whole as free text.
    """
    stripped = text.strip()
    whole = _BY_KEY.get(_key(stripped))
    if whole is not None:
        return whole, ""
    head, sep, rest = stripped.partition(":")
    if sep:
        code = _BY_KEY.get(_key(head))
        if code is not None:
            return code, rest.strip()
    return None, stripped


class PurposeOutcome(StrEnum):
    ALLOW = "allow"
    REVIEW = "review"  # allowed code, but the free text needs an officer's look
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class PurposeDecision:
    outcome: PurposeOutcome
    code: str | None
    free_text: str
    reason: str
    policy_rules: tuple[str, ...] = ()  # "pack@version/rule" of the rules that decided
    packs_in_force: tuple[str, ...] = ()  # "pack@version" in force when decided
    classification: Classification | None = None  # of the free text, when it was read

    @property
    def allowed(self) -> bool:
        return self.outcome is PurposeOutcome.ALLOW

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary for the audit record."""
        return {
            "outcome": self.outcome.value,
            "code": self.code,
            "free_text": self.free_text,
            "reason": self.reason,
            "policy_rules": list(self.policy_rules),
            "packs_in_force": list(self.packs_in_force),
            "classification": None if self.classification is None else self.classification.record(),
        }


def _negations(found: Classification) -> str:
    if not found.negated:
        return ""
    terms = ", ".join(repr(f.term) for f in found.negated[:3])
    return f" (negated, so not counted: {terms})"


def check_purpose(
    declared: str, approved_codes: Collection[str], effective_policy: PoliciesInForce
) -> PurposeDecision:
    """Decide a declared purpose for a tenant approved for ``approved_codes``.

    Refuses: an unrecognised declaration, a prohibited end use (always, even if listed in
    ``approved_codes``), a code outside ``approved_codes``. Review: an allowed code whose
    free text mentions a prohibited use. Raises InvalidRequest if ``approved_codes`` holds
    an unknown code (a configuration error, not a decision).
    """
    unknown = sorted(c for c in approved_codes if c not in _BY_CODE)
    if unknown:
        raise InvalidRequest(
            f"the tenant's approved end uses hold unknown codes: {', '.join(unknown)}",
            field="approved_codes",
            unknown=unknown,
        )
    packs = effective_policy.packs
    code, free_text = parse_purpose(declared)

    def decide(
        outcome: PurposeOutcome,
        reason: str,
        rules: tuple[str, ...] = (),
        found: Classification | None = None,
    ) -> PurposeDecision:
        return PurposeDecision(outcome, code, free_text, reason, rules, packs, found)

    if code is None:
        found = classify(declared)
        if found.level is not None:
            return decide(
                PurposeOutcome.REFUSE,
                f"the declared purpose {declared.strip()!r} names a prohibited kind of end use "
                f"({found.describe()}): weapons, military and the other end uses of EAR "
                "part 744 are never allowed",
                found=found,
            )
        return decide(
            PurposeOutcome.REFUSE,
            f"the declared purpose {declared.strip()!r} names no known end use; declare one of "
            f"{', '.join(sorted(approved_codes)) or 'the codes approved for the tenant'}, "
            "optionally followed by ': free text'",
            found=found,
        )
    use = _BY_CODE[code]
    by_policy = effective_policy.prohibiting_rules(code)
    if use.prohibited or by_policy:
        if by_policy:
            why = f"prohibited by the policy in force ({', '.join(by_policy)})"
        else:
            why = "prohibited in every case (gpulease end-use vocabulary)"
        return decide(
            PurposeOutcome.REFUSE,
            f"{use.label} ({code}) is a prohibited end use: {why}; no approval can allow it",
            by_policy,
        )
    if code not in approved_codes:
        approved = ", ".join(sorted(approved_codes)) or "none"
        return decide(
            PurposeOutcome.REFUSE,
            f"{use.label} ({code}) is not among the end uses approved for this tenant "
            f"(approved: {approved}); ask a compliance officer to review the tenant's "
            "approval before using it",
        )
    found = classify(free_text)
    if found.level is Level.REFUSE:
        return decide(
            PurposeOutcome.REFUSE,
            f"{use.label} ({code}) is approved for this tenant, but the description names a "
            f"prohibited end use: {found.describe()}; no approval can allow it",
            found=found,
        )
    if found.level is Level.REVIEW:
        return decide(
            PurposeOutcome.REVIEW,
            f"{use.label} ({code}) is approved for this tenant, but the description "
            f"mentions {found.describe()}; an officer must confirm it serves no prohibited "
            "end use",
            found=found,
        )
    return decide(
        PurposeOutcome.ALLOW,
        f"{use.label} ({code}) is approved for this tenant and not prohibited under the "
        f"policy in force ({', '.join(packs) or 'no policy pack in force'})" + _negations(found),
        found=found,
    )


def check_statement(
    statement: str, approved_codes: Collection[str], effective_policy: PoliciesInForce
) -> PurposeDecision:
    """Read a KYC end-use statement (free text, no code): refuse when it names a prohibited
    end use, review when it names an agent or a dual-use activity, allow otherwise. The
    declared codes themselves are decided by :func:`check_purpose`, one by one."""
    found = classify(statement)
    packs = effective_policy.packs
    code = next(iter(sorted(approved_codes)), None)
    if found.level is Level.REFUSE:
        outcome = PurposeOutcome.REFUSE
        reason = f"the statement names a prohibited end use: {found.describe()}"
    elif found.level is Level.REVIEW:
        outcome = PurposeOutcome.REVIEW
        reason = (
            f"the statement mentions {found.describe()}; an officer must confirm it serves "
            "no prohibited end use"
        )
    else:
        outcome = PurposeOutcome.ALLOW
        reason = "the statement names no prohibited end use" + _negations(found)
    return PurposeDecision(outcome, code, statement, reason, (), packs, found)
