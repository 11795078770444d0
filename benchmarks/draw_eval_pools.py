"""Draw the word pools and Faker locales of a new evaluation split by a stated rule.

The pools of a split (the generic words its added-word variants add, the words its hard
negatives put after a listed name's first words, the Faker locales of its generated names)
must not be chosen by looking at the matcher's misses. This script draws them at random,
with a stated seed, from stated registers, and prints them for ``_eval_set.SPLITS``:

* **added words**: words of the SEC EDGAR company register (``company_tickers``, the copy
  edgartools 5.62.1 ships; read as ``scripts/derive_generic_words.py`` reads it: normalised
  core words, counted once per family of names) that at least ``--added-share`` (0.1 %) of
  the register's families use, alphabetic, four letters or more, not in an earlier split's
  added words;
* **look-alike words**: words of the same register used by 2 to 5 families (names of a
  few unrelated companies: brands and narrow trades), alphabetic, five letters or more, not
  in an earlier split's look-alike words;
* **person locales**: Faker locales (``faker.config.AVAILABLE_LOCALES``) no earlier split
  uses; **company locales**: drawn from the person locales.

    PYTHONPATH=src:scripts python benchmarks/draw_eval_pools.py --register PATH --seed 303

Needs Faker, and ``pyarrow`` to read edgartools' Parquet copy (or the SEC's JSON itself).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from derive_generic_words import register_counts, register_names

from _eval_set import SPLITS
from gpulease.compliance.names import normalize_name


def _normalised(words: tuple[str, ...]) -> set[str]:
    return {w for word in words for w in normalize_name(word).text.split()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--register", type=Path, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--earlier", nargs="+", default=["tuning", "heldout"])
    parser.add_argument("--added", type=int, default=10)
    parser.add_argument("--added-share", type=float, default=0.001)
    parser.add_argument("--lookalikes", type=int, default=21)
    parser.add_argument("--person-locales", type=int, default=10)
    parser.add_argument("--company-locales", type=int, default=6)
    args = parser.parse_args()
    from faker.config import AVAILABLE_LOCALES  # only to draw the pools

    earlier = [SPLITS[name] for name in args.earlier]
    used_added = _normalised(tuple(w for s in earlier for w in s.added_words))
    used_lookalike = _normalised(tuple(w for s in earlier for w in s.lookalike_words))
    used_locales = {loc for s in earlier for loc in (*s.person_locales, *s.company_locales)}
    counts, total = register_counts(register_names(args.register))
    added_pool = sorted(
        w
        for w, n in counts.items()
        if n / total >= args.added_share and w.isalpha() and len(w) >= 4 and w not in used_added
    )
    lookalike_pool = sorted(
        w
        for w, n in counts.items()
        if 2 <= n <= 5 and w.isalpha() and len(w) >= 5 and w not in used_lookalike
    )
    locales = sorted(set(AVAILABLE_LOCALES) - used_locales)
    rng = random.Random(args.seed)
    added = rng.sample(added_pool, args.added)
    lookalikes = rng.sample(lookalike_pool, args.lookalikes)
    persons = rng.sample(locales, args.person_locales)
    companies = rng.sample(persons, args.company_locales)
    print(f"register: {total} families; added pool {len(added_pool)} words, look-alike pool "
          f"{len(lookalike_pool)} words, {len(locales)} locales unused before")  # fmt: skip
    print("person_locales =", tuple(persons))
    print("company_locales =", tuple(companies))
    print("added_words =", tuple(w.title() for w in added))
    print("lookalike_words =", tuple(w.title() for w in lookalikes))


if __name__ == "__main__":
    main()
