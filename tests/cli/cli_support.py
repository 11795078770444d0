"""Helpers of the CLI tests: the demo users they run as, golden files, width and id checks.

* ``golden(name, text)``: compares ``text``, normalised (:func:`normalise`), with
  ``tests/cli/golden/<name>.txt``. ``GPULEASE_UPDATE_GOLDEN=1`` writes the files instead.
* ``fits(text)``: no line wider than 80 columns; ``whole_ids(text, ids)``: each id printed
  whole, on one line.

Ids are random (``job-3f9a1c2b7d4e``): the golden text numbers them in order of first
appearance with a placeholder of the same length (``job-000000000001``), so the layout the
file shows is the layout printed. Every other figure comes from the demo, built at a fixed
time on a manual clock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len

GOLDEN = Path(__file__).parent / "golden"
WIDTH = 80
USERS = {
    "operator": "ops@indosat.example",
    "officer": "compliance@indosat.example",
    "inftech": "admin@inftech.example",
    "bank": "admin@bank.example",
    "university": "admin@university.example",
}
ID = re.compile(
    r"\b(lease|job|tenant|user|kyc|party|list|token|maint)-[0-9a-f]{12}\b"
    r"|\b(glt)_[0-9a-f]{4}\b"  # a token's prefix
)


@dataclass(frozen=True, slots=True)
class Run:
    stdout: str
    stderr: str
    exit_code: int


Cli = Callable[..., Run]


def normalise(text: str) -> str:
    """Ids numbered in order of appearance (same length), trailing blanks removed."""
    seen: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        found = match.group(0)
        if found not in seen:
            if match.group(1):
                seen[found] = f"{match.group(1)}-{len(seen) + 1:012d}"
            else:
                seen[found] = f"glt_{len(seen) + 1:04d}"
        return seen[found]

    return "\n".join(ID.sub(placeholder, line).rstrip() for line in text.splitlines()) + "\n"


def golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    got = normalise(text)
    if os.environ.get("GPULEASE_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path.name}: run with GPULEASE_UPDATE_GOLDEN=1"
    assert got == path.read_text(encoding="utf-8"), f"output differs from golden/{path.name}"


def fits(text: str, width: int = WIDTH) -> None:
    """No line of ``text`` is wider than ``width`` columns."""
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} columns: {line!r}"


def whole_ids(text: str, ids: list[str]) -> None:
    """Each id appears in ``text`` whole (on one line, not cut)."""
    for each in ids:
        assert each in text, f"{each} is not printed whole"
