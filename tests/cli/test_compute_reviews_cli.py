"""``gpulease compute-reviews``: an officer scans, reads a review's evidence and decides, at 80
columns, in process against the real app; a tenant is refused."""

from __future__ import annotations

import json

from cli_support import Cli, fits, whole_ids

from gpulease.domain.access import Principal
from gpulease.services import jobs
from gpulease.services.context import ServiceContext


def test_an_officer_scans_reads_and_decides(
    cli: Cli, ctx: ServiceContext, inftech: Principal
) -> None:
    for i in range(30):  # 30 x 2304 GPUs x 2 days on B200: 1.19e25, over the 10^25 rule
        jobs.submit(
            ctx,
            inftech,
            jobs.JobSubmission(
                gpus=2304,
                purpose="financial AI: pretraining",
                command="train",
                walltime_s=2 * 86_400.0,
                name=f"stage-{i}",
            ),
        )
    scanned = cli("officer", "compute-reviews", "scan").stdout
    assert "2 review(s) opened" in scanned
    listed = cli("officer", "compute-reviews", "list", "--state", "open").stdout
    fits(listed)
    found = cli("officer", "compute-reviews", "list", "--json").stdout
    reviews = json.loads(found)
    whole_ids(listed, [r["id"] for r in reviews])
    assert "1.194e+25" in listed  # 30 x 2304 x 172,800 s x 2.5e15 x 0.4
    campaign = next(r for r in reviews if r["kind"] == "campaign")
    shown = cli("officer", "compute-reviews", "show", campaign["id"]).stdout
    assert "site jkt1: 1.194e+25 operations" in shown
    assert "jobs (30, largest first)" in shown
    decided = cli(
        "officer", "compute-reviews", "decide", campaign["id"], "cleared", "--reason", "one model"
    ).stdout
    assert "cleared" in decided
    refused = cli("inftech", "compute-reviews", "list", check=False)
    assert refused.exit_code == 2
    assert "may read the compute review queue; you are tenant-admin" in refused.stderr
    twice = cli(
        "officer",
        "compute-reviews",
        "decide",
        campaign["id"],
        "reported",
        "--reason",
        "x",
        check=False,
    )
    assert "already decided" in twice.stderr
