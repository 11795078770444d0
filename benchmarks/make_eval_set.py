"""Write the screening evaluation set (both splits) to benchmarks/data/eval_*.tsv.

Needs Faker (``pip install -e .[bench]``). See ``_eval_set`` for what the set holds.

    .venv/bin/python benchmarks/make_eval_set.py
"""

from __future__ import annotations

from collections import Counter

from _eval_set import SPLITS, negatives, positives, shipped_entries, split_path, write


def main() -> None:
    entries = shipped_entries()
    for name, split in SPLITS.items():
        rows = positives(entries, split) + negatives(entries, split)
        write(rows, split_path(name))
        counts = Counter((r.label, r.kind) for r in rows)
        print(f"{name}: {len(rows)} rows -> {split_path(name)}")
        for (label, kind), n in sorted(counts.items()):
            print(f"  {label} {kind:<22}{n:>6}")


if __name__ == "__main__":
    main()
