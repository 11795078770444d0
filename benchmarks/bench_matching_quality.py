"""Screening quality: recall on variants of real listed names, false alarms on look-alikes.

Index: the OFAC SDN files (with aliases), both CSL samples and the BIS Denied Persons List
that gpulease ships (``gpulease.data``). Queries (seeded): for a sample of listed entries,
one variant of each kind (exact, word order, legal form changed, abbreviation, one typo,
last word dropped), the Chinese and Russian names of listed parties written by hand
(transliteration), and negatives: real-sounding unlisted names written by hand, names
invented from common words, and look-alikes made by swapping the longest word of a listed
organisation's name.

A variant is *found* when its source entry is among the hits at the review threshold;
*blocked* when that hit reaches the block threshold. A negative is a *false alarm* when it
gets any hit at the review threshold. Precision = found / (found + false alarms + variants
flagged only on other entries).

    .venv/bin/python benchmarks/bench_matching_quality.py [--per-kind 400] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict

from _common import LISTS
from _name_variants import (
    TRANSLITERATIONS,
    UNRELATED,
    VARIANTS,
    invented,
    swap_lookalike,
)
from gpulease.compliance.lists import load
from gpulease.compliance.matching import (
    DEFAULT_BLOCK_THRESHOLD,
    DEFAULT_REVIEW_THRESHOLD,
    ScreeningIndex,
)
from gpulease.compliance.model import ListEntry, Party, PartyKind
from gpulease.compliance.names import normalize_name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--review", type=float, default=DEFAULT_REVIEW_THRESHOLD)
    parser.add_argument("--block", type=float, default=DEFAULT_BLOCK_THRESHOLD)
    parser.add_argument("--show", type=int, default=3, help="examples of misses per kind")
    args = parser.parse_args()
    entries: list[ListEntry] = []
    for path, fmt in [
        (LISTS / "ofac-sdn", "ofac-sdn"),
        (LISTS / "csl-legacy-sample.csv.xz", "csl-csv"),
        (LISTS / "csl-consolidated-sample.csv.xz", "csl-csv"),
        (LISTS / "bis-denied-persons.tsv.xz", "bis-dpl"),
    ]:
        entries += load(path, fmt).entries
    started = time.perf_counter()
    index = ScreeningIndex(entries)
    print(
        f"index: {len(entries)} entries, {index.name_count} names, "
        f"built in {time.perf_counter() - started:.2f} s"
    )
    listed_cores = {normalize_name(n).core for e in entries for n in e.names}
    rng = random.Random(args.seed)
    positives: list[tuple[str, str, ListEntry]] = []  # (kind, query, expected entry)
    for kind, make in VARIANTS.items():
        pool = entries[:]
        rng.shuffle(pool)
        made = 0
        for entry in pool:
            query = make(entry, rng)
            if query is None or not normalize_name(query).core:
                continue
            positives.append((kind, query, entry))
            made += 1
            if made == args.per_kind:
                break
    by_name = {e.name: e for e in entries}
    for native, listed in TRANSLITERATIONS:
        positives.append(("transliteration", native, by_name[listed]))
    negatives: list[tuple[str, str]] = [("unrelated_hand", n) for n in UNRELATED]
    negatives += [("invented", invented(rng)) for _ in range(args.per_kind)]
    orgs = [e for e in entries if e.kind is not PartyKind.PERSON]
    rng.shuffle(orgs)
    for entry in orgs:
        query = swap_lookalike(entry, rng)
        if query and normalize_name(query).core not in listed_cores:
            negatives.append(("lookalike_swap", query))
        if sum(1 for k, _ in negatives if k == "lookalike_swap") == args.per_kind:
            break

    def screen(query: str) -> list[tuple[tuple[str, str], float]]:
        party = Party(id="q", kind=PartyKind.UNKNOWN, name=query)
        hits = index.screen(party, review_threshold=args.review, block_threshold=args.block)
        return [(h.entry.key, h.score) for h in hits]

    started = time.perf_counter()
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # n, found, blocked, wrong
    misses: dict[str, list[str]] = defaultdict(list)
    for kind, query, expected in positives:
        hits = dict(screen(query))
        row = stats[kind]
        row[0] += 1
        if expected.key in hits:
            row[1] += 1
            row[2] += hits[expected.key] >= args.block
        else:
            row[3] += bool(hits)
            misses[kind].append(f"{query!r} (listed {expected.name!r})")
    neg_stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # n, flagged, blocked
    alarms: dict[str, list[str]] = defaultdict(list)
    for kind, query in negatives:
        found = screen(query)
        row = neg_stats[kind]
        row[0] += 1
        if found:
            row[1] += 1
            row[2] += max(s for _, s in found) >= args.block
            alarms[kind].append(f"{query!r} ({max(s for _, s in found):.0f})")
    elapsed = time.perf_counter() - started

    print(f"thresholds: review {args.review:.0f}, block {args.block:.0f}; seed {args.seed}")
    print(f"{'variant kind':<18}{'n':>6}{'recall':>9}{'blocked':>9}{'wrong-only':>12}")
    found_total = wrong_total = n_total = 0
    for kind, (n, found, blocked, wrong) in stats.items():
        print(f"{kind:<18}{n:>6}{found / n:>9.1%}{blocked / n:>9.1%}{wrong:>12}")
        found_total += found
        wrong_total += wrong
        n_total += n
    print(f"{'all variants':<18}{n_total:>6}{found_total / n_total:>9.1%}")
    print(f"{'negative kind':<18}{'n':>6}{'flagged':>9}{'blocked':>9}")
    alarm_total = neg_total = 0
    for kind, (n, flagged, blocked) in neg_stats.items():
        print(f"{kind:<18}{n:>6}{flagged / n:>9.1%}{blocked / n:>9.1%}")
        alarm_total += flagged
        neg_total += n
    precision = found_total / max(1, found_total + alarm_total + wrong_total)
    print(
        f"precision {precision:.1%} (found {found_total}, false alarms {alarm_total} of "
        f"{neg_total} negatives, wrong-only {wrong_total}); recall {found_total / n_total:.1%}"
    )
    print(f"screened {len(positives) + len(negatives)} queries in {elapsed:.2f} s")
    for kind, items in misses.items():
        for item in items[: args.show]:
            print(f"  missed {kind}: {item}")
    for kind, items in alarms.items():
        for item in items[: args.show]:
            print(f"  false alarm {kind}: {item}")


if __name__ == "__main__":
    main()
