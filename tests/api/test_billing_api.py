"""``/api/v1/usage``, ``/invoices``, ``/price-plans`` in-process: who sees what, bounds,
formats (JSON, CSV, HTML), and an invoice through the API whose total is the sum of its
lines and of the usage they cite."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock
from gpulease.services.scheduling import LiveScheduler

AsUser = Callable[[str], TestClient]
MARCH = {"start": "2026-03-01T00:00:00+00:00", "end": "2026-04-01T00:00:00+00:00"}
JOB = {"gpus": 8, "purpose": "financial AI: credit risk models", "command": "run"}


def test_usage_and_an_invoice_through_the_api(
    as_user: AsUser, scheduler: LiveScheduler, clock: ManualClock
) -> None:
    bank, operator, university = as_user("bank"), as_user("operator"), as_user("university")
    job = bank.post("/jobs", json={**JOB, "duration_s": 900})
    assert job.status_code == 201, job.text
    tenant = job.json()["tenant_id"]
    scheduler.tick()
    clock.advance(20 * 60)
    scheduler.tick()
    page = bank.get("/usage", params={**MARCH, "limit": 5})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 8
    assert len(body["items"]) == 5
    assert {i["capacity"] for i in body["items"]} == {"guaranteed"}
    assert sum(Decimal(i["gpu_seconds"]) for i in body["items"]) == Decimal(5 * 900)
    assert university.get("/usage", params=MARCH).json()["total"] == 0
    # another tenant's usage: as a tenant that does not exist
    other = university.get("/usage", params={**MARCH, "tenant_id": tenant})
    missing = university.get("/usage", params={**MARCH, "tenant_id": "tenant-000000000000"})
    assert other.status_code == missing.status_code == 404
    summary = operator.get("/usage/summary", params=MARCH).json()
    assert {s["tenant_id"]: Decimal(s["guaranteed_gpu_seconds"]) for s in summary} == {
        tenant: Decimal(7200)
    }

    early = operator.post("/invoices", json={"tenant_id": tenant, **MARCH})
    assert early.status_code == 422
    assert "once it is over" in early.json()["message"]
    clock.advance((datetime(2026, 4, 2, tzinfo=UTC) - clock.now()).total_seconds())
    issued = operator.post("/invoices", json={"tenant_id": tenant, **MARCH})
    assert issued.status_code == 201, issued.text
    inv = issued.json()["invoice"]
    amounts = [Decimal(ln["amount"]) for ln in inv["lines"]]
    assert Decimal(inv["total"]) == sum(amounts)
    included = [ln for ln in inv["lines"] if ln["kind"] == "included"]
    assert [Decimal(ln["gpu_seconds"]) for ln in included] == [Decimal(7200)]
    assert len(included[0]["usage_ids"]) == 8
    again = operator.post("/invoices", json={"tenant_id": tenant, **MARCH})
    assert again.status_code == 409
    assert inv["id"] in again.json()["message"]

    shown = bank.get(f"/invoices/{inv['id']}", params={"format": "csv"})
    assert shown.status_code == 200
    assert shown.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(shown.text)))
    assert rows[-1]["amount"] == inv["total"]
    assert sum(Decimal(r["amount"]) for r in rows[:-1]) == Decimal(inv["total"])
    page_html = bank.get(f"/invoices/{inv['id']}", params={"format": "html"})
    assert page_html.headers["content-type"].startswith("text/html")
    assert f'id="total">{inv["total"]}<' in page_html.text
    hidden = university.get(f"/invoices/{inv['id']}")
    assert hidden.status_code == 404
    assert hidden.json()["code"] == university.get("/invoices/inv-000000000000").json()["code"]
    assert [i["invoice"]["id"] for i in bank.get("/invoices").json()] == [inv["id"]]
    assert university.get("/invoices").json() == []

    note = operator.post(
        f"/invoices/{inv['id']}/credit-notes",
        json={"reason": "goodwill", "amounts": [[1, "-10.00"]]},
    )
    assert note.status_code == 201, note.text
    after = bank.get(f"/invoices/{inv['id']}").json()
    assert after["invoice"] == inv  # never changed
    assert Decimal(after["balance"]) == Decimal(inv["total"]) - 10
    refused = bank.post(f"/invoices/{inv['id']}/credit-notes", json={"reason": "x"})
    assert refused.status_code == 403


def test_bounds_and_plans(as_user: AsUser) -> None:
    operator, bank = as_user("operator"), as_user("bank")
    year = operator.get(
        "/usage", params={"start": "2026-01-01T00:00:00Z", "end": "2027-01-03T00:00:00Z"}
    )
    assert year.status_code == 422
    naive = operator.get("/usage", params={"start": "2026-01-01T00:00:00", "end": MARCH["end"]})
    assert naive.status_code == 422
    assert operator.get("/usage", params={"limit": 1001}).status_code == 422
    plans = bank.get("/price-plans").json()
    assert [(p["ref"], p["currency"], Decimal(p["borrowed_rate"])) for p in plans] == [
        ("standard/v1", "USD", Decimal("2.1"))
    ]
    body = {
        "plan_id": "gold",
        "effective_from": "2026-03-02T10:00:00Z",
        "currency": "XXZ",
        "reserved_rate": "3",
        "on_demand_rate": "4",
        "borrowed_discount": "0.5",
        "lending_share": "0.5",
    }
    assert operator.post("/price-plans", json=body).status_code == 422  # no such currency
    assert bank.post("/price-plans", json={**body, "currency": "USD"}).status_code == 403
    made = operator.post("/price-plans", json={**body, "currency": "JPY"})
    assert made.status_code == 201, made.text
    assert made.json()["ref"] == "gold/v1"
    tenant = bank.get("/me").json()["tenant_id"]
    moved = operator.post("/price-plans/assignments", json={"tenant_id": tenant, "plan_id": "gold"})
    assert moved.status_code == 200, moved.text
    # the bank's leases are quoted in USD, its new plan is in yen: rating says so
    draft = bank.get("/invoices/draft", params=MARCH)
    assert draft.status_code == 422
    assert "USD" in draft.json()["message"]
