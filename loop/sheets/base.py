"""The small interface every sheet backend implements, and the plain data that crosses it.

A command reads what it needs once (`read`), works on plain data, then hands the backend one
`WriteBatch` that the backend applies all at once or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol

from loop.cell_values import as_text, normalize_header


@dataclass
class Table:
    """One tab: its header row and the rows below it, with their 1-based sheet row numbers.
    An empty cell is None or "" in `rows`; `records` gives None for both."""

    title: str
    headers: list[str]
    rows: list[list[object]]
    first_row: int = 2
    version: object = None  # which version of the workbook the rows were read from, where the backend can tell

    def column(self, name: str) -> int | None:
        """Index of the column whose header matches `name` (case, spaces, `_` and `-` ignored)."""
        wanted = normalize_header(name)
        for index, header in enumerate(self.headers):
            if normalize_header(header) == wanted:
                return index
        return None

    def records(self):
        """(sheet row number, {normalized header: value}) for each non-empty row."""
        keys = [normalize_header(h) for h in self.headers]
        for offset, row in enumerate(self.rows):
            if not any(v not in (None, "") for v in row):
                continue
            record = {}
            for key, value in zip(keys, row):
                if key and key not in record:
                    record[key] = None if value == "" else value
            yield self.first_row + offset, record


@dataclass(frozen=True)
class Run:
    """A stretch of a cell's text with a look of its own: struck through, coloured ("RRGGBB"), bold,
    or linking to a row of another tab (`link` = (tab, row))."""

    text: str
    strike: bool = False
    color: str | None = None
    link: tuple[str, int] | None = None
    bold: bool = False


@dataclass(frozen=True)
class RichText:
    """A cell of formatted text. A local workbook links a whole cell, so it links the cell to the
    first run's target; Google links each run. Give every run of a cell the same `link` (or one
    cell per target) where each target must be reachable on both."""

    runs: tuple[Run, ...]

    def __str__(self) -> str:
        return "".join(run.text for run in self.runs)

    def links(self) -> list[tuple[str, int]]:
        """The distinct targets the runs link to, in order."""
        return list(dict.fromkeys(run.link for run in self.runs if run.link))


@dataclass(frozen=True)
class Styled:
    """A cell of a new tab or of a tab written whole, with a look of its own: bold, a text colour and a
    fill ("RRGGBB"), a horizontal alignment ("left", "center", "right"), a number format (Excel's
    codes: "0", "0.00", "+0;-0;0"; Google gets the same pattern) and wrapped text. The value is
    written as any other: text stays text, never a formula."""

    value: object
    bold: bool = False
    color: str | None = None
    fill: str | None = None
    align: str | None = None
    number_format: str | None = None
    wrap: bool = False
    italic: bool = False

    def __str__(self) -> str:
        return "" if self.value is None else str(self.value)


def unstyled(value):
    """The value a cell holds, without its look."""
    return value.value if isinstance(value, Styled) else value


@dataclass
class NewTab:
    """A tab to create, filled with rows, with a frozen header row (and `frozen_columns` frozen
    columns at its left).

    `checkbox_column` (and each of `checkbox_columns`) holds TRUE/FALSE checkboxes (on every row but
    the `muted_rows`, which are greyed); `dropdowns` offers choices (not enforced) in a column; `wrap` names the columns whose
    text wraps, and rows are then made tall enough to read (up to `most_lines` lines).
    `section_rows` are rows that head a block of the rows below them (bold, on a tinted fill, their
    first cell's text running across). A column is never narrower than its header."""

    title: str
    headers: list[str]
    rows: list[list[object]]
    checkbox_column: str | None = None
    checkbox_columns: tuple[str, ...] = ()  # more columns of checkboxes, after `checkbox_column`
    column_widths: dict[str, int] = field(default_factory=dict)
    dropdowns: dict[str, list[str]] = field(default_factory=dict)
    wrap: set[str] = field(default_factory=set)
    muted_rows: set[int] = field(default_factory=set)  # indexes into rows
    filter: bool = False  # a filter on the header row
    frozen_columns: int = 0
    section_rows: set[int] = field(default_factory=set)  # indexes into rows
    most_lines: int = 8

    def checkboxes(self) -> list[str]:
        """Every column that holds checkboxes."""
        return ([self.checkbox_column] if self.checkbox_column else []) + list(self.checkbox_columns)

    def width(self, header: str) -> int | None:
        """The column's width in characters: as asked, and at least its header's length."""
        asked = self.column_widths.get(header)
        if asked is None and header not in self.wrap:
            return None
        return max(asked or 10, len(header) + 2)

    def row_lines(self, index: int, most: int | None = None) -> int:
        """How many lines row `index` needs to show its wrapped text, at most `most` (`most_lines`)."""
        if index in self.section_rows:
            return 1
        values = [unstyled(v) for v in self.rows[index]]
        return text_lines(dict(zip(self.headers, values)), {h: self.width(h) or 10 for h in self.headers},
                          self.wrap | {h for h, v in zip(self.headers, self.rows[index]) if isinstance(v, Styled) and v.wrap},
                          self.most_lines if most is None else most)


def text_lines(values: dict[str, object], widths: dict[str, int], wrapped, most: int) -> int:
    """How many lines a row needs to show the text of its `wrapped` columns at these widths (in
    characters), at most `most`: each paragraph takes its length over the width, rounded up."""
    lines = 1
    for header, value in values.items():
        if header in wrapped and value not in (None, ""):
            width = max(widths.get(header, 10) - 1, 4)
            lines = max(lines, sum(max(len(part) - 1, 0) // width + 1 for part in str(value).split("\n")))
    return min(lines, most)


@dataclass
class Chart:
    """A line chart over columns of a Grid, one line per series column, against the category column,
    for rows `first_row`..`last_row` (1-based; the row above holds the series' names)."""

    title: str
    categories: int
    series: list[int]
    first_row: int
    last_row: int
    anchor: tuple[int, int]  # (row, column) of its top-left corner
    y_title: str = ""
    y_range: tuple[float, float] | None = None  # the value axis' fixed bounds
    dashed: set[int] = field(default_factory=set)  # positions in `series` drawn as thin dashed lines


@dataclass
class Grid:
    """A tab written whole each time, replacing what it held (the Dashboard): cells (plain or
    `Styled`), bold rows and header rows (bold, wrapped, top-aligned; 1-based), rows made taller
    (`row_lines`: row number → lines), column widths and a chart."""

    title: str
    rows: list[list[object]]
    bold_rows: set[int] = field(default_factory=set)
    header_rows: set[int] = field(default_factory=set)
    column_widths: list[int] = field(default_factory=list)
    chart: Chart | None = None
    row_lines: dict[int, int] = field(default_factory=dict)


@dataclass
class Append:
    """A row appended to `tab` by header name; the tab (or a missing column) is created if needed.

    `key` names the column whose value identifies the row (a trace id, a run id): how a write that
    may already have landed recognises the rows it added."""

    tab: str
    headers: list[str]
    values: dict[str, object]
    key: str | None = None
    lines: int | None = None  # the row made this many lines tall (its wrapped text, capped); None: left as it is
    checkboxes: tuple[str, ...] = ()  # columns whose new cells are checkboxes on Google (TRUE/FALSE cells locally)


@dataclass
class CellUpdate:
    """One cell of an existing tab, addressed by row number and header name.

    With `key` (a column and its value, such as the draft's trace id) the update goes to the row
    holding that key when it is written, wherever a sort moved it, and is dropped if the row is
    gone; with `unless` (a column) it is dropped if that cell is no longer empty (a person scored)."""

    tab: str
    row: int
    column: str
    value: object
    key: tuple[str, str] | None = None
    unless: str | None = None


@dataclass(frozen=True)
class DeleteRows:
    """Remove every row of `tab` whose `key` column holds one of `values` (compared as text); the rows
    below move up, as when a person deletes rows.

    The rows are found by reading the key column when the write happens, so a row a reviewer sorted
    elsewhere meanwhile is still the one removed; a value no row holds is passed over. With `expected`
    (key value → {column: its text as the caller read it}) a row goes only if those cells still hold
    that text when the write happens: a row a person changed since is passed over, so what the caller
    kept of it is what the sheet showed when it went. A backend that finds the workbook still at the
    version `read_from` names knows no row changed, and compares none."""

    tab: str
    key: str
    values: frozenset[str]
    expected: Mapping[str, Mapping[str, str]] = field(default_factory=dict, hash=False)
    read_from: object = None  # the `Table.version` they were read from: found unchanged, no row is compared

    def still_as_read(self, key_value: str, cell: Callable[[str], object]) -> bool:
        """Whether the row holding `key_value` still shows what the caller read; `cell(column)` is its
        value now (None for a column the tab no longer has)."""
        return all(as_text(cell(name)) == text for name, text in self.expected.get(key_value, {}).items())


@dataclass
class WriteBatch:
    """Everything one command writes, applied in one write. New tabs come first; appends and cell
    updates are placed at the rows the tabs hold when the write happens; deletions are found the same
    way (never among the rows this batch appends) and applied after them, so every row below a deleted
    one moves up, appended rows included. Grids replace tabs of their own."""

    new_tabs: list[NewTab] = field(default_factory=list)
    appends: list[Append] = field(default_factory=list)
    updates: list[CellUpdate] = field(default_factory=list)
    grids: list[Grid] = field(default_factory=list)  # tabs written whole
    # an earlier attempt at these appends may have landed: skip each whose key is already in its tab
    recheck: bool = False
    deletions: list[DeleteRows] = field(default_factory=list)
    # the id a local workbook must carry (given it when it has none); a write that delivers drafts sets it
    workbook_id: str | None = None

    def __bool__(self) -> bool:
        return bool(self.new_tabs or self.appends or self.updates or self.grids or self.deletions)


class Workbook(Protocol):
    """A spreadsheet, local or remote."""

    location: str
    cell_limit: int
    # how long a write may still land after the fence check that let it start (a local workbook's
    # write lands before its lock is released: 0)
    landing_seconds: float

    def titles(self) -> list[str]:
        """The titles of every tab, in order."""

    def read(self, titles: list[str]) -> dict[str, Table]:
        """The named tabs that exist, read in one pass."""

    def ensure_writable(self) -> None:
        """Raise UsageError (WorkbookBusy if it may pass later) now if a write is bound to be refused."""

    def rows_left(self, title: str) -> int | None:
        """How many rows can still be appended to tab `title`, when that is cheap to know; else None."""

    def write(self, batch: WriteBatch, wait: float | None = None, fence=None) -> None:
        """Apply every change of `batch`, or none of them; wait at most `wait` seconds for other writers.
        `fence()`, when given, runs just before anything is sent and raises if this writer may no longer
        write (its delivery lease was taken over).

        Raises TitleTaken, before writing anything, if a new tab's title is in use."""


_KEY = re.compile(r"^[A-Za-z0-9_-]{25,}$")  # a spreadsheet key, as in /spreadsheets/d/<key>/edit


def is_google(location: str) -> bool:
    """A Sheets URL or a bare spreadsheet key (not a local path): decided without importing gspread,
    which a local workbook never needs."""
    if location.startswith(("http://", "https://")):
        return True
    return _KEY.match(location) is not None and not location.lower().endswith((".xlsx", ".xlsm"))
