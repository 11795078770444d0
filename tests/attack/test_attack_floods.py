"""Attack: a tenant's flood of requests that are not job submissions.

The issue asks for "rate limits ... on submissions per tenant" and bounded
requested-but-unapproved lease holds. A lease request is a submission too (it takes the
per-site calendar lock and scans every holding lease), and the hold share bounds GPUs, not
how many requests: one tenant's stream of tiny, disjoint requests is unbounded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock
from gpulease.services import demo as demo_service
from gpulease.settings import Settings

Client = Callable[[str | None], TestClient]  # the ``raw_api`` fixture

BANK = "admin@bank.example"
LIMIT = 5


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "var",
        preemption_grace_s=30.0,
        submissions_per_minute=LIMIT,
    )


def test_a_tenants_lease_requests_meet_the_submission_limit(
    clock: ManualClock, raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    bank = raw_api(by_email[BANK].token)
    answers = []
    for i in range(LIMIT * 4):
        start = clock.now() + timedelta(hours=1 + i)
        answers.append(
            bank.post(
                "/leases",
                json={
                    "gpus": 1,
                    "start": start.isoformat(),
                    "end": (start + timedelta(minutes=30)).isoformat(),
                },
            ).status_code
        )
    assert 500 not in answers
    assert 429 in answers, answers
