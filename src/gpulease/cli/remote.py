"""Commands that talk to a gpulease server over HTTP: login, lease, job, nodes.

Listings go through :mod:`gpulease.cli.tables` (ids, numbers and money whole at any width;
``--wide`` for every column); a single lease or job prints every field a person asks about.
Following a job: ``--wait`` shows a spinner on a terminal and, off one, one timestamped line
per change of state on standard error (standard output keeps the result); ``job logs -f``
prints the log as the server has it, chunk by chunk (``?offset=``), until the job ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gpulease.cli import tables
from gpulease.cli.client import (
    ApiClient,
    Credentials,
    base_url,
    load_credentials,
    save_credentials,
    segment,
)
from gpulease.cli.tables import WideFlag, fields, stdout
from gpulease.domain.errors import InvalidRequest

lease_app = typer.Typer(help="Request and inspect leases.", no_args_is_help=True)
job_app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)
TERMINAL = {"succeeded", "failed", "cancelled"}
LOG_POLL_S = 1.0  # how often `job logs -f` asks for more
WAIT_POLL_S = 0.5  # how often `--wait` asks for the job's state

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _minute(value: str | None) -> str:
    return tables.moment(value)


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
        stdout().print(f"using the server's base URL {creds.url} (the client adds /api/v1)")
    me = ApiClient(creds).get("/me")
    path = save_credentials(creds)
    stdout().print(f"logged in as {who_is(me)}; saved to {path}")


def who_is(me: dict[str, Any]) -> str:
    """``Bank admin (user-...), tenant-admin of Bank Nusantara Digital (tenant-...)``."""
    user = tables.named(me.get("user_name"), me["user_id"])  # markup: names printed as written
    if me["tenant_id"] is None:
        return f"{user}, {tables.safe(me['role'])} of the operator"
    where = tables.named(me.get("tenant_name"), me["tenant_id"])
    return f"{user}, {tables.safe(me['role'])} of {where}"


# --------------------------------------------------------------------- leases
LEASE_COLUMNS = (
    tables.key("id"),
    tables.text("tenant", 1),
    tables.num("GPUs", 0),
    tables.when("start", 4),
    tables.when("end", 3),
    tables.text("state", 1),
    tables.num("price", 2),
    tables.text("why", 5),
)


def _show(
    cols: tuple[tables.Col, ...], rows: list[dict[str, Any]], cells: list[list[str]], wide: bool
) -> None:
    """Print the table; the tenant column only when the rows are of more than one tenant."""
    shown: Sequence[tables.Col] = cols
    if len({r["tenant_id"] for r in rows}) <= 1:
        shown, cells = tables.without(cols, cells, "tenant")
    tables.show(stdout(), shown, cells, wide=wide)


def _show_leases(rows: list[dict[str, Any]], wide: bool = False) -> None:
    cells = [
        [
            r["id"],
            tables.named_cell(r.get("tenant_name"), r["tenant_id"]),
            f"{r['gpus']:,}",
            _minute(r["start"]),
            _minute(r["end"]),
            tables.safe(r["state"]),
            f"{r['price']} {r['currency']}",
            tables.safe(r["state_reason"]),
        ]
        for r in rows
    ]
    _show(LEASE_COLUMNS, rows, cells, wide)


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
        _show_leases([lease])


@lease_app.command("list")
def lease_list(
    state: Annotated[str | None, typer.Option(help="Only leases in this state.")] = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Your tenant's leases (operators: all)."""
    rows = ApiClient().get("/leases", state=state)
    _print_json(rows) if json_out else _show_leases(rows, wide)


@lease_app.command("show")
def lease_show(lease_id: str, json_out: JsonFlag = False) -> None:
    """One lease, every field."""
    lease = ApiClient().get(f"/leases/{segment(lease_id)}")
    if json_out:
        _print_json(lease)
        return
    stdout().print(
        fields(
            [
                ("lease", lease["id"]),
                ("tenant", tables.named(lease.get("tenant_name"), lease["tenant_id"])),
                ("site", lease["site_id"]),
                (
                    "GPUs",
                    f"{lease['gpus']:,}" + (f", {lease['racks']} racks" if lease["racks"] else ""),
                ),
                ("from", _minute(lease["start"])),
                ("to", _minute(lease["end"])),
                ("state", tables.safe(lease["state"])),
                ("why", tables.safe(lease["state_reason"])),
                ("price", f"{lease['price']} {lease['currency']}"),
                ("rate", f"{lease['rate_per_gpu_hour']} {lease['currency']} per GPU-hour"),
                ("created", _minute(lease["created_at"])),
                ("updated", _minute(lease["updated_at"])),
            ]
        )
    )


@lease_app.command("decide")
def lease_decide(
    lease_id: str,
    action: Annotated[str, typer.Argument(help="approve, reject, cancel, suspend or resume")],
    reason: Annotated[str, typer.Option(help="Why (required to reject, cancel, suspend).")] = "",
) -> None:
    """Operators: decide on a lease."""
    if action not in ("approve", "reject", "cancel", "suspend", "resume"):
        raise InvalidRequest(f"unknown action {action!r}", field="action")
    lease = ApiClient().post(f"/leases/{segment(lease_id)}/{action}", {"reason": reason})
    _show_leases([lease])


# ----------------------------------------------------------------------- jobs
JOB_COLUMNS = (
    tables.key("id"),
    tables.text("tenant", 2),
    tables.text("name", 3),
    tables.num("GPUs", 0),
    tables.text("state", 0),
    tables.when("submitted", 4),
    tables.text("why / outcome", 2),
)
COLOURS = {"running": "green", "queued": "yellow", "failed": "red", "succeeded": "cyan"}


def _why(job: dict[str, Any]) -> str:
    return str(job["wait_reason"] if job["state"] == "queued" else job["end_reason"])


def _show_jobs(rows: list[dict[str, Any]], wide: bool = False) -> None:
    cells = [
        [
            r["id"],
            tables.named_cell(r.get("tenant_name"), r["tenant_id"]),
            tables.safe(r["name"]),
            f"{r['gpus']:,}",
            f"[{COLOURS.get(r['state'], 'white')}]{tables.safe(r['state'])}[/]",
            _minute(r["submitted_at"]),
            tables.safe(_why(r)),
        ]
        for r in rows
    ]
    _show(JOB_COLUMNS, rows, cells, wide)


def _shape(job: dict[str, Any]) -> str:
    """GPUs, how they are laid out and the topology asked for, in words."""
    parts = [f"{job['gpus']:,}"]
    if job["gpus_per_node"]:
        parts.append(f"{job['gpus_per_node']} per node")
    parts.append(f"topology {job['topology']}")
    if job["segment"]:
        parts.append(f"segments of {job['segment']:,} in one rack")
    return ", ".join(parts)


def _seconds(value: float | None) -> str:
    return f"{value:,.0f} s" if value is not None else ""


def show_job(job: dict[str, Any]) -> None:
    """Everything a person asks about a job: what, whose, why it waits or how it ended,
    when, and the GPUs it runs on."""
    ended = job["state"] in TERMINAL
    exit_code = job["exit_code"]
    runs = f"{job['starts']} start(s), {job['preemptions']} preemption(s)"
    pairs = [
        ("job", job["id"] + (f"  {tables.safe(job['name'])}" if job["name"] else "")),
        ("tenant", tables.named(job.get("tenant_name"), job["tenant_id"])),
        ("state", f"[{COLOURS.get(job['state'], 'white')}]{tables.safe(job['state'])}[/]"),
        ("waits because" if job["state"] == "queued" else "outcome", tables.safe(_why(job))),
        ("exit code", "" if exit_code is None else str(exit_code)),
        ("purpose", tables.safe(job["purpose"])),
        ("GPUs", _shape(job)),
        ("priority", job["priority"] + ("" if job["preemptible"] else ", not preemptible")),
        ("lease", job["lease_id"] or "none named"),
        ("borrowed", "yes: runs on GPUs another lease holds" if job["borrowed"] else ""),
        ("site", job["site_id"]),
        ("command", tables.safe(job["command"] or "")),
        ("image", tables.safe(job["image"] or "")),
        ("walltime", _seconds(job["walltime_s"])),
        ("duration", _seconds(job["duration_s"]) + " (simulated)" if job["duration_s"] else ""),
        ("submitted", tables.moment(job["submitted_at"], seconds=True)),
        ("started", tables.moment(job["started_at"], seconds=True) if job["started_at"] else ""),
        ("ended", tables.moment(job["ended_at"], seconds=True) if ended else ""),
        ("preempt at", tables.moment(job["preempt_at"], seconds=True) if job["preempt_at"] else ""),
        ("runs", runs if job["starts"] else ""),
    ]
    dispatch = job.get("dispatch") or {}
    if dispatch:
        pairs.append(("dispatched", tables.safe(f"{job['site_id']}: {dispatch['reason']}")))
        for passed in dispatch.get("passed", []):
            pairs.append(("not chosen", tables.safe(f"{passed['site_id']}: {passed['reason']}")))
    for part in job["allocation"]:
        slots = ",".join(str(s) for s in part["slots"])
        serials = ", ".join(part["gpu_serials"])
        pairs.append(("ran on" if ended else "on", f"{part['node_id']}: GPUs {slots} ({serials})"))
    stdout().print(fields(pairs))


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
    site: Annotated[
        list[str] | None,
        typer.Option(
            help="A site; repeat to let the control plane pick among several "
            "(none: among every site)."
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(help="Wait until the job ends, showing each change of its state."),
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Submit a job."""
    body: dict[str, Any] = {
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
    if site and len(site) == 1:
        body["site_id"] = site[0]
    elif site:
        body["sites"] = site
    client = ApiClient()
    job = client.post("/jobs", body, create=True)
    if wait:
        job = _follow(client, job)
    if json_out:
        _print_json(job)
    else:
        _show_jobs([job])
    if wait and job["state"] != "succeeded":
        raise typer.Exit(1)


def _follow(client: ApiClient, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the job until it ends. On a terminal, a spinner with its state; otherwise (a
    pipe, a log file, CI) one line per change of state, with the time, on standard error
    (standard output keeps the result, JSON or table)."""
    progress = Console(stderr=True)
    last = ""

    def line(job: dict[str, Any]) -> str:
        return f"{job['id']}: {job['state']} {_why(job)}".strip()

    if progress.is_terminal:
        with progress.status(line(job)) as status:
            while job["state"] not in TERMINAL:
                time.sleep(WAIT_POLL_S)
                job = client.get(f"/jobs/{segment(job['id'])}")
                status.update(line(job))
        return job
    while True:
        now = line(job)
        if now != last:
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            progress.print(f"{stamp} {now}", highlight=False, soft_wrap=True)
            last = now
        if job["state"] in TERMINAL:
            return job
        time.sleep(WAIT_POLL_S)
        job = client.get(f"/jobs/{segment(job['id'])}")


@job_app.command("list")
def job_list(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000, help="At most this many.")] = 50,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Your tenant's jobs, newest first (operators: all)."""
    rows = ApiClient().get("/jobs", state=state, limit=limit)
    _print_json(rows) if json_out else _show_jobs(rows, wide)


@job_app.command("show")
def job_show(job_id: str, json_out: JsonFlag = False) -> None:
    """One job: purpose, shape, lease, times, why it waits or how it ended, its GPUs."""
    job = ApiClient().get(f"/jobs/{segment(job_id)}")
    _print_json(job) if json_out else show_job(job)


@job_app.command("logs")
def job_logs(
    job_id: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing as it runs, until it ends.")
    ] = False,
) -> None:
    """A job's output, fetched in bounded chunks; with -f, printed as it arrives until the
    job ends."""

    def write(text: str) -> None:
        print(text, end="", flush=True)

    if not follow_log(ApiClient(), job_id, write, follow=follow):
        print()


def follow_log(
    client: ApiClient,
    job_id: str,
    write: Callable[[str], None],
    *,
    follow: bool,
    poll_s: float = LOG_POLL_S,
) -> bool:
    """Hand the job's log to ``write`` chunk by chunk as the server has it (``?offset=``);
    with ``follow``, ask again every ``poll_s`` seconds until the server says the log is
    complete (the job ended and every byte was read). True if the text ended a line."""
    offset, ends_line = 0, True
    while True:
        chunk = client.get(f"/jobs/{segment(job_id)}/logs", offset=offset)
        if chunk["text"]:
            write(chunk["text"])
            ends_line = chunk["text"].endswith("\n")
        moved, offset = chunk["next_offset"] > offset, chunk["next_offset"]
        if offset < chunk["size"] and moved:
            continue  # more is there already: the next chunk at once
        if chunk["complete"] or not follow:
            return ends_line
        time.sleep(poll_s)


@job_app.command("cancel")
def job_cancel(job_id: str, reason: Annotated[str, typer.Option(help="Why.")] = "") -> None:
    """Cancel a queued or running job (by its id, a unique prefix of it, or its name)."""
    client = ApiClient()
    job = client.get(f"/jobs/{segment(job_id)}")
    if job["state"] in TERMINAL:  # the server would change nothing: say so
        ended = (job.get("ended_at") or "")[:19].replace("T", " ")
        stdout().print(f"job {job['id']} already ended ({job['state']} at {ended}); nothing to do")
        return
    _show_jobs([client.post(f"/jobs/{segment(job['id'])}/cancel", {"reason": reason})])


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
    stdout().print(table)


def whoami_command() -> None:
    """Who the saved (or GPULEASE_TOKEN) credentials belong to."""
    creds = load_credentials()
    me = ApiClient(creds).get("/me")
    stdout().print(f"{who_is(me)} at {creds.url}")
