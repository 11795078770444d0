"""``gpulease custody`` and ``gpulease attest`` against the real app on the demo: the story of
a demo chip at 80 columns (golden), operators recording events (out of order: refused with
the reason), tenants refused, the node agent's signed attestation (a forged one refused)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_support import Cli, fits, golden
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.inventory.attestation import Statement, sign
from gpulease.services import jobs
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduling import LiveScheduler
from live_support import tick_and_attest

SERIAL = "AIV-NVL72-G000000"
NODE = "jkt1-r00-n00"


def test_the_story_of_a_demo_chip(
    cli: Cli,
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    inftech: Principal,
) -> None:
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(
            gpus=72, purpose="financial AI: credit risk", command="train", duration_s=600
        ),
    )
    [report] = tick_and_attest(scheduler)  # the job starts on rack 1
    assert report.started == [job.id]
    clock.advance(ctx.settings.attestation_interval_s)
    tick_and_attest(scheduler)  # one interval on: the executor attests every node

    out = cli("officer", "custody", SERIAL).stdout
    fits(out)
    golden("custody-story", out)
    for words in (
        "NVIDIA Corporation -> Aivres Systems Inc.",
        "Aivres Systems Inc. -> Indosat Ooredoo",
        "NLR",
        "by the executor; agrees",
        "financial AI: credit",
        job.id,
        SERIAL,
    ):
        assert words in out, words
    story = json.loads(cli("operator", "custody", SERIAL, "--json").stdout)
    assert [j["job_id"] for j in story["jobs"]] == [job.id]
    assert len(story["chain"]) == 10

    refused = cli("inftech", "custody", SERIAL, check=False)
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error (denied)")
    missing = cli("officer", "custody", "AIV-NVL72-G999999", check=False)
    assert (missing.exit_code, missing.stderr.split(")")[0]) == (2, "error (not_found")


def test_operators_record_events_in_order(
    cli: Cli, api: Callable[[str | None], TestClient], demo: list[DemoUser]
) -> None:
    done = cli(
        "operator",
        "custody",
        "record",
        SERIAL,
        "--event",
        "repaired",
        "--holder",
        "Indosat Ooredoo Hutchison",
        "--note",
        "fan replaced",
        "--at",
        "2026-03-01T10:00",
    )
    assert "recorded: gpu AIV-NVL72-G000000 repaired 2026-03-01" in done.stdout
    refused = cli(
        "operator",
        "custody",
        "record",
        SERIAL,
        "--event",
        "received",
        "--holder",
        "X",
        "--at",
        "2026-03-01T11:00",
        check=False,
    )
    assert refused.exit_code == 2
    assert "cannot be received now" in refused.stderr
    officer = cli("officer", "custody", "record", SERIAL, "--event", "moved", check=False)
    assert officer.stderr.startswith("error (denied)")

    # at the edge: a bad field is a 422 naming it, never a half-written record
    token = next(u.token for u in demo if u.email == "ops@indosat.example")
    http = api(token)
    body = {"unit_kind": "rack", "unit": "AIV-NVL72-0001", "event": "moved", "holder": "I"}
    for field, value in (("at", "yesterday"), ("event", "stolen"), ("holder", "x" * 201)):
        answer = http.post(
            "/custody/events", json={"at": "2026-03-01T00:00:00Z", **body, field: value}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["details"]["field"] == field
    answer = http.post(
        "/custody/events", json={**body, "event": "sold", "at": "2026-03-01T00:00:00Z"}
    )
    assert answer.status_code == 422
    assert answer.json()["details"]["field"] == "from_party"
    tenant = api(next(u.token for u in demo if u.email == "admin@inftech.example"))
    assert tenant.get(f"/custody/{SERIAL}").status_code == 403
    assert tenant.get("/custody/alerts").status_code == 403


@pytest.mark.slow  # two keys made, six commands
def test_the_node_agent_attests_with_its_own_key(
    cli: Cli, clock: ManualClock, tmp_path: Path
) -> None:
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds())  # the agent's clock
    key = tmp_path / "node.key"
    made = cli(
        "operator", "attest", "--node", NODE, "--site", "jkt1", "--key", str(key), "--new-key"
    )
    assert key.stat().st_mode & 0o777 == 0o600
    public = re.search(r"--public-key ([0-9a-f]{64})", made.stdout)
    assert public is not None
    cli("operator", "custody", "register-key", NODE, "--public-key", public.group(1))

    sent = cli(
        "operator",
        "attest",
        "--node",
        NODE,
        "--site",
        "jkt1",
        "--key",
        str(key),
        "--every",
        "0.01",
        "--times",
        "2",
    )
    assert sent.stdout.count(f"attested: node {NODE} at jkt1") == 2
    out = cli("officer", "custody", SERIAL).stdout
    assert "signed by the node's key; agrees" in out

    forger = tmp_path / "forged.key"
    cli("operator", "attest", "--node", NODE, "--site", "jkt1", "--key", str(forger), "--new-key")
    forged = cli(
        "operator", "attest", "--node", NODE, "--site", "sgp1", "--key", str(forger), check=False
    )
    assert forged.exit_code == 2
    assert forged.stderr.startswith("error (unauthenticated)")
    assert "attestation alerts: none" in cli("officer", "custody", "alerts").stdout

    # a true statement from elsewhere: flagged to the officer, the node drained
    cli("operator", "attest", "--node", NODE, "--site", "sgp1", "--key", str(key))
    alerts = cli("officer", "custody", "alerts").stdout
    fits(alerts)
    assert "mismatch" in alerts
    assert NODE in alerts
    [alert] = json.loads(cli("officer", "custody", "alerts", "--json").stdout)
    cleared = cli("operator", "custody", "clear", alert["id"], "--reason", "moved back; checked")
    assert f"node {NODE} is up" in cleared.stdout


def test_forging_attestations_is_throttled_like_token_guessing(
    api: Callable[[str | None], TestClient], clock: ManualClock
) -> None:
    """No bearer token on the agent's route: each statement that does not verify counts as
    a failed authentication of the address, which is then blocked (429)."""
    http = api(None)
    key = Ed25519PrivateKey.generate()
    limit = 30  # Settings.auth_failures_per_minute
    for i in range(limit):
        statement = Statement(NODE, "jkt1", clock.now(), f"{i:032x}")
        answer = http.post(
            "/custody/attestations",
            json={"statement": statement.as_dict(), "signature": sign(key, statement)},
        )
        assert answer.status_code == 401, answer.text
    answer = http.post(
        "/custody/attestations",
        json={"statement": statement.as_dict(), "signature": sign(key, statement)},
    )
    assert answer.status_code == 429
    assert answer.headers["Retry-After"]
