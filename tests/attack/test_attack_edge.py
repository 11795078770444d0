"""Attack: input at the edge that should be refused (413/422), never accepted or a 500.

``docs/security.md`` ("Validation at the edge", "Limits") promises: bodies capped before
parsing and before authentication (413), bounded JSON depth, finite and bounded durations
and walltimes, and every refusal a 422 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient

from gpulease.services import demo as demo_service

Client = Callable[[str | None], TestClient]  # the ``raw_api`` fixture

BANK = "admin@bank.example"
JOB = {"gpus": 8, "purpose": "financial AI", "command": "x", "duration_s": 60}


def test_oversized_body_is_refused_before_authentication(
    raw_api: Client, demo: list[demo_service.DemoUser]
) -> None:
    # 2 MiB of JSON (over the 1 MiB GPULEASE_MAX_REQUEST_BYTES), no token at all
    body = json.dumps(JOB | {"name": "x", "command": "y" * (2 << 20)})
    answer = raw_api(None).post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text


def test_oversized_body_is_refused_413_for_an_authenticated_tenant(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    body = json.dumps(JOB | {"command": "y" * (2 << 20)})
    answer = raw_api(by_email[BANK].token).post(
        "/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413, answer.text


def test_deep_json_is_refused_by_depth(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    # the free-form identification map of a KYC case, nested 200 deep (limit: 16)
    deep: object = "x"
    for _ in range(200):
        deep = {"a": deep}
    answer = raw_api(by_email[BANK].token).post(
        "/kyc/cases",
        json={
            "organization": {"name": "Bank Nusantara Digital", "countries": ["ID"]},
            "end_uses": ["financial-services-ai"],
            "identification": {"name": deep},
        },
    )
    assert answer.status_code in (413, 422), answer.text
    assert answer.status_code != 201


def test_infinite_walltime_is_refused_at_the_edge(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    # Python's json (Starlette's parser) reads the non-standard literal Infinity
    body = json.dumps(JOB | {"walltime_s": float("inf")})
    assert "Infinity" in body
    answer = raw_api(by_email[BANK].token).post(
        "/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"].get("field") == "walltime_s", answer.text


def test_walltime_beyond_the_calendar_is_refused_at_the_edge(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    # finite, but 1e300 s ends after year 9999: the scheduler can only fail it later
    answer = raw_api(by_email[BANK].token).post("/jobs", json=JOB | {"walltime_s": 1e300})
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"].get("field") == "walltime_s", answer.text
