"""``gpulease screen``: compliance officers screen names outside any KYC case.

Thin over ``POST /api/v1/screening``: names on the command line, or a CSV file
(``--file names.csv``) of one name per row, with a header naming a ``name`` column and
optionally ``id``, ``kind``, ``countries`` and ``aliases`` (several separated by ``;``); a
file without a ``name`` header is read as one name per line (its first column). A file is
sent 100 names per request (the server's bound), at most :data:`MAX_FILE_NAMES` names.
``--json`` prints the server's answer (every response keyed by its id); the table shows
each name's outcome, its best match and the reason.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gpulease.cli import tables
from gpulease.cli.client import ApiClient
from gpulease.cli.tables import WideFlag, stdout
from gpulease.domain.errors import InvalidRequest

PER_REQUEST = 100
MAX_FILE_NAMES = 5_000
MAX_FILE_BYTES = 4 << 20

COLUMNS = (
    tables.key("id"),
    tables.text("name", 0),
    tables.text("outcome", 0),
    tables.num("score", 1),
    tables.text("best match", 2),
    tables.text("reason", 3),
)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(";") if v.strip()]


def read_names(path: Path) -> list[dict[str, Any]]:
    """The queries of a CSV file (see the module docstring)."""
    if not path.is_file():
        raise InvalidRequest(f"no such file: {path}", field="file")
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise InvalidRequest(f"{path} is larger than {MAX_FILE_BYTES} bytes", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{path} is not UTF-8 text", field="file") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    queries: list[dict[str, Any]] = []
    if "name" in header:
        for number, row in enumerate(rows[1:], start=2):
            cells = dict(zip(header, row, strict=False))
            if not (cells.get("name") or "").strip():
                continue
            query: dict[str, Any] = {"id": (cells.get("id") or "").strip() or f"line{number}"}
            query["name"] = cells["name"].strip()
            if (cells.get("kind") or "").strip():
                query["kind"] = cells["kind"].strip().lower()
            if _split(cells.get("countries")):
                query["countries"] = _split(cells.get("countries"))
            if _split(cells.get("aliases")):
                query["aliases"] = _split(cells.get("aliases"))
            queries.append(query)
    else:
        queries = [
            {"id": f"line{number}", "name": row[0].strip()}
            for number, row in enumerate(rows, start=1)
            if row and row[0].strip()
        ]
    if len(queries) > MAX_FILE_NAMES:
        raise InvalidRequest(
            f"{path} holds {len(queries):,} names; at most {MAX_FILE_NAMES:,} per run", field="file"
        )
    return queries


def screen_command(
    names: Annotated[list[str] | None, typer.Argument(help="Names to screen.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A CSV file of names (see `--help`).")
    ] = None,
    country: Annotated[
        list[str] | None,
        typer.Option("--country", help="ISO 3166 alpha-2 code of the names given (repeatable)."),
    ] = None,
    kind: Annotated[
        str, typer.Option(help="organization, person, vessel, aircraft or unknown.")
    ] = "unknown",
    wide: WideFlag = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compliance officers: screen names against the lists in force (outside any case)."""
    queries: list[dict[str, Any]] = [
        {"id": f"q{i}", "name": n, "kind": kind, "countries": list(country or [])}
        for i, n in enumerate(names or [], start=1)
    ]
    if file is not None:
        queries += read_names(file)
    if not queries:
        raise InvalidRequest("give names to screen, or --file names.csv", field="names")
    client = ApiClient(timeout=600)
    answer: dict[str, Any] = {}
    for start in range(0, len(queries), PER_REQUEST):
        part = client.post("/screening", {"queries": queries[start : start + PER_REQUEST]})
        if not answer:
            answer = part
        else:
            answer["responses"] |= part["responses"]
    if json_out:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    cells = []
    for ref, response in answer["responses"].items():
        best = response["results"][0] if response["results"] else None
        cells.append(
            [
                tables.safe(ref),
                tables.safe(response["query"]["name"]),
                response["outcome"],
                f"{best['score']:.1f}" if best else "-",
                tables.safe(f"{best['listed_name']} ({best['source']} {best['entry_id']})")
                if best
                else "-",
                tables.safe(response["reason"]),
            ]
        )
    tables.show(stdout(), COLUMNS, cells, wide=wide)
    lists = ", ".join(f"{x['label']}" for x in answer["lists"]) or "none in force"
    stdout().print(
        f"lists: {tables.safe(lists)}; review at {answer['thresholds']['review']:g}, "
        f"block at {answer['thresholds']['block']:g}"
    )
