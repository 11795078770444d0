"""The layout helper on its own: at any width, ids and numbers are printed whole, a table
whose kept columns fit is no wider than the terminal, and every column left out is named."""

from __future__ import annotations

import io
import string

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from gpulease.cli import tables

COLS = (
    tables.key("id"),
    tables.text("name", 2),
    tables.num("GPUs", 0),
    tables.when("start", 3),
    tables.text("why", 4),
    tables.num("price", 1),
)
words = st.text(string.ascii_lowercase, min_size=1, max_size=30)
row = st.tuples(
    st.from_regex(r"job-[0-9a-f]{12}", fullmatch=True),
    st.lists(words, min_size=1, max_size=4).map(" ".join),
    st.integers(1, 100_000).map(lambda n: f"{n:,}"),
    st.just("2026-03-02 09:00"),
    st.lists(words, max_size=12).map(" ".join),
    st.decimals(0, 10**9, places=2).map(lambda d: f"{d} USD"),
)


def printed(width: int, rows: list[list[str]], wide: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    tables.show(console, COLS, rows, wide=wide)
    return out.getvalue()


@settings(max_examples=30, deadline=None)
@given(st.lists(row, min_size=1, max_size=5), st.integers(30, 160))
def test_ids_and_numbers_whole_at_any_width(cells: list[tuple[str, ...]], width: int) -> None:
    rows = [list(r) for r in cells]
    text = printed(width, rows)
    lines = text.splitlines()
    plan = tables.layout(COLS, rows, width)
    shown = {COLS[i].header for i in plan.shown}
    assert {"id", "GPUs"} <= shown  # never dropped
    for r in rows:
        for col, cell in zip(COLS, r, strict=True):
            if col.keep and col.header in shown:
                assert any(cell in line for line in lines), (cell, text)
    if plan.width <= width:
        assert all(cell_len(line) <= width for line in lines), text
    hidden = [
        c.header for c in COLS if c.header not in shown and any(r[COLS.index(c)] for r in rows)
    ]
    if hidden:
        flat = " ".join(line.strip() for line in lines)
        assert f"hidden: {', '.join(hidden)}; use --wide" in flat
    wide = printed(width, rows, wide=True)
    assert "hidden" not in wide
    for r in rows:
        assert all(c in wide for c, col in zip(r, COLS, strict=True) if col.keep)


def test_a_column_drops_before_an_id_is_cut() -> None:
    rows = [["job-0123456789ab", "a name", "8", "2026-03-02 09:00", "because", "12.00 USD"]]
    text = printed(40, rows)
    assert "job-0123456789ab" in text
    assert "…" not in text
    assert "hidden: name, start, why; use --wide" in text
