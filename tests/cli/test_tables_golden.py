"""The CLI's tables at 80 columns, against the real app on the demo: golden files, no line
wider than 80 columns, every id whole (the same as the JSON's)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

from cli_support import Cli, fits, golden, whole_ids
from sqlalchemy import select

from gpulease.domain.clock import ManualClock
from gpulease.persistence.tables import KycCase, Lease, Tenant
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from support.lists import entity_list_csv


def spread_demo_times(ctx: ServiceContext) -> None:
    """The demo makes its leases and cases in one instant; listings order them newest first,
    then by random id. Give each its own minute (by tenant name) so the order is fixed."""
    with ctx.db.transaction() as tx:
        names = {t.id: t.name for t in tx.all(select(Tenant))}
        leases = sorted(tx.all(select(Lease)), key=lambda r: names[r.tenant_id])
        for i, lease in enumerate(leases):
            lease.created_at = lease.created_at - timedelta(minutes=i)
        cases = sorted(tx.all(select(KycCase)), key=lambda r: names[r.tenant_id])
        for i, case in enumerate(cases):
            case.submitted_at = case.submitted_at - timedelta(minutes=i)


def ids(cli: Cli, who: str, *args: str, key: str = "id") -> list[str]:
    return [row[key] for row in json.loads(cli(who, *args, "--json").stdout)]


def test_lease_list_keeps_ids_and_prices_whole(cli: Cli, ctx: ServiceContext) -> None:
    spread_demo_times(ctx)
    out = cli("operator", "lease", "list").stdout
    golden("lease-list", out)
    fits(out)
    leases = json.loads(cli("operator", "lease", "list", "--json").stdout)
    whole_ids(out, [r["id"] for r in leases] + [r["tenant_id"] for r in leases])
    whole_ids(out, [f"{r['price']} {r['currency']}" for r in leases])
    names = {r["tenant_name"] for r in leases}  # the server puts names beside ids
    assert names == {"Bank Nusantara Digital", "INF Tech", "Universitas Teknologi Jakarta"}
    whole_ids(out, sorted(names))
    assert "hidden: start, end, why; use --wide" in out

    wide = cli("operator", "lease", "list", "--wide").stdout
    golden("lease-list-wide", wide)
    assert "hidden" not in wide
    whole_ids(wide, [r["state_reason"] for r in leases])


def test_lease_show_has_every_field(cli: Cli) -> None:
    [lease] = json.loads(cli("university", "lease", "list", "--json").stdout)
    out = cli("university", "lease", "show", lease["id"]).stdout
    golden("lease-show", out)
    fits(out)
    whole_ids(out, [lease["id"], lease["tenant_id"], lease["price"], lease["rate_per_gpu_hour"]])


def test_kyc_list_prints_reasons_below_the_table(cli: Cli, ctx: ServiceContext) -> None:
    spread_demo_times(ctx)
    out = cli("officer", "kyc", "list").stdout
    golden("kyc-list", out)
    fits(out)
    cases = json.loads(cli("officer", "kyc", "list", "--json").stdout)
    whole_ids(out, [c["id"] for c in cases] + [c["tenant_id"] for c in cases])
    for case in cases:  # the reason whole, on the case's own line under the table
        assert f"{case['id']}: {case['state_reason']}" in out


def test_kyc_submit_shows_the_screening_as_text(cli: Cli, tmp_path: Path) -> None:
    statement = (
        "We train credit-risk and fraud models for regional banks, and forecast loan "
        "defaults from anonymised repayment histories; no model is used for surveillance."
    )
    case = {
        "organization": {"name": "Universitas Teknologi Jakarta", "countries": ["ID"]},
        "end_uses": ["education", "scientific-computing"],
        "end_use_statement": statement,
    }
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    out = cli("university", "kyc", "submit", str(path)).stdout
    golden("kyc-submit-tenant", out)
    fits(out)
    found = re.search(r"kyc-[0-9a-f]{12}", out)
    assert found is not None
    case_id = found.group(0)
    assert case_id in ids(cli, "university", "kyc", "list")
    shown = cli("officer", "kyc", "show", case_id).stdout
    golden("kyc-show-officer", shown)
    fits(shown)
    whole_ids(shown, [case_id])


def write_csl(path: Path, names: list[str]) -> Path:
    return entity_list_csv(
        path,
        (
            {"name": name, "addresses": "1 Test Road, Jakarta, ID", "start_date": "2026-03-01"}
            for name in names
        ),
    )


def test_lists_list_keeps_the_ids_lists_diff_needs(
    cli: Cli, tmp_path: Path, clock: ManualClock
) -> None:
    first = write_csl(tmp_path / "el-1.csv", ["Orbital Holdings"])
    second = write_csl(tmp_path / "el-2.csv", ["Orbital Holdings", "Nebula Trading"])
    cli("officer", "lists", "import", str(first), "--format", "csl-csv", "--label", "march")
    clock.advance(86_400)
    cli("officer", "lists", "import", str(second), "--format", "csl-csv", "--label", "april")
    out = cli("officer", "lists", "list").stdout
    golden("lists-list", out)
    fits(out)
    new, old = ids(cli, "officer", "lists", "list")
    whole_ids(out, [new, old])
    diff = cli("officer", "lists", "diff", old, new).stdout
    assert "Nebula Trading" in diff


def test_jobs_reports_and_job_show(cli: Cli, clock: ManualClock, scheduler: LiveScheduler) -> None:
    def submit(gpus: int, name: str, *more: str) -> dict[str, object]:
        clock.advance(60)
        made = cli(
            "inftech",
            "job",
            "submit",
            "--gpus",
            str(gpus),
            "--purpose",
            "financial-services-ai",
            "--name",
            name,
            "--command",
            "python train.py --config configs/credit-risk-large.yaml --epochs 40",
            "--json",
            *more,
        )
        return dict(json.loads(made.stdout))

    big = submit(64, "credit-risk-pretraining-run-with-a-long-name", "--topology", "required")
    small = submit(8, "eval", "--walltime", "7200", "--duration", "1800")
    waiting = submit(2048, "too-big-for-the-lease")
    scheduler.tick()
    out = cli("inftech", "job", "list").stdout
    golden("job-list", out)
    fits(out)
    whole_ids(out, [str(j["id"]) for j in (big, small, waiting)])

    shown = cli("inftech", "job", "show", str(big["id"])).stdout
    golden("job-show-running", shown)
    fits(shown)
    job = json.loads(cli("inftech", "job", "show", str(big["id"]), "--json").stdout)
    whole_ids(shown, [job["id"], job["tenant_id"], job["purpose"]])
    whole_ids(shown, [serial for part in job["allocation"] for serial in part["gpu_serials"]])
    for label in ("purpose", "GPUs", "lease", "submitted", "started", "command"):
        assert f"\n{label} " in "\n" + shown

    clock.advance(1800)
    scheduler.tick()
    serial = job["allocation"][0]["gpu_serials"][0]
    report = cli("operator", "report", "gpu", serial).stdout
    golden("report-gpu", report)
    fits(report)
    whole_ids(report, [str(big["id"]), serial])

    runs = cli("operator", "report", "large-runs", "--threshold", "1e18").stdout
    golden("report-large-runs", runs)
    fits(runs)
    whole_ids(runs, [str(big["id"]), str(small["id"])])

    done = cli("inftech", "job", "show", str(small["id"])).stdout
    golden("job-show-succeeded", done)
    fits(done)


def test_users_and_end_uses(cli: Cli) -> None:
    out = cli("bank", "users", "list").stdout
    golden("users-list", out)
    fits(out)
    whole_ids(out, ids(cli, "bank", "users", "list"))
    vocabulary = cli("bank", "end-uses").stdout
    golden("end-uses", vocabulary)
    fits(vocabulary)


def test_disclosure_names_the_officer_beside_the_id(cli: Cli) -> None:
    leases = json.loads(cli("operator", "lease", "list", "--json").stdout)
    tenant = next(r["tenant_id"] for r in leases if r["tenant_name"] == "INF Tech")
    out = cli("officer", "report", "disclosure", tenant).stdout
    golden("report-disclosure", out)
    fits(out)
    report = json.loads(cli("officer", "report", "disclosure", tenant, "--json").stdout)
    decision = report["decisions"][0]["decisions"][0]
    whole_ids(out, [tenant, report["decisions"][0]["case_id"], decision["officer_id"]])
    whole_ids(out, [decision["officer"]])


def test_tokens_list(cli: Cli) -> None:
    out = cli("bank", "tokens", "list").stdout
    golden("tokens-list", out)
    fits(out)
    whole_ids(
        out, ids(cli, "bank", "tokens", "list") + ids(cli, "bank", "tokens", "list", key="prefix")
    )
