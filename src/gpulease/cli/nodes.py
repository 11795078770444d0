"""``gpulease nodes``: the site's trays, and operators putting one into maintenance.

``gpulease nodes`` (no subcommand) lists the trays rack by rack, as before.
``gpulease nodes maintenance NODE --on --reason ...`` drains the node (running work
finishes, nothing new lands; ``--down`` takes it down at once and requeues its jobs) and,
with ``--until``, plans a maintenance window so that the lease calendar does not sell its
GPUs until then; ``--off`` brings it back up. NODE is its id or its serial; the server
checks that the caller is an operator-admin (``NODE_CHANGE``, ``NODE_MAINTAIN``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from gpulease.cli import remote
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import safe
from gpulease.domain.errors import InvalidRequest

console = Console()
nodes_app = typer.Typer(
    help="The site's trays; operators put one into maintenance.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@nodes_app.callback()
def nodes_main(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="Only nodes in this state.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """The site's trays: state and GPUs in use, rack by rack."""
    if ctx.invoked_subcommand is None:
        remote.nodes_command(state=state, json_out=json_out)


@nodes_app.command("maintenance")
def maintenance(
    node: Annotated[str, typer.Argument(help="The node's id or serial.")],
    on: Annotated[
        bool | None, typer.Option("--on/--off", help="Into maintenance, or back up.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
    down: Annotated[
        bool, typer.Option(help="With --on: down at once (its jobs are requeued), not drained.")
    ] = False,
    until: Annotated[
        str | None,
        typer.Option(
            help="With --on: ISO date-time; the calendar sells none of its GPUs till then."
        ),
    ] = None,
) -> None:
    """Operators: put a node into maintenance (drain it) or bring it back up."""
    if on is None:
        raise InvalidRequest("say --on (into maintenance) or --off (back up)", field="on")
    if not reason.strip():
        raise InvalidRequest("say why with --reason", field="reason")
    if not on and (down or until):
        raise InvalidRequest("--down and --until go with --on", field="off")
    client = ApiClient()
    path = f"/nodes/{segment(node)}"
    if on:
        state = "down" if down else "draining"
        row = client.post(f"{path}/state", {"state": state, "reason": f"maintenance: {reason}"})
    else:
        row = client.post(f"{path}/state", {"state": "up", "reason": f"maintenance over: {reason}"})
    console.print(
        f"node {safe(row['id'])} ({safe(row['serial'])}) is {safe(row['state'])}: "
        f"{safe(row['state_reason'])}"
    )
    if on and until is not None:
        end = _moment(until)
        start = datetime.now(UTC).replace(microsecond=0)
        window = client.post(
            f"/nodes/{segment(row['id'])}/maintenance",
            {"start": start.isoformat(), "end": end.isoformat(), "reason": reason},
        )
        console.print(f"maintenance window {window['id']} until {window['end'][:16]} UTC")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not an ISO date-time", field="until") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
