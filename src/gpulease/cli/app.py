"""The ``gpulease`` command. Thin: parses options, calls a core or driver, renders the result.

Every :class:`DomainError` is shown as one red line with its code and exit status 2; a user
never sees a traceback for bad input.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpulease import __version__
from gpulease.cli import (
    access,
    audit,
    billing,
    compliance,
    compute_reviews,
    custody,
    ledger,
    nodes,
    purpose_reviews,
    remote,
    reports,
    screening,
    server,
    tables,
    tenants,
)
from gpulease.domain.errors import DomainError, InvalidRequest
from gpulease.inventory.topology import build_cluster, parse_cluster_spec
from gpulease.scheduler.ordering import POLICY_NAMES, make_policy

app = typer.Typer(
    name="gpulease",
    pretty_exceptions_enable=False,
    help="Control plane for renting and scheduling rack-scale GPU compute.",
    no_args_is_help=True,
    add_completion=False,
)
trace_app = typer.Typer(help="Work with workload traces.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")
app.command("init")(server.init_command)
app.command("serve")(server.serve_command)
app.command("scheduler")(server.scheduler_command)
app.command("login")(remote.login_command)
app.command("whoami")(remote.whoami_command)
app.add_typer(nodes.nodes_app, name="nodes")
app.add_typer(tenants.tenants_app, name="tenants")
app.command("audit")(audit.audit_command)
app.add_typer(remote.lease_app, name="lease")
app.add_typer(remote.job_app, name="job")
app.add_typer(reports.report_app, name="report")
app.add_typer(access.users_app, name="users")
app.add_typer(access.tokens_app, name="tokens")
app.add_typer(compliance.kyc_app, name="kyc")
app.add_typer(compliance.lists_app, name="lists")
app.command("policy")(compliance.policy_command)
app.command("end-uses")(compliance.end_uses_command)
app.command("screen")(screening.screen_command)
app.add_typer(purpose_reviews.reviews_app, name="purpose-reviews")
app.add_typer(compute_reviews.compute_app, name="compute-reviews")
app.add_typer(custody.custody_app, name="custody")
app.command("attest")(custody.attest_command)
app.add_typer(ledger.ledger_app, name="ledger")
app.command("usage")(billing.usage_command)
app.add_typer(billing.invoices_app, name="invoices")
app.add_typer(billing.plans_app, name="plans")
console = Console()
errors = Console(stderr=True)


class TraceFormat(StrEnum):
    philly = "philly"
    tiresias = "tiresias"
    native = "native"


class GangLimit(StrEnum):
    lease = "lease"
    site = "site"


GANG_LIMIT_HELP = (
    "Synthetic mix: 'lease' keeps each tenant's gangs within the racks it leases; "
    "'site' lets any tenant submit gangs up to the whole site (a stress case)."
)


def _hours(seconds: float) -> str:
    return f"{seconds:,.0f} s ({seconds / 3600:,.1f} h)"


def _figures_table(figures: dict[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    table.add_row(
        "jobs (completed / failed)",
        f"{figures['jobs']:,} ({figures['completed']:,} / {figures['failed']:,})",
    )
    for key, label in (
        ("avg_jct_s", "average JCT"),
        ("p50_jct_s", "median JCT"),
        ("p99_jct_s", "p99 JCT"),
        ("avg_wait_s", "average wait"),
        ("makespan_s", "makespan"),
    ):
        table.add_row(label, _hours(figures[key]))
    table.add_row(
        f"utilization while jobs arrive ({figures['arrival_span_s'] / 86400:,.1f} d) / at most",
        f"{figures['utilization_while_arriving']:.1%} / "
        f"{figures['utilization_bound_while_arriving']:.1%}",
    )
    table.add_row(
        f"utilization over all {figures['makespan_s'] / 86400:,.1f} d, drain included",
        f"{figures['utilization']:.1%}",
    )
    table.add_row("preemptions", f"{figures['preemptions']:,}")
    guarantee = figures["guarantee_wait"]
    if guarantee["jobs"]:
        table.add_row(
            "lease-guarantee wait p99 / max",
            f"{guarantee['p99_s']:,.0f} s / {guarantee['max_s']:,.0f} s",
        )
    placement = figures["placement"]
    table.add_row(
        "starts on the fewest racks the free GPUs allowed / an empty site allows",
        f"{placement['fewest_free_racks_share']:.1%} / {placement['fewest_racks_share']:.1%} "
        f"of {placement['starts']:,}",
    )
    return table


def _tenant_table(figures: dict[str, Any]) -> Table:
    table = Table(title="per tenant", title_justify="left")
    for column in ("tenant", "jobs", "avg JCT (h)", "avg wait (h)", "GPU-hours"):
        table.add_column(column, justify="right" if column != "tenant" else "left")
    for tenant, f in figures["per_tenant"].items():
        table.add_row(
            tenant,
            f"{f['jobs']:,}",
            f"{f['avg_jct_s'] / 3600:,.1f}",
            f"{f['avg_wait_s'] / 3600:,.1f}",
            f"{f['gpu_hours']:,.0f}",
        )
    return table


@app.command("simulate")
def simulate_command(
    cluster: Annotated[str, typer.Option(help="RACKSxNODESxGPUS (e.g. 32x18x4) or a preset.")],
    trace: Annotated[Path | None, typer.Option(help="Trace file to replay.")] = None,
    trace_format: Annotated[TraceFormat, typer.Option(help="Format of --trace.")] = (
        TraceFormat.native
    ),
    synthetic: Annotated[
        int | None,
        typer.Option(
            help="Instead of --trace: a synthetic rack-scale mix of this many jobs with leases."
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Keep only this tenant (Philly VC).")] = None,
    min_duration: Annotated[float, typer.Option(help="Keep jobs running at least S s.")] = 0.0,
    first: Annotated[int | None, typer.Option(help="Keep the first N jobs by submit time.")] = None,
    load: Annotated[
        float | None,
        typer.Option(help="Compress arrivals to this offered load on the cluster (e.g. 0.9)."),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            help=f"One of: {', '.join(POLICY_NAMES)}; or a reference run as Tiresias' own "
            "simulator would (tiresias-dlas-gpu, tiresias-srtf: GPUs counted, not placed)."
        ),
    ] = "default",
    grace: Annotated[float, typer.Option(help="Preemption grace period, seconds.")] = 30.0,
    keep_blocks: Annotated[
        int,
        typer.Option(
            min=0,
            help="Keep free rack blocks of this many GPUs whole for gangs (64 on NVL72): "
            "work without a rack requirement goes over racks that hold none. 0 = off.",
        ),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator.")] = 0,
    gang_limit: Annotated[GangLimit, typer.Option(help=GANG_LIMIT_HELP)] = GangLimit.lease,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write figures as JSON.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write utilisation/queue PNG.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar or tables.")] = False,
) -> None:
    """Replay a trace through the scheduling core on a simulated cluster and report figures."""
    from gpulease.sim.runner import simulate
    from gpulease.sim.synthetic import rack_scale_mix
    from gpulease.sim.tiresias import REFERENCE_POLICIES
    from gpulease.sim.traces import compress_to_load, load_trace, offered_load

    spec = parse_cluster_spec(cluster)
    if policy not in REFERENCE_POLICIES:
        make_policy(policy)  # refuse an unknown policy before any work
    if (trace is None) == (synthetic is None):
        raise InvalidRequest("give exactly one of --trace PATH or --synthetic JOBS", field="trace")
    if trace is not None:
        workload = load_trace(
            trace, trace_format.value, tenant=tenant, min_duration=min_duration, first=first
        )
        if load is not None:
            workload = compress_to_load(workload, spec.total_gpus, load)
    else:
        assert synthetic is not None
        workload = rack_scale_mix(
            spec, jobs=synthetic, load=load or 0.9, seed=seed, gang_limit=gang_limit.value
        )
    if not workload.jobs:
        raise InvalidRequest("the trace holds no job after filtering", field="trace")
    header = (
        f"{workload.name}: {len(workload.jobs):,} jobs arriving over "
        f"{workload.span / 86400:,.1f} days, offered load "
        f"{offered_load(workload, spec.total_gpus):.2f} over those days, on {spec} "
        f"({spec.total_gpus:,} GPUs), policy {policy}"
    )
    if not quiet:
        console.print(header)
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs done"),
        TimeElapsedColumn(),
        console=errors,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("simulate", total=len(workload.jobs))

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        run = simulate(
            workload,
            spec,
            policy=policy,
            grace_s=grace,
            progress=advance,
            keep_blocks=keep_blocks,
        )
    figures = run.figures
    if not quiet:
        console.print(_figures_table(figures, f"{policy} on {spec}"))
        if len(figures["per_tenant"]) <= 20:
            console.print(_tenant_table(figures))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    if plot is not None:
        from gpulease.sim.plot import plot_run

        plot_run(run.result, plot, title=header)
        if not quiet:
            console.print(f"plot written to {plot}")


@trace_app.command("generate")
def trace_generate(
    out: Annotated[Path, typer.Option(help="Native JSON-lines file to write.")],
    cluster: Annotated[str, typer.Option(help="Cluster the mix is sized for.")] = "reference",
    jobs: Annotated[int, typer.Option(help="Number of jobs.")] = 2000,
    load: Annotated[float, typer.Option(help="Offered load.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    gang_limit: Annotated[GangLimit, typer.Option(help=GANG_LIMIT_HELP)] = GangLimit.lease,
) -> None:
    """Write a synthetic rack-scale mix with leases in the native trace format."""
    from gpulease.sim.synthetic import rack_scale_mix
    from gpulease.sim.traces import dump_native

    workload = rack_scale_mix(
        parse_cluster_spec(cluster), jobs=jobs, load=load, seed=seed, gang_limit=gang_limit.value
    )
    dump_native(workload, out)
    console.print(f"wrote {len(workload.jobs):,} jobs and {len(workload.leases)} leases to {out}")


@app.command("cluster")
def cluster_command(
    spec: Annotated[str, typer.Argument(help="RACKSxNODESxGPUS or a preset name.")],
) -> None:
    """Describe a cluster spec."""
    console.print(build_cluster(parse_cluster_spec(spec)).describe())


@app.command("version")
def version_command() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    try:
        app(standalone_mode=True)
    except DomainError as error:
        errors.print(f"[red]error[/red] ({tables.safe(error.code)}): {tables.safe(error.message)}")
        sys.exit(2)
