"""Commands that talk to a gpulease server over HTTP: login, lease, job, nodes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gpulease.cli.client import (
    ApiClient,
    Credentials,
    base_url,
    load_credentials,
    save_credentials,
    segment,
)
from gpulease.domain.errors import InvalidRequest

console = Console()
lease_app = typer.Typer(help="Request and inspect leases.", no_args_is_help=True)
job_app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)
TERMINAL = {"succeeded", "failed", "cancelled"}
LOG_POLL_S = 1.0  # how often `job logs -f` asks for more
# Ids are what people copy into the next command: never cut them, whatever the width.
ID_COLUMN: dict[str, Any] = {"no_wrap": True, "min_width": 19}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _moment(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{text!r} is not an ISO date-time (or 'now')", field="start"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------- login
def login_command(
    token: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Your API token.")],
    url: Annotated[str, typer.Option(help="The server.")] = "http://127.0.0.1:8000",
) -> None:
    """Check a token against the server and remember both."""
    creds = Credentials(base_url(url), token)
    if creds.url != url.strip().rstrip("/"):
        console.print(f"using the server's base URL {creds.url} (the client adds /api/v1)")
    me = ApiClient(creds).get("/me")
    path = save_credentials(creds)
    console.print(f"logged in as {who_is(me)}; saved to {path}")


def who_is(me: dict[str, Any]) -> str:
    """``Bank admin (user-...), tenant-admin of Bank Nusantara Digital (tenant-...)``."""
    user = f"{me['user_name']} ({me['user_id']})" if me.get("user_name") else me["user_id"]
    if me["tenant_id"] is None:
        return f"{user}, {me['role']} of the operator"
    tenant = me.get("tenant_name") or ""
    where = f"{tenant} ({me['tenant_id']})" if tenant else me["tenant_id"]
    return f"{user}, {me['role']} of {where}"


# --------------------------------------------------------------------- leases
def _lease_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title_justify="left")
    for column in ("id", "tenant", "GPUs", "start", "end", "state", "price", "why"):
        table.add_column(
            column,
            justify="right" if column in ("GPUs", "price") else "left",
            **ID_COLUMN if column in ("id", "tenant") else {},
        )
    for r in rows:
        table.add_row(
            r["id"],
            r["tenant_id"],
            f"{r['gpus']:,}",
            r["start"][:16],
            r["end"][:16],
            r["state"],
            f"{r['price']} {r['currency']}",
            r["state_reason"],
        )
    return table


@lease_app.command("request")
def lease_request(
    gpus: Annotated[int | None, typer.Option(help="GPUs to lease.")] = None,
    racks: Annotated[int | None, typer.Option(help="Or whole racks (NVLink domains).")] = None,
    start: Annotated[str, typer.Option(help="ISO date-time (UTC if no zone) or 'now'.")] = "now",
    days: Annotated[float, typer.Option(help="Length of the lease in days.")] = 30,
    site: Annotated[str | None, typer.Option(help="Site id (default: the first).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Operators: for which tenant.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Request a lease; the answer carries its quote, or says why it cannot be sold."""
    begin = _moment(start)
    body = {
        "gpus": gpus,
        "racks": racks,
        "start": begin.isoformat(),
        "end": (begin + timedelta(days=days)).isoformat(),
        "site_id": site,
        "tenant_id": tenant,
    }
    lease = ApiClient().post("/leases", body, create=True)
    if json_out:
        _print_json(lease)
    else:
        console.print(_lease_table([lease]))


@lease_app.command("list")
def lease_list(
    state: Annotated[str | None, typer.Option(help="Only leases in this state.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Your tenant's leases (operators: all)."""
    rows = ApiClient().get("/leases", state=state)
    _print_json(rows) if json_out else console.print(_lease_table(rows))


@lease_app.command("show")
def lease_show(lease_id: str, json_out: JsonFlag = False) -> None:
    """One lease."""
    lease = ApiClient().get(f"/leases/{lease_id}")
    _print_json(lease) if json_out else console.print(_lease_table([lease]))


@lease_app.command("decide")
def lease_decide(
    lease_id: str,
    action: Annotated[str, typer.Argument(help="approve, reject, cancel, suspend or resume")],
    reason: Annotated[str, typer.Option(help="Why (required to reject, cancel, suspend).")] = "",
) -> None:
    """Operators: decide on a lease."""
    if action not in ("approve", "reject", "cancel", "suspend", "resume"):
        raise InvalidRequest(f"unknown action {action!r}", field="action")
    lease = ApiClient().post(f"/leases/{lease_id}/{action}", {"reason": reason})
    console.print(_lease_table([lease]))


# ----------------------------------------------------------------------- jobs
def _job_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title_justify="left")
    for column in ("id", "name", "GPUs", "state", "submitted", "why / outcome"):
        table.add_column(
            column,
            justify="right" if column == "GPUs" else "left",
            **ID_COLUMN if column == "id" else {},
        )
    colours = {"running": "green", "queued": "yellow", "failed": "red", "succeeded": "cyan"}
    for r in rows:
        why = r["wait_reason"] if r["state"] == "queued" else r["end_reason"]
        state = f"[{colours.get(r['state'], 'white')}]{r['state']}[/]"
        table.add_row(r["id"], r["name"], f"{r['gpus']:,}", state, r["submitted_at"][:19], why)
    return table


@job_app.command("submit")
def job_submit(
    gpus: Annotated[int, typer.Option(help="GPUs, all at once (a gang).")],
    purpose: Annotated[str, typer.Option(help="Declared end use, e.g. 'financial AI'.")],
    command: Annotated[str | None, typer.Option(help="Command to run.")] = None,
    image: Annotated[str | None, typer.Option(help="Container image to run.")] = None,
    name: Annotated[str, typer.Option(help="A name for people.")] = "",
    gpus_per_node: Annotated[int | None, typer.Option(help="Exact GPUs on each node.")] = None,
    topology: Annotated[str, typer.Option(help="required, preferred or none.")] = "preferred",
    segment: Annotated[int | None, typer.Option(help="GPUs per segment in one rack.")] = None,
    walltime: Annotated[float | None, typer.Option(help="Limit in seconds.")] = None,
    duration: Annotated[float | None, typer.Option(help="Simulated executor: run time.")] = None,
    priority: Annotated[str, typer.Option(help="low, normal, high or critical.")] = "normal",
    lease: Annotated[str | None, typer.Option(help="Lease id to charge.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the job ends, showing its state.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Submit a job."""
    body = {
        "gpus": gpus,
        "purpose": purpose,
        "command": command,
        "image": image,
        "name": name,
        "gpus_per_node": gpus_per_node,
        "topology": topology,
        "segment": segment,
        "walltime_s": walltime,
        "duration_s": duration,
        "priority": priority,
        "lease_id": lease,
    }
    client = ApiClient()
    job = client.post("/jobs", body, create=True)
    if wait:
        job = _follow(client, job)
    if json_out:
        _print_json(job)
    else:
        console.print(_job_table([job]))
    if wait and job["state"] != "succeeded":
        raise typer.Exit(1)


def _follow(client: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    last = ""
    with console.status(f"{job['id']}: {job['state']}") as status:
        while job["state"] not in TERMINAL:
            line = f"{job['id']}: {job['state']} {job['wait_reason']}".strip()
            if line != last:
                status.update(line)
                last = line
            time.sleep(0.5)
            job = client.get(f"/jobs/{job['id']}")
    return job


@job_app.command("list")
def job_list(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Your tenant's jobs, newest first (operators: all)."""
    rows = ApiClient().get("/jobs", state=state, limit=limit)
    _print_json(rows) if json_out else console.print(_job_table(rows))


@job_app.command("show")
def job_show(job_id: str, json_out: JsonFlag = False) -> None:
    """One job, with the GPUs it runs on."""
    job = ApiClient().get(f"/jobs/{job_id}")
    if json_out:
        _print_json(job)
        return
    console.print(_job_table([job]))
    for part in job["allocation"]:
        slots = ",".join(str(s) for s in part["slots"])
        console.print(f"  {part['node_id']}: GPUs {slots} ({', '.join(part['gpu_serials'])})")


@job_app.command("logs")
def job_logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
) -> None:
    """A job's output, fetched in bounded chunks; with -f, printed as it comes until the
    job ends."""
    client = ApiClient()
    offset, ends_line = 0, True
    while True:
        chunk = client.get(f"/jobs/{job_id}/logs", offset=offset)
        text = chunk["text"]
        if text:
            print(text, end="", flush=True)
            ends_line = text.endswith("\n")
        moved, offset = chunk["next_offset"] > offset, chunk["next_offset"]
        if offset < chunk["size"] and moved:
            continue  # more is there already: the next chunk at once
        if chunk["complete"] or not follow:
            break
        time.sleep(LOG_POLL_S)
    if not ends_line:
        print()


@job_app.command("cancel")
def job_cancel(job_id: str, reason: Annotated[str, typer.Option(help="Why.")] = "") -> None:
    """Cancel a queued or running job (by its id, a unique prefix of it, or its name)."""
    client = ApiClient()
    job = client.get(f"/jobs/{segment(job_id)}")
    if job["state"] in TERMINAL:  # the server would change nothing: say so
        ended = (job.get("ended_at") or "")[:19].replace("T", " ")
        console.print(f"job {job['id']} already ended ({job['state']} at {ended}); nothing to do")
        return
    console.print(_job_table([client.post(f"/jobs/{job['id']}/cancel", {"reason": reason})]))


# ---------------------------------------------------------------------- nodes
def nodes_command(
    state: Annotated[str | None, typer.Option(help="Only nodes in this state.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """The site's trays: state and GPUs in use, rack by rack."""
    rows = ApiClient().get("/nodes", state=state)
    if json_out:
        _print_json(rows)
        return
    racks: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        racks.setdefault(row["rack_id"], []).append(row)
    table = Table(title=f"{len(rows)} nodes in {len(racks)} racks", title_justify="left")
    for column in ("rack", "nodes up", "GPUs used", "trays (used/total)", "not up"):
        table.add_column(column)
    for rack_id, nodes in racks.items():
        up = sum(1 for n in nodes if n["state"] == "up")
        used = sum(n["used_gpus"] for n in nodes)
        total = sum(n["gpus"] for n in nodes)
        bar = "".join(
            "█" if n["used_gpus"] == n["gpus"] else "▒" if n["used_gpus"] else "·" for n in nodes
        )
        down = ", ".join(f"{n['id']} {n['state']}" for n in nodes if n["state"] != "up")
        table.add_row(rack_id, f"{up}/{len(nodes)}", f"{used}/{total}", bar, down)
    console.print(table)


def whoami_command() -> None:
    """Who the saved (or GPULEASE_TOKEN) credentials belong to."""
    creds = load_credentials()
    me = ApiClient(creds).get("/me")
    console.print(f"{who_is(me)} at {creds.url}")
