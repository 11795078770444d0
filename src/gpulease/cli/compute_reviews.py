"""``gpulease compute-reviews ...``: training compute over a threshold, for officers."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import WideFlag, stdout

compute_app = typer.Typer(
    help="Training compute (per tenant, campaign or group, across sites) over a threshold of "
    "the policy packs, raised for a compliance officer.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PATH = "/compliance/compute-reviews"
COLUMNS = (
    tables.key("review"),
    tables.text("state", 1),
    tables.text("kind", 2),
    tables.text("subject", 1),
    tables.key("operations"),
    tables.text("threshold", 3),
    tables.text("campaign", 0),
)


def _ops(value: str) -> str:
    return f"{float(value):.3e}"


def show_reviews(rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    cells = [
        [
            r["id"],
            tables.safe(r["state"]),
            tables.safe(r["kind"]),
            tables.safe(r["subject_name"] or r["subject_id"]),
            _ops(r["estimated_ops"]),
            f"{_ops(r['threshold_ops'])} {tables.safe(r['threshold_ref'])}",
            tables.safe(r["campaign"]),
        ]
        for r in rows
    ]
    tables.show(stdout(), COLUMNS, cells, wide=wide)


@compute_app.command("list")
def reviews_list(
    state: Annotated[
        str | None, typer.Option(help="open, cleared or reported (default: all).")
    ] = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Operator staff: the queue, oldest first."""
    rows = ApiClient().get(PATH, state=state)
    print(json.dumps(rows, indent=2)) if json_out else show_reviews(rows, wide=wide)


@compute_app.command("show")
def reviews_show(review_id: str, json_out: JsonFlag = False) -> None:
    """Operator staff: one review with its evidence (jobs, tenants, operations per site)."""
    review = ApiClient().get(f"{PATH}/{segment(review_id)}")
    if json_out:
        print(json.dumps(review, indent=2))
        return
    show_reviews([review], wide=True)
    evidence = review["evidence"]
    console = stdout()
    console.print(f"  window: {review['window_days']} days from {evidence['window_start']}")
    for site, ops in evidence["by_site"].items():
        console.print(f"  site {tables.safe(site)}: {_ops(ops)} operations")
    if evidence["tenants"]:
        console.print("  tenants: " + ", ".join(tables.safe(t) for t in evidence["tenants"]))
    omitted = f" (and {evidence['jobs_omitted']} smaller)" if evidence["jobs_omitted"] else ""
    console.print(
        f"  jobs ({review['jobs']}, largest first{omitted}): "
        + ", ".join(tables.safe(j) for j in evidence["job_ids"])
    )
    if review["decided_by"]:
        console.print(
            f"  decided by {tables.safe(review['decided_by'])}: "
            f"{tables.safe(review['decision_reason'])}"
        )


@compute_app.command("decide")
def reviews_decide(
    review_id: str,
    outcome: Annotated[str, typer.Argument(help="cleared or reported.")],
    reason: Annotated[str, typer.Option(help="Why, or the report's reference (recorded).")],
) -> None:
    """Compliance officer: clear the review or record that it was reported."""
    body = {"outcome": outcome, "reason": reason}
    show_reviews([ApiClient().post(f"{PATH}/{segment(review_id)}/decision", body)])


@compute_app.command("scan")
def reviews_scan() -> None:
    """Compliance officer: add up training compute now and raise reviews."""
    found = ApiClient().post(f"{PATH}/scan", {})
    stdout().print(
        f"{found['totals']} total(s) over a threshold; {len(found['opened'])} review(s) "
        f"opened, {len(found['updated'])} updated"
    )
