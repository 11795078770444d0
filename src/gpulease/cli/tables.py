"""Tables that fit the terminal: columns are dropped or text folded, ids and numbers never cut.

Design. A list command declares its columns (:class:`Col`): a header, a priority, and
whether its cells may be folded. :func:`layout` decides, for a width, which columns to show
and how wide each is; :func:`show` prints the table and, when columns were left out, one
footer line ``hidden: X, Y; use --wide``. Nothing here knows about leases or jobs.

Invariants.

* A cell of a ``keep`` column (ids, numbers, money, times) is printed whole, on one line:
  never ellipsized, never folded while the table fits. Its column is as wide as its widest
  cell.
* A foldable column (names, reasons, free text) is given at least ``FOLD_MIN`` columns (or
  its header, or its natural width if less), widened to its longest word up to
  ``WORD_MAX``, and folds below its natural width (at words, then within a word longer than
  ``WORD_MAX``); nothing is ellipsized. A name above an id in one cell (:func:`named_cell`)
  thus keeps the id whole.
* A column whose every cell is empty is left out silently (there is nothing to hide).
* Columns are dropped lowest priority first (the largest ``priority`` number; among equals
  the rightmost) until the table fits; a column of ``priority`` 0 is never dropped.
* The table is exactly as wide as the sum of its column widths plus :func:`overhead`, so
  what :func:`layout` computes is what Rich prints: Rich never has to shrink a column.
* ``wide``: every column, at its natural width, whatever the terminal.
* Text from the server goes into a cell (or any printed markup) through :func:`safe`
  (:func:`named` and :func:`named_cell` do it): a tenant's words print as written, never as
  Rich markup, a terminal escape sequence, a carriage return or a bidi override.

Paragraphs (a screening's reasons, a long statement) do not belong in a column: commands
print them below the table (:func:`paragraphs`). A single record prints as ``label  value``
lines (:func:`fields`). Every command makes its console when it prints (:func:`stdout`), so
the width is the terminal's (or ``COLUMNS``) at that moment; off a terminal it is 80.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

WideFlag = Annotated[
    bool, typer.Option("--wide", help="Every column, however wide the table gets.")
]
FOLD_MIN = 12  # the narrowest a foldable column is folded to (unless it needs less)
WORD_MAX = 24  # a foldable column is kept as wide as its longest word up to this
GAP = 2  # blank columns between two columns


@dataclass(frozen=True, slots=True)
class Col:
    """A column: ``priority`` 0 is never dropped, larger numbers are dropped first;
    ``keep`` cells (ids, numbers, money, times) are never cut or folded."""

    header: str
    priority: int = 1
    keep: bool = False
    justify: Literal["left", "right"] = "left"


def key(header: str, priority: int = 0) -> Col:
    """An id column: kept whole, by default never dropped."""
    return Col(header, priority, keep=True)


def num(header: str, priority: int = 1) -> Col:
    """A number or an amount: kept whole, right-aligned."""
    return Col(header, priority, keep=True, justify="right")


def when(header: str, priority: int = 3) -> Col:
    """A time: kept whole, dropped before most columns."""
    return Col(header, priority, keep=True)


def text(header: str, priority: int = 2) -> Col:
    """Free text: folded when the width is short."""
    return Col(header, priority)


@dataclass(frozen=True, slots=True)
class Layout:
    shown: tuple[int, ...]  # indexes of the columns shown, in order
    widths: tuple[int, ...]  # the width of each shown column
    hidden: tuple[str, ...]  # headers of the columns left out

    @property
    def width(self) -> int:
        return sum(self.widths) + overhead(len(self.widths))


def overhead(columns: int) -> int:
    """Columns a table spends on gaps between its ``columns`` columns."""
    return GAP * max(columns - 1, 0)


def cell_width(cell: str) -> int:
    """The widest line of a cell given in Rich markup."""
    return max((Text.from_markup(line).cell_len for line in cell.split("\n")), default=0)


def natural_widths(cols: Sequence[Col], rows: Sequence[Sequence[str]]) -> list[int]:
    widths = [len(c.header) for c in cols]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_width(cell))
    return widths


def least_widths(cols: Sequence[Col], rows: Sequence[Sequence[str]]) -> list[int]:
    """The narrowest each column may be: a kept column its widest cell; a folded one
    ``FOLD_MIN`` (or its header), widened to its longest word up to ``WORD_MAX`` so words
    such as ``financial-services-ai`` are not broken."""
    natural = natural_widths(cols, rows)
    least = []
    for i, col in enumerate(cols):
        if col.keep:
            least.append(natural[i])
            continue
        words = (w for row in rows for w in Text.from_markup(row[i]).plain.split())
        longest = max((len(w) for w in words), default=0)
        least.append(min(natural[i], max(FOLD_MIN, len(col.header), min(longest, WORD_MAX))))
    return least


def layout(
    cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int, *, wide: bool = False
) -> Layout:
    """Which columns fit in ``width`` and how wide each is (module doc). A column whose
    every cell is empty is left out without a word (there is nothing to hide)."""
    natural = natural_widths(cols, rows)
    least = least_widths(cols, rows)
    empty = {i for i in range(len(cols)) if rows and not any(row[i] for row in rows)}
    shown = [i for i in range(len(cols)) if i not in empty]
    if not wide:
        droppable = sorted(
            (i for i in shown if cols[i].priority > 0),
            key=lambda i: (-cols[i].priority, -i),
        )
        for i in droppable:
            if sum(least[j] for j in shown) + overhead(len(shown)) <= width:
                break
            shown.remove(i)
    widths = {i: (natural[i] if wide else least[i]) for i in shown}
    room = width - sum(widths.values()) - overhead(len(shown))
    # the room left widens folded columns towards their natural width, most important first
    for i in sorted(shown, key=lambda i: (cols[i].priority, i)):
        if room <= 0:
            break
        grow = min(room, natural[i] - widths[i])
        widths[i] += grow
        room -= grow
    hidden = tuple(cols[i].header for i in range(len(cols)) if i not in shown and i not in empty)
    return Layout(tuple(shown), tuple(widths[i] for i in shown), hidden)


def table(
    cols: Sequence[Col],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    wide: bool = False,
    title: str | None = None,
) -> tuple[Table, Layout]:
    """A Rich table of ``rows`` laid out for ``width`` (module doc)."""
    plan = layout(cols, rows, width, wide=wide)
    made = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for i, w in zip(plan.shown, plan.widths, strict=True):
        col = cols[i]
        made.add_column(
            col.header,
            justify=col.justify,
            width=w,
            no_wrap=col.keep,
            overflow="fold",  # never an ellipsis, even for an id wider than the terminal
        )
    for row in rows:
        made.add_row(*(row[i] for i in plan.shown))
    return made, plan


def render(
    cols: Sequence[Col],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    wide: bool = False,
    title: str | None = None,
) -> Group:
    """The table laid out for ``width`` and, when columns were left out, the footer that
    names them; ``none`` for no rows."""
    if not rows:
        return Group(Text(f"{title}: none" if title else "none"))
    made, plan = table(cols, rows, width, wide=wide, title=title)
    parts: list[RenderableType] = [made]
    if plan.hidden:
        parts.append(Text(f"hidden: {', '.join(plan.hidden)}; use --wide"))
    return Group(*parts)


def show(
    console: Console,
    cols: Sequence[Col],
    rows: Sequence[Sequence[str]],
    *,
    wide: bool = False,
    title: str | None = None,
) -> None:
    """Print the table for the console's width (as wide as it needs with ``wide``)."""
    if wide:
        console = widened(console, cols, rows)
    console.print(render(cols, rows, console.width, wide=wide, title=title))


def widened(console: Console, cols: Sequence[Col], rows: Sequence[Sequence[str]]) -> Console:
    """``console``, or one printing to the same file as wide as the whole table (``--wide``:
    a terminal narrower than that wraps the lines; a pager or a file keeps them)."""
    width = layout(cols, rows, console.width, wide=True).width
    if width <= console.width:
        return console
    return Console(
        file=console.file,
        width=width,
        force_terminal=console.is_terminal,
        color_system=console.color_system,  # type: ignore[arg-type]
    )


def paragraphs(items: Iterable[tuple[str, str]]) -> list[Text]:
    """Long text to print under a table: ``label: text`` per item (folded to the width)."""
    return [Text(f"{label}: {body}", overflow="fold") for label, body in items if body]


def fields(pairs: Iterable[tuple[str, str]]) -> Table:
    """One record as ``label  value`` lines (values in Rich markup); long values fold under
    themselves, and a value left empty is left out."""
    shown = [(label, value) for label, value in pairs if value]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    for label, value in shown:
        grid.add_row(label, value)
    return grid


def stdout() -> Console:
    """The console a command prints to, made when it prints (so ``COLUMNS`` and the
    terminal are read then, not when the module was imported)."""
    return Console()


def moment(value: str | None, *, seconds: bool = False) -> str:
    """An ISO time from the API as ``YYYY-MM-DD HH:MM[:SS]`` (UTC), or ``-``."""
    if not value:
        return "-"
    return value[: 19 if seconds else 16].replace("T", " ")


# C0 controls but tab and LF (ESC starts an escape sequence, CR rewrites a line), DEL, C1
# controls, and the bidirectional overrides and isolates that reorder what a line shows
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(value: object) -> str:
    """Text from the server (names, reasons: often a tenant's words) as Rich markup that
    prints exactly as written: markup escaped, and every control character (an escape
    sequence, a carriage return, a bidi override) shown as its code (``\\x1b``), so no text
    can colour, move, hide or rewrite what the command prints around it."""
    text = _UNSAFE.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"
        ),
        str(value),
    )
    return escape(text)


def named(name: str | None, ident: str) -> str:
    """A name beside its id on one line, ``Name (id)`` (the id alone without a name)."""
    return f"{safe(name)} ({safe(ident)})" if name else safe(ident)


def named_cell(name: str | None, ident: str) -> str:
    """A table cell with the name above the id: the name folds, the id stays whole (a
    foldable column is at least as wide as its longest word, the id)."""
    return f"{safe(name)}\n{safe(ident)}" if name else safe(ident)


def without(
    cols: Sequence[Col], rows: Sequence[Sequence[str]], header: str
) -> tuple[list[Col], list[list[str]]]:
    """The table without the column ``header`` (one that says nothing here: every row's
    tenant is the same)."""
    keep = [i for i, c in enumerate(cols) if c.header != header]
    return [cols[i] for i in keep], [[row[i] for i in keep] for row in rows]
