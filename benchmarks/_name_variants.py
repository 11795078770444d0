"""Name variants of real list entries, and unrelated look-alikes, for the screening benchmarks.

Every generator takes a ``random.Random`` (seeded by the caller) and returns ``None`` when the
variant kind does not apply to the name (no legal form to change, too short to truncate...).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from gpulease.compliance.model import ListEntry, PartyKind
from gpulease.compliance.names import LEGAL_FORM_TOKENS, normalize_name

_LEGAL_SWAPS: tuple[tuple[str, str], ...] = (
    (r"\bCO\.?,? LTD\.?", "COMPANY LIMITED"),
    (r"\bCOMPANY LIMITED\b", "CO., LTD."),
    (r"\bLIMITED\b", "LTD"),
    (r"\bLTD\b\.?", "LIMITED"),
    (r"\bL\.?L\.?C\.?", "LIMITED LIABILITY COMPANY"),
    (r"\bCORPORATION\b", "CORP."),
    (r"\bCORP\b\.?", "CORPORATION"),
    (r"\bINC\b\.?", "INCORPORATED"),
    (r"\bCOMPANY\b", "CO."),
    (r"\bS\.A\.(?!S)", "SOCIEDAD ANONIMA"),
    (r"\bGMBH\b", "G.M.B.H."),
    (r"\bJSC\b", "JOINT STOCK COMPANY"),
    (r"\bOOO\b", "LLC"),
)
_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("INTERNATIONAL", "INTL"),
    ("TECHNOLOGY", "TECH"),
    ("TECHNOLOGIES", "TECH"),
    ("INDUSTRIES", "IND."),
    ("INDUSTRIAL", "IND."),
    ("COMPANY", "CO"),
    ("CORPORATION", "CORP"),
    ("MANUFACTURING", "MFG"),
    ("NATIONAL", "NATL"),
    ("UNIVERSITY", "UNIV."),
    ("INSTITUTE", "INST."),
    ("SERVICES", "SVCS"),
    ("ASSOCIATION", "ASSN"),
    ("LIMITED", "LTD"),
    ("COMMUNICATIONS", "COMMS"),
)
_ADDED_FORMS = (" LTD", " LLC", " CO., LTD.", " GMBH", " S.A.", " INC.")

#: Chinese and Russian names of listed parties, written from public knowledge, with the name
#: the list gives them (the list in brackets). Translations of brand names (COSCO) are
#: expected to be missed: transliteration cannot find them.
TRANSLITERATIONS: tuple[tuple[str, str], ...] = (
    ("珠海振戎有限公司", "ZHUHAI ZHENRONG COMPANY LIMITED"),  # OFAC SDN
    ("中国精密机械进出口总公司", "CHINA NATIONAL PRECISION MACHINERY IMPORT/EXPORT CORPORATION"),
    ("大连正华贸易有限公司", "DALIAN ZHENGHUA MAOYI YOUXIAN GONGSI"),  # OFAC SDN
    ("中远海运油运（大连）海员船舶管理有限公司",
     "COSCO SHIPPING TANKER (DALIAN) SEAMAN AND SHIP MANAGEMENT CO., LTD."),  # OFAC SDN
    ("贵安新区华为投资有限公司",
     "Gui\x92an New District Huawei Investment Co., Ltd., Guiyang, Guizhou"),  # CSL EL
    ("广东工业大学", "Guangdong University of Technology"),  # CSL EL
    ("中国电子科技集团公司第十三研究所",
     "China Electronics Technology Group Corporation 13th Research Institute (CETC 13)"),
    ("Концерн Калашников", "KALASHNIKOV CONCERN"),  # OFAC SDN
    ("Банк Россия", "BANK ROSSIYA"),  # OFAC SDN
    ("ООО Газпром бурение", "GAZPROM BURENIE, OOO"),  # OFAC SDN
    ("Акционерное общество Технодинамика", "AKTSIONERNOE OBSHCHESTVO TEKHNODINAMIKA"),  # CSL SSI
    ("Акционерное общество Московский машиностроительный экспериментальный завод - "
     "композиционные технологии",
     "AKTSIONERNOE OBSHCHESTVO MOSKOVSKI MASHINOSTROITELNY EKSPERIMENTALNY ZAVOD - "
     "KOMPOZITSIONNYE TEKHNOLOGII"),  # CSL SSI
)  # fmt: skip

#: Real-sounding parties that are not on the lists (some real, unsanctioned companies and
#: invented names), several of them close to listed names on purpose.
UNRELATED: tuple[str, ...] = (
    "Banco Nacional de Costa Rica", "National Bank of Canada", "Bank of Cyprus Public Company",
    "China Merchants Bank Co., Ltd.", "China Mobile Communications Group", "Toyota Motor Corp",
    "Siemens Healthineers AG", "Hebei Iron and Steel Group", "Shanghai Pudong Development Bank",
    "Dalian Wanda Commercial Management", "Shenzhen Mindray Bio-Medical Electronics",
    "Zhuhai Gree Electric Appliances", "Beijing Capital International Airport Co",
    "Mahindra Aerospace Pvt Ltd", "Emirates Airline", "Qatar Airways Group",
    "Turkish Airlines Inc", "Caribbean Airlines Limited", "Havana Cigar Lounge Miami",
    "Rosa Khutor LLC", "Volga Riverside Hotels", "Baltic Ferry Services Pte",
    "Kalahari Minerals plc", "Isfahan Carpet Gallery GmbH", "Islamic Relief Worldwide",
    "Pakistan International Airlines", "Al Rajhi Banking and Investment", "Dubai Islamic Bank",
    "Lebanese Canadian Dental Clinic", "Korea Electric Power Corporation",
    "Busan Noodle House Jakarta", "Syria Relief Network", "Venezuelan American Chamber",
    "Minsk Dental Clinic GmbH", "Mandalay Tea Company Ltd", "Yangon Bakery House",
    "Hong Kong Broadband Network", "Indosat Ooredoo Hutchison",
    "Singapore Technologies Engineering",
    "Malaysia Airports Holdings", "Thai Beverage Public Company", "Reliance Industries Limited",
    "Tata Consultancy Services", "Armenian Copper Programme", "Istanbul Technical University",
    "Northern Lights Compute LLC", "Blue Harbor Analytics Inc", "Meridian Cloud Partners",
    "Jakarta Data Center Services", "Granite Peak Logistics", "Atlas Freight Forwarding Ltd",
    "Golden Sun Hotel Management", "Global Unity Sports Club", "Sun Moon Star Kindergarten",
    "Saint Logistics Consulting AB", "North Star Trading Cooperative", "Precision Machinery Co",
    "Huawen Food Co., Ltd.", "Zhenro Properties Group", "Neftchi Baku Football Club",
    "Hassan Ali", "Maria Gonzalez", "Li Wei", "Kim Min-jun", "Mohammed Abdullah",
    "Ivan Petrov", "Wang Fang", "Ahmed Hassan Khan", "Olga Ivanova", "Juan Carlos Rodriguez",
)  # fmt: skip

#: Words for invented company names (speed benchmark) and for look-alikes by word swap.
WORDS: tuple[str, ...] = (
    "Atlas", "Summit", "Pacific", "Harbor", "Granite", "Meridian", "Aurora", "Cedar", "Falcon",
    "Orion", "Lotus", "Jade", "Crescent", "Sapphire", "Evergreen", "Horizon", "Keystone",
    "Pioneer", "Silverline", "Vertex", "Northwind", "Bluewater", "Redwood", "Sunrise", "Tiger",
    "Phoenix", "Liberty", "Coastal", "Everest", "Delta", "Nova", "Zenith", "Orchid", "Maple",
)  # fmt: skip
PLACES: tuple[str, ...] = (
    "Jakarta", "Surabaya", "Bandung", "Singapore", "Penang", "Bangkok", "Manila", "Osaka",
    "Busan", "Taipei", "Hanoi", "Perth", "Auckland", "Lagos", "Nairobi", "Lima", "Quito",
    "Lisbon", "Porto", "Lyon", "Munich", "Oslo", "Denver", "Austin", "Calgary", "Halifax",
)  # fmt: skip
TRADES: tuple[str, ...] = (
    "Logistics", "Analytics", "Compute", "Foods", "Textiles", "Pharma", "Robotics", "Media",
    "Energy", "Mining", "Shipping", "Software", "Consulting", "Hospitality", "Biotech",
    "Semiconductors", "Cloud Services", "Data Centers", "Agritech", "Fintech", "Packaging",
)  # fmt: skip
FORMS: tuple[str, ...] = ("Ltd", "LLC", "Inc.", "GmbH", "Pte Ltd", "Co., Ltd.", "S.A.", "PT", "")


def _words(name: str) -> list[str]:
    return name.split()


def word_order(entry: ListEntry, rng: random.Random) -> str | None:
    name = entry.name
    if entry.kind is PartyKind.PERSON and "," in name:
        last, first = name.split(",", 1)
        return f"{first.strip()} {last.strip()}"
    words = _words(name.replace(",", ""))
    if len(words) < 2:
        return None
    for _ in range(10):
        shuffled = words[:]
        rng.shuffle(shuffled)
        if shuffled != words:
            return " ".join(shuffled)
    return None


def legal_form(entry: ListEntry, rng: random.Random) -> str | None:
    if entry.kind is PartyKind.PERSON:
        return None
    upper = entry.name.upper()
    swaps = [(p, r) for p, r in _LEGAL_SWAPS if re.search(p, upper)]
    if swaps:
        pattern, repl = rng.choice(swaps)
        return re.sub(pattern, repl, upper, count=1)
    return upper + rng.choice(_ADDED_FORMS)


def abbreviation(entry: ListEntry, rng: random.Random) -> str | None:
    upper = entry.name.upper()
    found = [(w, a) for w, a in _ABBREVIATIONS if re.search(rf"\b{w}\b", upper)]
    if not found:
        return None
    word, abbr = rng.choice(found)
    return re.sub(rf"\b{word}\b", abbr, upper)


def typo(entry: ListEntry, rng: random.Random) -> str | None:
    words = _words(entry.name)
    spots = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not spots:
        return None
    i = rng.choice(spots)
    w = words[i]
    pos = rng.randrange(1, len(w) - 1)
    op = rng.choice(("substitute", "delete", "transpose", "insert"))
    letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
    letter = letter.upper() if w.isupper() else letter
    if op == "substitute":
        w = w[:pos] + letter + w[pos + 1 :]
    elif op == "delete":
        w = w[:pos] + w[pos + 1 :]
    elif op == "transpose":
        w = w[:pos] + w[pos + 1] + w[pos] + w[pos + 2 :]
    else:
        w = w[:pos] + letter + w[pos:]
    words[i] = w
    return " ".join(words)


def truncation(entry: ListEntry, rng: random.Random) -> str | None:
    words = _words(entry.name)
    core = [w for w in words if normalize_name(w).text not in LEGAL_FORM_TOKENS]
    if len(core) < 4:
        return None  # dropping a word of a 2-3 word name makes another name
    return " ".join(words[:-1]).rstrip(",")


def swap_lookalike(entry: ListEntry, rng: random.Random) -> str | None:
    """A look-alike of a listed name: its longest word replaced by an unrelated one."""
    words = _words(entry.name)
    if len(words) < 2 or entry.kind is PartyKind.PERSON:
        return None
    i = max(range(len(words)), key=lambda k: len(words[k]))
    return " ".join([*words[:i], rng.choice(WORDS).upper(), *words[i + 1 :]])


def invented(rng: random.Random) -> str:
    """A real-sounding company name made from common words (not on any list)."""
    parts = [rng.choice(PLACES), rng.choice(WORDS), rng.choice(TRADES), rng.choice(FORMS)]
    if rng.random() < 0.4:
        parts.pop(0)
    return " ".join(p for p in parts if p)


VARIANTS: dict[str, Callable[[ListEntry, random.Random], str | None]] = {
    "exact": lambda e, _rng: e.name,
    "word_order": word_order,
    "legal_form": legal_form,
    "abbreviation": abbreviation,
    "typo": typo,
    "truncation": truncation,
}
