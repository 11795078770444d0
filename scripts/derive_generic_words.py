"""Derive ``src/gpulease/compliance/generic_words.tsv``: the words that describe a business
rather than name it, from how often company names use them.

Two independent corpora, neither of them the evaluation set:

* **a register of company names**: the SEC's list of companies filing with EDGAR that have
  a ticker (``company_tickers.json``, published by the US Securities and Exchange
  Commission, a US government work in the public domain). The copy read is the one the
  ``edgartools`` package ships (``edgar/reference/data/company_tickers.parquet``, 10,365
  rows, 7,962 distinct names), or the JSON itself: ``pip download --no-deps
  edgartools==5.62.1`` and unzip the wheel; reading the Parquet file needs ``pyarrow``
  (26.0.1 was used; not a dependency of gpulease: the derived list ships);
* **the organisations of the screening lists gpulease ships** (OFAC SDN with aliases, the
  CSL samples, the BIS Denied Persons List).

In both, a word counts once per *unrelated* name using it, that is per distinct word leading
those names: the ``IRISL`` shipping companies count once for ``shipping`` however many the
list has, a sponsor's hundred ``BlackRock ... Fund`` names once for ``fund`` (and once for
``blackrock``, which is a name, not a generic word).

Each name goes through ``normalize_name``: legal forms are dropped (they are not words of
the core), spellings are canonical (``technologies`` -> ``technology``). A word is generic
when at least ``--min-register-names`` (10) of the register's families use it (and at least
``--min-register-share`` of them, 0 by default: until the third round of issue 14 it was
0.2 %, which left out words of 10 to 12 families such as *worldwide*), or when
``--min-list-entries`` unrelated listed organisations do. Words that at least
``--min-share-names`` (2) families use and that are not generic are written too, with the
source ``share``: the matcher caps their weight by their share, and no more. Words of
fewer than three letters and numbers are left out. The output
keeps the counts, so the matcher derives each word's weight from its share of names (see
``name_scoring.parse_generic_words``).

    PYTHONPATH=src python scripts/derive_generic_words.py --register PATH \\
        [--out src/gpulease/compliance/generic_words.tsv]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from gpulease.compliance.lists import load
from gpulease.compliance.model import ListEntry, PartyKind
from gpulease.compliance.name_scoring import SHARE_ONLY
from gpulease.compliance.names import LEGAL_FORM_TOKENS, normalize_name
from gpulease.data import shipped_lists

HEADER = ("word", "register_names", "register_total", "list_entries", "list_total", "source")


def register_names(path: Path) -> list[str]:
    """The company names of the SEC's ``company_tickers`` (JSON, or edgartools' Parquet)."""
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq  # only to read edgartools' copy

        table = pq.read_table(path)
        column = next(c for c in ("company", "title", "name") if c in table.column_names)
        names = [str(v) for v in table.column(column).to_pylist() if v]
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data.values() if isinstance(data, dict) else data
        names = [str(r["title"]) for r in rows if r.get("title")]
    return sorted(set(names))


def shipped_entries() -> list[ListEntry]:
    lists = shipped_lists()
    entries: list[ListEntry] = []
    for path, fmt in [
        (lists / "ofac-sdn", "ofac-sdn"),
        (lists / "csl-legacy-sample.csv.xz", "csl-csv"),
        (lists / "csl-consolidated-sample.csv.xz", "csl-csv"),
        (lists / "bis-denied-persons.tsv.xz", "bis-dpl"),
    ]:
        entries += load(path, fmt).entries
    return entries


def _words(name: str) -> list[str]:
    return [w for w in normalize_name(name).core.split() if len(w) >= 3 and not w.isdigit()]


def _is_organisation(entry: ListEntry) -> bool:
    if entry.kind is PartyKind.ORGANIZATION:
        return True
    # lists without a kind (CSL, BIS): an organisation names a legal form
    return entry.kind is PartyKind.UNKNOWN and any(
        w in LEGAL_FORM_TOKENS for n in entry.names for w in normalize_name(n).text.split()
    )


def _spread(names: Iterable[list[str]]) -> tuple[Counter[str], int]:
    """Per word, the number of distinct words leading the names that use it, and the number
    of distinct leading words: names of one family (``BlackRock ... Fund``, ``IRISL ...
    Shipping``) count once, so a word's share is that of the unrelated names using it."""
    leaders: dict[str, set[str]] = {}
    families: set[str] = set()
    for words in names:
        families.add(words[0])
        for word in set(words):
            leaders.setdefault(word, set()).add(words[0])
    return Counter({w: len(s) for w, s in leaders.items()}), len(families)


def register_counts(names: Iterable[str]) -> tuple[Counter[str], int]:
    return _spread(w for w in (_words(n) for n in names) if w)


def list_counts(entries: Iterable[ListEntry]) -> tuple[Counter[str], int]:
    """``_spread`` over the listed organisations' names (every alias)."""
    return _spread(
        w for e in entries if _is_organisation(e) for w in (_words(n) for n in e.names) if w
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--register", type=Path, required=True)
    parser.add_argument(
        "--out", type=Path, default=Path("src/gpulease/compliance/generic_words.tsv")
    )
    parser.add_argument("--min-register-share", type=float, default=0.0)
    parser.add_argument("--min-register-names", type=int, default=10)
    parser.add_argument("--min-list-entries", type=int, default=20)
    parser.add_argument(
        "--min-share-names", type=int, default=2, help="register names to keep a word's share"
    )
    args = parser.parse_args()
    reg_df, reg_total = register_counts(register_names(args.register))
    list_df, list_total = list_counts(shipped_entries())
    rows = []
    for word in sorted(set(reg_df) | set(list_df)):
        by_register = (
            reg_df[word] >= args.min_register_names
            and reg_df[word] / reg_total >= args.min_register_share
        )
        by_lists = list_df[word] >= args.min_list_entries
        if by_register or by_lists:
            source = "both" if by_register and by_lists else "register" if by_register else "lists"
            rows.append((word, reg_df[word], reg_total, list_df[word], list_total, source))
        elif reg_df[word] >= args.min_share_names and word.isalpha():
            # not generic, but a word unrelated companies use: its share caps its weight
            rows.append((word, reg_df[word], reg_total, list_df[word], list_total, SHARE_ONLY))
    with args.out.open("w", encoding="utf-8") as out:
        out.write(
            "# Generic words of company names, derived by scripts/derive_generic_words.py\n"
            f"# register: SEC EDGAR company_tickers ({reg_total} families of names; "
            "US government work, public domain), as shipped by edgartools 5.62.1\n"
            f"# lists: the organisations of the shipped screening lists ({list_total} families)"
            "\n# counts: names using the word, once per distinct leading word (unrelated names); "
            "totals: distinct leading words\n"
            f"# thresholds: register share >= {args.min_register_share} and >= "
            f"{args.min_register_names} names, or list_entries >= {args.min_list_entries}\n"
            f"# source {SHARE_ONLY}: not generic, used by >= {args.min_share_names} of the "
            "register's families: the share caps the word's weight, no more\n"
        )
        out.write("\t".join(HEADER) + "\n")
        for row in rows:
            out.write("\t".join(str(v) for v in row) + "\n")
    generic = sum(r[5] != SHARE_ONLY for r in rows)
    print(f"{generic} generic words, {len(rows) - generic} words by share -> {args.out}")


if __name__ == "__main__":
    main()
