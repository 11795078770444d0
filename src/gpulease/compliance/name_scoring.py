"""The score of two normalised names: weighted token alignment, explained word by word.

A name is a list of words (the *core* of :func:`~gpulease.compliance.names.normalize_name`:
legal forms and fillers already dropped). Two names are compared by **aligning their words
one to one** (greedy, most alike pair first), a pair scoring:

* 1.0 for equal words;
* ``INITIAL`` (0.85) for an initial and a word it begins (``k`` ~ ``karim``);
* the OSA similarity (edits, a transposition counting one) of words of four letters or more
  when at least ``MIN_WORD_SIMILARITY`` (0.8), ``SHORT_TYPO`` (0.75) for one edit in a
  four-letter word, at least ``ONE_EDIT`` (0.85) for one edit in a longer word (``atlgs`` ~
  ``atlas``), ``TWO_EDITS`` (0.7) for two edits when the shorter word has five letters or
  more and the longer six (``pzehmat`` ~ ``pezhman``: a typo and a transposition), also
  against the long spellings of a canonical word
  (:data:`~gpulease.compliance.names.SPELLINGS`: ``technolgies`` ~ ``technology``);
* 0.9 x the similarity of the words' *skeletons* (:func:`skeleton`: ``kh``/``h``, ``ou``/``u``,
  ``c``/``k``, ``w``/``v``... folded, doubled letters single) when that is higher: the same
  name through another script (``mukhammad`` ~ ``muhammad``); 0.95 x when our name is
  written in another script (``Мухаммад``), whose spelling in Latin letters is only ever a
  transliteration;
* 0 otherwise (words under four letters must be equal or fold equal: ``ali`` is not ``all``).

Each word weighs its **rarity in the list** (:class:`TermWeights`: IDF over the indexed names,
squared, so a distinctive word outweighs a common one many times), a word the list never
uses the most, except one a typo away from a spelled-out legal form (``CMPANY``), which
weighs almost nothing.

**Generic words** (:data:`GENERIC_IDF`, read from ``generic_words.tsv``) describe a business
rather than name it (``therapeutics``, ``acquisition``, ``shipping``, ``trading``). The list
is *derived*, not written by hand: ``scripts/derive_generic_words.py`` counts, over a
register of company names (the SEC's EDGAR company tickers, 6,108 unrelated families of
names) and over the organisations of the shipped lists (4,027), how many unrelated names use
each word (names of one family, ``BlackRock ... Fund``, count once), and keeps the words
that at least ten of the register's names or twenty unrelated listed organisations use
(until the third round of issue 14 also 0.2 % of the register's names, which left out
*worldwide*). Such a word's IDF is at most what its share of those names gives
(``log(1 / share)``: a word no listed name uses but one company in a hundred does is not a
brand), and its weight is then ``GENERIC_FACTOR`` (0.5) of the square. Without the register,
a generic word the lists happen not to use (``Therapeutics``) weighed as the most
distinctive of brands, and adding it to a listed name cleared it. Every other word that two
or more of the register's families use (``REGISTER_IDF``, rows ``share`` of the file) has its
IDF capped the same way, without the factor: a word a few companies use is no unique brand.
A word the list never uses, six letters or more and one edit from a generic word
(``internarional``), is that generic word misspelt: it weighs and counts as generic. Then

* ``ours`` = aligned weight (similarity x the listed word's weight) / weight of our words,
  our unaligned words counting their own weight: a brand we have and the listed name lacks
  counts fully against the match; when our unaligned words include a generic word and the
  listed name's unaligned words do too (``Sambouk Pharma`` for ``Sambouk Shipping``: one
  line of business for another), our generic words count without the generic discount;
  otherwise, when every listed word aligned, two or more of them and in the listed order,
  our extra generic words together count at most ``ADDED_GENERIC_SHARE`` (0.2) of the
  aligned weight (``COMMERCIAL BANK OF SYRIA WORLDWIDE``: ours at least 0.83, review); one
  listed word found is too little (``Emma Consulting`` for ``EMMA``);
* ``theirs`` = aligned weight / weight of the listed words;
* ``score = 100 * (0.75 * ours + 0.25 * theirs)`` (``OURS_SHARE``); 0.5 / 0.5 when our name
  is one word and the listed name longer (a lone word inside a longer name is no match by
  itself).

So a generic word added or a word dropped costs a little, a different distinctive word costs
much (hard negatives that share a listed name's first words, long names differing only in
the brand), and a listed name of one repeated word matches only a name that repeats it
(one-to-one alignment).

**Persons.** When the listed entry is a person, all our words align and exactly one listed
word does not (a middle name dropped: ``RIM Ryong`` for ``RIM Ryong Nam``), that word weighs
``MISSING_NAME_WEIGHT`` (0.3) of its weight, so a dropped middle name can still block. An
organisation's name of three words or more with one left out and ours aligned in the listed
order (``North Golden Trading`` for ``NORTH GOLDEN ZARGHAM TRADING``) counts that word at
``DROPPED_WORD_WEIGHT`` (0.5). One
word of ours against a person's longer name scores at most ``ONE_WORD_CAP`` (80: a surname
alone is not a match). A score that needs an initial stays at most ``INITIAL_CAP`` (94:
review at the default thresholds, never block).

**Spacing.** Names equal without spaces score 100 (``Sino Bright`` = ``Sinobright``); names
with a different number of words score at least their compact ``ratio`` when that is 92 or
more (pinyin written apart).

Pure and deterministic. :func:`align` returns the aligned pairs, our extra words and the
listed name's missing ones, so that a hit can say why; the screening index uses
:func:`similarities` (one rapidfuzz ``cdist`` per query against every candidate's words) and
:func:`aligned_score` (no explanation) on :class:`Prepared` names, and explains only the
best pair of each entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA
from rapidfuzz.process import cdist, extractOne

from gpulease.compliance.names import SPELLINGS, NormalizedName, skeleton

__all__ = [
    "DROPPED_WORD_WEIGHT",
    "GENERIC_IDF",
    "GENERIC_WORDS",
    "INITIAL",
    "MISSING_NAME_WEIGHT",
    "ONE_WORD_SHARE",
    "OURS_SHARE",
    "Alignment",
    "Prepared",
    "TermWeights",
    "align",
    "align_prepared",
    "aligned_score",
    "similarities",
    "skeleton",
    "word_similarity",
]

INITIAL = 0.85
INITIAL_CAP = 94.0  # a name that needs an initial to match stays below the default block
ONE_WORD_CAP = 80.0  # one word of ours against a listed person's full name: below review
MIN_WORD_SIMILARITY = 0.8
SHORT_TYPO = 0.75
ONE_EDIT = 0.85  # one edit in a word of five letters or more counts at least this much
TWO_EDITS = 0.7  # two edits (a transposition counting one), words of 5+ and 6+ letters
TRANSPOSITION = 0.5  # a transposition costs half an edit
MISSING_NAME_WEIGHT = 0.3
DROPPED_WORD_WEIGHT = 0.5  # an organisation's one word left out, the rest in order
OURS_SHARE = 0.75
ONE_WORD_SHARE = 0.5  # one word of ours inside a longer listed name: both sides count alike
GENERIC_FACTOR = 0.5
ADDED_GENERIC_SHARE = 0.2  # generic words added cost at most this share of the match...
ADDED_MIN_PAIRS = 2  # ... when at least this many words (all of the listed name) aligned
LEGAL_TYPO_FACTOR = 0.05

# Legal forms spelled out: a word the list never uses, a typo away from one of these, is a
# misspelt legal form (``CMPANY``, ``LIMTED``) and weighs almost nothing.
_LEGAL_SPELLED = (
    "company", "limited", "corporation", "incorporated", "holdings", "holding", "group",
    "sociedad", "societe", "gesellschaft", "private", "public",
)  # fmt: skip

GENERIC_FILE = "generic_words.tsv"
SHARE_ONLY = "share"  # a row kept for the word's share of company names, not generic


def parse_generic_words(text: str, *, generic_only: bool = True) -> dict[str, float]:
    """``generic_words.tsv`` (see :data:`GENERIC_FILE`; ``#`` lines are comments): word ->
    the IDF its share of names gives it (``log(1 / share)``), share being the larger of its
    document frequency among the register's company names and among the listed
    organisations. ``generic_only``: the generic words alone, not the rows kept only for
    their share (source ``share``)."""
    out: dict[str, float] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if header is None:
            header = fields
            continue
        row = dict(zip(header, fields, strict=True))
        if generic_only and row["source"] == SHARE_ONLY:
            continue
        share = max(
            int(row["register_names"]) / int(row["register_total"]),
            int(row["list_entries"]) / int(row["list_total"]),
        )
        out[row["word"]] = math.log(1.0 / share)
    return out


def _load_generic_words(generic_only: bool = True) -> dict[str, float]:
    text = resources.files("gpulease.compliance").joinpath(GENERIC_FILE).read_text("utf-8")
    return parse_generic_words(text, generic_only=generic_only)


#: Words that describe a business rather than name it, derived from name frequencies (a
#: register of company names and the shipped lists' organisations: see GENERIC_FILE and
#: ``scripts/derive_generic_words.py``) -> the IDF their share of company names gives them.
GENERIC_IDF: dict[str, float] = _load_generic_words()
GENERIC_WORDS: frozenset[str] = frozenset(GENERIC_IDF)
_GENERIC_LIST: tuple[str, ...] = tuple(sorted(GENERIC_IDF))
#: Every word that unrelated company names of the register use (generic or not) -> the IDF
#: its share of those names gives it: a word the lists never use but a few companies do is
#: a word of company names, not a brand only a listed party has.
REGISTER_IDF: dict[str, float] = _load_generic_words(generic_only=False)


class TermWeights:
    """IDF of words over a list's names, squared; unknown words weigh the most."""

    def __init__(self, names: Iterable[Sequence[str]]) -> None:
        df: dict[str, int] = {}
        total = 0
        for words in names:
            total += 1
            for word in set(words):
                df[word] = df.get(word, 0) + 1
        self._total = max(total, 1)
        self._df = df
        self._unknown = self._idf(0)
        self._cache: dict[str, float] = {}
        self._misspelt: dict[str, str | None] = {}

    def _idf(self, df: int) -> float:
        return math.log((self._total + 1) / (df + 0.5))

    def __call__(self, word: str) -> float:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        df = self._df.get(word)
        idf = self._unknown if df is None else self._idf(df)
        generic = GENERIC_IDF.get(word)
        if generic is None and df is None:
            meant = self.misspelt_generic(word)
            if meant is not None:  # "internarional": weighs as "international"
                generic = GENERIC_IDF[meant]
                idf = min(idf, generic)
        shared = REGISTER_IDF.get(word)
        if shared is not None:  # as rare as company names in general say, at most
            idf = min(idf, shared)
        weight = max(idf, 0.5) ** 2
        if generic is not None:
            weight *= GENERIC_FACTOR
        elif (
            df is None
            and len(word) >= 5
            and any(
                OSA.normalized_similarity(word, form) >= MIN_WORD_SIMILARITY
                for form in _LEGAL_SPELLED
            )
        ):
            weight *= LEGAL_TYPO_FACTOR  # "CMPANY", "LIMTED": a legal form with a typo
        if len(self._cache) < 200_000:
            self._cache[word] = weight
        return weight

    def misspelt_generic(self, word: str) -> str | None:
        """The generic word that ``word`` (six letters or more, a word the list never uses)
        is one edit from (``internarional``), if any: a misspelt generic word is generic."""
        if len(word) < 6 or word in GENERIC_IDF or word in self._df:
            return None
        found = self._misspelt.get(word, "")
        if found == "":
            best = extractOne(word, _GENERIC_LIST, scorer=OSA.distance, score_cutoff=1)
            found = None if best is None else best[0]
            if len(self._misspelt) < 100_000:
                self._misspelt[word] = found
        return found

    def is_generic(self, word: str) -> bool:
        return word in GENERIC_IDF or self.misspelt_generic(word) is not None

    def document_frequency(self, word: str) -> int:
        return self._df.get(word, 0)


UNIFORM = TermWeights(())

_SKELETON_SIMILARITY = 0.9  # a skeleton match counts this much of an equal word
#: ... and this much when our name was written in another script: transliterated letter by
#: letter, its spelling can only be compared through the skeleton
SCRIPT_SKELETON_SIMILARITY = 0.95


def word_similarity(a: str, b: str, folded_weight: float = _SKELETON_SIMILARITY) -> float:
    """How alike two words are, 0..1 (see the module docstring)."""
    if a == b:
        return 1.0
    if len(a) == 1 or len(b) == 1:
        short, long_ = (a, b) if len(a) == 1 else (b, a)
        return INITIAL if len(long_) > 1 and long_[0] == short else 0.0
    if min(len(a), len(b)) < 4:
        if skeleton(a) == skeleton(b):
            return folded_weight
        # a letter dropped from or added to a four-letter word ("irn" ~ "iran")
        return SHORT_TYPO if max(len(a), len(b)) >= 4 and OSA.distance(a, b) == 1 else 0.0
    sim = OSA.normalized_similarity(a, b)
    if len(a) == len(b) and sim < 1.0 and sorted(a) == sorted(b) and OSA.distance(a, b) == 1:
        sim = 1.0 - TRANSPOSITION / len(a)  # two letters swapped: the commonest slip
    elif sim < MIN_WORD_SIMILARITY:  # one edit in a four-letter word, two in a longer one
        edits = OSA.distance(a, b, score_cutoff=2)
        if edits == 1:
            sim = SHORT_TYPO
        elif edits == 2 and min(len(a), len(b)) >= 5 and max(len(a), len(b)) >= 6:
            sim = TWO_EDITS
        else:
            sim = 0.0
    elif sim < ONE_EDIT and OSA.distance(a, b) == 1:  # one letter wrong in five or six
        sim = ONE_EDIT
    folded = OSA.normalized_similarity(skeleton(a), skeleton(b))
    if folded >= MIN_WORD_SIMILARITY:
        sim = max(sim, folded_weight * folded)
    return sim


def similarities(
    ours: Sequence[str],
    theirs: Sequence[str],
    theirs_folded: Sequence[str] | None = None,
    *,
    transliterated: bool = False,
) -> list[dict[str, float]]:
    """For each of our words, the listed words it resembles (``word_similarity`` > 0).

    One rapidfuzz ``cdist`` per measure (words, then skeletons) keeps the pairs in C++;
    Python only looks at the few pairs above the cut. ``theirs_folded``: the skeletons of
    ``theirs``, when known."""
    out: list[dict[str, float]] = [{} for _ in ours]
    if not ours or not theirs:
        return out
    folded_weight = SCRIPT_SKELETON_SIMILARITY if transliterated else _SKELETON_SIMILARITY
    folded_theirs = [skeleton(w) for w in theirs] if theirs_folded is None else theirs_folded
    columns = list(theirs)
    owner = list(range(len(theirs)))
    for j, word in enumerate(theirs):  # "technolgies" against "technology"'s long spellings
        for spelling in SPELLINGS.get(word, ()):
            columns.append(spelling)
            owner.append(j)
    plain = cdist(
        ours,
        columns,
        scorer=OSA.normalized_similarity,
        score_cutoff=0.66,  # two edits in six letters: 0.67
    )
    folded = cdist(
        [skeleton(w) for w in ours],
        folded_theirs,
        scorer=OSA.normalized_similarity,
        score_cutoff=MIN_WORD_SIMILARITY,
    )
    pairs = {(int(i), int(owner[j]), columns[j]) for i, j in zip(*plain.nonzero(), strict=True)}
    pairs |= {(int(i), int(j), theirs[j]) for i, j in zip(*folded.nonzero(), strict=True)}
    for i, j, spelled in sorted(pairs):
        sim = word_similarity(ours[i], spelled, folded_weight)
        if sim > out[i].get(theirs[j], 0.0):
            out[i][theirs[j]] = sim
    singles = [w for w in theirs if len(w) == 1]
    for i, word in enumerate(ours):  # initials (OSA of one letter is never near enough)
        if len(word) == 1:
            for other in theirs:
                if len(other) > 1 and other[0] == word:
                    out[i][other] = INITIAL
        elif word[0] in singles:
            out[i][word[0]] = INITIAL
    return out


@dataclass(frozen=True, slots=True)
class Alignment:
    score: float  # 0..100
    pairs: tuple[tuple[str, str, float], ...]  # (our word, listed word, similarity)
    extra: tuple[str, ...]  # our words without a partner
    missing: tuple[str, ...]  # listed words without a partner
    how: str  # in words

    @property
    def matched(self) -> int:
        return len(self.pairs)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A name's words and their weights, computed once (the index keeps one per name)."""

    norm: NormalizedName
    words: tuple[str, ...]
    weights: tuple[float, ...]
    total: float
    skeletons: tuple[str, ...]
    generic: int  # bit i set: words[i] is a generic word (or one misspelt)

    @classmethod
    def of(cls, norm: NormalizedName, weights: TermWeights) -> Prepared:
        words = tuple(norm.core.split())
        own = tuple(weights(w) for w in words)
        generic = sum(1 << i for i, w in enumerate(words) if weights.is_generic(w))
        skeletons = tuple(skeleton(w) for w in words)
        return cls(norm, words, own, sum(own), skeletons, generic)


def align(
    ours: NormalizedName,
    listed: NormalizedName,
    weights: TermWeights = UNIFORM,
    *,
    listed_is_person: bool = False,
) -> Alignment:
    """The aligned score of ``ours`` against ``listed`` (see the module docstring)."""
    a = Prepared.of(ours, weights)
    b = Prepared.of(listed, weights)
    sims = similarities(a.words, b.words, transliterated=not ours.original.isascii())
    return align_prepared(a, b, sims, listed_is_person)


def align_prepared(
    a: Prepared, b: Prepared, sims: Sequence[dict[str, float]], listed_is_person: bool
) -> Alignment:
    """:func:`align` on prepared names; ``sims`` from :func:`similarities` (our words
    against a vocabulary holding every listed word)."""
    if not a.words or not b.words:
        return Alignment(0.0, (), a.words, b.words, "empty name")
    if a.norm.compact == b.norm.compact:
        pairs = tuple((w, w, 1.0) for w in a.words) if a.words == b.words else ()
        return Alignment(100.0, pairs, (), (), "same name")
    score, pairs_ij, shares, discounted, compact = _aligned(a, b, sims, listed_is_person)
    how = f"words: ours {shares[0]:.0%} matched, theirs {shares[1]:.0%}"
    if compact:
        how = f"written together: {score:.0f}"
    used_a = {i for i, _j, _s in pairs_ij}
    used_b = {j for _i, j, _s in pairs_ij}
    pairs = tuple((a.words[i], b.words[j], round(sim, 2)) for i, j, sim in sorted(pairs_ij))
    extra = tuple(a.words[i] for i in range(len(a.words)) if i not in used_a)
    missing = tuple(b.words[j] for j in range(len(b.words)) if j not in used_b)
    if discounted:
        left_out = "a person's name" if listed_is_person else "one word"
        how += f" ({left_out} {missing[0]!r} left out)"
    return Alignment(round(score, 1), pairs, extra, missing, how)


def aligned_score(
    a: Prepared, b: Prepared, sims: Sequence[dict[str, float]], listed_is_person: bool
) -> float:
    """The score of :func:`align_prepared` alone, without the explanation (faster)."""
    if not a.words or not b.words:
        return 0.0
    if a.norm.compact == b.norm.compact:
        return 100.0
    return round(_aligned(a, b, sims, listed_is_person)[0], 1)


def _in_order(pairs_ij: Sequence[tuple[int, int, float]]) -> bool:
    """Whether our words align with the listed words in the listed order."""
    ordered = sorted(pairs_ij)
    return all(p[1] < q[1] for p, q in pairwise(ordered))


def _aligned(
    a: Prepared, b: Prepared, sims: Sequence[dict[str, float]], listed_is_person: bool
) -> tuple[float, list[tuple[int, int, float]], tuple[float, float], bool, bool]:
    """(score, aligned pairs (i, j, similarity), (ours, theirs) shares, whether a person's
    missing name was discounted, whether the compact ratio decided)."""
    weight_b = b.weights
    candidates: list[tuple[float, float, int, int]] = []
    for i, row in enumerate(sims):
        if row:
            for j, wb in enumerate(b.words):
                sim = row.get(wb)
                if sim:
                    candidates.append((-sim, -weight_b[j], i, j))
    pairs_ij: list[tuple[int, int, float]] = []
    matched = ours_total = 0.0
    used_a = 0  # bit sets: names have few words
    used_b = 0
    if candidates:
        candidates.sort()
        for neg_sim, neg_w, i, j in candidates:
            if used_a >> i & 1 or used_b >> j & 1:
                continue
            used_a |= 1 << i
            used_b |= 1 << j
            pairs_ij.append((i, j, -neg_sim))
            matched += neg_sim * neg_w
            ours_total -= neg_w
    n_a, n_b = len(a.words), len(b.words)
    ours_total += sum(w for i, w in enumerate(a.weights) if not used_a >> i & 1)
    extra_generic = a.generic & ~used_a
    if extra_generic and b.generic & ~used_b:
        # one generic word for another ("Sambouk Pharma" for "Sambouk Shipping"): another
        # line of business, so our generic word counts in full, not discounted
        ours_total += sum(w for i, w in enumerate(a.weights) if extra_generic >> i & 1) * (
            1.0 / GENERIC_FACTOR - 1.0
        )
    elif (
        extra_generic
        and len(pairs_ij) >= ADDED_MIN_PAIRS
        and used_b == (1 << len(b.words)) - 1
        and _in_order(pairs_ij)
    ):
        # generic words added to the whole listed name, two words or more of it in its
        # order: together they cost at most ADDED_GENERIC_SHARE of what matched ("COMMERCIAL
        # BANK OF SYRIA WORLDWIDE"); one listed word found is too little ("Emma Consulting")
        extra = sum(w for i, w in enumerate(a.weights) if extra_generic >> i & 1)
        ours_total -= extra - min(extra, ADDED_GENERIC_SHARE * matched)
    theirs_total = b.total
    discounted = False
    if n_b >= 3 and len(pairs_ij) == n_a == n_b - 1:
        missing = next(j for j in range(n_b) if not used_b >> j & 1)
        if listed_is_person:
            theirs_total -= (1.0 - MISSING_NAME_WEIGHT) * weight_b[missing]
            discounted = True
        elif _in_order(pairs_ij):
            theirs_total -= (1.0 - DROPPED_WORD_WEIGHT) * weight_b[missing]
            discounted = True
    share_ours = matched / ours_total if ours_total else 0.0
    share_theirs = matched / theirs_total if theirs_total else 0.0
    ours_share = ONE_WORD_SHARE if n_a == 1 < n_b else OURS_SHARE
    score = 100.0 * (ours_share * share_ours + (1.0 - ours_share) * share_theirs)
    if n_a == 1 and n_b > 1 and listed_is_person:
        score = min(score, ONE_WORD_CAP)
    elif score > INITIAL_CAP and any(sim == INITIAL for _i, _j, sim in pairs_ij):
        score = INITIAL_CAP
    compact = False
    if n_a != n_b:
        ratio = fuzz.ratio(a.norm.compact, b.norm.compact, score_cutoff=92.0)
        if ratio > score:
            score, compact = ratio, True
    return score, pairs_ij, (share_ours, share_theirs), discounted, compact
