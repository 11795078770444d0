"""The CLI over several sites (in-process app, both databases): ``job submit --site`` twice
dispatches and ``job show`` says why not the other site; ``report sites`` by country."""

from __future__ import annotations

import json

import pytest
from cli_support import Cli, fits

from gpulease.domain.access import Principal
from gpulease.services import demo_sites
from gpulease.services.context import ServiceContext


@pytest.fixture
def regional(ctx: ServiceContext, operator: Principal) -> list[str]:
    return demo_sites.add_regional_sites(ctx, operator)


def test_job_submit_among_sites_and_the_sites_report(cli: Cli, regional: list[str]) -> None:
    submit = ("job", "submit", "--gpus", "8", "--purpose", "financial-services-ai")
    made = cli("inftech", *submit, "--command", "x", "--site", "jhb1", "--site", "sgp1", "--json")
    job = json.loads(made.stdout)
    assert job["site_id"] == "sgp1"
    shown = cli("inftech", "job", "show", job["id"]).stdout
    flat = " ".join(shown.split())
    assert "dispatched sgp1: admitted; it starts now on idle capacity it borrows there" in flat
    assert "not chosen jhb1: held at jhb1: tenant not admitted under pack" in flat
    fits(shown)
    report = cli("officer", "report", "sites", "--country", "Malaysia").stdout
    assert "jhb1: Johor Bahru partner DC (demo), Johor Bahru MY (Asia/Kuala_Lumpur" in report
    assert "my-strategic-trade-2010@1" in " ".join(report.split())
    fits(report)
    assert cli("inftech", "report", "sites", check=False).exit_code != 0
