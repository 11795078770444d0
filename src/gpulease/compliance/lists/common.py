"""What every list importer shares: the format error, decoding, countries, multi-values.

A list file is accepted whole or refused whole: any defect raises :class:`ListFormatError`
naming the file, the line (1-based; for JSON documents the record index when no line is
known) and the reason, so an operator can fix the file and import it again. JSON is read
with :func:`load_json`, which refuses a document nested deeper than :data:`JSON_MAX_DEPTH`
(real lists nest a few levels) before ``json`` recurses into it, so a hostile file is an
``invalid_list`` like any other defect, never a ``RecursionError``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from gpulease.domain.errors import InvalidRequest
from gpulease.domain.json_shape import json_problem

__all__ = [
    "ListFormatError",
    "decode",
    "dedupe",
    "is_country_code",
    "is_identifier_type",
    "load_json",
    "normalize_country",
    "split_multi",
    "stable_id",
]


class ListFormatError(InvalidRequest):
    """A screening-list file that cannot be imported (nothing of it is imported)."""

    code = "invalid_list"

    def __init__(self, file: str, line: int | None, reason: str, **details: object) -> None:
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(f"{where}: {reason}", file=file, line=line, reason=reason, **details)
        self.file = file
        self.line = line
        self.reason = reason


def decode(data: bytes, *, file: str, fallback: str | None = None) -> str:
    """UTF-8 text (a BOM is dropped); ``fallback`` (e.g. ``cp1252``) for legacy files."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        error = exc
    if fallback is not None:
        try:
            return data.decode(fallback)
        except UnicodeDecodeError as exc:
            error = exc
    line = data.count(b"\n", 0, error.start) + 1
    encodings = "UTF-8" + (f" or {fallback}" if fallback else "")
    raise ListFormatError(file, line, f"not {encodings} text (byte {error.start})")


JSON_MAX_DEPTH = 32  # arrays and objects within one another
JSON_MAX_DIGITS = 100  # of a number


def load_json(text: str, *, file: str, line: int | None = None) -> Any:
    """The JSON value of ``text`` (a document, or one line of a JSON-lines file: ``line``).

    Refused as :class:`ListFormatError` when it is not JSON, nests deeper than
    :data:`JSON_MAX_DEPTH` or writes a number of more than :data:`JSON_MAX_DIGITS` digits;
    the error names the line and the path to the place."""
    problem = json_problem(text, max_depth=JSON_MAX_DEPTH, max_digits=JSON_MAX_DIGITS)
    if problem is not None:
        where = line
        if where is None and problem.offset is not None:
            where = text.count("\n", 0, problem.offset) + 1
        place = f" at {problem.field}" if problem.path else ""
        raise ListFormatError(file, where, f"{problem.reason}{place}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = line if line is not None else exc.lineno
        raise ListFormatError(file, at, f"invalid JSON: {exc.msg}") from exc
    except (RecursionError, ValueError) as exc:  # belt and braces: the scan prevents these
        raise ListFormatError(file, line, f"invalid JSON: {exc}") from exc


_COUNTRIES: dict[str, str] = {
    "afghanistan": "AF", "albania": "AL", "algeria": "DZ", "angola": "AO",
    "argentina": "AR", "armenia": "AM", "aruba": "AW", "australia": "AU", "austria": "AT",
    "azerbaijan": "AZ", "bahamas": "BS", "bahamas, the": "BS", "the bahamas": "BS",
    "bahrain": "BH", "bangladesh": "BD", "barbados": "BB", "belarus": "BY", "belgium": "BE",
    "belize": "BZ", "benin": "BJ", "bolivia": "BO", "bosnia and herzegovina": "BA",
    "brazil": "BR", "brunei": "BN", "bulgaria": "BG", "burkina faso": "BF", "burma": "MM",
    "myanmar": "MM", "burundi": "BI", "cambodia": "KH", "canada": "CA",
    "cayman islands": "KY", "central african republic": "CF", "chile": "CL", "china": "CN",
    "people's republic of china": "CN", "prc": "CN", "colombia": "CO", "comoros": "KM",
    "congo, democratic republic of the": "CD", "democratic republic of the congo": "CD",
    "congo, republic of the": "CG", "republic of the congo": "CG", "costa rica": "CR",
    "cote d ivoire": "CI", "cote d'ivoire": "CI", "côte d'ivoire": "CI", "croatia": "HR",
    "cuba": "CU", "cyprus": "CY", "czech republic": "CZ", "czechia": "CZ", "denmark": "DK",
    "dominica": "DM", "dominican republic": "DO", "ecuador": "EC", "egypt": "EG",
    "el salvador": "SV", "equatorial guinea": "GQ", "eritrea": "ER", "ethiopia": "ET",
    "finland": "FI", "france": "FR", "georgia": "GE", "germany": "DE", "ghana": "GH",
    "gibraltar": "GI", "greece": "GR", "guatemala": "GT", "guyana": "GY", "haiti": "HT",
    "honduras": "HN", "hong kong": "HK", "india": "IN", "indonesia": "ID", "iran": "IR",
    "iran, islamic republic of": "IR", "iraq": "IQ", "ireland": "IE", "israel": "IL",
    "italy": "IT", "jamaica": "JM", "japan": "JP", "jersey": "JE", "jordan": "JO",
    "kazakhstan": "KZ", "kenya": "KE", "korea, north": "KP", "north korea": "KP",
    "democratic people's republic of korea": "KP", "dprk": "KP", "korea, south": "KR",
    "south korea": "KR", "republic of korea": "KR", "korea": "KR", "kosovo": "XK",
    "kuwait": "KW", "kyrgyzstan": "KG", "laos": "LA", "latvia": "LV", "lebanon": "LB",
    "liberia": "LR", "libya": "LY", "liechtenstein": "LI", "lithuania": "LT",
    "luxembourg": "LU", "macau": "MO", "macao": "MO", "malaysia": "MY", "maldives": "MV",
    "mali": "ML", "malta": "MT", "marshall islands": "MH", "mauritania": "MR",
    "mexico": "MX", "moldova": "MD", "mongolia": "MN", "montenegro": "ME", "morocco": "MA",
    "mozambique": "MZ", "namibia": "NA", "netherlands": "NL", "the netherlands": "NL",
    "netherlands antilles": "AN", "new zealand": "NZ", "nicaragua": "NI", "niger": "NE",
    "nigeria": "NG", "norway": "NO", "oman": "OM", "pakistan": "PK", "palau": "PW",
    "palestinian": "PS", "palestine": "PS", "west bank": "PS", "region: gaza": "PS",
    "panama": "PA", "paraguay": "PY", "peru": "PE", "philippines": "PH", "poland": "PL",
    "portugal": "PT", "qatar": "QA", "romania": "RO", "russia": "RU",
    "russian federation": "RU", "rwanda": "RW", "saint kitts and nevis": "KN",
    "saint vincent and the grenadines": "VC", "samoa": "WS", "saudi arabia": "SA",
    "senegal": "SN", "serbia": "RS", "seychelles": "SC", "sierra leone": "SL",
    "singapore": "SG", "slovakia": "SK", "slovenia": "SI", "somalia": "SO",
    "south africa": "ZA", "south sudan": "SS", "spain": "ES", "sri lanka": "LK",
    "sudan": "SD", "sweden": "SE", "switzerland": "CH", "syria": "SY",
    "syrian arab republic": "SY", "taiwan": "TW", "tajikistan": "TJ", "tanzania": "TZ",
    "thailand": "TH", "the gambia": "GM", "gambia": "GM", "trinidad and tobago": "TT",
    "tunisia": "TN", "turkey": "TR", "turkiye": "TR", "türkiye": "TR",
    "turkmenistan": "TM", "uganda": "UG", "ukraine": "UA", "region: crimea": "UA",
    "united arab emirates": "AE", "uae": "AE", "u.a.e.": "AE", "united kingdom": "GB",
    "uk": "GB", "great britain": "GB", "england": "GB", "united states": "US",
    "united states of america": "US", "usa": "US", "u.s.a.": "US", "u.s.": "US",
    "uruguay": "UY", "uzbekistan": "UZ", "vanuatu": "VU", "venezuela": "VE",
    "vietnam": "VN", "viet nam": "VN", "virgin islands, british": "VG",
    "british virgin islands": "VG", "yemen": "YE", "zimbabwe": "ZW", "canada ": "CA",
    "estonia": "EE", "hungary": "HU", "iceland": "IS", "new caledonia": "NC",
    "korea, democratic people's republic of": "KP", "guinea": "GN", "guinea-bissau": "GW",
    "cabo verde": "CV", "chad": "TD", "togo": "TG", "cameroon": "CM", "gabon": "GA",
    "macedonia, the former yugoslav republic of": "MK", "north macedonia": "MK",
    "st. vincent and the grenadines": "VC", "st. kitts & nevis": "KN", "man, isle of": "IM",
    "korea, republic of": "KR", "korea south": "KR", "korea north": "KP",
}  # fmt: skip
_ALPHA2 = re.compile(r"^[A-Z]{2}$")


def normalize_country(value: str) -> str:
    """ISO 3166 alpha-2 for a country name or code we know; otherwise the text as given.

    ``"China"`` -> ``"CN"``, ``"Korea, North"`` -> ``"KP"``, ``"ru"`` -> ``"RU"``; ``""``,
    ``"-0-"`` and ``"undetermined"`` -> ``""``.
    """
    text = value.strip()
    if not text or text == "-0-" or text.casefold() == "undetermined":
        return ""
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return _COUNTRIES.get(text.casefold(), text)


def is_country_code(value: str) -> bool:
    return bool(_ALPHA2.match(value))


def split_multi(value: str, sep: str = "; ") -> tuple[str, ...]:
    """Split a multi-valued field, dropping empties and a leading ``and `` (CSL artefact)."""
    out: list[str] = []
    for part in value.split(sep.strip()):
        item = part.strip()
        if item.casefold().startswith("and "):
            item = item[4:].strip()
        if item:
            out.append(item)
    return tuple(out)


def stable_id(*parts: str) -> str:
    """A short id derived from an entry's content, for sources that publish none."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]


def dedupe(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Values in first-seen order without repeats or empties."""
    return tuple(dict.fromkeys(v for v in values if v))


_IDENTIFIER_TYPE = re.compile(
    r"passport|\bid\b|number|\bno\b|registration|tax|\blei\b|swift|\bbic\b|\bimo\b|mmsi"
    r"|\binn\b|ogrn|kpp|vat|cedula|\bnit\b|\brfc\b|curp|\bruc\b|d-u-n-s|duns|identification"
    r"|license|licence|\bcuit\b|\bcode\b",
    re.IGNORECASE,
)
_NOT_IDENTIFIER = re.compile(r"sanction|directive|gender|e-?mail|website|phone|prohibited", re.I)


def is_identifier_type(kind: str) -> bool:
    """Whether a list's id type names an identifier (not a remark such as ``Gender``)."""
    return bool(_IDENTIFIER_TYPE.search(kind)) and not _NOT_IDENTIFIER.search(kind)
