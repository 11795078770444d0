"""An evaluation set for name screening, generated apart from the matcher's tuning.

Splits made the same way from disjoint material so that one can be tuned on and the
others only measured:

* ``tuning``: list entries whose key hashes even (CRC-32 of ``source/entry_id``), seed 101,
  Faker locales and word pools *A*, real companies of ``data/companies_tuning.txt``;
* ``heldout``: entries whose key hashes odd, seed 202, Faker locales and word pools *B*
  (other countries, other added words, other look-alike words), real companies of
  ``data/companies_heldout.txt``. Measured four times while the matcher changed: spent for
  claims, now a second tuning set;
* ``heldout2``: entries used by neither earlier split (not as a positive, not as a hard
  negative, and sharing no normalised name with such an entry), seed 303, pools *C* drawn at
  random from stated registers by ``draw_eval_pools.py`` (Faker locales no earlier split
  uses; added words that at least 0.1 % of the SEC EDGAR register's company names use;
  look-alike words that 2 to 5 of its names use), real companies of
  ``data/companies_heldout2.txt``.

**Positives** (a query and the list entry it must find), one row per kind and entry; the
kinds are those of :data:`POSITIVE_KINDS`: typo, transposition, legal form, alias, script
(Cyrillic or Greek letters), word order, initials, dropped word, added generic word, middle
name dropped, abbreviation, two variations combined, and the exact name. Entries of the
shipped OFAC SDN, CSL samples and BIS DPL, vessels and aircraft left out.

**Negatives** (clean names, no list entry should reach review): real companies and banks,
person and company names from Faker (generated, several cultures and scripts), and hard
negatives: a listed organisation's first words followed by other words, a listed person's
given names with another family name. A negative whose words (after normalisation, in any
order) are those of a listed name is dropped: that is a true match, not a clean name.

``python benchmarks/make_eval_set.py`` writes both splits to ``benchmarks/data/`` (needs
``faker``, the ``bench`` extra); the benchmark reads the files, so it needs neither Faker
nor this module's randomness at run time. Deterministic for a given list snapshot, Faker
version and seed.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from _name_variants import abbreviation
from gpulease.compliance.model import ListEntry, PartyKind
from gpulease.compliance.names import LEGAL_FORM_TOKENS, normalize_name

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Split:
    name: str
    seed: int
    parity: int | None  # entries whose key hashes to this parity; None: any entry
    person_locales: tuple[str, ...]
    company_locales: tuple[str, ...]
    companies_file: str
    added_words: tuple[str, ...]  # generic words a variant adds to a listed name
    lookalike_words: tuple[str, ...]  # words a hard negative puts after listed first words
    disjoint_from: tuple[str, ...] = ()  # splits whose entries this one leaves out


SPLITS: dict[str, Split] = {
    "tuning": Split(
        "tuning", 101, 0,
        ("en_US", "de_DE", "es_ES", "ru_RU", "ar_AA", "zh_CN", "hi_IN", "tr_TR", "it_IT"),
        ("en_US", "de_DE", "es_ES", "ru_RU", "zh_CN"),
        "companies_tuning.txt",
        ("International", "Group", "Holdings", "Trading", "Global", "Company", "Services"),
        ("Atlas", "Summit", "Pacific", "Harbor", "Granite", "Meridian", "Aurora", "Cedar",
         "Falcon", "Orion", "Lotus", "Logistics", "Analytics", "Foods", "Textiles", "Pharma",
         "Robotics", "Media", "Energy", "Mining", "Software", "Consulting", "Hospitality"),
    ),
    "heldout": Split(
        "heldout", 202, 1,
        ("en_GB", "fr_FR", "pt_BR", "uk_UA", "fa_IR", "ja_JP", "ko_KR", "pl_PL", "id_ID",
         "vi_VN", "nl_NL"),
        ("en_GB", "fr_FR", "pt_BR", "pl_PL", "nl_NL", "ja_JP"),
        "companies_heldout.txt",
        ("Worldwide", "Enterprises", "Industries", "Corporation", "Ventures", "Partners",
         "Holding", "General", "International", "Group"),
        ("Orchard", "Beacon", "Quarry", "Willow", "Harvest", "Anchor", "Pinnacle", "Cobalt",
         "Prairie", "Lantern", "Aquaculture", "Furniture", "Ceramics", "Printing",
         "Dairy", "Fashion", "Tourism", "Dental", "Bakery", "Veterinary", "Insurance"),
    ),
    # pools C: drawn by `draw_eval_pools.py --seed 303` (the rule is in its docstring)
    "heldout2": Split(
        "heldout2", 303, None,
        ("am_ET", "sr_BA", "tw_GH", "ha_NG", "es", "zu_ZA", "ar_EG", "en_MS", "en_IN", "fi_FI"),
        ("tw_GH", "fi_FI", "ha_NG", "es", "en_IN", "am_ET"),
        "companies_heldout2.txt",
        ("Bancorporation", "Financial", "Electronics", "Business", "River", "Space", "Fund",
         "Robotics", "Property", "Media"),
        ("Charging", "Hyperliquid", "Liberty", "Standard", "Northern", "Sustainable",
         "Biopharmaceutical", "Dogecoin", "Midcap", "Money", "South", "Produce", "Americas",
         "Offshore", "Superior", "Building", "Railway", "Heritage", "Carnival", "Madison",
         "Energetics"),
        disjoint_from=("tuning", "heldout"),
    ),
}  # fmt: skip

POSITIVES_PER_KIND = 110
NEGATIVE_COUNTS = {
    "person_faker": 800,
    "company_faker": 260,
    "hard_negative_org": 260,
    "hard_negative_person": 160,
}

_LEGAL_FORMS = ("LTD", "LLC", "CO., LTD.", "GMBH", "S.A.", "INC.", "JSC", "LIMITED", "CORP.")
_CYRILLIC = {
    "shch": "щ", "kh": "х", "zh": "ж", "ts": "ц", "ch": "ч", "sh": "ш", "yu": "ю", "ya": "я",
    "a": "а", "b": "б", "v": "в", "g": "г", "d": "д", "e": "е", "z": "з", "i": "и", "y": "ы",
    "k": "к", "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "r": "р", "s": "с", "t": "т",
    "u": "у", "f": "ф", "c": "к", "j": "дж", "w": "в", "h": "х", "q": "к", "x": "кс",
}  # fmt: skip
_GREEK = {
    "th": "θ", "ph": "φ", "ch": "χ", "ps": "ψ", "a": "α", "b": "β", "g": "γ", "d": "δ",
    "e": "ε", "z": "ζ", "i": "ι", "k": "κ", "l": "λ", "m": "μ", "n": "ν", "x": "ξ", "o": "ο",
    "p": "π", "r": "ρ", "s": "σ", "t": "τ", "y": "υ", "f": "φ", "u": "ου", "c": "κ",
    "h": "χ", "j": "τζ", "v": "β", "w": "ου", "q": "κ",
}  # fmt: skip


def _transliterate(text: str, table: dict[str, str]) -> str:
    keys = sorted(table, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(k) for k in keys))
    return pattern.sub(lambda m: table[m.group(0)], text.lower())


def _is_person(entry: ListEntry) -> bool:
    return entry.kind is PartyKind.PERSON


def _is_org(entry: ListEntry) -> bool:
    return entry.kind in (PartyKind.ORGANIZATION, PartyKind.UNKNOWN) and not _looks_person(entry)


def _looks_person(entry: ListEntry) -> bool:
    return entry.kind is PartyKind.PERSON or (
        entry.kind is PartyKind.UNKNOWN
        and entry.source == "bis-dpl"
        and "," not in entry.name
        and not any(normalize_name(w).text in LEGAL_FORM_TOKENS for w in entry.name.split())
        and len(entry.name.split()) <= 4
    )


def _person_parts(name: str) -> tuple[list[str], list[str]]:
    """(given names, family names) of ``LAST, First Middle`` or ``First Middle Last``."""
    if "," in name:
        last, first = name.split(",", 1)
        return first.split(), last.split()
    words = name.split()
    return words[:-1], words[-1:]


def _core_words(name: str) -> list[str]:
    return [w for w in name.replace(",", " ").split() if normalize_name(w).core]


def _edit_word(name: str, rng: random.Random, op: str) -> str | None:
    words = name.split()
    spots = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not spots:
        return None
    i = rng.choice(spots)
    w = words[i]
    letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
    letter = letter.upper() if w.isupper() else letter
    if op == "transpose":
        pos = rng.randrange(0, len(w) - 1)
        if w[pos] == w[pos + 1]:
            return None
        w = w[:pos] + w[pos + 1] + w[pos] + w[pos + 2 :]
    else:
        pos = rng.randrange(0, len(w))
        if op == "substitute":
            w = w[:pos] + letter + w[pos + 1 :]
        elif op == "delete":
            w = w[:pos] + w[pos + 1 :]
        else:
            w = w[:pos] + letter + w[pos:]
    words[i] = w
    return " ".join(words)


def typo(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    return _edit_word(entry.name, rng, rng.choice(("substitute", "delete", "insert")))


def transposition(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    return _edit_word(entry.name, rng, "transpose")


_FORM_RE = re.compile(
    r"\b(CO\.?,? LTD\.?|COMPANY LIMITED|LIMITED|LTD\.?|L\.?L\.?C\.?|CORPORATION|CORP\.?|"
    r"INC\.?|COMPANY|CO\.|S\.A\.|GMBH|JSC|OOO|LLP|PLC|SA)(?=\W|$)",
    re.I,
)


def legal_form(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if not _is_org(entry):
        return None
    name = entry.name.upper()
    if _FORM_RE.search(name):
        if rng.random() < 0.5:
            new = _FORM_RE.sub("", name, count=1)
        else:
            new = _FORM_RE.sub(rng.choice(_LEGAL_FORMS), name, count=1)
    else:
        new = name.rstrip(". ") + rng.choice((" ", ", ")) + rng.choice(_LEGAL_FORMS)
    new = re.sub(r"\s+", " ", new.replace(" ,", ",")).strip(" ,")
    return new if new != name and normalize_name(new).core else None


def alias(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if not entry.aliases:
        return None
    name = rng.choice(entry.aliases)
    if _is_person(entry) and "," in name:
        given, family = _person_parts(name)
        return " ".join([*given, *family]).title()
    return name.title() if rng.random() < 0.5 else name


def script(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if not entry.name.isascii():
        return None
    table = _CYRILLIC if rng.random() < 0.6 else _GREEK
    return _transliterate(entry.name.replace(",", ""), table)


def word_order(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if _looks_person(entry):
        given, family = _person_parts(entry.name)
        if not given:
            return None
        if "," in entry.name:
            return " ".join([*given, *family])
        return " ".join([*family, *given])
    words = entry.name.replace(",", "").split()
    if len(words) < 2:
        return None
    for _ in range(10):
        shuffled = words[:]
        rng.shuffle(shuffled)
        if shuffled != words:
            return " ".join(shuffled)
    return None


def initials(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if not _looks_person(entry):
        return None
    given, family = _person_parts(entry.name)
    given = [g for g in given if g[:1].isalpha()]
    if not given:
        return None
    if len(given) >= 2 and rng.random() < 0.5:  # "Abdul K. Surname": middle names only
        out = [given[0], *(g[0].upper() + "." for g in given[1:])]
    else:  # "A. B. SURNAME"
        out = [g[0].upper() + "." for g in given]
    return " ".join([*out, *family])


def dropped_word(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if not _is_org(entry):
        return None
    words = entry.name.replace(",", "").split()
    core = [i for i, w in enumerate(words) if normalize_name(w).core and i > 0]
    if len(_core_words(entry.name)) < 3 or not core:
        return None
    drop = rng.choice(core)
    return " ".join(w for i, w in enumerate(words) if i != drop)


def added_word(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if not _is_org(entry):
        return None
    words = entry.name.split()
    word = rng.choice(split.added_words).upper()
    if word.casefold() in entry.name.casefold():
        return None
    at = rng.choice((1, len(words))) if len(words) > 1 else 1
    return " ".join([*words[:at], word, *words[at:]])


def middle_dropped(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    if not _looks_person(entry):
        return None
    given, family = _person_parts(entry.name)
    if len(given) < 2:
        return None
    drop = rng.randrange(1, len(given))
    given = given[:drop] + given[drop + 1 :]
    if "," in entry.name:
        return f"{' '.join(family)}, {' '.join(given)}"
    return " ".join([*given, *family])


def abbreviated(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    return abbreviation(entry, rng)


Maker = Callable[[ListEntry, random.Random, Split], str | None]

_SINGLE: dict[str, Maker] = {
    "typo": typo,
    "transposition": transposition,
    "legal_form": legal_form,
    "alias": alias,
    "script": script,
    "word_order": word_order,
    "initials": initials,
    "dropped_word": dropped_word,
    "added_word": added_word,
    "middle_dropped": middle_dropped,
    "abbreviation": abbreviated,
}
_COMBINABLE = (
    "typo", "transposition", "legal_form", "word_order", "initials", "dropped_word",
    "added_word", "middle_dropped", "abbreviation",
)  # fmt: skip


def combination(entry: ListEntry, rng: random.Random, split: Split) -> str | None:
    first, second = rng.sample(_COMBINABLE, 2)
    if {first, second} == {"initials", "middle_dropped"}:
        return None
    once = _SINGLE[first](entry, rng, split)
    if once is None:
        return None
    twice = _SINGLE[second](replace(entry, name=once, aliases=()), rng, split)
    return twice


POSITIVE_KINDS: dict[str, Maker] = {
    "exact": lambda e, _r, _s: e.name,
    **_SINGLE,
    "combination": combination,
}


def entry_parity(entry: ListEntry) -> int:
    return zlib.crc32(f"{entry.source}/{entry.entry_id}".encode()) % 2


def split_entries(entries: Sequence[ListEntry], split: Split) -> list[ListEntry]:
    """The entries a split draws from, in list order: those of its parity, less every entry
    an earlier split of ``split.disjoint_from`` used (a positive's entry or a hard negative's
    source) and every entry sharing a normalised name with one of those."""
    used: set[tuple[str, str]] = set()
    for name in split.disjoint_from:
        earlier = SPLITS[name]
        for row in positives(entries, earlier) + negatives(entries, earlier):
            if row.label == "pos":
                used.add((row.source, row.entry_id))
            elif row.made_from:
                source, _slash, entry_id = row.made_from.partition("/")
                used.add((source, entry_id))
    used_names = {
        normalize_name(n).core for e in entries if (e.source, e.entry_id) in used for n in e.names
    }
    return [
        e
        for e in entries
        if (split.parity is None or entry_parity(e) == split.parity)
        and (e.source, e.entry_id) not in used
        and not any(normalize_name(n).core in used_names for n in e.names)
    ]


def _signature(name: str) -> tuple[str, ...]:
    return tuple(sorted(normalize_name(name).core.split()))


@dataclass(frozen=True)
class Row:
    label: str  # "pos" or "neg"
    kind: str
    query: str
    source: str = ""
    entry_id: str = ""
    made_from: str = ""  # a hard negative's entry (source/entry_id); not written


def positives(entries: Sequence[ListEntry], split: Split) -> list[Row]:
    rng = random.Random(split.seed)
    pool = [
        e for e in split_entries(entries, split)
        if e.kind not in (PartyKind.VESSEL, PartyKind.AIRCRAFT)
    ]  # fmt: skip
    rows: list[Row] = []
    for kind, make in POSITIVE_KINDS.items():
        order = pool[:]
        rng.shuffle(order)
        made = 0
        for entry in order:
            query = make(entry, rng, split)
            if query is None or not normalize_name(query).core:
                continue
            query = re.sub(r"\s+", " ", query).strip()
            rows.append(Row("pos", kind, query, entry.source, entry.entry_id))
            made += 1
            if made == POSITIVES_PER_KIND:
                break
    return rows


def negatives(entries: Sequence[ListEntry], split: Split) -> list[Row]:
    from faker import Faker  # only to (re)generate the set

    rng = random.Random(split.seed + 1)
    pool = split_entries(entries, split)
    listed = {_signature(n) for e in entries for n in e.names}
    rows: list[Row] = []
    seen: set[str] = set()

    def add(kind: str, name: str, entry: ListEntry | None = None) -> bool:
        name = re.sub(r"\s+", " ", name).strip()
        if not name or name in seen or _signature(name) in listed:
            return False
        seen.add(name)
        made_from = f"{entry.source}/{entry.entry_id}" if entry else ""
        rows.append(Row("neg", kind, name, made_from=made_from))
        return True

    for line in (DATA / split.companies_file).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            add("company_real", line.strip())
    people = Faker(list(split.person_locales))
    people.seed_instance(split.seed)
    made = 0
    while made < NEGATIVE_COUNTS["person_faker"]:
        one = people[rng.choice(split.person_locales)]  # both names from one culture
        made += add("person_faker", f"{one.first_name()} {one.last_name()}")
    firms = Faker(list(split.company_locales))
    firms.seed_instance(split.seed + 2)
    made = 0
    while made < NEGATIVE_COUNTS["company_faker"]:
        made += add("company_faker", firms.company())
    orgs = [e for e in pool if _is_org(e) and len(_core_words(e.name)) >= 3]
    rng.shuffle(orgs)
    made = 0
    for entry in orgs:
        if made == NEGATIVE_COUNTS["hard_negative_org"]:
            break
        words = entry.name.replace(",", "").split()
        keep = max(1, len(words) // 2 - (1 if len(words) >= 5 else 0))
        extra = rng.sample(split.lookalike_words, rng.choice((1, 2)))
        form = rng.choice(("", "", *(f.title() for f in _LEGAL_FORMS)))
        made += add("hard_negative_org", " ".join([*words[:keep], *extra, form]).title(), entry)
    persons = [e for e in pool if _is_person(e)]
    rng.shuffle(persons)
    made = 0
    for entry in persons:
        if made == NEGATIVE_COUNTS["hard_negative_person"]:
            break
        given, _family = _person_parts(entry.name)
        if not given:
            continue
        other = people[rng.choice(split.person_locales)].last_name()
        if not other.isascii():
            continue
        made += add("hard_negative_person", " ".join([*given, other]).title(), entry)
    return rows


def write(rows: Sequence[Row], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("label\tkind\tquery\tsource\tentry_id\n")
        for r in rows:
            out.write(f"{r.label}\t{r.kind}\t{r.query}\t{r.source}\t{r.entry_id}\n")


def read(path: Path) -> list[Row]:
    rows: list[Row] = []
    with path.open(encoding="utf-8") as src:
        next(src)
        for line in src:
            label, kind, query, source, entry_id = line.rstrip("\n").split("\t")
            rows.append(Row(label, kind, query, source, entry_id))
    return rows


def shipped_entries() -> list[ListEntry]:
    """Every entry of the lists gpulease ships: OFAC SDN (with aliases), CSL samples, BIS DPL."""
    from _common import LISTS
    from gpulease.compliance.lists import load

    assert LISTS is not None
    entries: list[ListEntry] = []
    for path, fmt in [
        (LISTS / "ofac-sdn", "ofac-sdn"),
        (LISTS / "csl-legacy-sample.csv.xz", "csl-csv"),
        (LISTS / "csl-consolidated-sample.csv.xz", "csl-csv"),
        (LISTS / "bis-denied-persons.tsv.xz", "bis-dpl"),
    ]:
        entries += load(path, fmt).entries
    return entries


def split_path(split: str) -> Path:
    return DATA / f"eval_{split}.tsv"
