"""``gpulease report``: disclosure reports from the server, as tables, JSON or an HTML file.

Operator staff only (the server refuses tenants). ``--html OUT`` writes the same
self-contained page the server serves with ``?format=html``; ``--json`` prints the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.tree import Tree

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import WideFlag, key, num, stdout, text, when

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
    return f"[{COLOURS[_CLASSES.get(text, 'neutral')]}]{tables.safe(text)}[/]"


def _day(value: Any) -> str:
    return str(value)[:10] if value else "-"


def _e(value: Any) -> str:
    return tables.safe("" if value is None else value)


def _when(value: Any) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def _finish(report: dict[str, Any], kind: str, html: Path | None, json_out: bool) -> bool:
    """Write the HTML page if asked; print JSON if asked. True when tables are still due."""
    if html is not None:
        # Imported here: the report templates pull in the services and SQLAlchemy, which
        # every other command (a remote call) does without; it halves the CLI's start.
        from gpulease.services.report_templates import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report, kind), encoding="utf-8")
    if json_out:
        print(json.dumps(report, indent=2))
        return False
    if html is not None:
        stdout().print(f"HTML report written to {escape(str(html))}")
    return True


def _table(title: str, cols: tuple[tables.Col, ...], cells: list[list[str]], wide: bool) -> None:
    tables.show(stdout(), cols, cells, wide=wide, title=title)


WHO = (text("party", 0), text("kind", 2), text("countries", 3), text("identifiers", 1))
HITS = (
    text("party", 0),
    text("outcome", 0),
    text("list", 2),
    key("entry", 1),
    text("listed name", 1),
    num("score", 1),
)
DECISIONS = (
    key("case"),
    text("verdict", 1),
    text("officer", 1),
    text("decision", 0),
    when("at", 3),
    text("reason", 2),
    text("policy packs", 4),
)
USED = (text("purpose", 0), text("end use", 1), num("GPU-hours", 0), num("jobs", 0))
ACCESS = (
    key("IP address"),
    text("user", 1),
    when("first seen", 3),
    when("last seen", 2),
    num("requests", 0),
)
CUSTODY = (
    when("when", 0),
    text("event", 0),
    text("holder", 1),
    text("location", 2),
    text("document", 3),
)
USAGE = (
    text("tenant", 1),
    key("job"),
    text("purpose", 2),
    when("start", 3),
    when("end", 3),
    num("GPU-hours", 0),
)
RUNS = (
    key("job"),
    text("tenant", 2),
    text("purpose", 3),
    text("state", 1),
    num("GPUs", 0),
    num("seconds", 1),
    text("basis", 4),
    num("estimate", 0),
)
TOTALS = (
    text("tenant", 0),
    text("campaign", 1),
    num("jobs", 0),
    num("days", 2),
    num("estimate", 0),
)


# ---------------------------------------------------------------------- disclosure
@report_app.command("disclosure")
def disclosure_command(
    tenant_id: Annotated[
        str, typer.Argument(help="The tenant: its id, a unique prefix of it, or its name.")
    ],
    html: HtmlOut = None,
    as_of: Annotated[str | None, typer.Option(help="ISO date-time (default: now).")] = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """A tenant's end user: who, why, owners, restricted-party links, decisions, use, IPs."""
    report = ApiClient().get(f"/reports/tenants/{segment(tenant_id)}/disclosure", as_of=as_of)
    if not _finish(report, "disclosure", html, json_out):
        return
    tenant, standing = report["tenant"], report["standing"]
    stdout().print(
        f"[bold]End-user disclosure: {_e(tenant['name'])}[/] ({_e(tenant['id'])}, "
        f"{_e(tenant['country'])}, {_e(tenant['kind'])}) as of {_when(report['as_of'])}"
    )
    stdout().print(
        f"standing: {_v(standing['approval'])} ({_e(standing['reason'])}); "
        f"expires {_when(standing['expires_at'])}"
    )
    in_force = report.get("in_force") or {}
    if in_force:
        lists = ", ".join(f"{s['source']} {s['label']}" for s in in_force["lists"]) or "none"
        stdout().print(
            f"in force: lists {_e(lists)}; packs {_e(', '.join(in_force['policy_packs']))}"
        )
    parties = [
        [
            _e(p["name"]) + (" [dim](tenant)[/]" if p["is_tenant"] else ""),
            _e(p["kind"]),
            _e(", ".join(p["countries"])),
            _e("; ".join(f"{i['type']}: {i['value']}" for i in p["identifiers"])),
        ]
        for p in report["who"]["parties"]
    ]
    _table("who", WHO, parties, wide)
    why = report["why"]
    stdout().print(
        "declared end uses: "
        + _e(", ".join(u["code"] for u in why["declared_end_uses"]) or "—")
        + "\napproved end uses: "
        + _e(", ".join(u["code"] for u in why["approved_end_uses"]) or "—")
        + f"\nstatement: {_e(why['statement']) or '—'}"
    )
    root = report["ownership"]["tree"]
    if root is not None:
        stdout().print(_ownership_tree(root))
    for edge in report["ownership"].get("outside_chain", []):
        held = (
            f"{_e(edge['percent'])} % of {_e(edge['of'])}"
            if edge["kind"] == "stake"
            else f"{_e(edge['role'])} of {_e(edge['of'])}"
        )
        stdout().print(f"  outside the chain: {_e(edge['name'])}: {held}")
    links = report["restricted_links"]
    stdout().print(
        f"screening verdict: {_v(links['verdict'])}; ownership: {_v(links['ownership']['verdict'])}"
    )
    for reason in links["reasons"]:
        stdout().print(f"  - {_e(reason)}")
    if links["hits"]:
        hits = [
            [
                _e(h["party"]),
                _v(h["outcome"]),
                _e(h["source"]),
                _e(h["entry_id"]),
                _e(h["listed_name"]),
                _e(h["score"]),
            ]
            for h in links["hits"]
        ]
        _table("list hits", HITS, hits, wide)
    for flag in links["red_flags"]:
        stdout().print(f"  [yellow]red flag[/] {_e(flag['kind'])}: {_e(flag['reason'])}")
    decisions = [
        [
            _e(case["case_id"]),
            _v(case["verdict"]),
            _officer(d) if d else "-",
            _v(d["decision"]) if d else _v(case["state"]),
            _when(d["at"]) if d else "-",
            _e(d["reason"]) if d else _e(case["state_reason"]),
            _e(", ".join(d["policy_packs"] if d else case["policy_packs"])),
        ]
        for case in report["decisions"]
        for d in case["decisions"] or [None]
    ]
    _table("decisions", DECISIONS, decisions, wide)
    compute = report["compute"]
    used = [
        [_e(p["purpose"]), _e(p["end_use"] or "-"), f"{p['gpu_hours']:,.2f}", f"{p['jobs']:,}"]
        for p in compute["by_purpose"]
    ]
    _table(f"compute used: {compute['gpu_hours']:,.1f} GPU-hours", USED, used, wide)
    access = [
        [
            _e(a["ip"]),
            _e(a["user"] or a["user_id"]),
            _when(a["first_seen"]),
            _when(a["last_seen"]),
            "after as-of" if a["requests"] is None else f"{a['requests']:,}",
        ]
        for a in report["access"]
    ]
    _table("access", ACCESS, access, wide)


def _officer(decision: dict[str, Any]) -> str:
    """The officer's name above the id (the id alone when the name is unknown)."""
    return tables.named_cell(decision.get("officer"), _e(decision["officer_id"]))


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
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Where a GPU is, its chain of custody, and which tenants used it for what."""
    report = ApiClient().get(f"/reports/gpus/{segment(serial)}")
    if not _finish(report, "gpu", html, json_out):
        return
    where = report["location"]
    stdout().print(
        f"[bold]GPU {_e(report['gpu']['serial'])}[/] ({_e(report['gpu']['model'])}): "
        f"{_e(where['site'])}, {_e(where['city'])} {_e(where['country'])}; rack "
        f"{_e(where['rack_serial'])}, tray {_e(where['node_serial'])}, slot {where['slot']}"
    )
    custody = [
        [_day(e["at"]), _e(e["event"]), _e(e["holder"]), _e(e["location"]), _e(e["document"])]
        for e in report["custody"]
    ]
    _table("chain of custody", CUSTODY, custody, wide)
    usage = [
        [
            _e(u["tenant"]),
            _e(u["job_id"]),
            _e(u["purpose"]),
            _when(u["start"]),
            "[green]running[/]" if u["running"] else _when(u["end"]),
            f"{u['gpu_hours']:,.3f}",
        ]
        for u in report["usage"]
    ]
    _table("who used it", USAGE, usage, wide)


# ------------------------------------------------------------------- large runs
@report_app.command("large-runs")
def large_runs_command(
    threshold: Annotated[
        str | None,
        typer.Option(help="Operations, e.g. 1e25 (default: the policy packs' thresholds)."),
    ] = None,
    window_days: Annotated[
        int | None, typer.Option(help="Days a tenant's or campaign's jobs are added up over.")
    ] = None,
    peak_flops: Annotated[
        str | None,
        typer.Option(
            help="Dense peak FLOP/s per GPU for every job (default: each site's GPU model's "
            "rated peak)."
        ),
    ] = None,
    utilisation: Annotated[
        str | None, typer.Option(help="Fraction of peak sustained (default 0.4).")
    ] = None,
    html: HtmlOut = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Jobs whose estimated compute (GPUs x seconds x peak x utilisation) passes a threshold."""
    report = ApiClient().get(
        "/reports/large-runs",
        threshold=threshold,
        peak_flops_per_gpu=peak_flops,
        utilisation=utilisation,
        window_days=window_days,
    )
    if not _finish(report, "large-runs", html, json_out):
        return
    terms = report["terms"]
    stdout().print(f"[bold]Large training runs: at least {report['threshold_sci']} operations[/]")
    if report["threshold_note"]:
        stdout().print(f"[dim]{_e(report['threshold_note'])}[/]")
    if terms.get("peaks") and terms["peak_source"] != "given by the caller":
        peaks = "".join(
            f"\n    {_e(p['site_id'])} ({_e(p['models'])}): {p['peak_sci']} FLOP/s, "
            f"{_e(p['source'])}"
            for p in terms["peaks"]
        )
        peak_line = f"peak per GPU, the rated dense BF16 of each site's GPU model:{peaks}"
    else:
        peak_line = (
            f"peak {terms['peak_flops_per_gpu_sci']} FLOP/s per GPU ({_e(terms['peak_source'])})"
        )
    stdout().print(
        f"{_e(report['formula'])}\n  {peak_line}\n  utilisation {terms['utilisation']}\n"
        f"  seconds: {_e(terms['seconds'])}"
    )
    runs = [
        [
            _e(j["job_id"]),
            _e(j["tenant"]),
            _e(j["purpose"]),
            _v(j["state"]),
            f"{j['gpus']:,}",
            f"{j['seconds']:,.0f}",
            _e(j["seconds_basis"]),
            f"[red]{j['estimated_ops_sci']}[/]",
        ]
        for j in report["runs"]
    ]
    _table(f"{len(report['runs'])} of {report['jobs_considered']} jobs", RUNS, runs, wide)
    totals = [
        [
            _e(a["tenant"]),
            _e(a["campaign"] or "(all its jobs)"),
            f"{a['jobs']:,}",
            f"{a['window_days']:,}",
            f"[red]{a['estimated_ops_sci']}[/]",
        ]
        for a in report.get("aggregates", [])
    ]
    _table("tenants and campaigns (jobs added up over the window)", TOTALS, totals, wide)
    for t in report.get("thresholds", []):
        stdout().print(f"[dim]{t['sci']}: {_e(t['ref'])}[/]")


SITE_TENANTS = (
    key("site"),
    text("tenant", 0),
    num("GPU-hours", 0),
    text("leases", 2),
    text("admission", 1),
)


@report_app.command("sites")
def sites_command(
    site: Annotated[str | None, typer.Option(help="One site (its id).")] = None,
    country: Annotated[str | None, typer.Option(help="One country (ISO code or name).")] = None,
    as_of: Annotated[str | None, typer.Option(help="ISO date-time (default: now).")] = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Every site, one site or one country: packs in force, tenants' use and admission."""
    report = ApiClient().get("/reports/sites", site_id=site, country=country, as_of=as_of)
    if json_out:
        print(json.dumps(report, indent=2))
        return
    stdout().print(f"[bold]Sites as of {_when(report['as_of'])}[/]")
    for found in report["sites"]:
        stdout().print(
            f"{_e(found['site_id'])}: {_e(found['name'])}, {_e(found['city'])} "
            f"{_e(found['country'])} ({_e(found['timezone'])}, local day "
            f"{_e(found['local_day'])}); packs: {_e(', '.join(found['packs_in_force']))}"
        )
    rows = [
        [
            _e(found["site_id"]),
            _e(t["tenant"]),
            f"{t['compute']['gpu_hours']:,.2f}",
            _e(", ".join(f"{lease['gpus']} GPUs" for lease in t["leases"])),
            _e(t["admission"]),
        ]
        for found in report["sites"]
        for t in found["tenants"]
    ]
    _table("tenants by site", SITE_TENANTS, rows, wide)
    totals = report["totals"]["by_country"]
    stdout().print(
        "GPU-hours by country: "
        + (_e(", ".join(f"{c} {h:,.2f}" for c, h in totals.items())) or "none")
    )
