"""The admin commands against the real server: tenants, audit, nodes maintenance, records
named by name or prefix, and errors that say what to do next."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from e2e_support import Server


def test_login_names_people_and_takes_a_url_ending_in_api_v1(cli, demo_server: Server) -> None:  # type: ignore[no-untyped-def]
    out = cli("login", "--token", demo_server.tokens["bank"], "--url", demo_server.url + "/api/v1/")
    assert "using the server's base URL" in out.stdout
    assert "tenant-admin of Bank Nusantara Digital (tenant-" in out.stdout
    who = cli("whoami").stdout
    assert "Bank Nusantara Digital" in who
    assert who.rstrip().endswith(demo_server.url)


def test_a_saved_token_the_server_does_not_know_says_log_in_again(  # type: ignore[no-untyped-def]
    cli, demo_server: Server, tmp_path: Path
) -> None:
    saved = {"url": demo_server.url, "token": "glt_" + "0" * 40}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    refused = cli("whoami", check=False)
    assert refused.returncode == 2
    assert "does not know your saved token" in refused.stderr
    assert f"gpulease login --url {demo_server.url} --token" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_tenants_and_a_report_by_name(cli, demo_server: Server) -> None:  # type: ignore[no-untyped-def]
    cli("login", "--token", demo_server.tokens["compliance"], "--url", demo_server.url)
    listed = json.loads(cli("tenants", "list", "--json").stdout)
    by_name = {t["name"]: t for t in listed}
    assert {"INF Tech", "Bank Nusantara Digital"} <= set(by_name)
    assert by_name["INF Tech"]["kyc_state"] == "approved"
    assert "INF Tech" in cli("tenants", "list").stdout
    inf = by_name["INF Tech"]["id"]
    shown = json.loads(cli("tenants", "show", "inf tech", "--json").stdout)
    assert shown["id"] == inf
    assert json.loads(cli("tenants", "show", inf[:13], "--json").stdout)["id"] == inf
    report = json.loads(cli("report", "disclosure", "INF Tech", "--json").stdout)
    assert report["tenant"]["id"] == inf
    assert report["ledger"]["head"] is not None  # the server holds the key `init` made
    assert report["ledger"]["records"][0]["inclusion"]["leaf_index"] >= 0
    users = json.loads(cli("users", "list", "--tenant", "INF Tech", "--json").stdout)
    assert users
    assert {u["tenant_id"] for u in users} == {inf}
    short = cli("tenants", "show", "tenant-1", check=False)
    assert short.returncode == 2
    assert "at least 6 characters" in short.stderr


def test_a_tenant_cannot_see_other_tenants_by_name(cli, demo_server: Server) -> None:  # type: ignore[no-untyped-def]
    cli("login", "--token", demo_server.tokens["bank"], "--url", demo_server.url)
    listed = json.loads(cli("tenants", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["Bank Nusantara Digital"]
    hidden = cli("tenants", "show", "INF Tech", check=False)
    missing = cli("tenants", "show", "No Such Tenant", check=False)
    assert hidden.returncode == missing.returncode == 2
    assert "(not_found)" in hidden.stderr
    assert hidden.stderr.replace("INF Tech", "X") == missing.stderr.replace("No Such Tenant", "X")
    refused = cli("audit", check=False)
    assert refused.returncode == 2
    assert "may read the audit trail" in refused.stderr


def test_cancel_by_prefix_twice_says_nothing_to_do(cli, demo_server: Server) -> None:  # type: ignore[no-untyped-def]
    cli("login", "--token", demo_server.tokens["university"], "--url", demo_server.url)
    job = json.loads(
        cli(
            "job",
            "submit",
            "--gpus",
            "8",
            "--purpose",
            "education",
            "--command",
            "sleep",
            "--duration",
            "600",
            "--name",
            "long lab",
            "--json",
        ).stdout
    )
    cancelled = cli("job", "cancel", job["id"][:10], "--reason", "done early").stdout
    assert "cancelled" in cancelled
    again = cli("job", "cancel", "long lab").stdout
    assert f"job {job['id']} already ended (cancelled at " in again
    assert "nothing to do" in again


def test_audit_and_node_maintenance(cli, demo_server: Server) -> None:  # type: ignore[no-untyped-def]
    cli("login", "--token", demo_server.tokens["operator"], "--url", demo_server.url)
    nodes = json.loads(cli("nodes", "--json").stdout)
    node = nodes[-1]
    until = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    on = cli(
        "nodes", "maintenance", node["serial"].lower(), "--on", "--reason", "fans", "--until", until
    ).stdout
    assert f"node {node['id']}" in on
    assert "draining: maintenance: fans" in on
    assert "maintenance window maint-" in on
    draining = json.loads(cli("nodes", "--state", "draining", "--json").stdout)
    assert [n["id"] for n in draining] == [node["id"]]
    twice = cli("nodes", "maintenance", node["id"], "--on", "--reason", "fans", check=False)
    assert twice.returncode == 2
    assert "already 'draining'; nothing to do" in twice.stderr
    off = cli("nodes", "maintenance", node["id"], "--off", "--reason", "fixed").stdout
    assert "is up" in off
    neither = cli("nodes", "maintenance", node["id"], "--reason", "x", check=False)
    assert "say --on" in neither.stderr

    trail = json.loads(cli("audit", "--record", node["id"], "--json").stdout)
    assert [r["action"] for r in trail][:3] == ["node.state", "node.maintenance", "node.state"]
    mine = json.loads(cli("audit", "--actor", "ops@indosat.example", "--json").stdout)
    assert mine
    assert {r["actor"] for r in mine} == {trail[0]["actor"]}
    table = cli("audit", "--limit", "2").stdout
    assert "Indosat operations" in table
    assert "more: add --before" in table
    page = json.loads(cli("audit", "--limit", "2", "--json").stdout)
    after = json.loads(
        cli("audit", "--limit", "2", "--before", str(page[-1]["id"]), "--json").stdout
    )
    assert all(r["id"] < page[-1]["id"] for r in after)
