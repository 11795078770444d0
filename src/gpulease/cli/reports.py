"""``gpulease report``: disclosure reports from the server, as tables, JSON or an HTML file.

Operator staff only (the server refuses tenants). ``--html OUT`` writes the same
self-contained page the server serves with ``?format=html``; ``--json`` prints the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from gpulease.cli.client import ApiClient, segment
from gpulease.services.reports import render_html

console = Console()
report_app = typer.Typer(
    help="Disclosure reports: end users, GPU provenance, large training runs.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
HtmlOut = Annotated[
    Path | None, typer.Option("--html", help="Also write the report as an HTML page here.")
]
COLOURS = {"ok": "green", "warn": "yellow", "bad": "red", "neutral": "white"}
_CLASSES = {
    "clear": "ok",
    "approved": "ok",
    "approve": "ok",
    "succeeded": "ok",
    "review": "warn",
    "flagged": "warn",
    "needs_review": "warn",
    "suspended": "warn",
    "block": "bad",
    "restricted": "bad",
    "rejected": "bad",
    "reject": "bad",
    "expired": "bad",
}


def _v(value: Any) -> str:
    """A verdict or state, coloured."""
    text = str(value or "none")
    return f"[{COLOURS[_CLASSES.get(text, 'neutral')]}]{escape(text)}[/]"


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _when(value: Any) -> str:
    return str(value)[:19].replace("T", " ") if value else "—"


def _finish(report: dict[str, Any], kind: str, html: Path | None, json_out: bool) -> bool:
    """Write the HTML page if asked; print JSON if asked. True when tables are still due."""
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report, kind), encoding="utf-8")
    if json_out:
        print(json.dumps(report, indent=2))
        return False
    if html is not None:
        console.print(f"HTML report written to {escape(str(html))}")
    return True


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        right = column in ("%", "effective %", "GPU-hours", "jobs", "requests", "GPUs", "seconds")
        table.add_column(column, justify="right" if right else "left")
    return table


# ---------------------------------------------------------------------- disclosure
@report_app.command("disclosure")
def disclosure_command(
    tenant_id: Annotated[
        str, typer.Argument(help="The tenant: its id, a unique prefix of it, or its name.")
    ],
    html: HtmlOut = None,
    as_of: Annotated[str | None, typer.Option(help="ISO date-time (default: now).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """A tenant's end user: who, why, owners, restricted-party links, decisions, use, IPs."""
    report = ApiClient().get(f"/reports/tenants/{segment(tenant_id)}/disclosure", as_of=as_of)
    if not _finish(report, "disclosure", html, json_out):
        return
    tenant, standing = report["tenant"], report["standing"]
    console.print(
        f"[bold]End-user disclosure: {_e(tenant['name'])}[/] ({_e(tenant['id'])}, "
        f"{_e(tenant['country'])}, {_e(tenant['kind'])}) as of {_when(report['as_of'])}"
    )
    console.print(
        f"standing: {_v(standing['approval'])} ({_e(standing['reason'])}); "
        f"expires {_when(standing['expires_at'])}"
    )
    parties = _table("who", "party", "kind", "countries", "identifiers")
    for p in report["who"]["parties"]:
        parties.add_row(
            _e(p["name"]) + (" [dim](tenant)[/]" if p["is_tenant"] else ""),
            _e(p["kind"]),
            _e(", ".join(p["countries"])),
            _e("; ".join(f"{i['type']}: {i['value']}" for i in p["identifiers"])),
        )
    console.print(parties)
    why = report["why"]
    console.print(
        "declared end uses: "
        + _e(", ".join(u["code"] for u in why["declared_end_uses"]) or "—")
        + "\napproved end uses: "
        + _e(", ".join(u["code"] for u in why["approved_end_uses"]) or "—")
        + f"\nstatement: {_e(why['statement']) or '—'}"
    )
    root = report["ownership"]["tree"]
    if root is not None:
        console.print(_ownership_tree(root))
    links = report["restricted_links"]
    console.print(
        f"screening verdict: {_v(links['verdict'])}; ownership: {_v(links['ownership']['verdict'])}"
    )
    for reason in links["reasons"]:
        console.print(f"  - {_e(reason)}")
    if links["hits"]:
        hits = _table("list hits", "party", "outcome", "list", "entry", "listed name", "score")
        for h in links["hits"]:
            hits.add_row(
                _e(h["party"]),
                _v(h["outcome"]),
                _e(h["source"]),
                _e(h["entry_id"]),
                _e(h["listed_name"]),
                _e(h["score"]),
            )
        console.print(hits)
    for flag in links["red_flags"]:
        console.print(f"  [yellow]red flag[/] {_e(flag['kind'])}: {_e(flag['reason'])}")
    decisions = _table(
        "decisions", "case", "verdict", "officer", "decision", "at", "reason", "policy packs"
    )
    for case in report["decisions"]:
        for d in case["decisions"] or [None]:
            decisions.add_row(
                _e(case["case_id"]),
                _v(case["verdict"]),
                _e(d["officer_id"]) if d else "—",
                _v(d["decision"]) if d else _v(case["state"]),
                _when(d["at"]) if d else "—",
                _e(d["reason"]) if d else _e(case["state_reason"]),
                _e(", ".join(d["policy_packs"] if d else case["policy_packs"])),
            )
    console.print(decisions)
    compute = report["compute"]
    used = _table(
        f"compute used: {compute['gpu_hours']:,.1f} GPU-hours",
        "purpose",
        "end use",
        "GPU-hours",
        "jobs",
    )
    for p in compute["by_purpose"]:
        used.add_row(
            _e(p["purpose"]), _e(p["end_use"] or "—"), f"{p['gpu_hours']:,.2f}", str(p["jobs"])
        )
    console.print(used)
    access = _table("access", "IP address", "user", "first seen", "last seen", "requests")
    for a in report["access"]:
        access.add_row(
            _e(a["ip"]),
            _e(a["user"] or a["user_id"]),
            _when(a["first_seen"]),
            _when(a["last_seen"]),
            f"{a['requests']:,}",
        )
    console.print(access)


def _ownership_tree(root: dict[str, Any]) -> Tree:
    def label(node: dict[str, Any]) -> str:
        text = f"[bold]{_e(node['name'])}[/]"
        if node.get("percent") is not None:
            text += f" {_e(node['percent'])} % (effective {_e(node['effective_percent'])} %)"
        if node.get("since"):
            text += f" since {_e(str(node['since'])[:10])}"
        return text

    def grow(branch: Tree, node: dict[str, Any]) -> None:
        for officer in node.get("officers", []):
            branch.add(f"[dim]officer: {_e(officer['name'])} ({_e(officer['role'])})[/]")
        for owner in node.get("owners", []):
            grow(branch.add(label(owner)), owner)

    tree = Tree(f"ownership: {label(root)}")
    grow(tree, root)
    return tree


# -------------------------------------------------------------------------- gpu
@report_app.command("gpu")
def gpu_command(
    serial: Annotated[str, typer.Argument(help="The GPU's serial number.")],
    html: HtmlOut = None,
    json_out: JsonFlag = False,
) -> None:
    """Where a GPU is, its chain of custody, and which tenants used it for what."""
    report = ApiClient().get(f"/reports/gpus/{serial}")
    if not _finish(report, "gpu", html, json_out):
        return
    where = report["location"]
    console.print(
        f"[bold]GPU {_e(report['gpu']['serial'])}[/] ({_e(report['gpu']['model'])}): "
        f"{_e(where['site'])}, {_e(where['city'])} {_e(where['country'])}; rack "
        f"{_e(where['rack_serial'])}, tray {_e(where['node_serial'])}, slot {where['slot']}"
    )
    custody = _table("chain of custody", "when", "event", "holder", "location", "document")
    for e in report["custody"]:
        custody.add_row(
            _when(e["at"]), _e(e["event"]), _e(e["holder"]), _e(e["location"]), _e(e["document"])
        )
    console.print(custody)
    usage = _table("who used it", "tenant", "job", "purpose", "start", "end", "GPU-hours")
    for u in report["usage"]:
        usage.add_row(
            _e(u["tenant"]),
            _e(u["job_id"]),
            _e(u["purpose"]),
            _when(u["start"]),
            "[green]running[/]" if u["running"] else _when(u["end"]),
            f"{u['gpu_hours']:,.3f}",
        )
    console.print(usage)


# ------------------------------------------------------------------- large runs
@report_app.command("large-runs")
def large_runs_command(
    threshold: Annotated[
        str, typer.Option(help="Operations: 1e26 (default) or e.g. 1e25.")
    ] = "1e26",
    peak_flops: Annotated[
        str | None, typer.Option(help="Dense peak FLOP/s per GPU (default 2.5e15, B200 BF16).")
    ] = None,
    utilisation: Annotated[
        str | None, typer.Option(help="Fraction of peak sustained (default 0.4).")
    ] = None,
    html: HtmlOut = None,
    json_out: JsonFlag = False,
) -> None:
    """Jobs whose estimated compute (GPUs x seconds x peak x utilisation) passes a threshold."""
    report = ApiClient().get(
        "/reports/large-runs",
        threshold=threshold,
        peak_flops_per_gpu=peak_flops,
        utilisation=utilisation,
    )
    if not _finish(report, "large-runs", html, json_out):
        return
    terms = report["terms"]
    console.print(f"[bold]Large training runs: at least {report['threshold_sci']} operations[/]")
    if report["threshold_note"]:
        console.print(f"[dim]{_e(report['threshold_note'])}[/]")
    console.print(
        f"{_e(report['formula'])}\n  peak {terms['peak_flops_per_gpu_sci']} FLOP/s per GPU "
        f"({_e(terms['peak_source'])}); utilisation {terms['utilisation']}\n"
        f"  seconds: {_e(terms['seconds'])}"
    )
    table = _table(
        f"{len(report['runs'])} of {report['jobs_considered']} jobs",
        "job",
        "tenant",
        "purpose",
        "state",
        "GPUs",
        "seconds",
        "basis",
        "estimate",
    )
    for j in report["runs"]:
        table.add_row(
            _e(j["job_id"]),
            _e(j["tenant"]),
            _e(j["purpose"]),
            _v(j["state"]),
            f"{j['gpus']:,}",
            f"{j['seconds']:,.0f}",
            _e(j["seconds_basis"]),
            f"[red]{j['estimated_ops_sci']}[/]",
        )
    console.print(table)
