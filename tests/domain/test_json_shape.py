"""The JSON shape scan: finds too-deep nesting and overlong numbers before ``json`` does,
names the place, and agrees with ``json`` on what nests how deep."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.domain.json_shape import JsonProblem, json_problem


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_names_the_path_to_the_first_place_too_deep() -> None:
    text = '{"a": [1, {"b\\"x": [[[]]]}], "c": 2}'
    found = json_problem(text, max_depth=4)
    assert found == JsonProblem(
        ("a", 1, 'b"x', 0), text.index("[[]"), found.reason if found else ""
    )
    assert found is not None
    assert found.field == 'a.1.b"x.0'
    assert "deeper than 4 levels" in found.reason
    assert json_problem(text, max_depth=6) is None  # { [ { [ [ [


def test_brackets_and_digits_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 1000 + "9" * 1000, "t": '\\"[[['})
    assert json_problem(text, max_depth=2, max_digits=10) is None


def test_a_long_number_is_found_outside_strings() -> None:
    found = json_problem('{"n": [1, ' + "9" * 200 + "]}", max_depth=8)
    assert found is not None
    assert found.path == ("n", 1)
    assert "more than 100 digits" in found.reason


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 50_000 + "]" * 50_000, '{"a":' * 20_000])
def test_hostile_nesting_is_found_without_recursion(text: str) -> None:
    found = json_problem(text, max_depth=16)
    assert found is not None
    assert len(found.path) == 16


def test_a_problem_past_the_locating_budget_is_reported_without_a_place() -> None:
    text = "[" + "[]," * 300_000 + "[" * 20 + "]" * 20 + "]"
    found = json_problem(text, max_depth=16)
    assert found is not None
    assert found.path == ()
    assert found.offset is None
    assert found.field == "body"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}",:\\ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(value=json_values, limit=st.integers(1, 8))
def test_agrees_with_json_on_depth(value: object, limit: int) -> None:
    text = json.dumps(value)
    found = json_problem(text, max_depth=limit)
    assert (found is not None) == (_depth(value) > limit)


def test_an_open_string_runs_to_the_end_so_quotes_are_scanned_once() -> None:
    # an open string with escaped quotes: a pattern that gave up on it would retry from every
    # later quote (quadratic: minutes for a megabyte); json refuses the text at the string
    text = '["a", "' + '\\"' * 50 + "[" * 40
    assert json_problem(text, max_depth=16) is None
    assert json_problem('"\\', max_depth=1) is None
