"""RFC 8785 JSON Canonicalization Scheme (JCS) for the values a ledger record holds.

A ledger leaf is the SHA-256 of a record's canonical bytes, so two parties that hold the
same record must produce the same bytes, whatever their JSON library. JCS fixes every
freedom JSON leaves open:

* no whitespace; UTF-8 output;
* object members sorted by their names compared as arrays of UTF-16 code units
  (RFC 8785 section 3.2.3: not by code points, so U+1F600, stored as the surrogates
  D83D DE00, sorts before U+FB33);
* strings (section 3.2.2.2): ``"`` and ``\\`` escaped, U+0008/09/0A/0C/0D as ``\\b \\t
  \\n \\f \\r``, the other controls below U+0020 as ``\\u00hh`` in lower case, everything
  else (U+007F, U+2028, non-ASCII) written as itself;
* numbers (section 3.2.2.3): the ECMAScript ``Number.prototype.toString`` form of the
  IEEE 754 double.

Accepted values: ``str``, ``int``, ``float``, ``bool``, ``None``, ``list``/``tuple`` and
``dict`` with ``str`` keys. The caller converts ``Decimal`` (money) and ``datetime`` to
strings first: a ``Decimal`` through a double would lose digits, so it is refused rather
than guessed at.

Decisions, and why:

* Floats are **supported** (RFC 8785 defines them, and its own examples use them), with the
  ECMAScript serialisation: Python's ``repr`` gives the shortest digits that round-trip
  (the same digit choice as ECMAScript, including round-half-even, checked against the
  RFC's Appendix B table) and :func:`_number` lays them out by ECMAScript's rules.
  NaN and the infinities have no JSON form and are refused. ``-0.0`` is written ``0``.
* Integers are written exactly, but only within the I-JSON safe range
  ``|n| <= 2**53 - 1``: beyond it a JCS reader holding doubles would read another number,
  so such an integer is refused with a message telling the caller to pass a string.
* Strings must be valid Unicode (a lone surrogate is refused: I-JSON forbids it and it has
  no UTF-8 form).
* Nesting is capped at :data:`MAX_DEPTH` so a hostile value cannot exhaust the stack.
* Speed: most values (every audit record the scheduler writes) hold no float, no integer
  beyond the safe range, no member name outside ASCII and only exact ``dict``, ``list``,
  ``tuple``, ``str``, ``int``, ``bool`` and ``None``; for those, JCS is what ``json.dumps``
  writes with sorted keys, no whitespace and ``ensure_ascii`` off (its C encoder escapes
  exactly what section 3.2.2.2 asks, and ASCII names sort alike by code point and by UTF-16
  code unit), so :func:`canonical_json` checks the value in one walk (:func:`_plain`) and
  lets the C encoder write it; anything else (a float, a non-ASCII name, a subclass, a
  string that is not valid Unicode) goes through the full writer below.

Invariants: pure and deterministic; ``canonical_json(parse_json(canonical_json(v)))`` equals
``canonical_json(v)``; parsing canonical output and canonicalising again is the identity on
bytes. :func:`parse_json` is the strict reader the bundle verifier uses: duplicate member
names and non-finite numbers are refused instead of silently resolved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from gpulease.domain.errors import InvalidRequest

MAX_DEPTH = 64
MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalJsonError(InvalidRequest):
    """A value has no RFC 8785 canonical form (names the offending path in ``details``)."""


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`CanonicalJsonError` naming the path (``$.a[2]``) of the first value that
    has no canonical form.
    """
    if _plain(value, 0):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the full writer names its path
            pass
    parts: list[str] = []
    try:
        _write(value, parts, 0)
    except _Refusal as refusal:
        path = "$" + "".join(reversed(refusal.segments))
        raise CanonicalJsonError(f"{path}: {refusal.message}", path=path) from None
    return "".join(parts).encode("utf-8")  # every string was checked: this cannot fail


def canonical_text(value: Any) -> str:
    """:func:`canonical_json` as a ``str`` (for embedding in documents)."""
    return canonical_json(value).decode("utf-8")


def _plain(value: Any, depth: int) -> bool:
    """Whether ``json.dumps`` (sorted, compact, ``ensure_ascii`` off) writes ``value``
    exactly as JCS does (the module docstring: no float, safe integers, ASCII member names,
    exact types), strings' validity apart (checked when the text is encoded)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item, depth + 1) for item in value)
    return False


def is_plain(value: Any) -> bool:
    """Whether ``value`` holds no float, no integer beyond the safe range, no member name
    outside ASCII and only exact JSON types (:func:`canonical_json` writes such a value with
    ``json.dumps``)."""
    return _plain(value, 0)


class _Refusal(Exception):
    """Raised where a value fails; each container adds its path segment on the way out, so
    the walk builds no path strings unless something is refused."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []


def _write(value: Any, out: list[str], depth: int) -> None:
    kind = type(value)  # exact types first: the common case skips the isinstance chain
    if kind is str:
        out.append(_string(value))
    elif kind is int:
        out.append(_integer(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is float:
        out.append(_number(value))
    elif isinstance(value, Mapping):
        _write_object(value, out, depth)
    elif isinstance(value, list | tuple):
        _write_array(value, out, depth)
    elif isinstance(value, str):  # a str subclass (StrEnum): its string value
        out.append(_string(str.__str__(value)))
    elif isinstance(value, int):  # an int subclass (IntEnum): its number
        out.append(_integer(int(value)))
    elif isinstance(value, float):
        out.append(_number(float(value)))
    else:
        hint = " (convert it to a string first)" if isinstance(value, Decimal) else ""
        raise _Refusal(f"a {type(value).__name__} has no canonical JSON form{hint}")


def _write_object(value: Mapping[Any, Any], out: list[str], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _Refusal(f"nested deeper than {MAX_DEPTH} levels")
    keys = list(value)
    for key in keys:
        if not isinstance(key, str):
            raise _Refusal(f"object member names must be strings, not {type(key).__name__}")
    if all(key.isascii() for key in keys):
        keys.sort()  # ASCII: code points and UTF-16 code units order alike
    else:
        keys.sort(key=_utf16)
    out.append("{")
    for index, key in enumerate(keys):
        if index:
            out.append(",")
        out.append(_string(key))
        out.append(":")
        try:
            _write(value[key], out, depth + 1)
        except _Refusal as refusal:
            refusal.segments.append(f".{key}")
            raise
    out.append("}")


def _write_array(value: Sequence[Any], out: list[str], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _Refusal(f"nested deeper than {MAX_DEPTH} levels")
    out.append("[")
    for index, item in enumerate(value):
        if index:
            out.append(",")
        try:
            _write(item, out, depth + 1)
        except _Refusal as refusal:
            refusal.segments.append(f"[{index}]")
            raise
    out.append("]")


def _utf16(key: str) -> bytes:
    try:
        return key.encode("utf-16-be")  # big-endian bytes compare as the code units do
    except UnicodeEncodeError as error:
        raise _Refusal("a member name holds a lone surrogate; pass valid Unicode") from error


def _string(text: str) -> str:
    # json's C encoder (ensure_ascii off) escapes exactly what RFC 8785 3.2.2.2 asks:
    # quote, backslash, \b \t \n \f \r and the other C0 controls as lower-case \u00hh.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise _Refusal("a string holds a lone surrogate; pass valid Unicode") from error
    return encode_basestring(text)


def _integer(value: int) -> str:
    if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return str(value)
    raise _Refusal(
        f"the integer {value} is outside the exact range of a JSON number "
        "(|n| <= 2**53 - 1); pass it as a string"
    )


def _number(value: float) -> str:
    """ECMAScript Number::toString (ECMA-262 7.1.12.1) of a finite double."""
    if not math.isfinite(value):
        raise _Refusal(f"{value!r} has no JSON form; only finite numbers can be canonicalised")
    if value == 0:
        return "0"  # also -0.0
    if value < 0:
        return "-" + _number(-value)
    # repr: the shortest digit string that reads back as this double (closest on ties).
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    assert sign == 0
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = exponent + k  # value = 0.digits * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def parse_json(text: str | bytes) -> Any:
    """Read JSON strictly: duplicate member names and NaN/Infinity are refused.

    Numbers written with a fraction or exponent are read as floats, the others as ints;
    an integer beyond the safe range can only be a double written by ECMAScript's rules
    (``1e20`` is written ``100000000000000000000``), so it is read as a float. Canonical output
    read back therefore canonicalises to the same bytes.
    """

    def integer(text: str) -> int | float:
        number = int(text)
        return number if abs(number) <= MAX_SAFE_INTEGER else float(text)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, item in pairs:
            if key in result:
                raise CanonicalJsonError(f"duplicate member name {key!r}", name=key)
            result[key] = item
        return result

    def no_constant(name: str) -> Any:
        raise CanonicalJsonError(f"{name} is not a JSON number", constant=name)

    try:
        return json.loads(
            text,
            object_pairs_hook=no_duplicates,
            parse_constant=no_constant,
            parse_int=integer,
        )
    except (ValueError, RecursionError) as error:  # the hooks' own error is no ValueError
        raise CanonicalJsonError(f"not valid JSON: {error}") from error
