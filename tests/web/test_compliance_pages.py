"""The compliance pages in-process (TestClient over the real app, SQLite and PostgreSQL), for
every role: the review queue, a case explained side by side with its ownership graph, the
officers' decisions under four-eyes, purpose reviews, the policy on a day, and what tenants
may see (their own case, in their words; never another tenant's).

Four-eyes is switched on for this module (``kyc_approvals = 2``), as an operator would."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from compliance_support import HOSTILE, LISTED, TENANT_NAME, new_officer, own_token, waiting_case
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web_support import Ui

from gpulease.domain.access import Principal
from gpulease.persistence.tables import AuditRecord, KycCase, KycDecision, PurposeReview
from gpulease.services import jobs, kyc
from gpulease.services.context import ServiceContext
from gpulease.settings import Settings

SVG = "{http://www.w3.org/2000/svg}"
AFFILIATES = "us-affiliates-rule-2025@1/affiliates-50"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        database_url=db_url, data_dir=tmp_path / "var", preemption_grace_s=30.0, kyc_approvals=2
    )


def _decide(client: TestClient, case_id: str, decision: str, reason: str, **extra: str) -> object:
    data = {"decision": decision, "reason": reason, "csrf": getattr(client, "csrf", "")} | extra
    return client.post(f"/ui/compliance/cases/{case_id}/decide", data=data)


def _decisions(ctx: ServiceContext, case_id: str) -> list[KycDecision]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(tx.select(KycDecision).where(KycDecision.case_id == case_id))


def _state(ctx: ServiceContext, case_id: str) -> str:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(KycCase, case_id, "kyc case").state


def _svg(html: str) -> ET.Element:
    found = re.search(r"<svg .*?</svg>", html, re.S)
    assert found is not None, "no SVG in the page"
    return ET.fromstring(found.group(0))


def test_an_officer_reviews_a_case_side_by_side_with_its_ownership_graph(
    viewers: dict[str, TestClient], ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    case = waiting_case(ctx, operator, officer)
    queue = viewers["compliance"].get("/ui/compliance")
    assert queue.status_code == 200, queue.text
    row = re.search(rf'<tr data-case="{case.id}">.*?</tr>', queue.text, re.S)
    assert row is not None
    assert TENANT_NAME in row.group(0)
    assert "0 of 2" in row.group(0)
    assert "review" in row.group(0)

    shown = viewers["compliance"].get(f"/ui/compliance/cases/{case.id}")
    assert shown.status_code == 200, shown.text
    page = shown.text
    # the match side by side: our party's name, the entry's, the words aligned, the list
    match = re.search(r'<table class="match".*?</table>', page, re.S)
    assert match is not None
    side = match.group(0)
    assert f'<td class="ours">{LISTED}</td>' in side
    assert f'<td class="theirs">{LISTED}' in side
    assert "Words aligned" in side
    assert re.search(r"<td>research</td><td>research", side)
    assert "Entity List" in side
    assert re.search(r'<strong class="score">\d+\.\d</strong>', side)
    # the graph: valid SVG, the stakes with their percentages, the listed owner marked
    graph = _svg(page)
    texts = ["".join(t.itertext()) for t in graph.iter(f"{SVG}text")]
    assert "60 %" in texts
    assert "40 %" in texts
    assert "director" in texts
    assert any("LISTED" in t for t in texts)
    titles = ["".join(t.itertext()) for t in graph.iter(f"{SVG}title")]
    assert any(HOSTILE in t for t in titles)  # the tenant-typed name, as text
    # a name a tenant typed never becomes markup, in the SVG or the tables
    assert '<script>alert("pwned")' not in page
    assert "<b>Sons</b>" not in page
    assert "&lt;script&gt;alert(" in page
    # the decision form, with the session's CSRF token
    assert f'action="/ui/compliance/cases/{case.id}/decide"' in page
    assert f'value="{viewers["compliance"].csrf}"' in page  # type: ignore[attr-defined]

    # an operator admin reads the case, has no form, and is refused a decision
    admin = viewers["operator"]
    assert admin.get("/ui/compliance").status_code == 200
    assert "Purposes held for review" not in admin.get("/ui/compliance").text
    as_admin = admin.get(f"/ui/compliance/cases/{case.id}")
    assert as_admin.status_code == 200
    assert "/decide" not in as_admin.text
    refused = _decide(admin, case.id, "approve", "I run the place")
    assert refused.status_code == 403
    assert "only compliance-officer may decide a KYC case" in refused.text
    assert _decisions(ctx, case.id) == []

    # the officer rejects it, with its reason; the case page then offers nothing to decide
    rejected = _decide(viewers["compliance"], case.id, "reject", "a listed owner holds 60 %")
    assert rejected.status_code == 303
    assert _state(ctx, case.id) == "rejected"
    after = viewers["compliance"].get(rejected.headers["location"]).text
    assert "Your rejection is recorded." in after
    assert "<td>a listed owner holds 60 %</td>" in after
    assert "/decide" not in after


def test_four_eyes_through_the_page(
    ui: Ui,
    viewers: dict[str, TestClient],
    ctx: ServiceContext,
    operator: Principal,
    officer: Principal,
) -> None:
    case = waiting_case(ctx, operator, officer)
    alice = viewers["compliance"]  # holds the token the operator admin issued it
    url = f"/ui/compliance/cases/{case.id}/decide"

    no_token = alice.post(url, data={"decision": "approve", "reason": "fine"})
    assert no_token.status_code == 403
    assert "security token" in no_token.text
    elsewhere = alice.post(
        url,
        data={"decision": "approve", "reason": "fine", "csrf": alice.csrf},  # type: ignore[attr-defined]
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    assert _decisions(ctx, case.id) == []

    # every end-use box unchecked: refused, not read as "approve every declared end use"
    none_chosen = _decide(alice, case.id, "approve", "owners verified", narrow="true")
    assert none_chosen.status_code == 422
    assert "approve at least one end use" in none_chosen.text
    first = _decide(
        alice, case.id, "approve", "owners verified", end_uses="scientific-computing", narrow="true"
    )
    assert first.status_code == 303
    assert first.headers["location"] == f"/ui/compliance/cases/{case.id}?done=approve"
    after = alice.get(first.headers["location"]).text
    assert "Your approval is recorded." in after
    assert "1 of 2 this round" in after
    assert _state(ctx, case.id) == "needs_review"

    again = _decide(alice, case.id, "approve", "still fine")
    assert again.status_code == 409
    assert "you already decided this case in this round" in again.text
    assert ">still fine</textarea>" in again.text  # what the officer typed is kept

    _bob, bob_token = new_officer(ctx, operator, "Bob Officer")  # the admin holds his token too
    shared = _decide(ui(bob_token), case.id, "approve", "agree")
    assert shared.status_code == 403
    assert "four-eyes" in shared.text
    assert "could act as both you and" in shared.text
    assert len(_decisions(ctx, case.id)) == 1

    carol, _first = new_officer(ctx, operator, "Carol Officer")
    carol_client = ui(own_token(ctx, carol))  # independent: only Carol can act as Carol
    second = _decide(carol_client, case.id, "approve", "independently verified")
    assert second.status_code == 303
    assert _state(ctx, case.id) == "approved"
    done = carol_client.get(second.headers["location"]).text
    assert "approved" in done
    assert "/decide" not in done  # nothing left to decide
    assert kyc.get_case(ctx, carol, case.id).end_uses == ["scientific-computing"]


def test_a_purpose_held_for_review_is_decided_from_the_queue(
    viewers: dict[str, TestClient], ctx: ServiceContext, officer: Principal, inftech: Principal
) -> None:
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(gpus=8, purpose="drug-discovery: anthrax genomics", command="x"),
    )
    officer_ui = viewers["compliance"]
    queue = officer_ui.get("/ui/compliance").text
    row = re.search(r'<tr data-review="([^"]+)">.*?</tr>', queue, re.S)
    assert row is not None
    assert job.id in row.group(0)
    assert "INF Tech" in row.group(0)
    review_id = row.group(1)
    url = f"/ui/compliance/purpose-reviews/{review_id}/decide"
    assert officer_ui.post(url, data={"decision": "approve", "reason": "ok"}).status_code == 403
    tenant_try = viewers["inftech"].post(
        url,
        data={"decision": "approve", "reason": "mine", "csrf": viewers["inftech"].csrf},  # type: ignore[attr-defined]
    )
    assert tenant_try.status_code == 403
    empty = officer_ui.post(
        url,
        data={"decision": "approve", "reason": " ", "csrf": officer_ui.csrf},  # type: ignore[attr-defined]
    )
    assert empty.status_code == 422
    done = officer_ui.post(
        url,
        data={"decision": "approve", "reason": "vaccine work", "csrf": officer_ui.csrf},  # type: ignore[attr-defined]
    )
    assert done.status_code == 303
    with ctx.db.transaction(write=False) as tx:
        assert tx.require(PurposeReview, review_id, "review").state == "approved"
    assert "The purpose is cleared" in officer_ui.get(done.headers["location"]).text


def test_tenants_see_only_their_own_case_in_their_own_words(
    ui: Ui,
    viewers: dict[str, TestClient],
    ctx: ServiceContext,
    operator: Principal,
    officer: Principal,
    inftech: Principal,
) -> None:
    other = waiting_case(ctx, operator, officer)  # another tenant's case, under review
    [own] = kyc.list_cases(ctx, inftech)
    secrets = (TENANT_NAME, LISTED, "Entity List", "score", other.id, "Mei Tan", "affiliates")
    for who in ("inftech", "bank", "member"):
        mine = viewers[who].get("/ui/compliance")
        assert mine.status_code == 200, mine.text
        assert "approved for" in mine.text
        for secret in secrets:
            assert secret not in mine.text, (who, secret)
        foreign = viewers[who].get(f"/ui/compliance/cases/{other.id}")
        assert foreign.status_code == 404
        assert TENANT_NAME not in foreign.text
        missing = viewers[who].get("/ui/compliance/cases/kyc-000000000000")
        assert missing.status_code == 404  # the same answer as for a case that exists
        assert viewers[who].post(
            f"/ui/compliance/cases/{other.id}/decide",
            data={"decision": "approve", "reason": "x", "csrf": viewers[who].csrf},  # type: ignore[attr-defined]
        ).status_code in (403, 404)
    assert "INF Tech" not in viewers["bank"].get("/ui/compliance").text
    shown = viewers["inftech"].get(f"/ui/compliance/cases/{own.id}")
    assert shown.status_code == 200
    assert own.id in shown.text
    assert "<svg" not in shown.text
    assert "/decide" not in shown.text
    assert _state(ctx, other.id) == "needs_review"
    # no session: the login page
    assert ui(None).get("/ui/compliance").status_code == 303


def test_the_policy_in_force_on_a_chosen_day(viewers: dict[str, TestClient]) -> None:
    officer_ui = viewers["compliance"]
    suspended = officer_ui.get("/ui/compliance/policy", params={"as_of": "2026-03-02"}).text
    in_force_part, _, inactive_part = suspended.partition("Rules not in force")
    assert AFFILIATES in inactive_part
    assert "suspended" in inactive_part
    assert AFFILIATES not in in_force_part
    later = officer_ui.get("/ui/compliance/policy", params={"as_of": "2026-11-10"}).text
    assert AFFILIATES in later.partition("Rules not in force")[0]
    assert officer_ui.get("/ui/compliance/policy").status_code == 200  # today
    for bad in ("not-a-day", "1900-01-01"):
        assert officer_ui.get("/ui/compliance/policy", params={"as_of": bad}).status_code == 422
    tenant = viewers["inftech"].get("/ui/compliance/policy", params={"as_of": "2026-11-10"})
    assert tenant.status_code == 200
    assert "End uses no approval can allow" in tenant.text
    assert AFFILIATES not in tenant.text
    assert "@" not in re.sub(r"<[^>]+>", "", tenant.text)  # no pack or rule reference


def test_every_role_but_an_officer_is_refused_each_decision_and_nothing_changes(
    viewers: dict[str, TestClient], ctx: ServiceContext, inftech: Principal, bank: Principal
) -> None:
    """The POST half of tests/web/test_page_access.py's walk: another tenant's case and
    purpose review, for every role; an officer without the session's CSRF token."""
    job = jobs.submit(
        ctx, inftech, jobs.JobSubmission(gpus=8, purpose="drug-discovery: anthrax", command="x")
    )
    with ctx.db.transaction(write=False) as tx:
        [review] = tx.all(tx.select(PurposeReview).where(PurposeReview.subject_id == job.id))
        before = tx.session.scalar(select(func.count()).select_from(AuditRecord))
    [bank_case] = kyc.list_cases(ctx, bank)
    paths = (
        f"/ui/compliance/cases/{bank_case.id}/decide",
        f"/ui/compliance/purpose-reviews/{review.id}/decide",
    )
    for who in ("operator", "inftech", "bank", "university", "member"):
        client = viewers[who]
        for path in paths:
            for decision in ("approve", "reject"):
                data = {"decision": decision, "reason": "walk", "csrf": client.csrf}  # type: ignore[attr-defined]
                answer = client.post(path, data=data)
                assert answer.status_code in (403, 404), (who, path, answer.status_code)
                if who not in ("operator", "bank"):
                    assert "Bank Nusantara" not in answer.text
    for path in paths:
        answer = viewers["compliance"].post(path, data={"decision": "reject", "reason": "walk"})
        assert answer.status_code == 403
    with ctx.db.transaction(write=False) as tx:
        assert tx.session.scalar(select(func.count()).select_from(AuditRecord)) == before
        assert tx.require(PurposeReview, review.id, "review").state == "pending"
    assert _state(ctx, bank_case.id) == "approved"
