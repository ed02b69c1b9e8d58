"""Tables that fit the terminal: columns are dropped, least important first, before a row wraps.

A ``FitTable`` is laid out when rich renders it, for the width it is given (80 columns on a
small terminal, 200 when piped: ``style.console``). Each column says what it holds:

- a *fixed* column (names, run ids, times, statuses, numbers) is never wrapped: a time is never
  split over two lines;
- a *text* column (reasons, errors) wraps at words, but is not worth showing narrower than
  ``TEXT_MIN`` characters (or its longest cell, if shorter).

While the columns' needs and the separators between them do not fit, the column of lowest
``keep`` goes (on a tie, the rightmost); columns with ``keep=ESSENTIAL`` never go. If even those
do not fit (a 200-character process name), every column may fold. ``wide`` keeps every column
in full, on lines as long as they need (``style.show(..., wide=True)`` prints them uncropped; the
terminal wraps them). The title is a line of its own above the table and the
caption one below it, each wrapped at the full width (not the table's), so a title or caption
shorter than the terminal is one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

__all__ = ["ESSENTIAL", "TEXT_MIN", "Col", "FitTable"]

#: a column a table never drops
ESSENTIAL = 100
#: a text column narrower than this is not worth its place: another column goes first
TEXT_MIN = 24
_GAP = 3  # between two columns: a space, the rule, a space (no outer edge, no edge padding)


@dataclass(frozen=True, slots=True)
class Col:
    """A column: its header, how much it is worth keeping, whether it is free text."""

    header: str
    keep: int = ESSENTIAL
    text: bool = False


class FitTable:
    """Rows of ``Text`` cells under ``Col``s, laid out for the width rich renders them at."""

    def __init__(
        self,
        columns: Sequence[Col],
        *,
        title: str | Text | None = None,
        caption: str | Text | None = None,
        wide: bool = False,
    ) -> None:
        self.columns = list(columns)
        self.rows: list[list[Text]] = []
        self.title = Text(title) if isinstance(title, str) else title
        self.caption = Text(caption) if isinstance(caption, str) else caption
        self.wide = wide

    def add_row(self, *cells: str | Text) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([c if isinstance(c, Text) else Text(c) for c in cells])

    def shown(self, width: int) -> list[int]:
        """The indices of the columns shown at ``width``, in their order."""
        shown = list(range(len(self.columns)))
        if self.wide:
            return shown
        needs = [self._need(i) for i in shown]
        droppable = sorted(
            (i for i in shown if self.columns[i].keep < ESSENTIAL),
            key=lambda i: (self.columns[i].keep, -i),
        )
        while droppable and self._width(shown, needs) > width:
            shown.remove(droppable.pop(0))
        return shown

    @staticmethod
    def _width(shown: Sequence[int], needs: Sequence[int]) -> int:
        return sum(needs[i] for i in shown) + _GAP * max(len(shown) - 1, 0)

    def _need(self, index: int, *, full: bool = False) -> int:
        col = self.columns[index]
        natural = max(
            [cell_len(col.header), *(_cell_width(row[index]) for row in self.rows)], default=0
        )
        return min(natural, TEXT_MIN) if col.text and not full else natural

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        shown = self.shown(width)
        needs = [self._need(i) for i in range(len(self.columns))]
        squeezed = not self.wide and self._width(shown, needs) > width
        if self.title is not None:
            yield self.title
        table = Table(show_edge=False, pad_edge=False)
        for i in shown:
            col = self.columns[i]
            table.add_column(col.header, overflow="fold", no_wrap=not (col.text or squeezed))
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        if self.wide:  # every column in full: lines as long as they need (print without crop)
            full = self._width(shown, [self._need(i, full=True) for i in range(len(needs))])
            lines = console.render_lines(table, options.update_width(max(width, full)))
            for line in lines:
                yield from line
                yield Segment.line()
        else:
            yield table
        if self.caption is not None:
            yield self.caption

    def __iter__(self) -> Iterator[list[Text]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _cell_width(cell: Text) -> int:
    return max((cell_len(line) for line in cell.plain.splitlines()), default=0)
