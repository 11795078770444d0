"""Screening speed: 10,000 names against the full OFAC SDN list with its aliases.

Builds a ScreeningIndex over the SDN files gpulease ships (about 9,000 entries and 12,000
aliases), then screens N parties (seeded): half are variants of listed names (word order,
legal form, abbreviation, typo, truncation), half invented real-sounding company names.
Each query is a fresh name (the normalisation cache is cleared before the run), so the
figure includes normalising every query. Prints load and build time, wall and CPU time
(the CPU time of this process: on a shared machine, wall time counts the waits for a core),
names/s, hits, and peak RSS.

    .venv/bin/python benchmarks/bench_screening_speed.py [--names 10000] [--seed 11]
"""

from __future__ import annotations

import argparse
import random
import time

from _common import LISTS, peak_rss_mib
from _name_variants import VARIANTS, invented
from gpulease.compliance.lists import load
from gpulease.compliance.matching import ScreeningIndex, decide
from gpulease.compliance.model import Party, PartyKind
from gpulease.compliance.names import normalize_name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rss_start = peak_rss_mib()
    started = time.perf_counter()
    snapshot = load(LISTS / "ofac-sdn", "ofac-sdn")
    loaded = time.perf_counter()
    index = ScreeningIndex(snapshot.entries)
    built = time.perf_counter()
    print(
        f"load: {snapshot.counts['entries']} entries, {snapshot.counts['aliases']} aliases in "
        f"{loaded - started:.2f} s; index: {index.name_count} names in {built - loaded:.2f} s"
    )
    rng = random.Random(args.seed)
    makers = [m for k, m in VARIANTS.items() if k != "exact"]
    queries: list[str] = []
    while len(queries) < args.names:
        if len(queries) % 2 == 0:
            query = rng.choice(makers)(rng.choice(snapshot.entries), rng)
            if query is None:
                continue
        else:
            query = invented(rng)
        queries.append(query)
    parties = [Party(id=f"p{i}", kind=PartyKind.UNKNOWN, name=q) for i, q in enumerate(queries)]
    normalize_name.cache_clear()
    started = time.perf_counter()
    cpu_started = time.process_time()
    outcomes: dict[str, int] = {}
    hits_total = 0
    for party in parties:
        hits = index.screen(party)
        hits_total += len(hits)
        outcome = decide(hits).outcome.value
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"screened {len(parties)} names in {elapsed:.2f} s ({cpu:.2f} CPU s): "
        f"{len(parties) / elapsed:,.0f} names/s, {cpu / len(parties) * 1e3:.2f} CPU ms/name; "
        f"{hits_total} hits; " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    )
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (at start {rss_start:.0f} MiB)")


if __name__ == "__main__":
    main()
