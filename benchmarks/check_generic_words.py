"""Added generic words the matcher has never seen: a check that needs no held-out material.

Variants of organisations of the ``tuning`` split's entries (CRC-32 parity even, as in
``_eval_set``) with one word added, drawn at random from the *register* words of
``compliance/generic_words.tsv`` (those the SEC's company names made generic), are screened
against the shipped lists; prints the share found at the review threshold, by how common
the word is among company names. The evaluation set's added words play no part: the words
come from the derived list, the entries from the tuning split.

    cd benchmarks && PYTHONPATH=../src python check_generic_words.py [--variants 800]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace
from importlib import resources

from _eval_set import SPLITS, _is_org, added_word, entry_parity, shipped_entries
from gpulease.compliance.matching import DEFAULT_REVIEW_THRESHOLD, ScreeningIndex
from gpulease.compliance.model import Party, PartyKind
from gpulease.compliance.name_scoring import GENERIC_FILE


def register_words() -> list[tuple[str, float]]:
    """(word, share of the register's names) of the derived list's register words."""
    text = resources.files("gpulease.compliance").joinpath(GENERIC_FILE).read_text("utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    out = []
    for fields in body:
        row = dict(zip(header, fields, strict=True))
        if row["source"] in ("register", "both"):
            out.append((row["word"], int(row["register_names"]) / int(row["register_total"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=800)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    words = register_words()
    entries = shipped_entries()
    index = ScreeningIndex(entries)
    pool = [e for e in entries if entry_parity(e) == SPLITS["tuning"].parity and _is_org(e)]
    rng = random.Random(args.seed)
    bands: dict[str, list[int]] = {}
    for _ in range(args.variants):
        word, share = rng.choice(words)
        entry = rng.choice(pool)
        query = added_word(entry, rng, replace(SPLITS["tuning"], added_words=(word,)))
        if query is None:
            continue
        hits = index.screen(Party(id="q", kind=PartyKind.UNKNOWN, name=query))
        found = any(h.entry.key == entry.key for h in hits)
        band = "1 % or more" if share >= 0.01 else "0.3-1 %" if share >= 0.003 else "under 0.3 %"
        stat = bands.setdefault(band, [0, 0])
        stat[0] += 1
        stat[1] += found
    print(f"found at review ({DEFAULT_REVIEW_THRESHOLD:.0f}), by the word's share of company names")
    for band, (n, found) in sorted(bands.items()):
        print(f"  {band:<12}{n:>6}{found / n:>9.1%}")
    n = sum(b[0] for b in bands.values())
    print(f"  {'all':<12}{n:>6}{sum(b[1] for b in bands.values()) / n:>9.1%}")


if __name__ == "__main__":
    main()
