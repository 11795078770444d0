"""Screening a party against list entries: fuzzy names, countries and identifiers, explained.

Build a :class:`ScreeningIndex` once per list snapshot; :meth:`ScreeningIndex.screen`
compares every name of a party (name and aliases) with the names of the entries that share
the rarest keys with it, and returns :class:`~gpulease.compliance.model.Hit` records whose
features say why the score is what it is. :func:`decide` turns hits into a
:class:`Verdict`: clear, review or block. Thresholds are arguments (defaults 85 and 95).

**Names.** Both sides go through :func:`~gpulease.compliance.names.normalize_name` (scripts
transliterated, legal forms canonical, then dropped from the *core*). The name score of a
pair is :func:`~gpulease.compliance.name_scoring.align`: the words of the two cores aligned
one to one (equal, an initial, a typo or a transposition), each weighing its rarity in the
indexed list (IDF squared; generic business words, derived from a register of company
names and the lists, weigh as their share of company names says, then half), scored by how
much of our name and
how much of the listed name the aligned words cover. The hit's name feature lists the
aligned words, our extra words and the listed name's missing ones. Earlier versions took the
best of rapidfuzz ``token_sort_ratio``, a compact ``ratio`` and a scaled ``token_set_ratio``;
every word then counted the same, so a distinctive word replaced cost no more than a generic
one added, and a listed name of one repeated word matched any name containing it.

**Adjustments.** Countries (the party's countries and address countries against the entry's)
that agree add 3, that are disjoint subtract 8; a known kind that conflicts (a person against
an organisation) subtracts 5. An identifier equal after normalisation (letters and digits,
upper case, at least 5 characters) is an *identifier match*: the hit scores 100 and blocks
whatever the names say; identifiers of the same kind (LEI, tax, registration, passport, IMO)
that differ subtract 10. Final scores are clamped to 0..100.

**Candidates.** Scoring every listed name for every query is quadratic; the index keeps an
inverted map from keys to names: each core word and its skeleton (``=muhamad``: the word
through another script, ``mukhammad``, ``kosailing`` for ``cosailing``); the first and last
three letters and the
sorted letters of each word of four letters or more (a typo in the middle or at one end, or
a transposed pair of letters, still shares a key); the first and last three letters of the
compact form; each pair of the first four words (``&ali|hassan``: selective where every word
is common); and each initial with another word (``^a|rahman``: ``A. RAHMAN`` finds
``RAHMAN, Abdul``). A key weighs log(names / names with the key). Keys shared by more than
``max_posting`` names are used only when the rarer keys find fewer than ``max_candidates``
names, and then in full (never the first names in list order). The names of highest total
key weight, at most ``max_candidates`` per query name (ties to the name closest in length),
are scored: first a cheap upper bound (every listed word like one of ours counted as
aligned) drops those that cannot reach the review threshold, then the alignment. Entries
sharing an identifier with the party are always scored. Initials keys are kept for persons
and entries of unknown kind of up to five words (organisations are not named by initials).

Pure: no clock, no I/O, no global state; the same entries and party give the same hits
(a name's prepared words and a key's posting array are made on first use and kept: caches,
not state that changes a result; two threads making one at once make the same value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz

from gpulease.compliance.model import Feature, Hit, ListEntry, Party, PartyKind
from gpulease.compliance.name_scoring import (
    DROPPED_WORD_WEIGHT,
    MISSING_NAME_WEIGHT,
    ONE_WORD_SHARE,
    OURS_SHARE,
    UNIFORM,
    Alignment,
    Prepared,
    TermWeights,
    align,
    align_prepared,
    aligned_score,
    similarities,
    skeleton,
)
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


def explain(alignment: Alignment) -> str:
    """The words behind a name score, for a hit's name feature."""
    parts = [alignment.how]
    if alignment.pairs:
        parts.append(
            "aligned "
            + ", ".join(
                a if a == b else f"{a}~{b}" + (" (initial)" if min(len(a), len(b)) == 1 else "")
                for a, b, _sim in alignment.pairs
            )
        )
    if alignment.extra:
        parts.append("ours only " + ", ".join(alignment.extra))
    if alignment.missing:
        parts.append("listed only " + ", ".join(alignment.missing))
    return "; ".join(parts)


def name_score(
    a: NormalizedName,
    b: NormalizedName,
    weights: TermWeights = UNIFORM,
    *,
    listed_is_person: bool = False,
) -> tuple[float, str]:
    """The name score of ``a`` (ours) against ``b`` (listed) and how it came."""
    if not a.core or not b.core:
        return 0.0, "empty name"
    alignment = align(a, b, weights, listed_is_person=listed_is_person)
    return alignment.score, explain(alignment)


_PAIR_WORDS = 4
_INITIAL_WORDS = 5  # initials keys for names of up to five words (persons' names)
_NAMED_BY_INITIALS = (PartyKind.PERSON, PartyKind.UNKNOWN)  # entries indexed by initials


def _keys(norm: NormalizedName, initials: bool = True) -> set[str]:
    keys: set[str] = set()
    words = norm.core.split()
    for word in words:
        keys.add(word)
        keys.add("=" + skeleton(word))  # the word through another script (muhammad, mukhammad)
        if len(word) >= 4:
            keys.add("<" + word[:3])
            keys.add(">" + word[-3:])
            keys.add("~" + "".join(sorted(word)))
    if len(norm.compact) >= 4:
        keys.add("<" + norm.compact[:3])
        keys.add(">" + norm.compact[-3:])
    head = list(dict.fromkeys(words))[:_PAIR_WORDS]
    initials = initials and len(head) <= _INITIAL_WORDS
    for i, first in enumerate(head):
        for second in head[i + 1 :]:
            if len(first) > 1 and len(second) > 1:
                keys.add(f"&{first}|{second}" if first < second else f"&{second}|{first}")
            if initials and len(second) > 1:
                keys.add(f"^{first[0]}|{second}")
            if initials and len(first) > 1:
                keys.add(f"^{second[0]}|{first}")
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
                    for key in _keys(norm, initials=entry.kind in _NAMED_BY_INITIALS):
                        self._postings.setdefault(key, []).append(n_index)
            for _kind, value in entry.identifiers:
                ident = normalize_identifier(value)
                if len(ident) >= _MIN_IDENTIFIER:
                    self._identifiers.setdefault(ident, set()).add(e_index)
        self.weights = TermWeights(n.norm.core.split() for n in self._names)
        self._prepared: list[Prepared | None] = [None] * len(self._names)  # on first use
        self._arrays: dict[str, npt.NDArray[np.int64]] = {}  # postings as arrays, on first use
        self._persons = [e.kind is PartyKind.PERSON for e in self.entries]
        self._core_lengths = np.array([len(n.norm.core) for n in self._names], dtype=np.int64)
        self._log_names = math.log(len(self._names) + 1)

    def _prepare(self, n: int) -> Prepared:
        prepared = self._prepared[n]
        if prepared is None:
            prepared = self._prepared[n] = Prepared.of(self._names[n].norm, self.weights)
        return prepared

    @property
    def name_count(self) -> int:
        return len(self._names)

    def _candidates(self, norm: NormalizedName) -> list[int]:
        # keys sorted, ties broken by length and position: the same candidates in every
        # process (set order of strings changes with the interpreter's hash seed)
        found = [p for k in sorted(_keys(norm)) if (p := self._posting(k)) is not None]
        if not found:
            return []
        rare = [p for p in found if len(p) <= self._max_posting]
        names, weight = self._key_weights(rare)
        if len(names) < self._max_candidates and len(rare) < len(found):
            # every word common: all their names, never a list-order cut
            names, weight = self._key_weights(found)
        if len(names) > self._max_candidates:
            length_gap = np.abs(self._core_lengths[names] - len(norm.core))
            order = np.lexsort((names, length_gap, -np.round(weight, 6)))
            names = names[order[: self._max_candidates]]
        return [int(n) for n in names]

    def _posting(self, key: str) -> npt.NDArray[np.int64] | None:
        """The names with ``key``, as an array made on first use (most keys never are)."""
        array = self._arrays.get(key)
        if array is None:
            names = self._postings.get(key)
            if names is None:
                return None
            array = self._arrays[key] = np.array(names, dtype=np.int64)
        return array

    def _key_weights(
        self, postings: list[npt.NDArray[np.int64]]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The names of the postings (ascending) and each one's summed key weight
        (log names / posting size)."""
        if not postings:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        sizes = [len(p) for p in postings]
        weights = np.repeat([self._log_names - math.log(n) for n in sizes], sizes)
        # one pass over a slot per indexed name (no sort): every key weighs more than 0
        summed: npt.NDArray[np.float64] = np.bincount(
            np.concatenate(postings), weights=weights, minlength=len(self._names)
        ).astype(np.float64)
        names = np.flatnonzero(summed).astype(np.int64)
        return names, summed[names]

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
        floor = review_threshold  # no adjustment adds more than COUNTRY_AGREES
        # best name pair per entry: entry -> (score, how, our name, listed name)
        best: dict[int, tuple[float, str, str, str]] = {}
        for our_name, our_norm in ours:
            if not our_norm.core:
                continue
            query = Prepared.of(our_norm, self.weights)
            chosen = [(n, self._prepare(n)) for n in self._candidates(our_norm)]
            vocabulary: dict[str, str] = {}  # listed word -> its skeleton
            for _n, prepared in chosen:
                vocabulary.update(zip(prepared.words, prepared.skeletons, strict=True))
            sims = similarities(
                query.words,
                list(vocabulary),
                list(vocabulary.values()),
                transliterated=not our_name.isascii(),
            )
            alike: dict[str, float] = {}  # listed word -> its best similarity to ours
            for row in sims:
                for word, sim in row.items():
                    if sim > alike.get(word, 0.0):
                        alike[word] = sim
            # our words like no listed word stay unmatched: a floor under our total weight
            # (generic words excepted: their cost may be capped, ADDED_GENERIC_SHARE)
            unmatched = sum(
                w
                for i, (w, row) in enumerate(zip(query.weights, sims, strict=True))
                if not row and not query.generic >> i & 1
            )
            scored: dict[int, tuple[float, int]] = {}  # entry -> (score, name)
            for n, prepared in chosen:
                e_index = self._names[n].entry
                if self._bound(query, prepared, alike, unmatched, e_index) + COUNTRY_AGREES < floor:
                    continue
                score = aligned_score(query, prepared, sims, self._persons[e_index])
                if e_index not in scored or score > scored[e_index][0]:
                    scored[e_index] = (score, n)
            for e_index, (score, n) in scored.items():
                prior = best.get(e_index)
                if (prior is None or score > prior[0]) and score + COUNTRY_AGREES >= floor:
                    alignment = align_prepared(
                        query, self._prepare(n), sims, self._persons[e_index]
                    )
                    best[e_index] = (score, explain(alignment), our_name, self._names[n].listed)
        party_ids = {
            normalize_identifier(v): (k, v)
            for k, v in party.identifiers
            if len(normalize_identifier(v)) >= _MIN_IDENTIFIER
        }
        id_entries: set[int] = set()
        for ident in party_ids:
            id_entries |= self._identifiers.get(ident, set())
        for e_index in id_entries - best.keys():
            best[e_index] = self._best_pair(ours, self.entries[e_index], self.weights)
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

    def _bound(
        self,
        query: Prepared,
        listed: Prepared,
        alike: dict[str, float],
        unmatched: float,
        entry: int,
    ) -> float:
        """A cheap upper bound of ``aligned_score(query, listed)``: as if every listed word
        like one of ours aligned at its best similarity to any of ours (and a person's
        missing name were discounted). The aligned similarity x weight is at most that, and
        ours = aligned / (aligned weight + our unaligned weight) at most aligned / (aligned +
        the weight of our words like no listed word)."""
        bound = 0.0
        if not alike.keys().isdisjoint(listed.words):
            matched = 0.0
            for w, word in zip(listed.weights, listed.words, strict=True):
                sim = alike.get(word)
                if sim is not None:
                    matched += w * sim
            theirs = listed.total
            if len(listed.words) == len(query.words) + 1 >= 3:
                kept = MISSING_NAME_WEIGHT if self._persons[entry] else DROPPED_WORD_WEIGHT
                theirs -= (1.0 - kept) * max(listed.weights)
            ours = matched / (matched + unmatched)
            theirs = min(1.0, matched / theirs)
            # the larger of the two mixes (ours counts more, or both alike for one word)
            share = OURS_SHARE if ours >= theirs else ONE_WORD_SHARE
            bound = 100.0 * (share * ours + (1.0 - share) * theirs)
        if len(listed.words) != len(query.words):
            bound = max(bound, fuzz.ratio(query.norm.compact, listed.norm.compact))
        return bound

    @staticmethod
    def _best_pair(
        ours: list[tuple[str, NormalizedName]], entry: ListEntry, weights: TermWeights
    ) -> tuple[float, str, str, str]:
        result = (0.0, "no name compared", ours[0][0] if ours else "", entry.name)
        person = entry.kind is PartyKind.PERSON
        for our_name, our_norm in ours:
            for listed in entry.names:
                score, how = name_score(
                    our_norm, normalize_name(listed), weights, listed_is_person=person
                )
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
