"""End-use classifier quality: the labelled purposes, per split, per category, per kind.

Reads ``tests/compliance/fixtures/purposes/{tune,heldout,probe}.tsv`` (hand-labelled free
text of declared purposes; the held-out half was never tuned on, the probe set was written
after the classifier, to find its weaknesses) and prints, for each split:

* the outcome confusion (expected clear / review / refuse against the classifier's);
* **flagging** (review or refuse, what keeps a purpose from running unattended): recall of
  the texts that should be flagged, false-positive rate on the clear ones;
* **per category**: recall (texts labelled with the category that the classifier flags
  with a finding of that category deciding) and precision (texts the classifier decides on
  that category that are labelled with it);
* per kind (benign, prohibited, agent, obfuscated, negated): exact outcome accuracy;
* every disagreement, so the figures can be checked by eye;
* the classifier's speed (texts per second, CPU time).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_end_use.py [--split heldout|tune|probe|all]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from gpulease.compliance.purpose_classifier import classify

DATA = Path(__file__).resolve().parent.parent / "tests/compliance/fixtures/purposes"


@dataclass(frozen=True)
class Case:
    expected: str
    category: str
    kind: str
    text: str


def load(split: str) -> list[Case]:
    cases = []
    for line in (DATA / f"{split}.tsv").read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        expected, category, kind, text = line.split("\t", 3)
        cases.append(Case(expected, category, kind, text))
    return cases


# The check on main before the classifier (compliance/end_uses.py, ``_SUSPECT_WORDS``): a
# word list matched at word starts, every hit sent to review. Kept here as the baseline.
_OLD_WORDS = (
    "military", "weapon", "munition", "missile", "warhead", "nuclear", "uranium", "plutonium",
    "drone", "uav", "chemical agent", "nerve agent", "pathogen", "bioweapon",
    "mass surveillance", "intelligence service", "reconnaissance",
)  # fmt: skip


def baseline(text: str) -> str:
    low = text.lower()
    return "review" if any(re.search(rf"\b{re.escape(w)}", low) for w in _OLD_WORDS) else "clear"


def outcome(text: str) -> tuple[str, set[str]]:
    found = classify(text)
    if found.level is None:
        return "clear", set()
    return found.level.value, {f.category for f in found.deciding}


def report(split: str, cases: list[Case]) -> None:
    print(f"\n=== {split}: {len(cases)} texts")
    old = [baseline(c.text) for c in cases]
    old_recall = sum(o != "clear" for c, o in zip(cases, old, strict=True) if c.expected != "clear")
    old_fp = sum(o != "clear" for c, o in zip(cases, old, strict=True) if c.expected == "clear")
    n_flag = sum(c.expected != "clear" for c in cases)
    print(
        f"before (main's word list): flagged {old_recall / n_flag:.1%} of {n_flag}, "
        f"false positives {old_fp / (len(cases) - n_flag):.1%} of {len(cases) - n_flag}"
    )
    got = [outcome(c.text) for c in cases]
    confusion = Counter((c.expected, g[0]) for c, g in zip(cases, got, strict=True))
    labels = ("clear", "review", "refuse")
    print("expected \\ got " + "".join(f"{x:>8}" for x in labels))
    for e in labels:
        print(f"{e:>14} " + "".join(f"{confusion[(e, g)]:>8}" for g in labels))
    flag_should = [g for c, g in zip(cases, got, strict=True) if c.expected != "clear"]
    clear_should = [g for c, g in zip(cases, got, strict=True) if c.expected == "clear"]
    recall = sum(g[0] != "clear" for g in flag_should) / max(1, len(flag_should))
    fpr = sum(g[0] != "clear" for g in clear_should) / max(1, len(clear_should))
    exact = sum(c.expected == g[0] for c, g in zip(cases, got, strict=True)) / len(cases)
    print(
        f"flagged (review or refuse): recall {recall:.1%} of {len(flag_should)}, "
        f"false positives {fpr:.1%} of {len(clear_should)}; exact outcome {exact:.1%}"
    )
    by_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # labelled, hit, predicted
    for c, (level, cats) in zip(cases, got, strict=True):
        if c.category != "-":
            by_cat[c.category][0] += 1
            if level != "clear" and c.category in cats:
                by_cat[c.category][1] += 1
        for cat in cats:
            by_cat[cat][2] += 1
    print(f"{'category':<24}{'labelled':>9}{'recall':>9}{'precision':>11}")
    for cat in sorted(by_cat):
        labelled, hit, predicted = by_cat[cat]
        correct = sum(
            1
            for c, (level, cats) in zip(cases, got, strict=True)
            if cat in cats and c.category == cat
        )
        rec = f"{hit / labelled:.0%}" if labelled else "-"
        prec = f"{correct / predicted:.0%}" if predicted else "-"
        print(f"{cat:<24}{labelled:>9}{rec:>9}{prec:>11}")
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c, g in zip(cases, got, strict=True):
        kinds[c.kind][0] += 1
        kinds[c.kind][1] += c.expected == g[0]
    print("exact outcome per kind: " + ", ".join(f"{k} {r}/{n}" for k, (n, r) in kinds.items()))
    wrong = [(c, g) for c, g in zip(cases, got, strict=True) if c.expected != g[0]]
    for c, (level, cats) in wrong:
        print(f"  expected {c.expected:<6} got {level:<6} {sorted(cats)!s:<28} {c.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--split", choices=("heldout", "tune", "probe", "all"), default="all")
    args = parser.parse_args()
    splits = ("tune", "heldout", "probe") if args.split == "all" else (args.split,)
    everything: list[Case] = []
    for split in splits:
        cases = load(split)
        everything += cases
        report(split, cases)
    classify("warm up")  # the vocabulary is read once
    texts = [c.text for c in everything] * 20
    started = time.process_time()
    for text in texts:
        classify(text)
    spent = time.process_time() - started
    print(f"\nspeed: {len(texts) / spent:,.0f} texts/s ({spent / len(texts) * 1e6:.0f} us each)")


if __name__ == "__main__":
    main()
