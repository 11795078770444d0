"""Screening quality on the evaluation set, per variant kind, beside nomenklatura (logic-v2).

Index: the OFAC SDN files (with aliases), both CSL samples and the BIS Denied Persons List
that gpulease ships. Queries: one split of the evaluation set (``benchmarks/data/eval_*.tsv``,
made by ``make_eval_set.py``, described in ``benchmarks/data/README.md``): variants of listed
names by kind, and clean names (real companies, generated persons and companies of several
cultures, hard negatives sharing a listed name's first words). The ``tuning`` split is for
looking at (and ``heldout``, spent for claims after four runs); ``heldout2`` is only
measured, with ``--show 0``.

Each query is screened as a party of unknown kind with no country or identifier (scores down
to ``--floor`` recorded; gpulease's time is measured in a second pass at the thresholds, as
KYC screens). Times are CPU seconds of this process (``time.process_time``): the machine is
shared, and wall time would count the waits for a core; neither matcher uses threads here.
A variant is *found* when its source entry scores at the review threshold, *blocked* at the block
threshold; a clean name is a *false positive* when any entry reaches review. *Recall at 1 %
FP* sets the threshold just above the score of the clean name ranked at 1 % and counts the
variants whose entry scores above it (threshold-free, comparable between matchers).

The peer, when ``nomenklatura`` is installed (``pip install -e .[bench]``): followthemoney
entities (Person, Organization or LegalEntity by the entry's kind, aliases as ``alias``)
scored by ``LogicV2.compare`` with its default configuration. It has no query-time index
of its own, so its candidates are the entries of the listed names closest to the query by
TF-IDF of character 2-3-grams (scikit-learn, a dependency of nomenklatura),
``--peer-candidates`` of them, standing in for yente's search index; the blocker's time is
reported apart. Its thresholds: review 0.70 (yente's default match threshold), block 0.95.
The peer runs on ``--peer-sample`` queries of each kind (seeded) to bound its time;
gpulease's figures on the same sample are printed beside it.

    .venv/bin/python benchmarks/bench_matching_quality.py [--split tuning|heldout|heldout2]
        [--peer-sample 40] [--peer-candidates 25] [--show 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from _eval_set import SPLITS, Row, read, shipped_entries, split_path
from gpulease.compliance.matching import (
    DEFAULT_BLOCK_THRESHOLD,
    DEFAULT_REVIEW_THRESHOLD,
    ScreeningIndex,
)
from gpulease.compliance.model import ListEntry, Party, PartyKind
from gpulease.compliance.names import normalize_name

#: query -> {entry key: score 0..100} for every entry the matcher scores (at least the floor)
Scorer = Callable[[str], dict[tuple[str, str], float]]


@dataclass
class Figures:
    recall_review: float
    recall_block: float
    fp_rate: float
    recall_at_1pct: float
    threshold_at_1pct: float
    seconds_per_1000: float


def evaluate(
    rows: Sequence[Row], scorer: Scorer, review: float, block: float
) -> tuple[Figures, dict[str, list[float]], list[str]]:
    """Figures, per-kind [n, found, blocked] (negatives: [n, flagged, blocked]) and misses."""
    per_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0])
    notes: list[str] = []
    pos_scores: list[float] = []
    neg_scores: list[float] = []
    started = time.process_time()
    for row in rows:
        scores = scorer(row.query)
        stat = per_kind[f"{row.label}:{row.kind}"]
        stat[0] += 1
        if row.label == "pos":
            score = scores.get((row.source, row.entry_id), 0.0)
            pos_scores.append(score)
            stat[1] += score >= review
            stat[2] += score >= block
            if score < review:
                notes.append(f"  missed {row.kind}: {row.query!r} ({score:.0f}, {row.entry_id})")
        else:
            score = max(scores.values(), default=0.0)
            neg_scores.append(score)
            stat[1] += score >= review
            stat[2] += score >= block
            if score >= review:
                notes.append(f"  false positive {row.kind}: {row.query!r} ({score:.0f})")
    elapsed = time.process_time() - started
    ranked = sorted(neg_scores, reverse=True)
    allowed = int(0.01 * len(ranked))
    cut = ranked[allowed] if allowed < len(ranked) else 0.0
    n_pos = max(1, len(pos_scores))
    figures = Figures(
        recall_review=sum(s >= review for s in pos_scores) / n_pos,
        recall_block=sum(s >= block for s in pos_scores) / n_pos,
        fp_rate=sum(s >= review for s in neg_scores) / max(1, len(neg_scores)),
        recall_at_1pct=sum(s > cut for s in pos_scores) / n_pos,
        threshold_at_1pct=cut,
        seconds_per_1000=elapsed / max(1, len(rows)) * 1000,
    )
    return figures, per_kind, notes


def gpulease_scorer(index: ScreeningIndex, floor: float) -> Scorer:
    def score(query: str) -> dict[tuple[str, str], float]:
        party = Party(id="q", kind=PartyKind.UNKNOWN, name=query)
        hits = index.screen(party, review_threshold=floor, block_threshold=floor)
        return {h.entry.key: h.score for h in hits}

    return score


def time_screening(
    index: ScreeningIndex, rows: Sequence[Row], review: float, block: float
) -> float:
    """Seconds per 1,000 names screened as KYC does: at the thresholds, hits only."""
    parties = [Party(id="q", kind=PartyKind.UNKNOWN, name=row.query) for row in rows]
    started = time.process_time()
    for party in parties:
        index.screen(party, review_threshold=review, block_threshold=block)
    return (time.process_time() - started) / max(1, len(parties)) * 1000


def peer_scorer(entries: Sequence[ListEntry], candidates: int) -> tuple[Scorer, list[float]]:
    """nomenklatura LogicV2 over a WRatio blocker; the list collects blocker seconds."""
    from followthemoney import model
    from nomenklatura.matching import LogicV2, ScoringConfig
    from sklearn.feature_extraction.text import TfidfVectorizer

    schema = {PartyKind.PERSON: "Person", PartyKind.ORGANIZATION: "Organization"}
    proxies = []
    for i, entry in enumerate(entries):
        proxy = model.make_entity(schema.get(entry.kind, "LegalEntity"))
        proxy.id = f"e{i}"
        proxy.add("name", entry.name)
        for alias in entry.aliases:
            proxy.add("alias", alias)
        proxies.append(proxy)
    names: list[str] = []
    owner: list[int] = []
    for i, entry in enumerate(entries):
        for name in entry.names:
            names.append(normalize_name(name).text)
            owner.append(i)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), sublinear_tf=True)
    matrix = vectorizer.fit_transform(names)
    config = ScoringConfig.defaults()
    blocker_seconds: list[float] = []
    counter = iter(range(1 << 62))

    def score(query: str) -> dict[tuple[str, str], float]:
        started = time.process_time()
        similarity = (matrix @ vectorizer.transform([normalize_name(query).text]).T).toarray()
        best = similarity[:, 0].argsort()[::-1][: candidates * 3]
        chosen = list(dict.fromkeys(owner[int(pos)] for pos in best))[:candidates]
        blocker_seconds.append(time.process_time() - started)
        proxy = model.make_entity("LegalEntity")
        proxy.id = f"query-{next(counter)}"  # nomenklatura caches by entity id
        proxy.add("name", query)
        return {
            entries[i].key: 100.0 * LogicV2.compare(proxy, proxies[i], config).score for i in chosen
        }

    return score, blocker_seconds


def print_table(title: str, per_kind: dict[str, list[float]]) -> None:
    print(title)
    print(f"  {'kind':<24}{'n':>6}{'review':>9}{'block':>9}")
    for key in sorted(per_kind, key=lambda k: (not k.startswith("pos"), k)):
        n, flagged, blocked = per_kind[key]
        print(f"  {key:<24}{n:>6.0f}{flagged / n:>9.1%}{blocked / n:>9.1%}")


def print_figures(name: str, f: Figures) -> None:
    print(
        f"{name:<12} recall at review {f.recall_review:6.1%}  at block {f.recall_block:6.1%}  "
        f"clean names to review {f.fp_rate:5.1%}  recall at 1% FP {f.recall_at_1pct:6.1%} "
        f"(above {f.threshold_at_1pct:.1f})  {f.seconds_per_1000:7.2f} CPU s per 1,000 names"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=tuple(SPLITS), default="tuning")
    parser.add_argument("--review", type=float, default=DEFAULT_REVIEW_THRESHOLD)
    parser.add_argument("--block", type=float, default=DEFAULT_BLOCK_THRESHOLD)
    parser.add_argument("--floor", type=float, default=40.0, help="lowest score recorded")
    parser.add_argument("--peer-sample", type=int, default=40, help="queries per kind, 0: none")
    parser.add_argument("--peer-candidates", type=int, default=25)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--show", type=int, default=None, help="misses shown per kind (3; heldout2: 0)"
    )
    args = parser.parse_args()
    if args.show is None:
        args.show = 0 if args.split == "heldout2" else 3
    entries = shipped_entries()
    started = time.process_time()
    index = ScreeningIndex(entries)
    print(
        f"index: {len(entries)} entries, {index.name_count} names, built in "
        f"{time.process_time() - started:.2f} s; split {args.split}; thresholds review "
        f"{args.review:.0f}, block {args.block:.0f}"
    )
    rows = read(split_path(args.split))
    ours = gpulease_scorer(index, args.floor)
    figures, per_kind, notes = evaluate(rows, ours, args.review, args.block)
    figures.seconds_per_1000 = time_screening(index, rows, args.review, args.block)
    print_table(f"gpulease, all {len(rows)} queries", per_kind)
    print_figures("gpulease", figures)
    shown: dict[str, int] = defaultdict(int)
    for note in notes:
        kind = note.split(":")[0]
        shown[kind] += 1
        if shown[kind] <= args.show:
            print(note)
    if args.peer_sample <= 0:
        return
    try:
        peer, blocker_seconds = peer_scorer(entries, args.peer_candidates)
    except ImportError as exc:
        print(f"peer skipped: nomenklatura is not installed ({exc}); pip install -e .[bench]")
        return
    rng = random.Random(args.seed)
    by_kind: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_kind[f"{row.label}:{row.kind}"].append(row)
    sample: list[Row] = []
    for key in sorted(by_kind):
        group = by_kind[key]
        sample += rng.sample(group, min(len(group), args.peer_sample))
    print(f"\nside by side on a sample of {len(sample)} queries ({args.peer_sample} per kind)")
    ours_f, _k, _n = evaluate(sample, ours, args.review, args.block)
    ours_f.seconds_per_1000 = time_screening(index, sample, args.review, args.block)
    peer_f, peer_kind, _n = evaluate(sample, peer, 70.0, 95.0)
    blocker = sum(blocker_seconds) / len(blocker_seconds) * 1000
    print_table("nomenklatura logic-v2 (review 0.70, block 0.95)", peer_kind)
    print_figures("gpulease", ours_f)
    print_figures("nomenklatura", peer_f)
    print(
        f"nomenklatura time includes its blocker ({blocker:.2f} s per 1,000 names); scoring "
        f"alone {peer_f.seconds_per_1000 - blocker:.2f} s per 1,000; gpulease is "
        f"{peer_f.seconds_per_1000 / ours_f.seconds_per_1000:.0f}x faster "
        f"({(peer_f.seconds_per_1000 - blocker) / ours_f.seconds_per_1000:.0f}x against "
        "scoring alone)"
    )


if __name__ == "__main__":
    main()
