"""Every request model is bounded: no string without a length bound (or an enum/pattern),
no number without an upper bound, no integer or flag that takes ``true`` or ``"8"``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gpulease.api import schemas

REQUEST_MODELS = sorted(
    (
        m
        for m in vars(schemas).values()
        if isinstance(m, type) and issubclass(m, schemas.Strict) and m is not schemas.Strict
    ),
    key=lambda m: m.__name__,
)


def _unbounded(node: Any, path: str, defs: dict[str, Any]) -> list[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            return _unbounded(defs[node["$ref"].split("/")[-1]], path, defs)
        kind = node.get("type")
        bounds = set(node)
        found = []
        if kind == "string" and not bounds & {"maxLength", "enum", "const", "pattern", "format"}:
            found.append(path)
        if kind in ("integer", "number") and not bounds & {"maximum", "exclusiveMaximum"}:
            found.append(path)
        if kind == "array" and "maxItems" not in bounds:
            found.append(path + "[]")
        is_map = kind == "object" and isinstance(node.get("additionalProperties"), dict)
        if is_map and "maxProperties" not in bounds:
            found.append(path + "{}")
        for key, child in node.items():
            if key == "properties":
                for name, sub in child.items():
                    found += _unbounded(sub, f"{path}.{name}".lstrip("."), defs)
            elif key in ("items", "additionalProperties") and isinstance(child, dict):
                found += _unbounded(child, path + "[]", defs)
            elif key in ("anyOf", "oneOf", "allOf"):
                # a Decimal is a bounded number or its text: the bounds apply to the value
                decimal = any(sub.get("type") == "number" and "maximum" in sub for sub in child)
                for sub in child:
                    if not (decimal and sub == {"type": "string"}):
                        found += _unbounded(sub, path, defs)
        return found
    return []


def test_every_request_field_is_bounded() -> None:
    unbounded: dict[str, list[str]] = {}
    for model in REQUEST_MODELS:
        schema = model.model_json_schema()
        found = _unbounded(schema, "", schema.get("$defs", {}))
        # identification is free-form: bounded by its validator (depth, entries, strings)
        found = [path for path in found if not path.startswith("identification")]
        if found:
            unbounded[model.__name__] = found
    assert unbounded == {}
    assert len(REQUEST_MODELS) >= 15


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (schemas.JobCreate, "gpus", True),
        (schemas.JobCreate, "gpus", "8"),
        (schemas.JobCreate, "preemptible", "true"),
        (schemas.LeaseCreate, "racks", 1.0),
        (schemas.JobCreate, "duration_s", "60"),
    ],
)
def test_numbers_and_flags_are_strict(model: type[BaseModel], field: str, value: object) -> None:
    body: dict[str, Any] = {"gpus": 8, "purpose": "education", "command": "true"}
    if model is schemas.LeaseCreate:
        body = {"start": "2026-04-01T00:00:00Z", "end": "2026-05-01T00:00:00Z"}
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**body, field: value})
    assert caught.value.errors()[0]["loc"] == (field,)
