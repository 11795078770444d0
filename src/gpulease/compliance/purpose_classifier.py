"""The purpose classifier: does a declared purpose name a prohibited end use or agent?

Vocabulary. A *term* is one spelling of a prohibited end use or agent from the shipped
vocabulary (``end_use_terms.toml``), each citing its source (EAR part 744, 742.7, the
Australia Group lists, the CWC schedules, the BWC). A *finding* is a term found in a text,
with its category, level (``refuse``: names a prohibited end use outright; ``review``: an
agent or dual-use activity an officer must look at) and where it was found. A *combination*
finds two terms near each other (an agent with a production or weaponisation word: refuse,
unless a protective word such as "vaccine" is near; surveillance of a protected group).

Normalisation against obfuscation is :mod:`gpulease.compliance.purpose_text`'s: a text and
the vocabulary are both read in its *skeleton* form (split letters joined, look-alike
letters of every script, digits and symbols read as letters, right-to-left overrides turned
around as displayed).

Negation. A cue ("no", "not", "without", "non"...) followed within a few words by a term,
in the same clause, with no blocker between ("only", "just", "limited", "other than"...),
negates it: "no military use" and "not for weapons" are clear, "not only for weapons" and
"no use other than military" are not. A cue right after another cue negates nothing ("not
without military use"). Negated findings are reported but never decide.

Display order. Invisible directional formatting (UAX #9 marks, embeddings, overrides,
isolates) is itself a ``review`` finding: nested, such characters show a text in an order
no reading of the stored one predicts (a right-to-left mark between "pons" and "wea" shows
"weapons"), so an officer looks at it.

Invariants. Pure and deterministic: the vocabulary is read once from the package; the same
text always gives the same :class:`Classification` (findings in text order). It never
raises on any string.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from gpulease.compliance.purpose_text import Token, collapse, plain_ascii, skeleton, tokenize

VOCABULARY_FILE = "end_use_terms.toml"


class Level(StrEnum):
    REVIEW = "review"
    REFUSE = "refuse"


_RANK = {Level.REVIEW: 1, Level.REFUSE: 2}

_SUFFIXES = ("", "s", "es", "ed", "d", "ing", "er", "ers")
SQUASH_MIN = 6  # skeleton letters a term needs to be sought with separators removed


# ------------------------------------------------------------------- vocabulary
@dataclass(frozen=True, slots=True)
class Term:
    text: str  # as the vocabulary writes it
    words: tuple[str, ...]  # skeleton words; a word ending in "*" matches any ending
    category: str
    level: Level
    kind: str  # "use" or "agent"
    upper: bool
    source: str  # key of Vocabulary.sources
    squashed: str = ""  # the words run together, for the separator-free search


@dataclass(frozen=True, slots=True)
class Combination:
    name: str
    first: tuple[Term, ...]  # empty: every agent term
    second: tuple[Term, ...]
    protective: tuple[Term, ...]
    window: int
    level: Level
    category: str | None  # None: the first term's
    source: str


@dataclass(frozen=True, slots=True)
class Vocabulary:
    terms: tuple[Term, ...]
    combinations: tuple[Combination, ...]
    sources: dict[str, str]
    cues: tuple[Term, ...]
    blockers: frozenset[str]
    clause_words: tuple[Term, ...]
    negation_window: int
    version: str
    _by_first: dict[str, tuple[Term, ...]] = field(default_factory=dict, repr=False)
    _stars: tuple[Term, ...] = ()
    _long: tuple[Term, ...] = ()

    def citation(self, key: str) -> str:
        """The short form of a source: ``15 CFR 744.4``, ``CWC Schedule 1`` (its text before
        the first comma or parenthesis)."""
        return re.split(r"[,(]", self.sources.get(key, key), maxsplit=1)[0].strip()


def _words(text: str) -> tuple[str, ...]:
    star = text.endswith("*")
    words = [t.skel for t in tokenize(text.rstrip("*"))]
    if star and words:
        words[-1] += "*"
    return tuple(words)


def _terms(entry: dict[str, Any], **defaults: Any) -> tuple[Term, ...]:
    spellings = entry.get("terms", [])
    return tuple(
        Term(
            text=t,
            words=(words := _words(t)),
            squashed=collapse("".join(w.rstrip("*") for w in words)),
            category=str(entry.get("category", defaults.get("category", ""))),
            level=Level(entry.get("level", defaults.get("level", "review"))),
            kind=str(entry.get("kind", "use")),
            upper=bool(entry.get("upper", False)),
            source=str(entry.get("source", defaults.get("source", ""))),
        )
        for t in spellings
        if _words(t)
    )


def parse_vocabulary(text: str) -> Vocabulary:
    """A :class:`Vocabulary` from TOML text (the shipped file's layout); ValueError if an
    entry names an unknown source or level."""
    doc = tomllib.loads(text)
    sources = {str(k): str(v) for k, v in doc.get("sources", {}).items()}
    terms: list[Term] = []
    for entry in doc.get("term", []):
        if entry.get("source") not in sources:
            raise ValueError(f"vocabulary term {entry.get('terms')!r}: unknown source")
        terms.extend(_terms(entry))
    combinations = []
    for entry in doc.get("combination", []):
        if entry.get("source") not in sources:
            raise ValueError(f"combination {entry.get('name')!r}: unknown source")
        first = entry["first"]
        level = Level(entry.get("level", "refuse"))
        combinations.append(
            Combination(
                name=str(entry["name"]),
                first=() if first == "agent" else _terms({"terms": first}),
                second=_terms({"terms": entry["second"]}),
                protective=_terms({"terms": entry.get("protective", [])}),
                window=int(entry.get("window", 6)),
                level=level,
                category=entry.get("category"),
                source=str(entry["source"]),
            )
        )
    negation = doc.get("negation", {})
    by_first: dict[str, list[Term]] = {}
    stars: list[Term] = []
    for term in terms:
        if not term.words:
            continue
        if term.words[0].endswith("*"):
            stars.append(term)
        else:
            by_first.setdefault(term.words[0], []).append(term)
    return Vocabulary(
        terms=tuple(terms),
        combinations=tuple(combinations),
        sources=sources,
        cues=_terms({"terms": negation.get("cues", [])}),
        blockers=frozenset(skeleton(b) for b in negation.get("blockers", [])),
        clause_words=_terms({"terms": negation.get("clause_breaks", [])}),
        negation_window=int(negation.get("window", 4)),
        version=str(doc.get("meta", {}).get("version", "")),
        _by_first={k: tuple(v) for k, v in by_first.items()},
        _stars=tuple(stars),
        _long=tuple(t for t in terms if not t.upper and len(t.squashed) >= SQUASH_MIN),
    )


@cache
def vocabulary() -> Vocabulary:
    """The shipped vocabulary, read once."""
    text = resources.files("gpulease.compliance").joinpath(VOCABULARY_FILE).read_text("utf-8")
    return parse_vocabulary(text)


# --------------------------------------------------------------------- matching
def _word_matches(pattern: str, skel: str) -> bool:
    if pattern.endswith("*"):
        return skel.startswith(pattern[:-1])
    if not skel.startswith(pattern):
        return False
    return skel[len(pattern) :] in _SUFFIXES


def _match_at(term: Term, tokens: Sequence[Token], i: int) -> int:
    """The end (exclusive) of ``term`` matched at token ``i``, or -1."""
    if i + len(term.words) > len(tokens):
        return -1
    for k, word in enumerate(term.words):
        tok = tokens[i + k]
        if k and tok.break_before:
            return -1
        if term.upper:
            if tok.raw.replace(".", "") != term.text:
                return -1
        elif not _word_matches(word, tok.skel):
            return -1
    return i + len(term.words)


def _find(terms: Iterable[Term], tokens: Sequence[Token]) -> list[tuple[Term, int, int]]:
    """Every (term, start, end) of ``terms`` in ``tokens`` (plain scan; for small lists)."""
    found = []
    for i in range(len(tokens)):
        for term in terms:
            end = _match_at(term, tokens, i)
            if end > 0:
                found.append((term, i, end))
    return found


@dataclass(frozen=True, slots=True)
class Finding:
    term: str  # the vocabulary's spelling (or "first + second" for a combination)
    category: str
    level: Level
    source: str
    citation: str  # the source, short: "15 CFR 744.4"
    start: int  # token span in the text
    end: int
    written: str  # the words as the text wrote them
    obfuscated: bool
    negated: bool = False
    rule: str = ""  # the combination that found it

    def describe(self) -> str:
        how = f" (written {self.written!r})" if self.obfuscated else ""
        via = f", {self.rule}" if self.rule else ""
        return f"{self.term!r}{how} ({self.category}{via}; {self.citation})"

    def record(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "category": self.category,
            "level": self.level.value,
            "source": self.source,
            "citation": self.citation,
            "written": self.written,
            "obfuscated": self.obfuscated,
            "negated": self.negated,
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class Classification:
    """What a text names: its findings that decide, and those negated (reported only)."""

    findings: tuple[Finding, ...]
    negated: tuple[Finding, ...]
    vocabulary_version: str

    @property
    def level(self) -> Level | None:
        """The strictest level among the findings that decide; None when none does."""
        if not self.findings:
            return None
        return max((f.level for f in self.findings), key=_RANK.__getitem__)

    @property
    def deciding(self) -> tuple[Finding, ...]:
        """The findings at :attr:`level`."""
        return tuple(f for f in self.findings if f.level is self.level)

    def describe(self, limit: int = 3) -> str:
        """The deciding findings in words, at most ``limit`` of them."""
        shown = self.deciding[:limit]
        more = len(self.deciding) - len(shown)
        text = "; ".join(f.describe() for f in shown)
        return text + (f"; and {more} more" if more > 0 else "")

    def record(self) -> dict[str, Any]:
        return {
            "level": None if self.level is None else self.level.value,
            "findings": [f.record() for f in self.findings],
            "negated": [f.record() for f in self.negated],
            "vocabulary": self.vocabulary_version,
        }


def _term_hits(vocab: Vocabulary, tokens: Sequence[Token]) -> list[tuple[Term, int, int]]:
    hits: list[tuple[Term, int, int]] = []
    for i, tok in enumerate(tokens):
        candidates: list[Term] = []
        for suffix in _SUFFIXES:
            if suffix and not tok.skel.endswith(suffix):
                continue
            stem = tok.skel[: len(tok.skel) - len(suffix)] if suffix else tok.skel
            candidates.extend(vocab._by_first.get(stem, ()))
        candidates.extend(t for t in vocab._stars if tok.skel.startswith(t.words[0][:-1]))
        for term in candidates:
            end = _match_at(term, tokens, i)
            if end > 0:
                hits.append((term, i, end))
    # separators removed: long terms across split words or inside run-together ones
    chars: list[str] = []
    owner: list[int] = []
    for i, tok in enumerate(tokens):
        for ch in tok.skel:
            if not chars or chars[-1] != ch:
                chars.append(ch)
                owner.append(i)
    squashed = "".join(chars)
    seen = {(t.text, s) for t, s, _ in hits}
    for term in vocab._long:
        at = squashed.find(term.squashed)
        while at >= 0:
            start, end = owner[at], owner[at + len(term.squashed) - 1] + 1
            covered = any(s <= start and end <= e for _, s, e in hits)
            if not covered and (term.text, start) not in seen:
                hits.append((term, start, end))
                seen.add((term.text, start))
            at = squashed.find(term.squashed, at + 1)
    return hits


def _negated(vocab: Vocabulary, tokens: Sequence[Token], start: int) -> bool:
    """Whether a negation cue governs the term starting at token ``start`` (the nearest cue
    before it decides)."""
    offset = max(0, start - 8)
    cues = [(s + offset, e + offset) for _, s, e in _find(vocab.cues, tokens[offset:start])]
    if not cues:
        return False
    s, e = max(cues, key=lambda c: c[1])
    between = tokens[e:start]
    if start - e > vocab.negation_window:
        return False
    if any(t.break_before for t in tokens[e : start + 1]):
        return False  # another clause
    if any(t.skel in vocab.blockers for t in between) or _find(vocab.clause_words, between):
        return False  # "not only for", "no use other than", "not ..., but"
    # a cue right after or before another cue: a double negation negates nothing
    return not any(
        c_end == s or c_start == e for c_start, c_end in cues if (c_start, c_end) != (s, e)
    )


def classify(text: str, vocab: Vocabulary | None = None) -> Classification:
    """The prohibited end uses and agents ``text`` names (module docstring)."""
    vocab = vocab or vocabulary()
    tokens = tokenize(text)
    shouting = not any(ch.islower() for ch in plain_ascii(text))
    raw: list[tuple[Term, int, int, str, Level]] = []  # term, start, end, rule, level
    hits = _term_hits(vocab, tokens)
    for term, s, e in hits:
        level = Level.REVIEW if term.upper and shouting else term.level
        raw.append((term, s, e, "", level))
    for combo in vocab.combinations:
        firsts = (
            [(t, s, e) for t, s, e in hits if t.kind == "agent"]
            if not combo.first
            else _find(combo.first, tokens)
        )
        if not firsts:
            continue
        seconds = _find(combo.second, tokens)
        guards = _find(combo.protective, tokens) if combo.protective else []
        for term, s, e in firsts:
            near = [
                (t2, s2, e2)
                for t2, s2, e2 in seconds
                if (s2, e2) != (s, e) and (s2 - e < combo.window and s - e2 < combo.window)
            ]
            if not near:
                continue
            if any(s3 - e < combo.window * 2 and s - e3 < combo.window * 2 for _, s3, e3 in guards):
                continue
            t2, s2, e2 = near[0]
            joint = Term(
                text=f"{term.text} + {t2.text}",
                words=(),
                category=combo.category or term.category,
                level=combo.level,
                kind="use",
                upper=False,
                source=combo.source,
            )
            raw.append((joint, min(s, s2), max(e, e2), combo.name, combo.level))
    findings: list[Finding] = []
    negated: list[Finding] = []
    kept: list[tuple[int, int, Level]] = []
    # one finding per stretch of text: the longest, strictest term covering it
    for term, s, e, rule, level in sorted(
        raw, key=lambda r: (r[1], r[1] - r[2], -_RANK[r[4]], r[0].text)
    ):
        if any(ks <= s and e <= ke and _RANK[level] <= _RANK[kl] for ks, ke, kl in kept):
            continue
        kept.append((s, e, level))
        span = tokens[s:e]
        finding = Finding(
            term=term.text,
            category=term.category,
            level=level,
            source=term.source,
            citation=vocab.citation(term.source),
            start=s,
            end=e,
            written=" ".join(t.raw for t in span),
            obfuscated=not rule and _disguised(term, span),
            negated=_negated(vocab, tokens, s),
            rule=rule,
        )
        if not finding.negated and negated and _listed_after(tokens, negated[-1].end, s):
            finding = replace(finding, negated=True)  # "no weapons or armed forces"
        (negated if finding.negated else findings).append(finding)
    if _BIDI_CONTROLS.search(text):
        findings.append(BIDI_FINDING)
    return Classification(tuple(findings), tuple(negated), vocab.version)


# Invisible directional formatting (UAX #9: marks, embeddings, overrides, isolates). With
# them a text can be displayed in another order than it is stored ("\u200fpons\u200fwea" is
# shown "weapons"): no reading of the stored order can be trusted, so an officer looks.
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
BIDI_FINDING = Finding(
    term="directional formatting characters",
    category="obfuscation",
    level=Level.REVIEW,
    source="unicode-uax9",
    citation="Unicode UAX #9",
    start=0,
    end=0,
    written="",
    obfuscated=False,
    rule="the text may be displayed in another order than it is stored",
)


_LIST_WORDS = frozenset({"or", "nor", "and", "any", "the", "a", "an", "for", "of", "to"})


def _listed_after(tokens: Sequence[Token], end: int, start: int) -> bool:
    """Whether the term at ``start`` continues a list begun by the negated term ending at
    ``end``: only "or", "nor", "and" and articles between them, in one clause."""
    between = tokens[end:start]
    return (
        0 < len(between) <= 3
        and any(t.skel in ("or", "nor", "and") for t in between)
        and all(t.skel in _LIST_WORDS and not t.break_before for t in between)
        and not tokens[start].break_before
    )


def _disguised(term: Term, span: Sequence[Token]) -> bool:
    """Whether the text wrote the term otherwise than as it is spelt (split letters,
    digits or symbols for letters, letters of another script read as Latin)."""
    if any(t.joined for t in span) or (not term.upper and len(span) != len(term.words)):
        return True
    written = re.sub(r"[^a-z0-9]", "", "".join(t.raw for t in span).lower())
    spelt = re.sub(r"[^a-z0-9]", "", term.text.rstrip("*").lower())
    return not written.startswith(spelt)
