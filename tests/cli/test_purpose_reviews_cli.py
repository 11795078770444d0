"""``gpulease purpose-reviews``: an officer lists a held purpose, sees its terms and sources,
and approves it; a tenant is refused the queue."""

from __future__ import annotations

import json

import pytest
from cli_support import Cli, fits


@pytest.mark.slow  # five commands through the app: about 4 s on the shared machine
def test_an_officer_lists_shows_and_approves_a_held_purpose(cli: Cli) -> None:
    job = json.loads(
        cli(
            "inftech",
            "job",
            "submit",
            "--gpus",
            "8",
            "--purpose",
            "drug-discovery: ricin toxicity mechanisms",
            "--command",
            "train",
            "--json",
        ).stdout
    )
    assert job["wait_reason"].startswith("held until a compliance officer reviews")
    listed = cli("officer", "purpose-reviews", "list", "--state", "pending").stdout
    fits(listed)
    assert "pending" in listed
    [review] = json.loads(cli("officer", "purpose-reviews", "list", "--json").stdout)
    assert review["subject_id"] == job["id"]
    shown = cli("officer", "purpose-reviews", "show", review["id"]).stdout
    assert "ricin (chemical; CWC Schedule 1)" in shown
    approved = cli(
        "officer", "purpose-reviews", "approve", review["id"], "--reason", "antidote research"
    ).stdout
    assert "approved" in approved
    refused = cli("inftech", "purpose-reviews", "list", check=False)
    assert refused.exit_code == 2
    assert "read the purpose review queue" in refused.stderr, refused.stderr
