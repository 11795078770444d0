"""``gpulease usage``, ``gpulease invoices``, ``gpulease plans`` against the real app."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

from cli_support import Cli, fits

from gpulease.domain.clock import ManualClock
from gpulease.services.scheduling import LiveScheduler

PURPOSE = "financial AI: credit risk models"


def test_usage_invoices_and_plans(cli: Cli, scheduler: LiveScheduler, clock: ManualClock) -> None:
    cli("bank", "job", "submit", "--gpus", "4", "--purpose", PURPOSE, "--command", "run",
        "--duration", "600")  # fmt: skip
    scheduler.tick()
    clock.advance(15 * 60)
    scheduler.tick()
    table = cli("bank", "usage", "--month", "2026-03")
    fits(table.stdout)
    assert "guaranteed" in table.stdout
    rows = list(csv.DictReader(io.StringIO(cli("bank", "usage", "--format", "csv").stdout)))
    assert len(rows) == 4
    assert sum(Decimal(r["gpu_seconds"]) for r in rows) == Decimal(2400)
    summary = json.loads(cli("operator", "usage", "--summary", "--format", "json").stdout)
    assert [Decimal(s["guaranteed_gpu_seconds"]) for s in summary] == [Decimal(2400)]
    tenant = summary[0]["tenant_id"]

    refused = cli("bank", "invoices", "issue", "--tenant", tenant, "--month", "2026-03",
                  check=False)  # fmt: skip
    assert refused.exit_code == 2
    assert "operator-admin" in refused.stderr
    clock.advance((datetime(2026, 4, 1, 1, tzinfo=UTC) - clock.now()).total_seconds())
    issued = cli("operator", "invoices", "issue", "--tenant", tenant, "--month", "2026-03",
                 "--format", "json")  # fmt: skip
    invoice = json.loads(issued.stdout)["invoice"]
    listed = cli("bank", "invoices", "list")
    assert invoice["id"] in listed.stdout
    fits(listed.stdout)
    shown = cli("bank", "invoices", "show", invoice["id"], "--format", "csv").stdout
    assert shown.splitlines()[-1].split(",")[6] == invoice["total"]
    page = cli("bank", "invoices", "show", invoice["id"], "--format", "html").stdout
    assert page.startswith("<!doctype html>")
    credited = cli("operator", "invoices", "credit", invoice["id"], "--reason", "goodwill",
                   "--amount", "1:-5.00")  # fmt: skip
    assert "-5.00 USD" in credited.stdout
    table = cli("bank", "invoices", "show", invoice["id"]).stdout
    assert f"balance {Decimal(invoice['total']) - 5} USD" in table
    plans = cli("university", "plans", "list").stdout
    assert "standard" in plans
    fits(plans)
