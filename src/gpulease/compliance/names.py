"""Name normalisation for screening: one canonical Latin form per name, whatever its script.

``normalize_name(name)`` returns a :class:`NormalizedName` with

* ``text``: the canonical form, lower-case ASCII words separated by single spaces, legal
  forms reduced to canonical tokens (``"Co., Ltd."``, ``"Company Limited"`` and ``有限公司``
  all become ``"co ltd"``);
* ``core``: ``text`` without the legal-form tokens and filler words (``the``, ``and``): the
  part of a name that identifies the party, which the matcher compares;
* ``tokens``: the set of ``core``'s words; ``compact``: ``core`` without spaces (so that
  ``"Sino Bright"`` and ``"Sinobright"`` compare equal).

Steps, in order: Unicode NFKC (full-width letters become ASCII), removal of the CSL's
``"; and any successor, sub-unit, or subsidiary thereof"`` tail, Chinese text (Han runs) via
a small glossary of legal forms, business words and major places and otherwise pinyin
(``pypinyin``, which reads polyphones from phrases: 重庆 is *chongqing*), one token per run of
unglossed characters (华为 -> ``huawei``, as companies spell their names), every other script
via ``anyascii`` (Cyrillic, Greek, Arabic, Hangul...), case folding, dots and apostrophes
dropped (``S.A.`` -> ``sa``, ``L.L.C.`` -> ``llc``) except a dot between words, which
separates them (``200G.PSA.HOLDINGS`` -> ``200g psa holdings``), other punctuation to spaces,
a word spelt out letter by letter joined (``H O L D I N G S`` -> ``holdings``, four letters
or more: a listed name must not pass screening written that way), a legal form run together
with a word split off (``200gpsaholdingsllc`` -> ``200gpsa holdings llc``, ``ooogazprom`` ->
``ooo gazprom``; only forms that end or begin almost no other word, and only when four
characters or more remain), then multi-word legal forms and abbreviations (``intl`` ->
``international``) to canonical tokens.

Pure and deterministic; results are cached (``functools.lru_cache``): the same name always
normalises to the same value. ``normalize_name`` is idempotent on ``text``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from anyascii import anyascii as _anyascii

__all__ = [
    "LEGAL_FORM_TOKENS",
    "SPELLINGS",
    "NormalizedName",
    "normalize_identifier",
    "normalize_name",
    "skeleton",
]


@dataclass(frozen=True, slots=True)
class NormalizedName:
    original: str
    text: str
    core: str
    tokens: frozenset[str]
    compact: str


# Chinese glossary: legal forms first (canonical Latin tokens), then words that companies
# translate rather than transliterate, then places that stand apart from the brand. Matched
# longest first inside each run of Han characters.
_HAN_GLOSSARY: dict[str, str] = {
    "股份有限公司": "co ltd",
    "有限责任公司": "co ltd",
    "有限公司": "co ltd",
    "集团有限公司": "group co ltd",
    "集团公司": "group corp",
    "集团": "group",
    "控股": "holdings",
    "分公司": "branch",
    "公司": "co",
    "股份": "",
    "有限": "ltd",
    "技术": "technology",
    "科技": "technology",
    "微电子": "microelectronics",
    "电子": "electronics",
    "通讯": "communication",
    "通信": "communication",
    "国际": "international",
    "贸易": "trading",
    "商贸": "trading",
    "进出口": "import export",
    "研究所": "research institute",
    "研究院": "research institute",
    "工业大学": "university technology",  # conventionally "University of Technology"
    "理工大学": "university technology",
    "科技大学": "university science technology",
    "大学": "university",
    "工业": "industry",
    "实业": "industrial",
    "设备": "equipment",
    "航空": "aviation",
    "航天": "aerospace",
    "半导体": "semiconductor",
    "信息": "information",
    "网络": "network",
    "软件": "software",
    "智能": "intelligent",
    "光电": "optoelectronics",
    "材料": "materials",
    "能源": "energy",
    "投资": "investment",
    "发展": "development",
    "银行": "bank",
    "物流": "logistics",
    "航运": "shipping",
    "船舶": "ship",
    "海员": "seaman",
    "管理": "management",
    "精密": "precision",
    "总公司": "corp",
    "工贸": "industry trading",
    "石油": "petroleum",
    "钢铁": "steel",
    "船务": "shipping",
    "海运": "shipping",
    "矿业": "mining",
    "医药": "pharmaceutical",
    "汽车": "automobile",
    "光学": "optics",
    "仪器": "instruments",
    "系统": "systems",
    "工程": "engineering",
    "建设": "construction",
    "电力": "power",
    "化工": "chemical",
    "机械": "machinery",
    "制造": "manufacturing",
    "新区": "new district",
    "省": "province",
    "中国": "china",
    "香港": "hong kong",
    "北京": "beijing",
    "上海": "shanghai",
    "深圳": "shenzhen",
    "广州": "guangzhou",
    "天津": "tianjin",
    "重庆": "chongqing",
    "杭州": "hangzhou",
    "武汉": "wuhan",
    "南京": "nanjing",
    "成都": "chengdu",
    "西安": "xian",
    "苏州": "suzhou",
    "厦门": "xiamen",
    "大连": "dalian",
    "青岛": "qingdao",
    "长沙": "changsha",
    "合肥": "hefei",
    "贵阳": "guiyang",
    "珠海": "zhuhai",
    "东莞": "dongguan",
}
_HAN_MAX = max(len(k) for k in _HAN_GLOSSARY)
_HAN_DIGITS = {ch: i for i, ch in enumerate("零一二三四五六七八九")}
_HAN_ORDINAL = re.compile(r"第([零一二三四五六七八九十百]+)")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

# Multi-word phrases, written in canonical words (after _WORDS: "company" is already "co"),
# reduced to canonical tokens.
_PHRASES: tuple[tuple[str, str], ...] = (
    ("obshchestvo s ogranichennoy otvetstvennostyu", "ooo"),
    ("obshchestvo s ogranichennoi otvetstvennostiu", "ooo"),
    ("publichnoe aktsionernoe obshchestvo", "pao"),
    ("otkrytoe aktsionernoe obshchestvo", "oao"),
    ("zakrytoe aktsionernoe obshchestvo", "zao"),
    ("aktsionernoe obshchestvo", "ao"),
    ("public joint stock co", "pjsc"),
    ("open joint stock co", "ojsc"),
    ("closed joint stock co", "cjsc"),
    ("joint stock co", "jsc"),
    ("ltd liability co", "llc"),
    ("ltd liability partnership", "llp"),
    ("public ltd co", "plc"),
    ("private ltd", "pvt ltd"),
    ("gesellschaft mit beschrankter haftung", "gmbh"),
    ("sociedad anonima", "sa"),
    ("societe anonyme", "sa"),
    ("import and export", "import export"),
    ("imp and exp", "import export"),
    ("imp exp", "import export"),
    # pinyin of Chinese legal forms, as some lists spell them
    ("gufen youxian gongsi", "co ltd"),
    ("youxian zeren gongsi", "co ltd"),
    ("youxian gongsi", "co ltd"),
)
_PHRASE_RE = re.compile(r"\b(" + "|".join(re.escape(p) for p, _ in _PHRASES) + r")\b")
_PHRASE_MAP = dict(_PHRASES)

# One-word variants to a canonical spelling.
_WORDS: dict[str, str] = {
    "limited": "ltd",
    "company": "co",
    "corporation": "corp",
    "incorporated": "inc",
    "holding": "holdings",
    "grp": "group",
    "aktiengesellschaft": "ag",
    "intl": "international",
    "int": "international",
    "tech": "technology",
    "techn": "technology",
    "technologies": "technology",
    "technological": "technology",
    "electronic": "electronics",
    "industries": "industry",
    "industrial": "industry",
    "ind": "industry",
    "mfg": "manufacturing",
    "svcs": "services",
    "svc": "services",
    "service": "services",
    "natl": "national",
    "univ": "university",
    "inst": "institute",
    "assn": "association",
    "communications": "communication",
    "comm": "communication",
    "comms": "communication",
    "trade": "trading",
    "sys": "systems",
    "system": "systems",
    "mgmt": "management",
    "dev": "development",
    "eng": "engineering",
    "bros": "brothers",
    "gongsi": "co",
    "zonggongsi": "corp",
    "jituan": "group",
    "maoyi": "trading",
    "jinchukou": "import export",
    "zhongguo": "china",
}

#: Canonical one-word spellings -> the longer spellings that normalise to them (``technology``
#: -> ``technologies``, ``technological``...): a misspelt long form (``Technolgies``) is not
#: canonicalised, so the matcher compares it with these.
SPELLINGS: dict[str, tuple[str, ...]] = {}
for _variant, _canonical in _WORDS.items():
    if len(_variant) >= 5 and " " not in _canonical:
        SPELLINGS[_canonical] = (*SPELLINGS.get(_canonical, ()), _variant)

#: Canonical tokens of legal forms: kept in ``text``, dropped from ``core``.
LEGAL_FORM_TOKENS: frozenset[str] = frozenset(
    {
        "ltd", "co", "corp", "inc", "llc", "llp", "lp", "plc", "pvt", "pte", "gmbh", "ag",
        "kg", "sa", "sarl", "sas", "srl", "spa", "bv", "nv", "ab", "as", "oy", "jsc", "ojsc",
        "cjsc", "pjsc", "ooo", "oao", "zao", "pao", "ao", "tov", "sdn", "bhd", "tbk", "pt",
        "fze", "fzco", "fzc", "lc", "group", "holdings", "branch",
    }
)  # fmt: skip
# Legal forms written in another script letter by letter come back with other letters
# ("gmvch", "llk", "kompany"): their skeletons are those of the forms (three letters or more).
_LEGAL_SKELETONS: dict[str, str] = {}

_FILLER: frozenset[str] = frozenset({"the", "and", "of", "der", "de", "la", "le", "el", "al"})

_SUCCESSOR_TAIL = re.compile(r";?\s*and any successor.*$", re.IGNORECASE | re.DOTALL)
_DROP = re.compile(r"['’‘`´.\u0091\u0092]")  # U+0091/2: cp1252 quotes read as Latin-1
# a dot between words is a separator ("200G.PSA.HOLDINGS"), not an abbreviation's ("S.A.")
_DOT_BETWEEN_WORDS = re.compile(r"(?<=[a-z0-9][a-z])\.(?=[a-z])")
# a word written letter by letter ("H O L D I N G S") is one word
_SPACED_LETTERS = re.compile(r"\b[a-z0-9](?: [a-z0-9]\b){3,}")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
# A legal form run together with the name ("200gpsaholdingsllc", "ooogazprom"): split off
# when what remains is at least four characters. Only forms
# that end (or begin) almost no other word: "co" (tesco), "sa" (mimosa), "ag", "pt" never;
# "bancorp" is a word of bank names.
_GLUED_TRAILING = re.compile(
    r"^([a-z0-9]{4,}?)(?<!ban)(holdings|holding|limited|company|corporation|group|llc|ltd|gmbh|llp|"
    r"plc|pjsc|ojsc|cjsc|jsc|corp|bhd|fzco|fze)$"
)
_GLUED_INC = re.compile(r"^([a-z0-9]{4,}?)(inc)$")  # not "zinc"
_GLUED_LEADING = re.compile(r"^(ooo|oao|zao|pao|pjsc|ojsc|cjsc)([a-z0-9]{4,})$")


# Spelling differences that transliteration makes (``kh``/``h``, ``ou``/``u``, ``c``/``k``):
# two words with the same skeleton are the same name written through another script.
_SKELETON_RULES: tuple[tuple[str, str], ...] = (
    ("shch", "sh"), ("sch", "sh"), ("tch", "ch"), ("dzh", "j"), ("zh", "j"), ("tz", "j"),
    ("dj", "j"), ("kh", "h"),
    ("gh", "g"), ("ph", "f"), ("th", "t"), ("dh", "d"), ("ck", "k"), ("ch", "h"), ("ou", "u"),
    ("oy", "u"), ("oo", "u"), ("ee", "i"), ("ij", "i"), ("iy", "i"), ("yi", "i"), ("ey", "i"),
    ("y", "i"), ("j", "i"), ("w", "v"),
    ("c", "k"), ("q", "k"), ("x", "ks"), ("z", "s"), ("e", "i"), ("b", "v"),
)  # fmt: skip


@lru_cache(maxsize=65536)
def skeleton(word: str) -> str:
    """``word`` with transliteration's spelling differences folded, doubled letters single."""
    for _ in range(3):  # until nothing changes: "grooyp" -> "group" -> "grup", as "group"
        before = word
        for old, new in _SKELETON_RULES:
            word = word.replace(old, new)
        word = "".join(ch for k, ch in enumerate(word) if k == 0 or ch != word[k - 1])
        if word == before:
            break
    return word


def _ascii(text: str) -> str:
    return str(_anyascii(text))


@lru_cache(maxsize=4096)
def _pinyin(run: str) -> str:
    from pypinyin import lazy_pinyin  # imported on first Chinese name: its dictionaries are big

    return "".join(lazy_pinyin(run))


def _han_number(numeral: str) -> int:
    """一 -> 1, 十三 -> 13, 二十 -> 20, 一百零五 -> 105 (enough for institute numbers)."""
    total, digit = 0, 0
    for ch in numeral:
        if ch == "百":
            total += (digit or 1) * 100
            digit = 0
        elif ch == "十":
            total += (digit or 1) * 10
            digit = 0
        else:
            digit = _HAN_DIGITS[ch]
    return total + digit


def _ordinal(number: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    if 10 <= number % 100 <= 20:
        suffix = "th"
    return f" {number}{suffix} "


def _han_run(match: re.Match[str]) -> str:
    run = match.group(0)
    out: list[str] = []
    pending: list[str] = []
    i = 0
    while i < len(run):
        for size in range(min(_HAN_MAX, len(run) - i), 0, -1):
            word = _HAN_GLOSSARY.get(run[i : i + size])
            if word is not None:
                if pending:
                    out.append(_pinyin("".join(pending)))
                    pending = []
                out.append(word)
                i += size
                break
        else:
            pending.append(run[i])
            i += 1
    if pending:
        out.append(_pinyin("".join(pending)))
    return " " + " ".join(w for w in out if w) + " "


def _unglue(words: list[str]) -> list[str]:
    """Each word with a legal form run into it split off (``200gpsaholdingsllc`` ->
    ``200gpsa holdings llc``, ``ooogazprom`` -> ``ooo gazprom``); other words unchanged."""
    out: list[str] = []
    for word in words:
        if len(word) < 6 or word in _WORDS or word in LEGAL_FORM_TOKENS:
            out.append(word)
            continue
        tail: list[str] = []
        head = _GLUED_LEADING.match(word)
        if head:
            out.append(head.group(1))
            word = head.group(2)
        for _ in range(3):  # "holdingsllc": two forms
            glued = _GLUED_TRAILING.match(word) or _GLUED_INC.match(word)
            if glued is None:
                break
            word, form = glued.group(1), glued.group(2)
            tail.insert(0, form)
        out.append(word)
        out.extend(tail)
    return out


_LEGAL_SKELETONS.update(
    (skeleton(form), _WORDS.get(form, form))
    for form in (
        "company", "limited", "corporation", "incorporated", "holding", "holdings", "group",
        "llc", "ltd", "gmbh", "inc", "jsc", "ojsc", "pjsc", "cjsc", "llp", "plc", "sarl",
        "corp",
    )
)  # fmt: skip
# "ко. лтд", "κο. κγ": "co" written in another script, before another legal form
_TRANSLITERATED_CO = re.compile(r"\bko (?=(?:ltd|kg|llc|inc|limited|gmbh)\b)")


@lru_cache(maxsize=262144)
def normalize_name(name: str) -> NormalizedName:
    """The canonical form of ``name`` (see the module docstring); never raises."""
    text = unicodedata.normalize("NFKC", name)
    text = _SUCCESSOR_TAIL.sub("", text)
    if _HAN_RUN.search(text):
        text = _HAN_ORDINAL.sub(lambda m: _ordinal(_han_number(m.group(1))), text)
        text = _HAN_RUN.sub(_han_run, text)
    transliterated = not text.isascii()
    if transliterated:
        text = _ascii(text)
    text = text.casefold().replace("&", " and ")
    text = _DOT_BETWEEN_WORDS.sub(" ", text)
    text = _DROP.sub("", text)
    text = _NON_ALNUM.sub(" ", text).strip()
    text = _SPACED_LETTERS.sub(lambda m: m.group().replace(" ", ""), text)
    text = _SUCCESSOR_TAIL.sub("", text)  # again: "& any successor" only reads so now
    words = _unglue(text.split())
    if transliterated:  # "ΓΜΒΧ" -> gmvch, "ЛЛК" -> llk: a legal form letter by letter
        words = [_LEGAL_SKELETONS.get(skeleton(w), w) if len(w) >= 3 else w for w in words]
    text = " ".join(_WORDS.get(w, w) for w in words)
    if transliterated:
        text = _TRANSLITERATED_CO.sub("co ", text)
    text = _PHRASE_RE.sub(lambda m: _PHRASE_MAP[m.group(1)], text)
    words = text.split()
    core_words = [w for w in words if w not in LEGAL_FORM_TOKENS and w not in _FILLER]
    if not core_words:  # a name made only of legal forms ("Group") is still a name
        core_words = words
    core = " ".join(core_words)
    return NormalizedName(
        original=name,
        text=text,
        core=core,
        tokens=frozenset(core_words),
        compact=core.replace(" ", ""),
    )


_ID_JUNK = re.compile(r"[^0-9A-Z]+")


def normalize_identifier(value: str) -> str:
    """An identifier's comparable form: NFKC, upper case, letters and digits only."""
    return _ID_JUNK.sub("", _ascii(unicodedata.normalize("NFKC", value)).upper())
