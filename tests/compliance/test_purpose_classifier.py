"""The purpose classifier and the end-use check built on it: obfuscation, agents and
synonyms, negation, the vocabulary's sources, and its quality on the labelled purposes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.compliance.end_uses import PurposeOutcome, check_purpose, check_statement
from gpulease.compliance.policy import PolicySet
from gpulease.compliance.purpose_classifier import (
    Level,
    classify,
    parse_vocabulary,
    vocabulary,
)
from gpulease.compliance.purpose_text import tokenize

POLICY = PolicySet.builtin().evaluate(date(2026, 1, 1))
INF_TECH = {"financial-services-ai", "health-research", "drug-discovery"}
PURPOSES = Path(__file__).parent / "fixtures" / "purposes"
CATEGORIES = {
    "nuclear",
    "missile-uav",
    "chemical",
    "biological",
    "military-end-use",
    "military-intelligence",
    "wmd-support",
    "surveillance",
    "advanced-computing",
}


# ------------------------------------------------- issue 14, defect 4: each passed on main
@pytest.mark.parametrize(
    ("declared", "outcome", "term"),
    [
        # letters split by punctuation or spacing, digits and symbols for letters
        ("drug-discovery: w.e.a.p.o.n design", "refuse", "'weapon' (written 'weapon')"),
        ("financial AI: w3ap0ns testing", "refuse", "'weapon' (written 'w3ap0ns')"),
        ("financial AI: w e a p o n s guidance", "refuse", "'weapon'"),
        ("health-research: mil1tary end use", "refuse", "'military end use'"),
        ("health-research: s.i.g.i.n.t processing", "refuse", "'SIGINT'"),
        ("drug-discovery: wеароn design", "refuse", "'weapon'"),  # Cyrillic е, а, р, о
        ("drug-discovery: ｗｅａｐｏｎｓ", "refuse", "'weapon'"),  # full-width
        ("drug-discovery: wea\u200bpons", "refuse", "'weapon'"),  # zero-width space
        # chemical and biological agents, gain of function
        ("drug-discovery: sarin synthesis route", "refuse", "'sarin + synthesis'"),
        ("drug-discovery: VX degradation chemistry", "review", "'VX' (chemical"),
        ("health-research: anthrax genomics", "review", "'anthrax' (biological"),
        ("drug-discovery: ricin toxicity", "review", "'ricin' (chemical"),
        ("health-research: gain of function on coronaviruses", "review", "'gain of function'"),
        # signals intelligence, armed forces, the PLA, military end users
        ("financial AI: signals intelligence processing", "refuse", "'signals intelligence'"),
        ("financial AI: SIGINT triage", "refuse", "'SIGINT' (military-intelligence"),
        ("health-research: models for a country's armed forces", "refuse", "'armed forces'"),
        ("health-research: support for the PLA", "review", "'PLA' (military-end-use"),
        ("financial AI: serving a military end user", "refuse", "'military end user'"),
    ],
)
def test_free_text_after_an_approved_code_is_read(declared: str, outcome: str, term: str) -> None:
    decision = check_purpose(declared, INF_TECH, POLICY)
    assert decision.outcome.value == outcome, decision.reason
    assert term in decision.reason
    assert any(s in decision.reason for s in ("15 CFR", "CWC ", "BWC ", "Australia Group"))


def test_the_reason_names_term_category_and_source() -> None:
    decision = check_purpose("drug-discovery: nerve agent stockpiles", INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert "'nerve agent' (chemical; CWC Article II)" in decision.reason
    assert decision.record()["classification"]["findings"][0]["source"] == "cwc-art-2"


@pytest.mark.parametrize(
    "declared",
    [
        "financial AI: credit models, no military use",
        "financial AI: not for weapons",
        "health-research: non-military research only",
        "financial AI: we do not work for the military or any armed forces",
        "drug-discovery: never used for weapons development",
        "drug-discovery: this isn't for weapons",
    ],
)
def test_negated_prohibited_words_are_allowed(declared: str) -> None:
    decision = check_purpose(declared, INF_TECH, POLICY)
    assert decision.outcome is PurposeOutcome.ALLOW, decision.reason
    assert "negated, so not counted" in decision.reason


@pytest.mark.parametrize(
    "declared",
    [
        "financial AI: not only for weapons",
        "financial AI: not just for weapons research",
        "financial AI: not without military use",  # a double negation negates nothing
        "financial AI: no civilian use; weapons",  # another clause
        "financial AI: no military use, but nuclear warhead design",  # something else remains
        "financial AI: not limited to military end use",
    ],
)
def test_negation_is_conservative(declared: str) -> None:
    decision = check_purpose(declared, INF_TECH, POLICY)
    assert decision.outcome is not PurposeOutcome.ALLOW, decision.reason


@pytest.mark.parametrize(
    "text",
    [
        "protein folding for oncology",
        "disease surveillance in Java",
        "immune defense mechanisms in T cells",
        "identify ethnic disparities in diabetes outcomes",
        "combat fraud in card payments",
        "GRU language models",
    ],
)
def test_ordinary_research_is_clear(text: str) -> None:
    assert classify(text).level is None


def test_a_kyc_statement_about_surveilling_a_minority_is_refused() -> None:
    statement = "our models help the authorities in surveilling a minority in the north-west"
    decision = check_statement(statement, ("general-model-training",), POLICY)
    assert decision.outcome is PurposeOutcome.REFUSE
    assert "surveillance" in decision.reason
    assert "15 CFR 744.11" in decision.reason
    clear = check_statement("credit models; no military use", ("financial-services-ai",), POLICY)
    assert clear.outcome is PurposeOutcome.ALLOW


# ------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("w.e.a.p.o.n design", ["weapon", "design"]),
        ("we.ap.ons", ["weapons"]),
        ("w e a p o n", ["weapon"]),
        ("drug-discovery", ["drug", "discovery"]),
        ("V.X", ["vx"]),
        ("isn't", ["is", "not"]),
    ],
)
def test_tokenize_joins_split_letters(text: str, words: list[str]) -> None:
    assert [t.raw.lower() for t in tokenize(text)] == words


def test_skeletons_meet_across_disguises() -> None:
    plain = [t.skel for t in tokenize("military weapons")]
    for disguised in (
        "m1l1tary w3ap0ns",
        "MILITARY WEAPONS",
        "mіlіtary weaponѕ",
        "miiilitary weapons",
    ):
        assert [t.skel for t in tokenize(disguised)] == plain, disguised


def test_classify_never_raises() -> None:
    for text in ("", " ", "...", "\u200b", "a" * 5000, "𝔴𝔢𝔞𝔭𝔬𝔫", "武器", "no", "not not not"):
        classify(text)
    assert classify("𝔴𝔢𝔞𝔭𝔬𝔫").level is Level.REFUSE  # mathematical letters, NFKC


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_classified_the_same_way_twice(text: str) -> None:
    first = classify(text)
    assert first == classify(text)
    assert all(f.term and f.source for f in first.findings)


# ---------------------------------------------------------------------- vocabulary
def test_every_term_cites_a_source_and_a_known_category() -> None:
    vocab = vocabulary()
    assert len(vocab.terms) > 300
    assert {t.category for t in vocab.terms} == CATEGORIES
    for term in vocab.terms:
        assert term.source in vocab.sources, term
        assert term.words, term
    cited = {t.source for t in vocab.terms} | {c.source for c in vocab.combinations}
    for needed in ("ear-744-2", "ear-744-3", "ear-744-4", "ear-744-6", "ear-744-21"):
        assert needed in cited
    for needed in ("ear-744-22", "ear-742-7", "ag-cw", "ag-bio", "cwc-1", "bwc-art-1"):
        assert needed in cited


def test_a_term_naming_an_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        parse_vocabulary('[sources]\na = "x"\n[[term]]\nterms = ["y"]\nsource = "b"\n')


# --------------------------------------------------------------------- evaluation
def _cases(split: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in (PURPOSES / f"{split}.tsv").read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            expected, category, _kind, text = line.split("\t", 3)
            rows.append((expected, category, text))
    return rows


def test_the_labelled_set_is_large_enough_and_well_formed() -> None:
    tune, held = _cases("tune"), _cases("heldout")
    assert len(tune) + len(held) >= 150
    for expected, category, _ in tune + held:
        assert expected in {"clear", "review", "refuse"}
        assert (category == "-") == (expected == "clear")
        assert category == "-" or category in CATEGORIES


@pytest.mark.parametrize("split", ["tune", "heldout"])
def test_quality_on_the_labelled_purposes(split: str) -> None:
    """Floors under the figures docs/end-use-classifier.md reports (bench_end_use.py)."""
    cases = _cases(split)
    flagged = [classify(t).level is not None for _, _, t in cases]
    should = [e != "clear" for e, _, _ in cases]
    recall = sum(f for f, s in zip(flagged, should, strict=True) if s) / sum(should)
    false_pos = sum(f for f, s in zip(flagged, should, strict=True) if not s) / (
        len(should) - sum(should)
    )
    assert recall >= 0.95
    assert false_pos <= 0.10
