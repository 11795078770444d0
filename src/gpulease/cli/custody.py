"""``gpulease custody``: the story of one chip; operators record events, keys and decisions.

``gpulease custody GPU-SERIAL`` tells where the chip came from (its chain with the papers of
each sale, its tray's and rack's events included), where it is, its node's last attestation
and alerts, and every job that ran on it. ``custody record`` adds an event (operator-admins;
one out of order is refused with the reason), ``custody alerts`` lists nodes whose
attestations stopped or disagree, ``custody clear ALERT`` decides one, ``custody
register-key NODE`` registers a node agent's public key. Tenants are refused by the server.

``gpulease attest --node N --site S --key FILE`` is the node agent: it signs "node N is at
site S now" with the node's own Ed25519 key (``--new-key`` makes the key file, mode 0600,
and prints the public key to register) and posts it; it needs no API token.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer._click.core import Context
from typer.core import TyperGroup

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, Credentials, load_credentials, segment
from gpulease.cli.tables import WideFlag, key, num, safe, stdout, text, when
from gpulease.domain.errors import DomainError, InvalidRequest


class _StoryByDefault(TyperGroup):
    """``gpulease custody SERIAL`` runs ``show``: a first word that names no subcommand is
    the serial."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


custody_app = typer.Typer(
    cls=_StoryByDefault,
    help="The story of one chip (gpulease custody GPU-SERIAL); custody events, node keys "
    "and attestation alerts.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

CHAIN = (
    when("when", 0),
    text("unit", 3),
    text("event", 0),
    text("holder", 1),
    text("location", 2),
)
JOBS = (
    text("tenant", 0),
    key("job"),
    text("purpose", 0),
    when("when (UTC)", 1),
    num("GPU-hours", 2),
)
ALERTS = (
    key("alert"),
    key("node", 1),
    text("kind", 0),
    text("state", 0),
    when("opened", 2),
    text("detail", 3),
)


def errors() -> Console:
    return Console(stderr=True)


def _day(value: Any) -> str:
    return str(value)[:10] if value else "-"


def _when(value: Any) -> str:
    return tables.moment(value, seconds=True)


@custody_app.command("show")
def show_command(
    serial: Annotated[str, typer.Argument(help="The GPU's serial number.")],
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """The full story of one chip: where it came from, where it is, who used it for what."""
    story = ApiClient().get(f"/custody/{segment(serial)}")
    if json_out:
        print(json.dumps(story, indent=2))
        return
    out = stdout()
    gpu, where = story["gpu"], story["where"]
    out.print(
        f"[bold]GPU {safe(gpu['serial'])}[/] ({safe(gpu['model'])}), "
        f"held by {safe(story['holder'] or 'nobody recorded')}"
    )
    out.print(
        tables.fields(
            [
                (
                    "site",
                    f"{safe(where['site'])} ({safe(where['site_id'])}), "
                    f"{safe(where['city'])} {safe(where['country'])}",
                ),
                ("rack", f"{safe(where['rack_serial'])} ({safe(where['rack_id'])})"),
                (
                    "tray",
                    f"{safe(where['node_serial'])} ({safe(where['node_id'])}), "
                    f"slot {where['slot']}",
                ),
                (
                    "node",
                    safe(where["node_state"])
                    + (
                        f": {safe(where['node_state_reason'])}"
                        if where["node_state_reason"]
                        else ""
                    ),
                ),
                ("attested", _attested(story["attestation"], where["site_id"])),
            ]
        )
    )
    for alert in story["alerts"]:
        if alert["state"] == "open":
            out.print(
                f"[red]open alert[/] {safe(alert['id'])} ({safe(alert['kind'])}): "
                f"{safe(alert['detail'])}"
            )
    chain = [
        [
            _day(e["at"]),
            safe(e["unit_kind"]),
            safe(e["event"]),
            safe(e["holder"]),
            safe(e["location"]),
        ]
        for e in story["chain"]
    ]
    tables.show(out, CHAIN, chain, wide=wide, title="where it came from")
    papers = [
        (
            f"{_day(e['at'])} {e['unit_kind']} sold {e['from_party']} -> {e['to_party']}",
            "; ".join(
                f"{label}: {e['documents'][name]}"
                for name, label in (
                    ("invoice", "invoice"),
                    ("export_authorization", "export"),
                    ("end_user_statement", "end-user statement"),
                )
                if e["documents"][name]
            ),
        )
        for e in story["chain"]
        if e["event"] == "sold"
    ]
    for line in tables.paragraphs(papers):
        out.print(line)
    for problem in story["chain_problems"]:
        out.print(f"[yellow]chain problem[/]: {safe(problem)}")
    jobs = [
        [
            safe(j["tenant"]),
            safe(j["job_id"]),
            safe(j["purpose"]),
            tables.moment(j["start"])
            + "\n-> "
            + ("[green]running[/]" if j["running"] else tables.moment(j["end"])[5:]),
            f"{j['gpu_hours']:,.3f}",
        ]
        for j in story["jobs"]
    ]
    tables.show(out, JOBS, jobs, wide=wide, title="jobs that ran on it")


def _attested(seen: dict[str, Any] | None, site_id: str) -> str:
    if seen is None:
        return "never"
    verdict = "[green]agrees[/]" if seen["agrees"] else f"[red]recorded at {safe(site_id)}[/]"
    how = "signed by the node's key" if seen["source"] == "agent" else "by the executor"
    return f"{_when(seen['at'])} at {safe(seen['site_id'])}, {how}; {verdict}"


@custody_app.command("record")
def record_command(
    unit: Annotated[str, typer.Argument(help="The unit: a GPU serial, a tray or rack id/serial.")],
    event: Annotated[
        str,
        typer.Option(
            help="manufactured, sold, shipped, received, "
            "installed, moved, repaired or decommissioned."
        ),
    ],
    unit_kind: Annotated[str, typer.Option("--kind", help="gpu, tray or rack.")] = "gpu",
    at: Annotated[str | None, typer.Option(help="ISO date-time (default: now).")] = None,
    holder: Annotated[str, typer.Option(help="Who holds it afterwards.")] = "",
    location: Annotated[str, typer.Option(help="Where: site / rack / slot, or a place.")] = "",
    seller: Annotated[str, typer.Option("--from", help="A sale's seller.")] = "",
    buyer: Annotated[str, typer.Option("--to", help="A sale's buyer.")] = "",
    invoice: Annotated[str, typer.Option(help="A sale's invoice reference.")] = "",
    export: Annotated[
        str, typer.Option(help="Export licence or licence exception reference.")
    ] = "",
    end_user_statement: Annotated[str, typer.Option(help="End-user statement reference.")] = "",
    note: Annotated[str, typer.Option(help="A note (carrier reference, repair ticket).")] = "",
) -> None:
    """Operators: record a provenance event (refused, with the reason, if out of order)."""
    moment = _moment(at) if at else datetime.now(UTC).replace(microsecond=0)
    row = ApiClient().post(
        "/custody/events",
        {
            "unit_kind": unit_kind.strip().lower(),
            "unit": unit,
            "event": event.strip().lower(),
            "at": moment.isoformat(),
            "holder": holder,
            "location": location,
            "from_party": seller,
            "to_party": buyer,
            "invoice": invoice,
            "export_authorization": export,
            "end_user_statement": end_user_statement,
            "note": note,
        },
    )
    stdout().print(
        f"recorded: {safe(row['unit_kind'])} {safe(row['unit_id'])} {safe(row['event'])} "
        f"{_day(row['at'])}, held by {safe(row['holder'])}"
    )


@custody_app.command("alerts")
def alerts_command(
    state: Annotated[str | None, typer.Option(help="open or cleared.")] = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Operator staff: nodes whose attestations stopped or disagree with their site."""
    rows = ApiClient().get("/custody/alerts", state=state)
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    cells = [
        [
            safe(a["id"]),
            safe(a["node_id"]),
            safe(a["kind"]),
            safe(a["state"]),
            _when(a["opened_at"]),
            safe(a["detail"]),
        ]
        for a in rows
    ]
    tables.show(stdout(), ALERTS, cells, wide=wide, title="attestation alerts")


@custody_app.command("clear")
def clear_command(
    alert: Annotated[str, typer.Argument(help="The alert's id.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
    keep_drained: Annotated[
        bool, typer.Option(help="Leave the node drained (default: back up).")
    ] = False,
) -> None:
    """Operators: decide an alert; its node comes back up unless --keep-drained."""
    if not reason.strip():
        raise InvalidRequest("say why with --reason", field="reason")
    done = ApiClient().post(
        f"/custody/alerts/{segment(alert)}/clear", {"reason": reason, "resume": not keep_drained}
    )
    stdout().print(
        f"alert {safe(done['alert']['id'])} cleared; node {safe(done['alert']['node_id'])} "
        f"is {safe(done['node_state'])}"
    )


@custody_app.command("register-key")
def register_key_command(
    node: Annotated[str, typer.Argument(help="The node's id or serial.")],
    public_key: Annotated[
        str,
        typer.Option(
            help="The agent's public key: 64 hex digits (`gpulease attest --new-key` prints it)."
        ),
    ],
) -> None:
    """Operators: register the public key a node's agent signs its attestations with."""
    row = ApiClient().post(f"/custody/nodes/{segment(node)}/key", {"public_key": public_key})
    stdout().print(f"node {safe(row['node_id'])}: key {safe(row['key_id'])} registered")


# --------------------------------------------------------------------- the agent
def attest_command(
    node: Annotated[str, typer.Option(help="This node's id.")],
    site: Annotated[str, typer.Option(help="The site this node is at.")],
    key_file: Annotated[Path, typer.Option("--key", help="This node's Ed25519 key (PEM).")],
    new_key: Annotated[
        bool, typer.Option(help="Create the key file (mode 0600) and print its public key.")
    ] = False,
    url: Annotated[str | None, typer.Option(help="The server (default: as logged in).")] = None,
    every: Annotated[
        float | None,
        typer.Option(min=0, help="Attest again every this many seconds, until stopped."),
    ] = None,
    times: Annotated[
        int, typer.Option(min=0, help="With --every: stop after this many (0: never).")
    ] = 0,
) -> None:
    """Node agent: sign "this node is at this site now" with the node's key and send it
    (once, or every --every seconds: a failed attempt is reported and the next one made)."""
    # the ledger's key files: a file of mode 0600 at most, never overwritten
    from gpulease.inventory.attestation import Statement, sign
    from gpulease.ledger.keys import generate_private_key, public_key_bytes
    from gpulease.services.ledger_keys import load_private_key, save_private_key

    if new_key:
        made = generate_private_key()
        save_private_key(key_file, made)
        # plain lines, whole whatever the terminal's width (a key cut in two is useless)
        print(f"key written to {key_file}; an operator registers its public key with:")
        print(f"gpulease custody register-key {node} --public-key {public_key_bytes(made).hex()}")
        return
    private = load_private_key(key_file)
    # no API token: the node's signature is its credential
    client = ApiClient(Credentials(url or load_credentials().url, None))
    sent = 0
    while True:
        statement = Statement(node, site, datetime.now(UTC), secrets.token_hex(16))
        try:
            row = client.post(
                "/custody/attestations",
                {"statement": statement.as_dict(), "signature": sign(private, statement)},
            )
        except DomainError as refused:
            if every is None:
                raise
            errors().print(f"[red]error[/red] ({safe(refused.code)}): {safe(refused.message)}")
        else:
            stdout().print(
                f"attested: node {safe(row['node_id'])} at {safe(row['site_id'])}, "
                f"{_when(row['at'])} UTC (key {safe(row['key_id'])})"
            )
        sent += 1
        if every is None or (times and sent >= times):
            return
        time.sleep(every)


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{value!r} is not an ISO date-time", field="at") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
