"""Write the screening evaluation set's splits to benchmarks/data/eval_*.tsv.

Needs Faker (``pip install -e .[bench]``). See ``_eval_set`` for what the set holds.

    .venv/bin/python benchmarks/make_eval_set.py [--split heldout2 ...]
"""

from __future__ import annotations

import argparse
from collections import Counter

from _eval_set import SPLITS, negatives, positives, shipped_entries, split_path, write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", nargs="+", choices=tuple(SPLITS), default=list(SPLITS))
    args = parser.parse_args()
    entries = shipped_entries()
    for name in args.split:
        split = SPLITS[name]
        rows = positives(entries, split) + negatives(entries, split)
        write(rows, split_path(name))
        counts = Counter((r.label, r.kind) for r in rows)
        print(f"{name}: {len(rows)} rows -> {split_path(name)}")
        for (label, kind), n in sorted(counts.items()):
            print(f"  {label} {kind:<22}{n:>6}")


if __name__ == "__main__":
    main()
