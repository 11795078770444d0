"""Screening a party against list entries: fuzzy names, countries and identifiers, explained.

Build a :class:`ScreeningIndex` once per list snapshot; :meth:`ScreeningIndex.screen`
compares every name of a party (name and aliases) with every name of the entries that share
a rare key with it, and returns :class:`~gpulease.compliance.model.Hit` records whose
features say why the score is what it is. :func:`decide` turns hits into a
:class:`Verdict`: clear, review or block. Thresholds are arguments (defaults 85 and 95).

**Names.** Both sides go through :func:`~gpulease.compliance.names.normalize_name` (scripts
transliterated, legal forms canonical, then dropped from the *core*). The name score of a
pair is the best of three rapidfuzz measures on the cores:

* ``token_sort_ratio``: an edit-distance ratio after sorting the words, so word order does
  not matter (``RIM, Ryong Nam`` = ``Ryong Nam Rim``) but every word counts, which keeps a
  short party name from matching a long listed name that merely contains it;
* ``ratio`` of the *compact* forms (spaces removed): ``Sino Bright`` = ``Sinobright``, and
  pinyin run together (``huawei``) against pinyin written apart (``hua wei``);
* ``token_set_ratio`` scaled by the length ratio of the two cores (x 0.65 .. 1.0): it forgives
  a truncated name (all words of one side present in the other) in proportion to how much
  of the longer name is covered, where plain ``token_set_ratio`` would give 100 to
  ``China`` against any name containing *China*.

``WRatio`` was rejected: its partial-ratio branch scores any short name found inside a long
one at 90 (``China`` vs ``China Electronics Technology Group``), a false positive at the
default review threshold.

**Adjustments.** Countries (the party's countries and address countries against the entry's)
that agree add 3, that are disjoint subtract 8; a known kind that conflicts (a person against
an organisation) subtracts 5. An identifier equal after normalisation (letters and digits,
upper case, at least 5 characters) is an *identifier match*: the hit scores 100 and blocks
whatever the names say; identifiers of the same kind (LEI, tax, registration, passport, IMO)
that differ subtract 10. Final scores are clamped to 0..100.

**Candidates.** Scoring every listed name for every query is quadratic; the index keeps an
inverted map from keys to names: each core word, and the first and last three letters of
each word of four letters or more and of the compact form (so a typo in the middle or at
one end of a word still shares a key). Keys shared by more than ``max_posting`` names
(``china``, ``trading``...) are too common to choose candidates with; a query whose keys are
all common falls back on the rarest of them. The names sharing most keys with the query,
at most ``max_candidates`` per query name, are scored. Entries sharing an identifier with the
party are always scored.

Pure: no clock, no I/O, no global state; the same entries and party give the same hits.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz, process

from gpulease.compliance.model import Feature, Hit, ListEntry, Party, PartyKind
from gpulease.compliance.names import NormalizedName, normalize_identifier, normalize_name
from gpulease.domain.errors import InvalidRequest

__all__ = [
    "DEFAULT_BLOCK_THRESHOLD",
    "DEFAULT_REVIEW_THRESHOLD",
    "Outcome",
    "ScreeningIndex",
    "Verdict",
    "decide",
    "name_score",
]

DEFAULT_REVIEW_THRESHOLD = 85.0
DEFAULT_BLOCK_THRESHOLD = 95.0

COUNTRY_AGREES = 3.0
COUNTRY_CONFLICT = -8.0
KIND_CONFLICT = -5.0
IDENTIFIER_CONFLICT = -10.0
_MIN_IDENTIFIER = 5

_ID_CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lei", re.compile(r"\blei\b|leicode|legal entity", re.I)),
    ("tax", re.compile(r"tax|vat|\binn\b|inncode|\bnit\b|\brfc\b|\bruc\b|cuit", re.I)),
    ("imo", re.compile(r"\bimo\b|imonumber", re.I)),
    ("passport", re.compile(r"passport", re.I)),
    ("swift", re.compile(r"swift|\bbic\b", re.I)),
    ("registration", re.compile(r"regist|ogrn|company number|commercial", re.I)),
)


def _id_category(kind: str) -> str:
    for name, pattern in _ID_CATEGORIES:
        if pattern.search(kind):
            return name
    return ""


class Outcome(StrEnum):
    CLEAR = "clear"
    REVIEW = "review"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str
    hits: tuple[Hit, ...]


def _check_thresholds(review_threshold: float, block_threshold: float) -> None:
    if not 0.0 <= review_threshold <= block_threshold <= 100.0:
        raise InvalidRequest(
            "thresholds must satisfy 0 <= review_threshold <= block_threshold <= 100",
            review_threshold=review_threshold,
            block_threshold=block_threshold,
        )


def decide(
    hits: Iterable[Hit],
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
    block_threshold: float = DEFAULT_BLOCK_THRESHOLD,
) -> Verdict:
    """Block on an identifier match or a score at ``block_threshold``; review at
    ``review_threshold``; clear otherwise. The reason names the deciding hit."""
    _check_thresholds(review_threshold, block_threshold)
    ranked = tuple(sorted(hits, key=lambda h: (not h.identifier_match, -h.score, h.entry.key)))
    if not ranked:
        return Verdict(Outcome.CLEAR, "no list entry resembles the party", ())
    top = ranked[0]
    where = f"{top.entry.source} {top.entry.entry_id} ({top.entry.name!r})"
    if top.identifier_match:
        return Verdict(Outcome.BLOCK, f"identifier matches {where}", ranked)
    if top.score >= block_threshold:
        return Verdict(
            Outcome.BLOCK,
            f"{top.our_name!r} matches {top.listed_name!r} of {where} at {top.score:.0f} "
            f"(block at {block_threshold:.0f})",
            ranked,
        )
    if top.score >= review_threshold:
        return Verdict(
            Outcome.REVIEW,
            f"{top.our_name!r} resembles {top.listed_name!r} of {where} at {top.score:.0f} "
            f"(review at {review_threshold:.0f})",
            ranked,
        )
    return Verdict(
        Outcome.CLEAR, f"best match scores {top.score:.0f}, below {review_threshold:.0f}", ranked
    )


def _scores(
    a: NormalizedName, b: NormalizedName, cutoff: float = 0.0
) -> tuple[float, float, float]:
    """token_sort, compact and scaled token_set scores; each 0 when below ``cutoff``."""
    if not a.core or not b.core:
        return 0.0, 0.0, 0.0
    sort = fuzz.token_sort_ratio(a.core, b.core, score_cutoff=cutoff)
    compact = fuzz.ratio(a.compact, b.compact, score_cutoff=cutoff)
    short, long_ = sorted((len(a.core), len(b.core)))
    scale = 0.65 + 0.35 * short / long_
    token_set = 0.0
    if cutoff / scale <= 100.0:
        token_set = fuzz.token_set_ratio(a.core, b.core, score_cutoff=cutoff / scale) * scale
    return sort, compact, token_set


def name_score(a: NormalizedName, b: NormalizedName) -> tuple[float, str]:
    """The name score of two normalised names (see the module docstring) and how it came."""
    if not a.core or not b.core:
        return 0.0, "empty name"
    sort, compact, token_set = _scores(a, b)
    how = f"token_sort {sort:.0f}, compact {compact:.0f}, token_set(scaled) {token_set:.0f}"
    return max(sort, compact, token_set), how


def _keys(norm: NormalizedName) -> set[str]:
    keys: set[str] = set()
    for word in norm.tokens:
        keys.add(word)
        if len(word) >= 4:
            keys.add("<" + word[:3])
            keys.add(">" + word[-3:])
    if len(norm.compact) >= 4:
        keys.add("<" + norm.compact[:3])
        keys.add(">" + norm.compact[-3:])
    return keys


_PARENS = re.compile(r"\s*\([^)]*\)")


@dataclass(frozen=True, slots=True)
class _IndexedName:
    entry: int
    listed: str  # as the list writes it
    norm: NormalizedName


class ScreeningIndex:
    """The names and identifiers of a list's entries, ready to screen parties against."""

    def __init__(
        self,
        entries: Iterable[ListEntry],
        *,
        max_posting: int = 300,
        max_candidates: int = 40,
    ) -> None:
        self.entries: tuple[ListEntry, ...] = tuple(entries)
        self._max_posting = max_posting
        self._max_candidates = max_candidates
        self._names: list[_IndexedName] = []
        self._postings: dict[str, list[int]] = {}
        self._identifiers: dict[str, set[int]] = {}
        for e_index, entry in enumerate(self.entries):
            seen: set[str] = set()
            for listed in entry.names:
                variants = [listed]
                stripped = _PARENS.sub("", listed).strip()
                if stripped and stripped != listed:
                    variants.append(stripped)  # "Academy ... (AASPT)" without the acronym
                for variant in variants:
                    norm = normalize_name(variant)
                    if not norm.core or norm.core in seen:
                        continue
                    seen.add(norm.core)
                    n_index = len(self._names)
                    self._names.append(_IndexedName(e_index, listed, norm))
                    for key in _keys(norm):
                        self._postings.setdefault(key, []).append(n_index)
            for _kind, value in entry.identifiers:
                ident = normalize_identifier(value)
                if len(ident) >= _MIN_IDENTIFIER:
                    self._identifiers.setdefault(ident, set()).add(e_index)

    @property
    def name_count(self) -> int:
        return len(self._names)

    def _candidates(self, norm: NormalizedName) -> list[int]:
        # keys sorted and ties broken by name position: the same candidates in every process
        # (set order of strings changes with the interpreter's hash seed)
        postings = [p for k in sorted(_keys(norm)) if (p := self._postings.get(k))]
        if not postings:
            return []
        rare = [p for p in postings if len(p) <= self._max_posting]
        if not rare:
            rare = [min(postings, key=len)[: self._max_posting]]
        counts: Counter[int] = Counter()
        for posting in rare:
            counts.update(posting)
        ranked = heapq.nsmallest(self._max_candidates, counts.items(), key=lambda c: (-c[1], c[0]))
        return [n for n, _ in ranked]

    def screen(
        self,
        party: Party,
        *,
        review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
        block_threshold: float = DEFAULT_BLOCK_THRESHOLD,
    ) -> list[Hit]:
        """Hits scoring at least ``review_threshold``, and every identifier match, best
        first. Each hit names the pair of names that matched and every score adjustment."""
        _check_thresholds(review_threshold, block_threshold)
        ours = [(name, normalize_name(name)) for name in dict.fromkeys(party.names) if name]
        # no adjustment adds more than COUNTRY_AGREES: below this a name cannot reach review
        cutoff = max(0.0, review_threshold - COUNTRY_AGREES)
        # best name pair per entry: entry -> (score, our name, listed name, listed norm)
        pairs: dict[int, tuple[float, str, NormalizedName, str, NormalizedName]] = {}
        for our_name, our_norm in ours:
            candidates = [self._names[n] for n in self._candidates(our_norm)]
            if not our_norm.core or not candidates:
                continue
            for position, score in self._batch_scores(our_norm, candidates, cutoff).items():
                indexed = candidates[position]
                prior = pairs.get(indexed.entry)
                if prior is None or score > prior[0]:
                    pairs[indexed.entry] = (score, our_name, our_norm, indexed.listed, indexed.norm)
        best: dict[int, tuple[float, str, str, str]] = {}
        for e_index, (_score, our_name, our_norm, listed, listed_norm) in pairs.items():
            score, how = name_score(our_norm, listed_norm)
            best[e_index] = (score, how, our_name, listed)
        party_ids = {
            normalize_identifier(v): (k, v)
            for k, v in party.identifiers
            if len(normalize_identifier(v)) >= _MIN_IDENTIFIER
        }
        id_entries: set[int] = set()
        for ident in party_ids:
            id_entries |= self._identifiers.get(ident, set())
        for e_index in id_entries - best.keys():
            best[e_index] = self._best_pair(ours, self.entries[e_index])
        countries = {c for c in party.countries if c} | {
            a.country for a in party.addresses if a.country
        }
        hits: list[Hit] = []
        for e_index, (score, how, our_name, listed) in best.items():
            if score + COUNTRY_AGREES < review_threshold and e_index not in id_entries:
                continue  # no adjustment can lift it to review
            entry = self.entries[e_index]
            hit = self._hit(party, entry, countries, party_ids, score, how, our_name, listed)
            if hit.identifier_match or hit.score >= review_threshold:
                hits.append(hit)
        hits.sort(key=lambda h: (not h.identifier_match, -h.score, h.entry.key))
        return hits

    @staticmethod
    def _batch_scores(
        ours: NormalizedName, candidates: list[_IndexedName], cutoff: float
    ) -> dict[int, float]:
        """Candidate position -> name score (as :func:`name_score`), for scores >= cutoff.

        One rapidfuzz ``process.extract`` call per measure keeps the loop over candidates in
        C++; the result equals ``max(_scores(...))`` per candidate."""
        cores = [c.norm.core for c in candidates]
        best: dict[int, float] = {}

        def keep(position: int, score: float) -> None:
            if score >= cutoff and score > best.get(position, -1.0):
                best[position] = score

        for _c, score, position in process.extract(
            ours.core, cores, scorer=fuzz.token_sort_ratio, score_cutoff=cutoff, limit=None
        ):
            keep(position, score)
        compacts = [c.norm.compact for c in candidates]
        for _c, score, position in process.extract(
            ours.compact, compacts, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None
        ):
            keep(position, score)
        for _c, score, position in process.extract(
            ours.core, cores, scorer=fuzz.token_set_ratio, score_cutoff=cutoff, limit=None
        ):
            short, long_ = sorted((len(ours.core), len(cores[position])))
            keep(position, score * (0.65 + 0.35 * short / long_))
        return best

    @staticmethod
    def _best_pair(
        ours: list[tuple[str, NormalizedName]], entry: ListEntry
    ) -> tuple[float, str, str, str]:
        result = (0.0, "no name compared", ours[0][0] if ours else "", entry.name)
        for our_name, our_norm in ours:
            for listed in entry.names:
                score, how = name_score(our_norm, normalize_name(listed))
                if score > result[0]:
                    result = (score, how, our_name, listed)
        return result

    @staticmethod
    def _hit(
        party: Party,
        entry: ListEntry,
        countries: set[str],
        party_ids: dict[str, tuple[str, str]],
        score: float,
        how: str,
        our_name: str,
        listed: str,
    ) -> Hit:
        features = [Feature("name", f"{our_name!r} ~ {listed!r}: {how}", round(score, 1))]
        total = score
        if countries and entry.countries:
            shared = countries & set(entry.countries)
            if shared:
                features.append(
                    Feature(
                        "country_agrees", f"both in {', '.join(sorted(shared))}", COUNTRY_AGREES
                    )
                )
                total += COUNTRY_AGREES
            else:
                features.append(
                    Feature(
                        "country_conflict",
                        f"party in {', '.join(sorted(countries))}, "
                        f"entry in {', '.join(entry.countries)}",
                        COUNTRY_CONFLICT,
                    )
                )
                total += COUNTRY_CONFLICT
        known = (PartyKind.UNKNOWN,)
        if party.kind not in known and entry.kind not in known and party.kind != entry.kind:
            features.append(
                Feature(
                    "kind_conflict", f"party is {party.kind}, entry is {entry.kind}", KIND_CONFLICT
                )
            )
            total += KIND_CONFLICT
        matched: tuple[str, str, str] | None = None
        conflicts: list[str] = []
        for kind, value in entry.identifiers:
            ident = normalize_identifier(value)
            if ident in party_ids:
                matched = (party_ids[ident][0], kind, value)
                break
            category = _id_category(kind)
            if category and any(
                _id_category(p_kind) == category and p_ident != ident
                for p_ident, (p_kind, _v) in party_ids.items()
            ):
                conflicts.append(f"{kind} {value}")
        if matched is not None:
            p_kind, kind, value = matched
            features.append(
                Feature(
                    "identifier_match",
                    f"party's {p_kind} equals the entry's {kind} {value}",
                    round(100.0 - total, 1),
                )
            )
            total = 100.0
        elif conflicts:
            features.append(
                Feature(
                    "identifier_conflict",
                    "the entry's " + "; ".join(conflicts) + " differ from the party's",
                    IDENTIFIER_CONFLICT,
                )
            )
            total += IDENTIFIER_CONFLICT
        return Hit(
            entry=entry,
            score=round(max(0.0, min(100.0, total)), 1),
            our_name=our_name,
            listed_name=listed,
            features=tuple(features),
            identifier_match=matched is not None,
        )
