"""RFC 8785 canonical JSON: the RFC's own examples, refusals, and hypothesis round trips.

Sources of the literal examples (RFC 8785, "JSON Canonicalization Scheme (JCS)", June 2020):
* section 3.2.2, the sample input and its canonical output (literals, numbers, a string
  with escapes);
* section 3.2.3, the sorting example (names compared as UTF-16 code units);
* Appendix B, the IEEE 754 -> ECMAScript number serialisation table.
"""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.ledger import canonical
from gpulease.ledger.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    CanonicalJsonError,
    canonical_json,
    canonical_text,
    parse_json,
)

# RFC 8785 section 3.2.2: the input as printed there (JSON text), and the expected output.
RFC_3_2_2_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC_3_2_2_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)

# RFC 8785 section 3.2.3: members sorted by UTF-16 code units.
RFC_3_2_3_INPUT = r"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
RFC_3_2_3_ORDER = [
    "Carriage Return",
    "One",
    "Control",
    "Latin Small Letter O With Diaeresis",
    "Euro Sign",
    "Emoji: Grinning Face",
    "Hebrew Letter Dalet With Dagesh",
]

# RFC 8785 Appendix B: IEEE 754 double (hex) -> canonical number.
RFC_APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # round to even
]
# Appendix B's two values with no JSON form.
RFC_APPENDIX_B_REFUSED = ["7fffffffffffffff", "7ff0000000000000"]


def _double(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    return value


def test_rfc_3_2_2_sample() -> None:
    assert canonical_json(json.loads(RFC_3_2_2_INPUT)) == RFC_3_2_2_OUTPUT.encode("utf-8")


def test_rfc_3_2_3_sorting() -> None:
    result = json.loads(canonical_json(json.loads(RFC_3_2_3_INPUT)))
    assert list(result.values()) == RFC_3_2_3_ORDER


@pytest.mark.parametrize(("bits", "expected"), RFC_APPENDIX_B)
def test_rfc_appendix_b_numbers(bits: str, expected: str) -> None:
    assert canonical_text(_double(bits)) == expected


@pytest.mark.parametrize("bits", RFC_APPENDIX_B_REFUSED)
def test_nan_and_infinity_are_refused(bits: str) -> None:
    with pytest.raises(CanonicalJsonError, match="finite"):
        canonical_json({"x": [_double(bits)]})
    with pytest.raises(CanonicalJsonError, match="finite"):
        canonical_json(-math.inf)


def test_string_escapes_follow_3_2_2_2() -> None:
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028é😀'
    expected = (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
        '\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f\u2028é😀"'
    )
    assert canonical_text(text) == expected


def test_integers_exact_within_the_safe_range_and_refused_beyond() -> None:
    assert canonical_text([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, 1.0, -0.0]) == (
        "[9007199254740991,-9007199254740991,0,1,0]"
    )
    with pytest.raises(CanonicalJsonError, match=r"\$\.big.*as a string"):
        canonical_json({"big": MAX_SAFE_INTEGER + 1})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"money": Decimal("1.10")}, r"\$\.money: a Decimal .*string first"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, r"\$\.when: a datetime"),
        ({1: "x"}, "member names must be strings"),
        ([{"a": {b"raw"}}], r"\$\[0\]\.a: a set"),
        ("\ud800", "lone surrogate"),
        ({"\udc00": 1}, "lone surrogate"),
    ],
)
def test_values_without_a_canonical_form_are_refused(value: Any, message: str) -> None:
    with pytest.raises(CanonicalJsonError, match=message):
        canonical_json(value)


def test_nesting_is_capped() -> None:
    deep: Any = []
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(CanonicalJsonError, match="nested deeper"):
        canonical_json(deep)


def test_parse_json_refuses_duplicates_and_constants() -> None:
    with pytest.raises(CanonicalJsonError, match="duplicate member name 'a'"):
        parse_json('{"a": 1, "a": 2}')
    with pytest.raises(CanonicalJsonError, match="NaN"):
        parse_json("[NaN]")
    with pytest.raises(CanonicalJsonError, match="not valid JSON"):
        parse_json("{")


def test_member_order_and_whitespace_do_not_matter() -> None:
    assert canonical_json(parse_json('{ "b" : [1, 2.0], "a": {"y": null, "x": true} }')) == (
        b'{"a":{"x":true,"y":null},"b":[1,2]}'
    )


# ---------------------------------------------------------------- round trips
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_output_reads_back_to_the_same_value_and_bytes(value: Any) -> None:
    encoded = canonical_json(value)
    again = parse_json(encoded)
    assert canonical_json(again) == encoded
    assert again == value  # numerically: 1.0 reads back as 1, -0.0 as 0
    assert encoded == canonical_json(json.loads(json.dumps(value)))  # any writer, same bytes


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_reads_back_exactly(value: float) -> None:
    text = canonical_text(value)
    assert float(text) == value
    assert " " not in text
    assert "E" not in text


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.integers(0, 9), max_size=8))
def test_member_names_are_sorted_by_utf16_code_units(value: dict[str, int]) -> None:
    names = list(json.loads(canonical_json(value)))
    assert names == sorted(value, key=lambda name: name.encode("utf-16-be"))


def test_enum_members_are_written_as_their_values() -> None:
    from enum import IntEnum, StrEnum

    class Kind(StrEnum):
        STARTED = "job.started"

    class Level(IntEnum):
        HIGH = 3

    assert canonical_json({"kind": Kind.STARTED, "level": Level.HIGH}) == (
        b'{"kind":"job.started","level":3}'
    )


def test_the_path_names_the_refused_value_at_any_depth() -> None:
    with pytest.raises(CanonicalJsonError, match=r"^\$\.a\[1\]\.b\[0\]: a bytes") as caught:
        canonical_json({"a": [0, {"b": [b"x"]}], "z": 1})
    assert caught.value.details == {"path": "$.a[1].b[0]"}


_PLAIN_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.text()  # lone surrogates included: both paths must refuse them alike
    | st.floats(allow_nan=False, allow_infinity=False)
)
_PLAIN_VALUES = st.recursive(
    _PLAIN_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)


def _full_writer(value: Any) -> bytes | str:
    """The member-by-member writer alone (what the ``json.dumps`` path must equal)."""
    parts: list[str] = []
    try:
        canonical._write(value, parts, 0)
    except canonical._Refusal as refusal:
        return refusal.message
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return "not UTF-8"


@settings(max_examples=400, deadline=None)
@given(_PLAIN_VALUES)
def test_the_fast_path_writes_what_the_full_writer_writes(value: Any) -> None:
    expected = _full_writer(value)
    try:
        got: bytes | str = canonical_json(value)
    except CanonicalJsonError as error:
        got = str(error).split(": ", 1)[1]
    assert got == expected


def test_an_audit_record_takes_the_fast_path_and_a_float_does_not() -> None:
    assert canonical._plain({"after": {"state": "running", "gpus": 4}, "x": [None, True]}, 0)
    assert not canonical._plain({"ratio": 0.5}, 0)
    assert not canonical._plain({"n": 2**53}, 0)
    assert not canonical._plain({"\u00e9": 1}, 0)  # a non-ASCII name: sorted by code units
