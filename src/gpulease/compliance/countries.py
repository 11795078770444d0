"""Countries: ISO 3166-1 alpha-2 codes from what people type, and the home-country check.

Vocabulary. A *country* is stored as its ISO 3166-1 alpha-2 code (``IR``). What a user may
type: the alpha-2 or alpha-3 code in any case (``ir``, ``IRN``), the English short, common
or official name (``Iran``, ``Iran, Islamic Republic of``), or one of the usual names ISO
does not list (:data:`ALIASES`: ``Russia``, ``UK``, ``Turkey``, ``Burma``...). The country
data is ``pycountry``'s copy of the Debian iso-codes database, shipped with the package
(nothing is fetched at run time). ``XK`` (Kosovo) is accepted though ISO has not assigned
it: the sanctions lists and the EU and US governments use it.

:func:`country_code` turns input into a code or raises InvalidRequest naming the field and
suggesting the nearest codes (``'Indonsia' is not a country; did you mean ID
(Indonesia)?``). :func:`home_country` is the screening's check of the tenant's own country:
missing (never silently "foreign" without a flag), unknown, or in the policy's high-risk
set, each a reason for an officer's review.

Invariants: pure; every code returned is two upper-case letters of a country pycountry
knows (or ``XK``); the same input always gives the same code.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from zoneinfo import available_timezones

import pycountry
from rapidfuzz import fuzz, process

from gpulease.domain.errors import InvalidRequest

# Names in common use that ISO 3166 does not list (its names are "Russian Federation",
# "Türkiye", "Myanmar"...), and codes that are not ISO's but are used for a country.
ALIASES: dict[str, str] = {
    "russia": "RU",
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "turkey": "TR",
    "turkiye": "TR",
    "macau": "MO",
    "macao": "MO",
    "burma": "MM",
    "ivory coast": "CI",
    "cote d'ivoire": "CI",
    "cape verde": "CV",
    "swaziland": "SZ",
    "palestine": "PS",
    "dr congo": "CD",
    "drc": "CD",
    "democratic republic of congo": "CD",
    "democratic republic of the congo": "CD",
    "congo-kinshasa": "CD",
    "congo-brazzaville": "CG",
    "uae": "AE",
    "u.a.e.": "AE",
    "emirates": "AE",
    "usa": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america": "US",
    "holland": "NL",
    "the netherlands": "NL",
    "vatican": "VA",
    "brunei": "BN",
    "east timor": "TL",
    "micronesia": "FM",
    "south korea": "KR",
    "korea, south": "KR",
    "north korea": "KP",
    "korea, north": "KP",
    "dprk": "KP",
    "prc": "CN",
    "mainland china": "CN",
    "kosovo": "XK",
    "xk": "XK",
    "xkx": "XK",
}
NAMES_EXTRA = {"XK": "Kosovo"}


@cache
def _names() -> dict[str, str]:
    """Every name and code pycountry knows, lower case -> alpha-2."""
    found: dict[str, str] = {}
    for c in pycountry.countries:
        for attr in ("alpha_2", "alpha_3", "name", "common_name", "official_name"):
            value = getattr(c, attr, None)
            if value:
                found.setdefault(str(value).casefold(), c.alpha_2)
    for alias, code in ALIASES.items():
        found.setdefault(alias, code)
    return found


def find_country(value: str) -> str | None:
    """The alpha-2 code ``value`` names, or None."""
    text = " ".join(value.split()).casefold()
    if not text:
        return None
    return _names().get(text) or _names().get(text.replace(".", ""))


def country_name(code: str) -> str:
    """The English name of an alpha-2 code (the code itself if unknown)."""
    if code in NAMES_EXTRA:
        return NAMES_EXTRA[code]
    found = pycountry.countries.get(alpha_2=code)
    if found is None:
        return code
    return str(getattr(found, "common_name", None) or found.name)


def suggestions(value: str, limit: int = 3) -> list[str]:
    """The nearest countries to ``value``, as ``"ID (Indonesia)"``."""
    names = _names()
    long_names = [n for n in names if len(n) > 3]
    picked: list[str] = []
    for name, _score, _ in process.extract(
        value.casefold(), long_names, scorer=fuzz.WRatio, limit=limit * 3, score_cutoff=75
    ):
        code = names[name]
        if code not in picked:
            picked.append(code)
        if len(picked) == limit:
            break
    return [f"{code} ({country_name(code)})" for code in picked]


# The zone of the capital, for countries whose sites take it unless told otherwise (a country
# with several zones in common use, Indonesia's WIB/WITA/WIT, takes its capital's).
DEFAULT_TIMEZONES: dict[str, str] = {
    "ID": "Asia/Jakarta",
    "MY": "Asia/Kuala_Lumpur",
    "SG": "Asia/Singapore",
    "TH": "Asia/Bangkok",
    "VN": "Asia/Ho_Chi_Minh",
    "PH": "Asia/Manila",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "IN": "Asia/Kolkata",
}


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def site_timezone(value: str | None, country: str, *, field: str = "timezone") -> str:
    """An IANA time zone name (``Asia/Jakarta``), checked against the zone database; without
    one, the country's default (:data:`DEFAULT_TIMEZONES`), else InvalidRequest."""
    if value is None or not value.strip():
        found = DEFAULT_TIMEZONES.get(country)
        if found is None:
            raise InvalidRequest(
                f"give the site's IANA time zone (no default for {country})", field=field
            )
        return found
    zone = value.strip()
    if zone not in _zones():
        raise InvalidRequest(
            f"{zone!r} is not an IANA time zone (e.g. Asia/Jakarta, UTC)", field=field
        )
    return zone


def country_code(value: str, *, field: str = "country") -> str:
    """The alpha-2 code of a code, alpha-3 code or name; InvalidRequest (422) naming
    ``field`` and suggesting the nearest countries otherwise."""
    code = find_country(value)
    if code is not None:
        return code
    near = suggestions(value) if value.strip() else []
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    raise InvalidRequest(
        f"{value.strip()[:60]!r} is not a country: give an ISO 3166-1 code (alpha-2 such as "
        f"ID, or alpha-3 such as IDN) or the country's name{hint}",
        field=field,
        value=value[:60],
        suggestions=near,
    )


@dataclass(frozen=True, slots=True)
class HomeCountry:
    """The screening's view of the tenant's own country."""

    country: str  # alpha-2; "" when none was declared or it is unknown
    foreign: bool  # outside the operator's country (or unknown: treated as foreign)
    flags: tuple[str, ...]  # reasons an officer must look (empty: nothing to flag)


def home_country(
    countries: Sequence[str], *, operator_country: str, high_risk: Collection[str]
) -> HomeCountry:
    """The organisation's declared countries read for screening: the first is its home
    (foreign unless it is the operator's); a missing or unknown country is flagged and
    treated as foreign (the stricter customer identification applies); any declared
    country in the policy's high-risk set is flagged."""
    codes = [find_country(c) for c in countries]
    flags: list[str] = []
    if not countries:
        flags.append(
            "the organisation declares no country: treated as foreign; ask for its "
            "country of incorporation"
        )
    for given, code in zip(countries, codes, strict=True):
        if code is None:
            flags.append(f"the organisation's country {given[:60]!r} is not an ISO 3166 country")
    risky = {code.upper() for code in high_risk}
    for code in dict.fromkeys(c for c in codes if c is not None):
        if code in risky:
            flags.append(
                f"the organisation itself is in {country_name(code)} ({code}), a high-risk "
                "country under the policy in force"
            )
    home = codes[0] if codes and codes[0] is not None else ""
    foreign = not home or home != (find_country(operator_country) or operator_country.upper())
    return HomeCountry(home, foreign, tuple(flags))
