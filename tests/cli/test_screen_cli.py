"""``gpulease screen`` in-process against the real app on the demo (PostgreSQL): names on
the command line, a CSV batch with ``--json``, officers only."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Cli, fits

from gpulease.cli.screening import read_names
from support.lists import entity_list_of

LISTED = "Jade Harbour Microelectronics Institute"


def _list_file(path: Path) -> Path:
    return entity_list_of(path, [LISTED], address="Road, CN")


def test_screen_names_and_a_batch_file(cli: Cli, tmp_path: Path) -> None:
    cli("officer", "lists", "import", str(_list_file(tmp_path / "el.csv")), "--format", "csl-csv")
    out = cli("officer", "screen", LISTED, "Bakery of the Seven Hills").stdout
    fits(out)
    lines = out.splitlines()
    assert any(line.startswith("q1") and "block" in line for line in lines), out
    assert any(line.startswith("q2") and "clear" in line for line in lines), out
    assert "review at 85, block at 95" in out

    names = tmp_path / "names.csv"
    names.write_text(
        "id,name,kind,countries\n"
        f"pay-1,{LISTED},organization,CN\n"
        "pay-2,Jade Harbor Microelectronic Institute,,\n"
        "pay-3,Bakery of the Seven Hills,,\n",
        encoding="utf-8",
    )
    answer = json.loads(cli("officer", "screen", "--file", str(names), "--json").stdout)
    outcomes = {ref: r["outcome"] for ref, r in answer["responses"].items()}
    assert outcomes["pay-1"] == "block"
    assert outcomes["pay-3"] == "clear"
    assert answer["responses"]["pay-2"]["results"][0]["caption"] == LISTED

    refused = cli("inftech", "screen", "Anyone", check=False)
    assert refused.exit_code == 2
    assert "denied" in refused.stderr


def test_batch_files_are_read_and_bounded(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("Alpha Ltd\n\nBeta GmbH\n", encoding="utf-8")
    assert read_names(plain) == [
        {"id": "line1", "name": "Alpha Ltd"},
        {"id": "line3", "name": "Beta GmbH"},
    ]
    headed = tmp_path / "headed.csv"
    headed.write_text("name,aliases\nGamma SA,Gamma;G SA\n", encoding="utf-8")
    assert read_names(headed) == [{"id": "line2", "name": "Gamma SA", "aliases": ["Gamma", "G SA"]}]
