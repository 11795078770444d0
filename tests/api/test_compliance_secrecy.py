"""Compliance secrecy over HTTP: a tenant sees its case's state and what it must supply,
never the screening's scores, thresholds, features, matched list entries or lists.

The demo runs on SQLite and PostgreSQL; an officer imports a small list (uploaded like any
list) whose entries resemble INF Tech and a new tenant, so the screenings have real hits
with scores. Every answer a tenant gets is serialised whole and searched for what must not
be in it; the officer's answers for the same cases are searched for the same things, which
must be there (so the search looks for what the screening really holds).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from gpulease.cli import compliance as cli_compliance
from gpulease.compliance.lists.csl import LEGACY_COLUMNS
from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.domain.clock import ManualClock
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduling import LiveScheduler

Api = Callable[[str | None], TestClient]
LABEL = "watchlist-label-7f3a"
PROGRAM = "PROGRAM-ZETA-9"
INF_ENTRY = ("entry-inf-4711", "INF Technology Shanghai Co Ltd", "CN")
ORBIT_ENTRY = ("entry-orb-0815", "Orbitall Labs Pte Ltd", "SG")
LIST_NAME = "Entity List (EL) - Bureau of Industry and Security"
# What the screening holds that a tenant must never see (values), and the keys that carry it.
SECRET_VALUES = (
    LABEL,
    PROGRAM,
    INF_ENTRY[0],
    INF_ENTRY[1],
    ORBIT_ENTRY[0],
    ORBIT_ENTRY[1],
    LIST_NAME,
    "csl:",  # "source:entry_id" hit keys
    "country_agrees",
    "review at",
    "block at",
    "new hit",
)
SECRET_KEYS = frozenset(
    {
        "screening",
        "verdict",
        "state_reason",
        "lists_screened",
        "policy_versions",
        "hits",
        "score",
        "features",
        "weight",
        "programs",
        "listed_name",
        "entry_id",
        "round",
        "approvals_needed",
        "rules",
        "inactive",
        "packs",
    }
)


def _list_file() -> bytes:
    columns = ("_id", *LEGACY_COLUMNS)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for entry_id, name, country in (INF_ENTRY, ORBIT_ENTRY):
        row = dict.fromkeys(columns, "")
        row |= {
            "_id": entry_id,
            "source": LIST_NAME,
            "name": name,
            "programs": PROGRAM,
            "addresses": f"1 Test Road, {country}",
            "start_date": "2026-03-01",
        }
        writer.writerow(row)
    return out.getvalue().encode()


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def assert_secret_free(answer: Any, *, keys: bool = True) -> None:
    """Nothing the screening holds appears anywhere in ``answer``: no such value, and (with
    ``keys``, for compliance answers) no field that carries such things."""
    text = json.dumps(answer)
    leaked = [s for s in SECRET_VALUES if s.lower() in text.lower()]
    assert not leaked, f"{leaked} in {text}"
    if keys:
        assert not (_keys(answer) & SECRET_KEYS), f"{_keys(answer) & SECRET_KEYS} in {text}"


def user(demo: list[DemoUser], email: str) -> DemoUser:
    return next(u for u in demo if u.email == email)


class Site:
    """The demo after the import: INF Tech suspended with a hit, a new tenant screened."""

    def __init__(self, api: Api, demo: list[DemoUser], clock: ManualClock) -> None:
        self.api = api
        self.officer = api(user(demo, "compliance@indosat.example").token)
        self.operator = api(user(demo, "ops@indosat.example").token)
        self.inftech = api(user(demo, "admin@inftech.example").token)
        self.clock = clock
        queued = self.inftech.post(
            "/jobs",
            json={"gpus": 8, "purpose": "financial AI: credit", "command": "x", "duration_s": 60},
        )
        assert queued.status_code == 201, queued.text
        self.queued_job = queued.json()["id"]
        clock.advance(60)
        imported = self.officer.post(
            "/lists",
            files=[("files", ("watch.csv", _list_file()))],
            data={"format": "csl-csv", "label": LABEL},
        )
        assert imported.status_code == 201, imported.text
        self.snapshot = imported.json()["snapshot"]["id"]
        [self.inf_case] = [
            c["id"]
            for c in self.officer.get("/kyc/cases").json()
            if c["tenant_id"] == self.inftech.get("/me").json()["tenant_id"]
        ]

    def new_tenant(self, name: str, country: str) -> TestClient:
        tenant = self.operator.post(
            "/tenants", json={"name": name, "country": country, "kind": "ai-startup"}
        )
        made = self.operator.post(
            "/users",
            json={
                "name": f"{name} admin",
                "email": f"admin@{name.split()[0].lower()}.example",
                "role": "tenant-admin",
                "tenant_id": tenant.json()["id"],
            },
        )
        assert made.status_code == 201, made.text
        return self.api(made.json()["token"])


@pytest.fixture
def site(api: Api, demo: list[DemoUser], clock: ManualClock) -> Site:
    return Site(api, demo, clock)


@pytest.fixture
def orbital(site: Site) -> TestClient:
    return site.new_tenant("Orbital Labs", "SG")


def submit_orbital(client: TestClient, *, identification: dict[str, object]) -> Any:
    answer = client.post(
        "/kyc/cases",
        json={
            "organization": {"name": "Orbital Labs Pte. Ltd.", "countries": ["SG"]},
            "end_uses": ["financial-services-ai", "military-end-use"],
            "end_use_statement": "risk models",
            "identification": identification,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


# ------------------------------------------------------------------------------ cases
def test_tenant_sees_its_case_without_screening_internals(site: Site) -> None:
    officers = site.officer.get(f"/kyc/cases/{site.inf_case}").json()
    # the officer's view holds the hit: the search below looks for real things
    officer_text = json.dumps(officers)
    for secret in (LABEL, PROGRAM, INF_ENTRY[0], INF_ENTRY[1], "country_agrees", "new hit"):
        assert secret in officer_text
    hit = officers["screening"]["parties"][0]["hits"][0]
    assert hit["entry_id"] == INF_ENTRY[0]
    assert hit["score"] >= 85
    assert officers["lists_screened"] == [site.snapshot]
    assert officers["state"] == "needs_review"

    listed = site.inftech.get("/kyc/cases")
    shown = site.inftech.get(f"/kyc/cases/{site.inf_case}")
    assert listed.status_code == shown.status_code == 200
    assert_secret_free(listed.json())
    assert_secret_free(shown.json())
    case = shown.json()
    assert site.snapshot not in json.dumps(case)
    assert officers["view"] == "officer"
    assert case["view"] == "tenant"
    assert case["id"] == site.inf_case
    assert case["state"] == "needs_review"
    assert case["status"] == "under review by the compliance team"
    assert case["missing_identification"] == []
    assert case["approved_end_uses"] == []
    assert case["end_uses"] == officers["end_uses"]
    assert case["submitted_at"]
    assert case["expires_at"]
    assert [c["id"] for c in listed.json()] == [site.inf_case]

    # a tenant-member sees the same (the tenant's) view
    member = site.operator.post(
        "/users",
        json={
            "name": "INF Tech engineer",
            "email": "engineer@inftech.example",
            "role": "tenant-member",
            "tenant_id": case["tenant_id"],
        },
    )
    assert member.status_code == 201, member.text
    as_member = site.api(member.json()["token"])
    assert as_member.get(f"/kyc/cases/{site.inf_case}").json() == case
    assert_secret_free(as_member.get("/kyc/cases").json())


def test_tenant_submission_answer_says_what_to_supply_not_what_matched(
    site: Site, orbital: TestClient
) -> None:
    given = {f: "given" for f in CUSTOMER_FIELDS if f not in ("payment_means", "phone_numbers")}
    answer = submit_orbital(orbital, identification=given)
    assert_secret_free(answer)
    assert answer["view"] == "tenant"
    assert answer["state"] == "needs_review"
    assert answer["missing_identification"] == ["payment_means", "phone_numbers"]
    assert answer["prohibited_end_uses"] == ["military-end-use"]
    assert answer["status"].startswith(
        "more information needed: means of payment (card, account); telephone numbers"
    )
    assert answer["status"].endswith("under review by the compliance team")
    assert_secret_free(orbital.get(f"/kyc/cases/{answer['id']}").json())

    officers = site.officer.get(f"/kyc/cases/{answer['id']}").json()
    assert officers["verdict"] == "block"
    [org] = [p for p in officers["screening"]["parties"] if p["hits"]]
    assert org["hits"][0]["entry_id"] == ORBIT_ENTRY[0]
    assert org["hits"][0]["listed_name"] == ORBIT_ENTRY[1]
    assert "review at" in org["reason"] or "block at" in org["reason"]


def test_tenant_sees_the_decision_not_the_officers_reason(site: Site, orbital: TestClient) -> None:
    answer = submit_orbital(orbital, identification=dict.fromkeys(CUSTOMER_FIELDS, "given"))
    note = "namesake of a listed Orbitall entity, internal note 5521"
    rejected = site.officer.post(f"/kyc/cases/{answer['id']}/reject", json={"reason": note})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state_reason"] == note  # the officer's own answer is whole
    case = orbital.get(f"/kyc/cases/{answer['id']}").json()
    assert_secret_free(case)
    assert "5521" not in json.dumps(case)
    assert case["state"] == "rejected"
    assert case["status"] == "rejected by the compliance team"
    refused = orbital.post(
        "/jobs", json={"gpus": 1, "purpose": "financial AI", "command": "x", "duration_s": 1}
    )
    assert refused.status_code == 403
    assert "5521" not in refused.text
    assert "rejected by the compliance team" in refused.json()["message"]


# ------------------------------------------------------- a suspended tenant's messages
def test_suspended_tenant_messages_quote_no_list_entry(site: Site, ctx: ServiceContext) -> None:
    refused = site.inftech.post(
        "/jobs",
        json={"gpus": 8, "purpose": "financial AI: credit", "command": "x", "duration_s": 60},
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_approved"
    assert_secret_free(refused.json())
    assert "suspended pending review by the compliance team" in refused.json()["message"]

    leases = site.inftech.get("/leases").json()
    assert leases
    assert {lease["state"] for lease in leases} == {"suspended"}
    assert_secret_free(leases, keys=False)
    assert "suspended pending review by the compliance team" in leases[0]["state_reason"]

    LiveScheduler(ctx, SimulatedExecutor(), name="secrecy-test").tick()
    job = site.inftech.get(f"/jobs/{site.queued_job}").json()
    assert job["state"] == "queued"
    assert job["wait_reason"].startswith("held: the tenant is not approved")
    assert_secret_free(job, keys=False)


def test_expired_approval_is_named_as_such(site: Site, demo: list[DemoUser]) -> None:
    bank = site.api(user(demo, "admin@bank.example").token)  # not hit: approved until expiry
    [case] = bank.get("/kyc/cases").json()
    expires = datetime.fromisoformat(case["expires_at"])
    site.clock.advance((expires - site.clock.now()).total_seconds() + 3600)
    refused = bank.post(
        "/jobs", json={"gpus": 1, "purpose": "financial AI", "command": "x", "duration_s": 1}
    )
    assert refused.status_code == 403
    assert f"approval expired on {expires:%Y-%m-%d}" in refused.json()["message"]
    assert case["status"] == f"approved for financial-services-ai until {expires:%Y-%m-%d}"


# ------------------------------------------------------------------ policy and lists
def test_tenant_policy_is_prohibited_end_uses_and_fields_to_supply(site: Site) -> None:
    officers = site.officer.get("/policy").json()
    assert any(rule.endswith("/screening") for rule in officers["rules"])
    assert any("minority-stake-flag" in rule for rule in officers["rules"])

    answer = site.inftech.get("/policy")
    assert answer.status_code == 200
    policy = answer.json()
    assert_secret_free(policy)
    text = json.dumps(policy)
    for internal in ("screening", "minority-stake", "high-risk", "ofac-50", "threshold"):
        assert internal not in text
    assert set(policy) == {
        "view",
        "as_of",
        "prohibited_end_uses",
        "identification_required_of_foreign_customers",
        "identification_required_of_all_customers",
    }
    assert policy["view"] == "tenant"
    assert officers["view"] == "officer"
    assert "military-end-use" in policy["prohibited_end_uses"]
    assert "payment_means" in policy["identification_required_of_foreign_customers"]


def test_tenants_cannot_read_or_compare_screening_lists(site: Site) -> None:
    """Guards the permission table being rewritten: the service refuses this today."""
    assert site.officer.get("/lists").status_code == 200
    assert site.inftech.get("/lists").status_code == 403
    diff = site.inftech.get(f"/lists/{site.snapshot}/diff/{site.snapshot}")
    assert diff.status_code == 403
    assert_secret_free(diff.json())


# ----------------------------------------------------------------------- the CLI
def _render(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(renderable)
    return out.getvalue()


def test_cli_renders_a_tenants_case_without_internals(site: Site, orbital: TestClient) -> None:
    answer = submit_orbital(orbital, identification={"name": "Orbital Labs"})
    shown = _render(cli_compliance.case_view(answer))
    assert answer["id"] in shown
    assert "more information needed" in shown
    assert "military-end-use" in shown
    for secret in SECRET_VALUES:
        assert secret.lower() not in shown.lower()

    officers = site.officer.get(f"/kyc/cases/{answer['id']}").json()
    full = _render(cli_compliance.case_view(officers))
    assert ORBIT_ENTRY[0] in full
    assert "score" in full
    listing = _render(cli_compliance.cases_table([answer]))
    assert "needs_review" in listing
    assert "block" not in listing
