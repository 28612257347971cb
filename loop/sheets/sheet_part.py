"""One worksheet part of an `.xlsx` package: its rows read, written and deleted in place, and a new
worksheet made from a `NewTab`.

Cells are written as inline strings, numbers, booleans or dates; the shared-strings part is read (only
as far as needed) and never written. A written cell keeps its style, or takes the one its value needs
(a date, TRUE/FALSE) or its column's; the row keeps its attributes; every other row keeps its bytes.
Deleted rows go as Excel deletes them: the rows below move up, renumbered, and so does what refers to
rows (the dimension, merges, filter, conditional formats, validations, links, the view).

What a part must be before anything is written to it: rows stored each once (rows stored out of order,
as some writers store them, are put in order, each keeping its bytes), and every shared-string index
inside the shared-strings part. A part that breaks either is refused as damaged (`DamagedPart`), as
python-calamine (and so `loop status`) refuses it.

Which rows are taken. Appended rows go below the last row that holds a value or a formula in one of
the columns the append knows (for Drafts, the columns of the contract: trace_id, ticket, score, …);
formatting is not data, and neither is a value in a column loop does not know (a helper column a
reviewer filled down with a formula, a note beside the table): such a row is free, loop's cells are
written into it and its other cells keep their bytes. No appended cell lands inside a merged range:
rows where a merge covers a column being written are passed over. A column loop adds goes after the
last header and after every column holding a cell, so it never relabels a column of values. An Excel
Table (ListObject) that reaches the row above the appended rows grows to cover them, as it does when a
person types below it, and takes in a column added right beside it (`grown_table`); one with a totals
row takes the rows above it, the totals row moving down (`insert_rows`, `table_with_rows_inserted`).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from html import unescape
from typing import Callable, Iterator, NamedTuple
from xml.sax.saxutils import escape, quoteattr

from loop.cell_values import normalize_header
from loop.sheets.ooxml import (CELL_REF, DATE_FORMAT, EXCEL_MAX_ROWS, DamagedPart, PackageError, RowInsert, RowShift,
                               attributes_of, cell_xml, column_index, column_letter, formula_naming, number_format_of,
                               plain_text, text_of)
from loop.sheets.tab_xml import row_height_attributes

# What a writer asks for a cell format: bold=, color=, wrap=, number_format= → the style index, or None.
Formats = Callable[..., "int | None"]
GREY = "808080"
BISECTS = 32  # row lookups by bisection before one scan of every row tag is the cheaper way
_R = re.compile(rb'\sr\s*=\s*["\']([A-Z]*)(\d+)')  # a row's number, or a cell's column and row
_T = re.compile(rb'\st\s*=\s*["\'](\w+)')  # a cell's type
_S = re.compile(rb'\ss\s*=\s*["\'](\d+)')  # a cell's style
_SI_TAG = re.compile(rb"<(?:\w+:)?si[\s/>]")  # a shared-strings item's start tag
_SHARED = re.compile(rb"""t=(?:"s"|'s')[^>]*>\s*<(?:\w+:)?v>\s*(\d+)""")  # a shared-string cell's index


class _Row(NamedTuple):
    number: int
    start: int  # offset of "<row"
    tag_end: int  # offset just past the start tag
    closed: bool  # a self-closing <row .../>


class _Unnumbered(Exception):
    """A row without its `r` attribute: rows must then be counted from the top."""


class SheetPart:
    """A worksheet's XML, with cell writes collected and applied in one pass by `render`.

    Rows are found where they are needed, by bisecting the part on byte offsets (rows are stored in
    order, each with its number), so a write to a few rows of a 50,000-row tab reads a few rows."""

    def __init__(self, xml: bytes, strings: SharedStrings | None = None, formats: Formats | None = None,
                 checked: bool = False):
        self.xml = xml
        self.strings = strings
        self.formats = formats or (lambda **look: None)
        root = re.search(rb"<(?:(\w+):)?worksheet\b", xml)
        if not root:
            raise PackageError("a tab's part is not a worksheet")
        self.prefix = (root.group(1) + b":") if root.group(1) else b""
        p = self.prefix
        opening = re.search(rb"<" + p + rb"sheetData\b[^>]*?(/?)>", xml)
        if not opening:
            raise PackageError("a worksheet has no sheetData")
        if opening.group(1):  # <sheetData/>: an empty tab
            self.xml = xml[:opening.start()] + b"<" + p + b"sheetData></" + p + b"sheetData>" + xml[opening.end():]
            opening = re.search(rb"<" + p + rb"sheetData\b[^>]*>", self.xml)
        self.data_start = opening.end()
        self.data_end = self.xml.rfind(b"</" + p + b"sheetData>")
        if self.data_end < self.data_start:
            raise PackageError("a worksheet's sheetData is not closed")
        self._row_tag = re.compile(rb"<" + p + rb"row\b([^>]*?)(/?)>")
        self._numbered_row_tag = re.compile(rb"<" + p + rb"row\b(?=[^>]*?\sr\s*=\s*[\"'](\d+))?[^>]*?(/?)>")
        self._row_number = re.compile(rb"<" + p + rb"row\b(?:[^>]*?\sr\s*=\s*[\"'](\d+))?")
        self._cell_tag = re.compile(rb"<" + p + rb"c\b([^>]*?)/?>")
        self._cell_refs = re.compile(rb"<" + p + rb"c\b(?:[^>]*?\sr\s*=\s*[\"']([A-Z]+)\d+)?")  # b"" without one
        self._refs = re.compile(rb"(<" + p + rb'(?:row|c)\b[^>]*?\sr="[A-Z]*)\d+"')  # a row's or cell's number
        self._formula = re.compile(rb"<" + p + rb"f[\s>/]")
        self._rows: list[_Row] | None = None  # every row, once bisecting costs more than one scan
        self._numbers: list[int] = []
        self._starts: list[int] = []
        self._bisects = 0
        self.writes: dict[int, dict[int, object]] = {}
        self.heights: dict[int, int] = {}  # row -> lines, for rows appended with wrapped text
        self.written = b""  # set by render
        self.deleted: set[int] = set()
        self.appended: list[int] = []  # rows given to appends (free_rows)
        self.added_columns: list[int] = []  # columns whose header this write adds
        self.appended_columns: set[int] = set()  # the columns appends write
        self._merges: list[tuple[int, int, int, int]] | None = None
        self._headers: list[str] | None = None
        self._found: dict[str, int | None] = {}
        self._column_styles = self._read_column_styles()
        if not checked:  # `checked`: this very part passed the checks already (XlsxWorkbook.ensure_readable)
            self._check_rows()
            self._check_strings()

    # -- what the part must be -------------------------------------------------------------------

    def _check_rows(self) -> None:
        """Rows are found by bisecting on their numbers, so they must be stored in order, each once.
        Rows stored out of order are put in order here, each keeping its bytes (readers place a row by
        its number, so nothing moves for them); a number stored twice is refused as damage."""
        numbers = self._row_number.findall(self.xml, self.data_start, self.data_end)
        if all(numbers):
            order = list(map(int, numbers))
        else:  # rows without a number follow the one above
            order = [row.number for row in self._all_rows()]
        if all(a < b for a, b in zip(order, order[1:])):
            return
        seen = set()
        for number in order:
            if number in seen:
                raise DamagedPart(f"row {number} is stored twice in one tab")
            seen.add(number)
        if not all(numbers):
            raise DamagedPart("a tab stores its rows out of order, some without a number")
        rows = sorted(self._all_rows(), key=lambda row: row.number)
        body = b"".join(self._row_xml(row) for row in rows)
        self.xml = self.xml[:self.data_start] + body + self.xml[self.data_end:]
        self.data_end = self.data_start + len(body)
        self._rows = None

    def _check_strings(self) -> None:
        """Every shared-string index a cell holds must be inside the shared-strings part."""
        quote = b"'" if self.xml.find(b"='", self.data_start, self.data_start + 200) >= 0 else b'"'
        if self.xml.find(b"t=" + quote + b"s" + quote, self.data_start, self.data_end) < 0:
            return
        indexes = _SHARED.findall(self.xml, self.data_start, self.data_end)
        if not indexes:
            return
        highest = max(map(int, indexes))
        count = self.strings.count() if self.strings else 0
        if highest >= count:
            raise DamagedPart(f"a cell names shared string {highest}, past the end of the {count:,} in the "
                              "shared-strings part")

    # -- finding rows ------------------------------------------------------------------------

    def _row_from(self, offset: int) -> _Row | None:
        """The first row whose start tag begins at or after `offset`."""
        found = self._numbered_row_tag.search(self.xml, offset, self.data_end)
        if not found:
            return None
        if not found.group(1):
            raise _Unnumbered()
        return _Row(int(found.group(1)), found.start(), found.end(), bool(found.group(2)))

    def _all_rows(self) -> list[_Row]:
        """Every row, from one scan of the row tags (rows without a number counted from the one above)."""
        if self._rows is None:
            rows, number = [], 0
            for found in self._numbered_row_tag.finditer(self.xml, self.data_start, self.data_end):
                number = int(found.group(1)) if found.group(1) else number + 1
                rows.append(_Row(number, found.start(), found.end(), bool(found.group(2))))
            self._rows = rows
            self._numbers = [row.number for row in rows]
            self._starts = [row.start for row in rows]
        return self._rows

    def _first_at_least(self, number: int) -> _Row | None:
        """The first row numbered `number` or more (rows are stored in ascending order): found by
        bisecting the part's bytes, or, past a few dozen lookups, in an index of every row."""
        if self._rows is None and self._bisects < BISECTS:
            self._bisects += 1
            try:
                low, high = self.data_start, self.data_end
                while low < high:
                    middle = (low + high) // 2
                    row = self._row_from(middle)
                    if row is not None and row.number < number:
                        low = row.start + 1
                    else:
                        high = middle
                return self._row_from(low)
            except _Unnumbered:
                pass
        rows = self._all_rows()
        at = bisect_left(self._numbers, number)
        return rows[at] if at < len(rows) else None

    def _row_end(self, row: _Row) -> int:
        if row.closed:
            return row.tag_end
        return self.xml.index(b"</" + self.prefix + b"row>", row.tag_end) + len(b"</" + self.prefix + b"row>")

    def _row_xml(self, row: _Row) -> bytes:
        return self.xml[row.start:self._row_end(row)]

    def _cells(self, row_xml: bytes) -> Iterator[tuple[int, bytes, bytes]]:
        """(column, the start tag's attributes, the whole <c> element) for each cell of a row's XML, in
        order. A cell ends where the next one (or the row's end tag) begins, so no cell's text is read."""
        end = len(row_xml) - len(b"</" + self.prefix + b"row>")
        tag, column = self._cell_tag.search(row_xml), 0
        while tag:
            following = self._cell_tag.search(row_xml, tag.end())
            ref = _R.search(tag.group(1))
            column = column_index(ref.group(1).decode()) if ref and ref.group(1) else column + 1
            yield column, tag.group(1), row_xml[tag.start():following.start() if following else end]
            tag = following

    def _value(self, attributes: bytes, element: bytes):
        p = self.prefix
        kind = _T.search(attributes)
        kind = kind.group(1).decode() if kind else "n"
        if kind == "inlineStr":
            return text_of(element, p)
        found = re.search(rb"<" + p + rb"v>(.*?)</" + p + rb"v>", element, re.S)
        if not found:
            return None
        raw = unescape(found.group(1).decode("utf-8"))
        if kind == "s":
            return self.strings.get(int(raw)) if self.strings else None
        if kind == "b":
            return raw.strip() == "1"
        if kind in ("str", "e"):
            return plain_text(raw)
        try:
            return float(raw)
        except ValueError:
            return raw

    def _cell_value(self, row: _Row, column: int):
        if not row.closed:  # the cell by its reference, found in one search; else one pass over the row's cells
            end = self._row_end(row)
            ref = f' r="{column_letter(column)}{row.number}"'.encode()
            at = self.xml.find(ref, row.tag_end, end)
            start = self.xml.rfind(b"<" + self.prefix + b"c", row.tag_end, at) if at >= 0 else -1
            tag = self._cell_tag.match(self.xml, start) if start >= 0 else None
            if tag and tag.end() > at and self.xml.find(ref, start, tag.end()) == at:
                following = self._cell_tag.search(self.xml, tag.end(), end)
                close = len(b"</" + self.prefix + b"row>")
                return self._value(tag.group(1), self.xml[start:following.start() if following else end - close])
        for found, attributes, element in self._cells(self._row_xml(row)):
            if found == column:  # not "past it": a writer may store a row's cells out of order
                return self._value(attributes, element)
        return None

    def value(self, number: int, column: int | None):
        """The value of one cell as the file holds it now (the writes collected are not in it)."""
        row = self._first_at_least(number)
        if column is None or row is None or row.number != number:
            return None
        return self._cell_value(row, column)

    def column_values(self, column: int | None) -> Iterator[tuple[int, object]]:
        """(row number, value) of `column` in every row below the header, as the file holds them now."""
        if column is None:
            return
        for row in self._all_rows():
            if row.number > 1:
                yield row.number, self._cell_value(row, column)

    def row_values(self, number: int) -> dict[int, object]:
        """column → value of row `number` as the file holds it now."""
        row = self._first_at_least(number)
        if row is None or row.number != number:
            return {}
        return {column: self._value(attributes, element)
                for column, attributes, element in self._cells(self._row_xml(row))}

    def headers(self) -> list[str]:
        """Row 1's text by column (1-based positions; "" where a column has no header)."""
        values = self.row_values(1)
        width = max(values, default=0)
        return ["" if values.get(c) is None else str(values[c]).strip() for c in range(1, width + 1)]

    def find_column(self, name: str) -> int | None:
        """The 1-based column whose header matches `name` (case, spaces, `_` and `-` ignored)."""
        if self._headers is None:
            self._headers = self.headers()
        if name not in self._found:
            wanted = normalize_header(name)
            self._found[name] = next((position for position, header in enumerate(self._headers, start=1)
                                      if normalize_header(header) == wanted), None)
        return self._found[name]

    def column(self, name: str) -> int:
        """The column for `name`, adding its header when the tab has none: after the last header, after
        every column that holds a cell below (a column of values without a header is not relabelled)
        and after a merge across the header row."""
        found = self.find_column(name)
        if found is not None:
            return found
        while self._headers and not self._headers[-1]:
            self._headers.pop()
        if self.added_columns:
            position = max(len(self._headers), self.added_columns[-1]) + 1
        else:
            merged = [right for top, left, bottom, right in self.merges() if top <= 1 <= bottom]
            position = max(len(self._headers), self._last_cell_column(), *merged) + 1
        self._headers += [""] * (position - 1 - len(self._headers)) + [name]
        self._found.clear()
        self.added_columns.append(position)
        self.set(1, position, name)
        return position

    def _last_cell_column(self) -> int:
        """The last column holding a cell that is not an empty, self-closed one (formatting) in any row."""
        width, last = len(self._headers or []), 0
        unnumbered = re.compile(rb"<" + self.prefix + rb"c(?![^>]*?\sr\s*=)[\s/>]")
        if unnumbered.search(self.xml, self.data_start, self.data_end):  # cells placed by counting
            for row in self._all_rows():
                for column, attributes, element in self._cells(self._row_xml(row)):
                    if column > max(width, last) and not element.rstrip().endswith(b"/>"):
                        last = column
            return last
        wide = re.compile(rb"<" + self.prefix + rb"c\b[^>]*?\sr\s*=\s*[\"']([A-Z]+)\d+[^>]*?(?<!/)>")
        for letters in set(wide.findall(self.xml, self.data_start, self.data_end)):
            column = column_index(letters.decode())
            if column > width:
                last = max(last, column)
        return last

    def last_used_row(self, columns: set[int] | None = None, above: int | None = None) -> int:
        """The last row holding a value or a formula in one of `columns` (in any column when None), above
        row `above` when given; rows of only formatting, and values in other columns, do not count. 1 for
        a header-only tab.

        Read from the end of the part back, value by value: a tab formatted down to its last row costs
        a search through bytes, not a pass over its rows."""
        p = self.prefix
        tags = (b"<" + p + b"v", b"<" + p + b"is", b"<" + p + b"f")
        value_tag = re.compile(rb"<" + p + rb"(v|is|f)[\s>/]")
        end = self.data_end
        if above is not None:
            try:
                row = self._first_at_least(above)
            except _Unnumbered:
                return self._last_used_by_rows(columns, above)
            end = row.start if row is not None else end
        while True:
            at, low, window = -1, end, 1 << 16
            while at < 0 and low > self.data_start:  # a widening window: a tag absent from the part
                low = max(self.data_start, low - window)  # (often <f) costs no pass over all of it
                at = max(self.xml.rfind(tag, low, end) for tag in tags)
                window *= 4
            if at < 0:
                return 1
            found = value_tag.match(self.xml, at)
            end = at
            if not found:
                continue
            cell = self.xml.rfind(b"<" + p + b"c", self.data_start, at)
            while cell >= 0 and not self._cell_tag.match(self.xml, cell):
                cell = self.xml.rfind(b"<" + p + b"c", self.data_start, cell)
            start = self.xml.rfind(b"<" + p + b"row", self.data_start, at)
            while start >= 0 and not self._row_tag.match(self.xml, start):
                start = self.xml.rfind(b"<" + p + b"row", self.data_start, start)
            if cell < 0 or start < 0 or cell < start:
                continue  # not inside a cell of a row
            if not self._holds_value(found.group(1), at):
                continue  # an empty <v/>: the cell may still hold a formula, before it
            end = cell
            ref = _R.search(self._cell_tag.match(self.xml, cell).group(1))
            number = _R.search(self._row_tag.match(self.xml, start).group(1))
            if not (number and ref and ref.group(1)):  # a row or cell without its number: count them
                return self._last_used_by_rows(columns, above)
            if columns is None or column_index(ref.group(1).decode()) in columns:
                return max(int(number.group(2)), 1)

    def _holds_value(self, kind: bytes, at: int) -> bool:
        """Whether the <v>, <is> or <f> element at `at` holds something: a formula always does."""
        if kind == b"f":
            return True
        close = b"</" + self.prefix + kind + b">"
        opening = self.xml.index(b">", at) + 1
        if self.xml[opening - 2:opening] == b"/>":
            return False
        inner = self.xml[opening:self.xml.find(close, opening)]
        return bool(inner.strip()) if kind == b"v" else bool(text_of(b"<" + self.prefix + b"is>" + inner + close,
                                                                    self.prefix))

    def _last_used_by_rows(self, columns: set[int] | None, above: int | None = None) -> int:
        formula = self._formula
        for row in reversed(self._all_rows()):
            if above is not None and row.number >= above:
                continue
            for column, attributes, element in self._cells(self._row_xml(row)):
                if columns is not None and column not in columns:
                    continue
                if formula.search(element) or self._value(attributes, element) not in (None, ""):
                    return max(row.number, 1)
        return 1

    def last_row(self) -> int | None:
        """The number of the last row the part stores (with cells or not); None when it stores none or
        that row has no number."""
        at = self.data_end
        while True:
            at = self.xml.rfind(b"<" + self.prefix + b"row", self.data_start, at)
            if at < 0:
                return None
            found = self._numbered_row_tag.match(self.xml, at)
            if found:
                return int(found.group(1)) if found.group(1) else None

    def formulas_reach(self, shift: RowInsert, title: str, before: int) -> bool:
        """Whether a formula stored outside rows `before` and below (the rows about to move), or a
        conditional format's or validation's formula, refers to a row `shift` moves."""
        row = self._first_at_least(before)
        kept = self.xml[:row.start if row is not None else self.data_end] + self.xml[self.data_end:]
        if not self._formula.search(kept) and b"formula" not in kept:
            return False
        return any(shift.reaches(unescape(found.group(4).decode("utf-8", "replace")), title)
                   for found in _FORMULAS.finditer(kept))

    def insert_rows(self, shift: RowInsert, title: str) -> None:
        """Make room for `shift.count` rows above row `shift.at`, as Excel does when rows are added to a
        table above its totals row: the rows from there down (the caller made sure they are the part's
        last: the totals row) move down with their formulas, and so does what refers to rows outside
        sheetData (the dimension, conditional formats, validations, links). The rows written there
        afterwards are new rows."""
        row = self._first_at_least(shift.at)
        if row is None:
            return
        p = self.prefix

        def moved_row(found: re.Match) -> bytes:
            digits = str(shift.row(int(found.group(1)))).encode()
            row_xml = self._refs.sub(lambda ref: ref.group(1) + digits + b'"', found.group(0))
            return _FORMULA_IN_CELL.sub(lambda f: self._moved_formula(f, shift, title), row_xml)

        rows = re.compile(rb"<" + p + rb"row\b[^>]*?\sr=\"(\d+)\"[^>]*?(?:/>|>.*?</" + p + rb"row>)", re.S)
        body = rows.sub(moved_row, self.xml[row.start:self.data_end])
        head = _kept_areas(self.xml[:self.data_start], shift, skip={b"sheetView", b"pane", b"selection"})
        tail = moved_refs(self.xml[self.data_end:], shift)
        self.xml = head + self.xml[self.data_start:row.start] + body + tail
        self.data_start, self.data_end = len(head), len(self.xml) - len(tail)
        self._rows, self._bisects, self._merges = None, 0, None

    @staticmethod
    def _moved_formula(found: re.Match, shift: RowInsert, title: str) -> bytes:
        tag = _KEPT_AREA.sub(lambda a: a.group(1) + shift.areas(a.group(2).decode()).encode(), found.group(1))
        text = unescape(found.group(2).decode("utf-8"))
        return tag + escape(shift.formula(text, title)).encode("utf-8") + found.group(3)

    def merges(self) -> list[tuple[int, int, int, int]]:
        """(top, left, bottom, right) of every merged range."""
        if self._merges is None:
            tail = self.xml[self.data_end:]
            found = []
            for element in re.finditer(rb"<" + self.prefix + rb"mergeCell\b[^>]*>", tail):
                ends = [CELL_REF.fullmatch(end) for end in attributes_of(element.group(0)).get("ref", "").split(":")]
                if ends and all(ends):
                    first, last = ends[0], ends[-1]
                    found.append((int(first.group(2)), column_index(first.group(1)),
                                  int(last.group(2)), column_index(last.group(1))))
            self._merges = found
        return self._merges

    def merged_over(self, row: int, column: int) -> str | None:
        """The merged range (as "A1:B2") that hides cell (row, column): it covers the cell and starts
        elsewhere. None for a cell no merge hides (a merge's first cell shows its value)."""
        for top, left, bottom, right in self.merges():
            if top <= row <= bottom and left <= column <= right and (row, column) != (top, left):
                return f"{column_letter(left)}{top}:{column_letter(right)}{bottom}"
        return None

    def free_rows(self, count: int, columns: set[int], known: set[int] | None,
                  reserved: list[tuple[int, int, int, int]] = ()) -> list[int]:
        """The rows `count` appends writing `columns` go to, in order: below the last row holding a value
        in a `known` column (any column when None), passing over rows where a merged range, or a
        `reserved` area (top, left, bottom, right: a table's totals row), covers one of `columns`.
        Fewer than `count` when the sheet ends first."""
        number = self.last_used_row(known) + 1
        blocking = [(top, bottom) for top, left, bottom, right in [*self.merges(), *reserved]
                    if bottom >= number and any(left <= c <= right for c in columns)]
        rows = []
        while len(rows) < count and number <= EXCEL_MAX_ROWS:
            below = next((bottom for top, bottom in blocking if top <= number <= bottom), None)
            if below is not None:
                number = below + 1
                continue
            rows.append(number)
            number += 1
        self.appended += rows
        return rows

    # -- writing --------------------------------------------------------------------------------

    def set(self, row: int, column: int, value) -> None:
        if not 1 <= row <= EXCEL_MAX_ROWS:
            raise PackageError(f"row {row} is outside the sheet")
        self.writes.setdefault(row, {})[column] = value

    def set_height(self, row: int, lines: int) -> None:
        """Make row `row` `lines` lines tall when rendered (its wrapped text's height, capped by the caller)."""
        self.heights[row] = lines

    def delete(self, rows) -> None:
        """Take these rows (numbered as the part holds them now) out when rendering; the rows below move up."""
        self.deleted.update(rows)

    def has_formulas(self, title: str) -> bool:
        """Whether a cell holds a formula, or a conditional format or validation names tab `title`:
        moving rows would leave either computing from the wrong ones."""
        outside = self.xml[:self.data_start] + self.xml[self.data_end:]
        return bool(self._formula.search(self.xml, self.data_start, self.data_end)) or bool(
            formula_naming(outside, title))

    def render(self) -> bytes:
        """The part with every collected write applied, then the deleted rows taken out and the rows
        below moved up, with what refers to them; rows nobody wrote keep their bytes (and, when they
        move, get their new numbers). `written` is then the part less the rows kept as they were (whole
        rows, cut at their start tags, that changed at most in their numbers): what must parse."""
        if not self.writes and not self.deleted:
            self.written = self.xml
            return self.xml
        p = self.prefix.decode()
        shift = RowShift(self.deleted)
        head = self._with_dimension(self.xml[:self.data_start])
        pieces, cursor = [moved_refs(head, shift) if shift else head], self.data_start
        written = [pieces[0]]
        for number in sorted(self.writes):
            if number in self.deleted:
                continue
            row = self._first_at_least(number)
            if row is not None and row.number == number:
                end = self._row_end(row)
                edited = self._sized(self._edited_row(self.xml[row.start:end], number, self.writes[number]), number)
                pieces += [*self._kept(cursor, row.start, shift), self._renumbered(edited, number, shift)]
                written.append(pieces[-1])
                cursor = end
            else:
                at = max(row.start if row is not None else self.data_end, cursor)
                cells = "".join(cell_xml(p, f"{column_letter(c)}{number}", v, self._style_for(v, c))
                                for c, v in sorted(self.writes[number].items()))
                tall = row_height_attributes(self.heights[number]) if self.heights.get(number, 1) > 1 else ""
                added = f'<{p}row r="{number}"{tall}>{cells}</{p}row>'.encode("utf-8")
                pieces += [*self._kept(cursor, at, shift), self._renumbered(added, number, shift)]
                written.append(pieces[-1])
                cursor = at
        tail = self.xml[self.data_end:]
        pieces += [*self._kept(cursor, self.data_end, shift), moved_refs(tail, shift) if shift else tail]
        self.written = b"".join(written + [pieces[-1]])
        return b"".join(pieces)

    def _sized(self, row_xml: bytes, number: int) -> bytes:
        """The row's start tag given the height set for it, replacing any it had; unchanged when none was set."""
        lines = self.heights.get(number, 1)
        if lines < 2:
            return row_xml
        tag = self._row_tag.match(row_xml)
        start_tag = re.sub(rb'\s(?:ht|customHeight)="[^"]*"', b"", row_xml[:tag.end()])
        at = len(start_tag) - (2 if start_tag.endswith(b"/>") else 1)
        return start_tag[:at] + row_height_attributes(lines).encode() + start_tag[at:] + row_xml[tag.end():]

    def _kept(self, start: int, end: int, shift: RowShift) -> list[bytes]:
        """The part's bytes from `start` to `end` (whole rows), less the deleted rows, the rows below
        them renumbered. Bytes above the first deleted row are taken as they are."""
        if not shift:
            return [self.xml[start:end]]
        rows = self._all_rows()
        first = rows[bisect_left(self._numbers, shift.deleted[0])].start
        if end <= first:
            return [self.xml[start:end]]
        pieces, cursor = [], start
        for index in range(bisect_left(self._starts, max(start, first)), len(rows)):
            row = rows[index]
            if row.start >= end:
                break
            row_end = self._row_end(row)
            pieces.append(self.xml[cursor:row.start])
            if row.number not in self.deleted:
                pieces.append(self._renumbered(self.xml[row.start:row_end], row.number, shift))
            cursor = row_end
        pieces.append(self.xml[cursor:end])
        return pieces

    def _renumbered(self, row_xml: bytes, number: int, shift: RowShift) -> bytes:
        """A row's XML with its number, and its cells' references, moved to where `shift` puts it."""
        moved = shift.row(number) if shift else number
        if moved == number:
            return row_xml
        digits = str(moved).encode()
        return self._refs.sub(lambda found: found.group(1) + digits + b'"', row_xml)

    def _edited_row(self, original: bytes, number: int, writes: dict[int, object]) -> bytes:
        """The row with `writes` in it: its cells in column order, each kept as bytes unless written (a
        written cell keeps its style, unless its value is a date, which needs a date format not to be
        shown as a number). A cell stored without its reference gets one, since a cell
        written or emptied before it would otherwise move it; a column stored twice is refused.

        Cells written after the row's last one (a new column, the usual case) are added at its end
        and the row's bytes kept, when its cells are stored in order, each with its reference: read
        off the references in one search, without taking the cells apart."""
        p = self.prefix.decode()
        tag = self._row_tag.match(original)
        start_tag = original[:tag.end()]
        end = len(original)
        if tag.group(2):  # <row .../> becomes <row ...></row>
            start_tag = start_tag[:-2].rstrip() + b">"
        else:
            end -= len(f"</{p}row>")
        found = list(self._cell_refs.finditer(original, tag.end()))
        refs = [(len(r), r) for r in (f.group(1) or b"" for f in found)]
        if all(r for _, r in refs) and all(a < b for a, b in zip(refs, refs[1:])):
            last = column_index(refs[-1][1].decode()) if refs else 0
            if last < min(writes):
                cells = {}
                for column, value in writes.items():
                    cells[column] = cell_xml(p, f"{column_letter(column)}{number}", value,
                                             self._style_for(value, column)).encode("utf-8")
                first = column_index(refs[0][1].decode()) if refs else min(cells)
                return self._joined(start_tag, original[tag.end():end], cells, first)
            if len(writes) == 1:
                starts = [f.start() for f in found]
                columns = [column_index(r.decode()) for _, r in refs]
                return self._spliced(original, start_tag, (tag.end(), end), starts, columns, number,
                                     *next(iter(writes.items())))
        existing = list(self._cells(original))
        columns = [column for column, _, _ in existing]
        if len(set(columns)) != len(columns):
            twice = next(c for c in columns if columns.count(c) > 1)
            raise DamagedPart(f"cell {column_letter(twice)}{number} is stored twice in one tab")
        first = min(columns, default=None)
        cells = {}
        for column, attributes, element in existing:
            if not _R.search(attributes):
                at = len(self.prefix) + 2  # just past "<c"
                element = element[:at] + f' r="{column_letter(column)}{number}"'.encode() + element[at:]
            cells[column] = element
        written = {column: attributes for column, attributes, _ in existing if column in writes}
        for column, value in writes.items():
            style = _S.search(written[column]) if column in written else None
            style = style.group(1).decode() if style else None
            if style is None or number_format_of(value) == DATE_FORMAT:  # else a date reads as a number
                style = self._style_for(value, column) or style
            cells[column] = cell_xml(p, f"{column_letter(column)}{number}", value, style).encode("utf-8")
        return self._joined(start_tag, b"", cells, first)

    def _spliced(self, original: bytes, start_tag: bytes, span: tuple[int, int], starts: list[int],
                 columns: list[int], number: int, column: int, value) -> bytes:
        """One cell written into a row whose cells (starting at `starts`, in `columns`) all carry their
        references, in order: over the cell it replaces (whose style it keeps, as `_edited_row` does)
        or where it belongs, every other cell kept as bytes."""
        begin, end = span
        at = bisect_left(columns, column)
        cut_from = starts[at] if at < len(starts) else end
        cut_to, style = cut_from, None
        if at < len(starts) and columns[at] == column:
            cut_to = starts[at + 1] if at + 1 < len(starts) else end
            found = _S.search(self._cell_tag.match(original, cut_from).group(1))
            style = found.group(1).decode() if found else None
        if style is None or number_format_of(value) == DATE_FORMAT:
            style = self._style_for(value, column) or style
        cell = cell_xml(self.prefix.decode(), f"{column_letter(column)}{number}", value, style).encode("utf-8")
        start_tag = _widened(start_tag, min(columns[0], column), max(columns[-1], column)) if columns else start_tag
        return start_tag + original[begin:cut_from] + cell + original[cut_to:end] + b"</" + self.prefix + b"row>"

    def _joined(self, start_tag: bytes, kept: bytes, cells: dict[int, bytes], first: int | None) -> bytes:
        """A row: its start tag (spans widened to its cells), the kept bytes, then `cells` in column order."""
        if cells:
            start_tag = _widened(start_tag, min(first or min(cells), min(cells)), max(cells))
        return start_tag + kept + b"".join(cells[c] for c in sorted(cells)) + b"</" + self.prefix + b"row>"

    def _end_columns(self, row_xml: bytes) -> tuple[int | None, int | None]:
        """The columns of a row's first and last cells, read off their references without passing over
        the cells between; None for a row without cells or a last cell without a reference."""
        first_tag = self._cell_tag.search(row_xml)
        if not first_tag:
            return None, None
        ref = _R.search(first_tag.group(1))
        first = column_index(ref.group(1).decode()) if ref and ref.group(1) else 1
        at = len(row_xml)
        while True:  # the last "<c" that opens a cell (rich text also has <color> and <charset>)
            at = row_xml.rfind(b"<" + self.prefix + b"c", 0, at)
            found = self._cell_tag.match(row_xml, at)
            if found:
                ref = _R.search(found.group(1))
                return first, column_index(ref.group(1).decode()) if ref and ref.group(1) else None

    def _read_column_styles(self) -> list[tuple[int, int, str]]:
        """(first, last, style) of each column range with a default format in <cols>."""
        p = self.prefix
        cols = re.search(rb"<" + p + rb"cols>(.*?)</" + p + rb"cols>", self.xml[:self.data_start], re.S)
        found = []
        for element in re.finditer(rb"<" + p + rb"col\b[^>]*>", cols.group(1) if cols else b""):
            col = attributes_of(element.group(0))
            if col.get("style") and col.get("min") and col.get("max"):
                found.append((int(col["min"]), int(col["max"]), col["style"]))
        return found

    def _style_for(self, value, column: int) -> str | None:
        """The format of a new cell: what its value needs (a date, TRUE/FALSE), else its column's."""
        number_format = number_format_of(value)
        if number_format:
            index = self.formats(number_format=number_format)
            return str(index) if index is not None else None
        return next((style for first, last, style in self._column_styles if first <= column <= last), None)

    def _with_dimension(self, xml: bytes) -> bytes:
        if not self.writes:
            return xml
        found = re.search(rb"(<" + self.prefix + rb"dimension\b[^>]*\bref=\")([^\"]*)(\")", xml)
        if not found:
            return xml
        refs = [CELL_REF.fullmatch(r) for r in found.group(2).decode().split(":")]
        if not all(refs):
            return xml
        first, last = refs[0], refs[-1]
        last_column = max(column_index(last.group(1)), *(max(w) for w in self.writes.values() if w))
        last_row = max(int(last.group(2)), max(self.writes))
        ref = f"{first.group(1)}{first.group(2)}:{column_letter(last_column)}{last_row}"
        return xml[:found.start(2)] + ref.encode() + xml[found.end(2):]


# What covers an area and goes when all of its rows do: a merge, a link, a conditional format, a validation.
_AREA_ELEMENT = re.compile(
    rb"<((?:\w+:)?)(mergeCell|hyperlink|conditionalFormatting|dataValidation)\b(?:[^>]*?/>|[^>]*>.*?</\1\2>)", re.S)
_AREA_LIST = re.compile(
    rb"<((?:\w+:)?)(mergeCells|hyperlinks|conditionalFormattings|dataValidations)\b([^>]*)>(.*?)</\1\2>", re.S)
_AREA = re.compile(rb'(\s(?:ref|sqref)="|<(?:\w+:)?sqref>)([^"<]*)')  # an attribute, or x14's <xm:sqref>
_KEPT_AREA = re.compile(rb'(\s(?:ref|sqref|activeCell|topLeftCell)=")([^"]*)')
_TAG = re.compile(rb"<(?:\w+:)?(\w+)\b[^>]*>")
_FORMULA_IN_CELL = re.compile(rb"(<(?:\w+:)?f\b[^>]*(?<!/)>)(.*?)(</(?:\w+:)?f>)", re.S)
_FORMULAS = re.compile(rb"<((?:\w+:)?)(f|formula\d?)\b([^>]*)(?<!/)>(.*?)</\1\2>", re.S)


def _widened(start_tag: bytes, low: int, high: int) -> bytes:
    """A row's start tag with its `spans` hint (when it has one) set to columns `low` to `high`."""
    spans = re.search(rb'\sspans="[^"]*"', start_tag)
    return start_tag.replace(spans.group(0), f' spans="{low}:{high}"'.encode()) if spans else start_tag


def moved_refs(xml: bytes, shift: RowShift) -> bytes:
    """A worksheet's XML outside its rows, with what refers to rows moved as the rows move: a merge,
    link, conditional format or validation whose rows are all gone goes with them (a merge left on one
    cell too); the dimension, the view, the filter and its sort stay, on the rows that moved up."""

    def area_element(element: re.Match) -> bytes:
        gone = False

        def moved(area: re.Match) -> bytes:
            nonlocal gone
            after = shift.areas(area.group(2).decode())
            first, _, last = (after or "").partition(":")
            gone = gone or after is None or (element.group(2) == b"mergeCell" and first == last)
            return area.group(1) + (after or "").encode()

        moved_element = _AREA.sub(moved, element.group(0))
        return b"" if gone else moved_element

    def area_list(found: re.Match) -> bytes:
        prefix, name, attributes, body = found.groups()
        count = len(re.findall(rb"<" + re.escape(prefix + name[:-1]) + rb"\b", body))
        if not count:
            return b""
        attributes = re.sub(rb'(\scount=")\d+', lambda c: c.group(1) + str(count).encode(), attributes)
        return b"<" + prefix + name + attributes + b">" + body + b"</" + prefix + name + b">"

    xml = _AREA_LIST.sub(area_list, _AREA_ELEMENT.sub(area_element, xml))
    return _kept_areas(xml, shift, skip={b"mergeCell", b"hyperlink", b"conditionalFormatting", b"dataValidation"})


def moved_table(xml: bytes, shift: RowShift) -> bytes:
    """A table part (an Excel Table over the tab) whose rows moved: its range, filter and sort shrink with
    them, the table keeping its header and one row below it, as Excel keeps them."""
    return _kept_areas(xml, shift, tall={b"table": 2, b"autoFilter": 2})


def totals_rows(xml: bytes) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of a table part's totals row(s), which no appended row may take."""
    opening = re.search(rb"<(?:\w+:)?table\b[^>]*>", xml)
    table = attributes_of(opening.group(0)) if opening else {}
    ends = [CELL_REF.fullmatch(end) for end in table.get("ref", "").split(":")]
    count = int(table.get("totalsRowCount") or 0) if (table.get("totalsRowCount") or "0").isdigit() else 0
    if not count or len(ends) != 2 or not all(ends):
        return []
    bottom = int(ends[1].group(2))
    return [(bottom - count + 1, column_index(ends[0].group(1)), bottom, column_index(ends[1].group(1)))]


def table_top(xml: bytes) -> int:
    """A table part's header row (its first row)."""
    opening = re.search(rb"<(?:\w+:)?table\b[^>]*>", xml)
    first = CELL_REF.match(attributes_of(opening.group(0)).get("ref", "")) if opening else None
    return int(first.group(2)) if first else 1


def table_bottom(xml: bytes) -> int:
    """A table part's last row."""
    opening = re.search(rb"<(?:\w+:)?table\b[^>]*>", xml)
    last = CELL_REF.fullmatch(attributes_of(opening.group(0)).get("ref", "").split(":")[-1]) if opening else None
    return int(last.group(2)) if last else EXCEL_MAX_ROWS


def table_with_rows_inserted(xml: bytes, shift: RowInsert) -> bytes:
    """A table part with rows inserted above its totals row: its range, filter and sort grow over them."""
    return _kept_areas(xml, shift)


def grown_table(xml: bytes, rows: list[int], written: set[int], headers: dict[int, str]) -> bytes:
    """A table part (an Excel Table over the tab) grown as Excel grows it when a person types beside it:
    down over appended `rows` that start inside it or right below its last row (in a column of its own,
    among those `written`), and right over columns added right beside it (`headers`: column → header
    text), each becoming a table column. A table with a totals row does not grow down (Excel adds rows
    above the totals, never below them); one whose header is not the tab's first row takes no column."""
    opening = re.search(rb"<((?:\w+:)?)table\b[^>]*>", xml)
    if not opening:
        return xml
    prefix, table = opening.group(1), attributes_of(opening.group(0))
    ends = [CELL_REF.fullmatch(end) for end in table.get("ref", "").split(":")]
    if len(ends) != 2 or not all(ends):
        return xml
    top, bottom = int(ends[0].group(2)), int(ends[1].group(2))
    left, right = column_index(ends[0].group(1)), column_index(ends[1].group(1))
    new_bottom, new_right = bottom, right
    totals = table.get("totalsRowCount", "0") not in ("", "0")
    if rows and not totals and top < rows[0] <= bottom + 1 and any(left <= c <= right for c in written):
        following = bottom
        for number in rows:  # appended rows one after another, from inside the table or just below it
            if number > following + 1:
                break
            following = max(following, number)
        new_bottom = following
    added = []
    if table.get("headerRowCount", "1") != "0" and top == 1:
        while new_right + 1 in headers:
            new_right += 1
            added.append(headers[new_right])
    if (new_bottom, new_right) == (bottom, right):
        return xml
    ref = f"{ends[0].group(0)}:{column_letter(new_right)}{new_bottom}"

    def widened(name: bytes, area: str) -> str:
        """A ref in the table: the table's and its filter's become the new range; a sort's rows reach
        the new last row."""
        if name in (b"table", b"autoFilter") and area.partition(":")[0] == ends[0].group(0):
            return ref
        parts = [CELL_REF.fullmatch(end) for end in area.split(":")]
        if len(parts) == 2 and all(parts) and int(parts[1].group(2)) == bottom:
            return f"{parts[0].group(0)}:{parts[1].group(1)}{new_bottom}"
        return area

    def tag(found: re.Match) -> bytes:
        def area(a: re.Match) -> bytes:
            return a.group(1) + widened(found.group(1), a.group(2).decode()).encode() + b'"'

        return re.sub(rb'(\sref=")([^"]*)"', area, found.group(0))

    xml = re.sub(rb"<(?:\w+:)?(table|autoFilter|sortState|sortCondition)\b[^>]*>", tag, xml)
    if added:
        ids = [int(i) for i in re.findall(rb"<(?:\w+:)?tableColumn\b[^>]*?\sid=\"(\d+)\"", xml)]
        p = prefix.decode()
        columns = "".join(f'<{p}tableColumn id="{max(ids, default=0) + n}" name={quoteattr(name)}/>'
                          for n, name in enumerate(added, start=1)).encode("utf-8")
        closing = re.search(rb"</(?:\w+:)?tableColumns>", xml)
        if closing:
            xml = xml[:closing.start()] + columns + xml[closing.start():]
            xml = re.sub(rb'(<(?:\w+:)?tableColumns\b[^>]*?\scount=")\d+',
                         lambda c: c.group(1) + str(len(ids) + len(added)).encode(), xml, count=1)
    return xml


def _kept_areas(xml: bytes, shift: RowShift, skip: set[bytes] = frozenset(), tall: dict[bytes, int] | None = None
                ) -> bytes:
    """Every area named by a tag's ref, sqref, activeCell or topLeftCell, moved with its rows, in tags
    other than `skip`; in the tags `tall` names, kept at least that many rows tall."""

    def moved(area: str, least: int) -> str:
        area = shift.areas(area, keep=True) or area
        ends = [CELL_REF.fullmatch(end) for end in area.split(":")]
        if least > 1 and len(ends) == 2 and all(ends) and int(ends[1].group(2)) - int(ends[0].group(2)) + 1 < least:
            area = f"{ends[0].group(0)}:{ends[1].group(1)}{int(ends[0].group(2)) + least - 1}"
        return area

    def tag(found: re.Match) -> bytes:
        if found.group(1) in skip:
            return found.group(0)
        least = (tall or {}).get(found.group(1), 1)
        return _KEPT_AREA.sub(lambda a: a.group(1) + moved(a.group(2).decode(), least).encode(), found.group(0))

    return _TAG.sub(tag, xml)


class SharedStrings:
    """The shared-strings part, unpacked only as far as the highest index asked for (header names
    come first, so a write reads the start of a part that may hold a hundred megabytes), and only the
    items asked for decoded."""

    CHUNK = 1 << 20

    def __init__(self, stream=None):
        self._stream = stream
        self._buffer = b""
        self._at = 0  # where the next item is looked for in the buffer
        self._items: list[bytes] = []  # each <si> element found, as stored
        self._texts: dict[int, str] = {}
        self._count: int | None = None
        self._pattern = re.compile(rb"<(?:\w+:)?si\b[^>]*?(?:/>|>.*?</(?:\w+:)?si>)", re.S)

    def get(self, index: int) -> str | None:
        while len(self._items) <= index:
            found = self._pattern.search(self._buffer, self._at)
            if found is None:
                chunk = self._stream.read(self.CHUNK) if self._stream else b""
                if not chunk:
                    return None
                self._buffer = self._buffer[self._at:] + chunk
                self._at = 0
                continue
            self._at = found.end()
            self._items.append(found.group(0))
        if index not in self._texts:
            item = self._items[index]
            prefix = re.match(rb"<(\w+:)?", item).group(1) or b""
            self._texts[index] = text_of(item, prefix)
        return self._texts[index]

    def count(self) -> int:
        """How many items the part holds: the rest of it is unpacked (and kept, for `get`) and its
        item tags counted, without taking the items apart."""
        if self._count is None:
            chunks = [self._buffer[self._at:]]
            while self._stream:
                chunk = self._stream.read(self.CHUNK * 16)
                if not chunk:
                    break
                chunks.append(chunk)
            self._buffer, self._at = b"".join(chunks), 0
            self._count = len(self._items) + len(_SI_TAG.findall(self._buffer))
        return self._count


# --- a new worksheet, and a tab written whole: made in tab_xml.py ----------------------------------
