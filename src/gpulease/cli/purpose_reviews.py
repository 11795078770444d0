"""``gpulease purpose-reviews ...``: the officer queue of declared purposes held for review."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gpulease.cli import tables
from gpulease.cli.client import ApiClient, segment
from gpulease.cli.tables import WideFlag, stdout

reviews_app = typer.Typer(
    help="Declared purposes held for a compliance officer's review.", no_args_is_help=True
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PATH = "/compliance/purpose-reviews"
COLUMNS = (
    tables.key("review"),
    tables.text("tenant", 3),
    tables.text("job", 3),
    tables.text("state", 1),
    tables.text("purpose", 2),
    tables.text("why", 0),
)


def show_reviews(rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    cells = [
        [
            r["id"],
            tables.safe(r["tenant_id"]),
            tables.safe(r["subject_id"]),
            tables.safe(r["state"]),
            tables.safe(r["purpose"]),
            tables.safe(r["decision_reason"] or r["reason"]),
        ]
        for r in rows
    ]
    tables.show(stdout(), COLUMNS, cells, wide=wide)


@reviews_app.command("list")
def reviews_list(
    state: Annotated[
        str | None, typer.Option(help="pending, approved or rejected (default: all).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's (its id).")] = None,
    wide: WideFlag = False,
    json_out: JsonFlag = False,
) -> None:
    """Compliance officer: the queue, oldest first."""
    rows = ApiClient().get(PATH, state=state, tenant_id=tenant)
    print(json.dumps(rows, indent=2)) if json_out else show_reviews(rows, wide=wide)


@reviews_app.command("show")
def reviews_show(review_id: str, json_out: JsonFlag = False) -> None:
    """Compliance officer: one review, with the terms found and their sources."""
    review = ApiClient().get(f"{PATH}/{segment(review_id)}")
    if json_out:
        print(json.dumps(review, indent=2))
        return
    show_reviews([review], wide=True)
    for finding in (review.get("decision") or {}).get("classification", {}).get("findings", []):
        stdout().print(
            f"  {tables.safe(finding['level'])}: {tables.safe(finding['term'])} "
            f"({tables.safe(finding['category'])}; {tables.safe(finding['citation'])})"
        )


@reviews_app.command("approve")
def reviews_approve(
    review_id: str, reason: Annotated[str, typer.Option(help="Why (recorded).")]
) -> None:
    """Compliance officer: clear the purpose for its tenant (its held jobs may run)."""
    show_reviews([ApiClient().post(f"{PATH}/{segment(review_id)}/approve", {"reason": reason})])


@reviews_app.command("reject")
def reviews_reject(
    review_id: str, reason: Annotated[str, typer.Option(help="Why (recorded).")]
) -> None:
    """Compliance officer: refuse the purpose (its held jobs fail with the reason)."""
    show_reviews([ApiClient().post(f"{PATH}/{segment(review_id)}/reject", {"reason": reason})])
