"""The ``gpulease`` command against the real server: login, leases, jobs, nodes, errors."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from e2e_support import Server, run_cli


def test_login_then_work_as_a_tenant(cli, demo_server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = demo_server.tokens["university"]
    out = cli("login", "--token", token, "--url", demo_server.url).stdout
    assert "tenant-admin" in out
    config = tmp_path / "config.json"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert json.loads(config.read_text())["token"] == token

    leases = json.loads(cli("lease", "list", "--json").stdout)
    assert [lease["gpus"] for lease in leases] == [64]

    job = json.loads(
        cli(
            "job",
            "submit",
            "--gpus",
            "8",
            "--purpose",
            "education",
            "--command",
            "python lab.py",
            "--duration",
            "0.5",
            "--wait",
            "--json",
        ).stdout
    )
    assert job["state"] == "succeeded"
    assert "python lab.py" in cli("job", "logs", job["id"]).stdout
    shown = cli("job", "show", job["id"]).stdout
    assert "succeeded" in shown
    assert "GPUs 0,1,2,3" in shown
    assert job["id"] in cli("job", "list").stdout
    assert "588 nodes in 35 racks" in cli("nodes").stdout  # Jakarta's 32 NVL72 racks, 3 HGX sites

    requested = json.loads(
        cli(
            "lease",
            "request",
            "--gpus",
            "16",
            "--days",
            "2",
            "--start",
            # far ahead, within the lease horizon (3 years by default)
            (datetime.now(UTC) + timedelta(days=400)).strftime("%Y-%m-%dT00:00:00Z"),
            "--json",
        ).stdout
    )
    assert requested["state"] == "requested"
    assert requested["gpus"] == 16


def test_errors_are_one_line_with_exit_status_2(cli, demo_server: Server) -> None:  # type: ignore[no-untyped-def]
    cli("login", "--token", demo_server.tokens["bank"], "--url", demo_server.url)
    missing = cli("job", "show", "job-000000000000", check=False)
    assert missing.returncode == 2
    assert "not_found" in missing.stderr
    assert "Traceback" not in missing.stderr
    # What was typed is one path segment, decoded once by the real server (the in-process
    # TestClient decodes twice, so tests/cli/test_typed_paths.py cannot check this one).
    escaped = cli("job", "show", "%2e%2e", check=False)
    assert escaped.returncode == 2, escaped.stdout
    assert "no job '%2e%2e'" in escaped.stderr, escaped.stderr
    dotted = cli("job", "show", "../leases", check=False)  # never the lease list
    assert (dotted.returncode, dotted.stdout) == (2, ""), dotted.stdout
    assert "no route GET /api/v1/jobs/../leases" in dotted.stderr, dotted.stderr
    too_big = cli(
        "job",
        "submit",
        "--gpus",
        "80",
        "--purpose",
        "financial AI",
        "--command",
        "y",
        "--topology",
        "required",
        check=False,
    )
    assert too_big.returncode == 2
    assert "NVLink domain" in too_big.stderr, too_big.stderr
    bad_login = cli("login", "--token", "glt_nope", "--url", demo_server.url, check=False)
    assert bad_login.returncode == 2
    assert "unauthenticated" in bad_login.stderr
    down = cli("login", "--token", "glt_x", "--url", "http://127.0.0.1:9", check=False)
    assert down.returncode == 2
    assert "cannot reach" in down.stderr


def test_tokens_and_users_from_the_cli(cli, demo_server: Server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("login", "--token", demo_server.tokens["bank"], "--url", demo_server.url)
    issued = cli("tokens", "issue", "--label", "ci runner", "--days", "3").stdout
    token = issued.strip().splitlines()[-1]
    assert token.startswith("glt_")
    listed = json.loads(cli("tokens", "list", "--json").stdout)
    (mine,) = [t for t in listed if t["label"] == "ci runner"]
    assert mine["revoked_at"] is None
    assert token not in json.dumps(listed)  # never the value
    assert "ci runner" in cli("tokens", "list").stdout
    users = json.loads(cli("users", "list", "--json").stdout)
    assert {u["email"] for u in users} == {"admin@bank.example"}  # its tenant only

    other = dict(os.environ, GPULEASE_CONFIG=str(tmp_path / "other.json"))
    run_cli(other, "login", "--token", token, "--url", demo_server.url)
    cli("tokens", "revoke", mine["id"], "--reason", "rotated")
    refused = run_cli(other, "whoami", check=False)
    assert refused.returncode == 2
    assert "revoked" in refused.stderr + refused.stdout
