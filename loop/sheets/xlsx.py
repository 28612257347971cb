"""The local `.xlsx` backend: python-calamine reads (fast), openpyxl writes.

Writes reload the workbook under a lock, apply the whole batch, save to a temporary file and move
it into place, so a crash or a concurrent writer never leaves a half-written workbook.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Callable

import openpyxl
from filelock import FileLock
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from python_calamine import CalamineWorkbook

from ..errors import UsageError
from ..values import cell_text, normalize_header
from .base import Append, NewTab, Table, WriteBatch

EXCEL_CELL_LIMIT = 32_767
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Parts of a workbook that openpyxl cannot read and so drops when it saves.
_FRAGILE_PARTS = {
    "xl/charts/": "charts",
    "xl/media/": "images",
    "xl/pivotTables/": "pivot tables",
    "xl/slicers/": "slicers",
}


class XlsxWorkbook:
    cell_limit = EXCEL_CELL_LIMIT

    def __init__(self, path: str | Path, warn: Callable[[str], None] = lambda message: None):
        self.path = Path(path)
        self.location = str(self.path)
        self._warn = warn
        if not self.path.exists():
            raise UsageError(f"No workbook at {self.path}; run `loop init` to create one, or set LOOP_SHEET.")
        if not zipfile.is_zipfile(self.path):
            raise UsageError(f"{self.path} is not an .xlsx workbook; point LOOP_SHEET at an .xlsx file.")
        self._book: CalamineWorkbook | None = None

    def _calamine(self) -> CalamineWorkbook:
        if self._book is None:
            try:
                self._book = CalamineWorkbook.from_path(str(self.path))
            except Exception as exc:  # calamine raises its own error types
                raise UsageError(f"{self.path} cannot be read as a workbook ({exc}); save it as .xlsx.") from None
        return self._book

    def titles(self) -> list[str]:
        return list(self._calamine().sheet_names)

    def read(self, titles: list[str]) -> dict[str, Table]:
        self._book = None  # read what is on disk now, not what titles() saw
        book = self._calamine()
        tables = {}
        for title in titles:
            if title not in book.sheet_names:
                continue
            rows = book.get_sheet_by_name(title).to_python(skip_empty_area=False)
            headers = [str(v).strip() if v not in (None, "") else "" for v in (rows[0] if rows else [])]
            while headers and not headers[-1]:
                headers.pop()
            body = [[None if v == "" else v for v in row[: len(headers)]] for row in rows[1:]]
            tables[title] = Table(title, headers, body)
        return tables

    def ensure_writable(self) -> None:
        """Excel keeps `~$name.xlsx` beside a workbook it has open; saving now would lose its edits."""
        owner = self.path.with_name("~$" + self.path.name)
        if owner.exists():
            raise UsageError(
                f"{self.path.name} is open in Excel ({owner.name} exists); close it there and run again."
            )

    def write(self, batch: WriteBatch) -> None:
        if not batch:
            return
        self.ensure_writable()
        with FileLock(str(self.path.with_name(f".{self.path.name}.lock")), timeout=120):
            lost = self._fragile_parts()
            book = openpyxl.load_workbook(self.path, rich_text=True)
            for tab in batch.new_tabs:
                add_tab(book, tab)
            for append in batch.appends:
                self._append(book, append)
            for update in batch.updates:
                sheet = book[update.tab]
                column = _header_index(sheet).get(normalize_header(update.column))
                if column is None:
                    column = _add_column(sheet, update.column)
                set_value(sheet.cell(update.row, column), update.value)
            if lost:
                backup = self.path.with_name(f"{self.path.stem}.backup-{datetime.now():%Y%m%d-%H%M%S}{self.path.suffix}")
                shutil.copy2(self.path, backup)
                self._warn(
                    f"warning: {self.path.name} holds {', '.join(lost)} that openpyxl cannot keep; "
                    f"the original is saved as {backup.name}."
                )
            self._save(book)
        self._book = None

    def _fragile_parts(self) -> list[str]:
        found = []
        with zipfile.ZipFile(self.path) as archive:
            names = archive.namelist()
            for prefix, what in _FRAGILE_PARTS.items():
                if any(name.startswith(prefix) for name in names) and what not in found:
                    found.append(what)
            for name in names:
                if name.startswith("xl/worksheets/sheet") and b"x14:dataValidation" in archive.read(name):
                    found.append("data validations stored as extensions")
                    break
        return found

    def _save(self, book) -> None:
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.stem}-", suffix=".xlsx", dir=self.path.parent)
        os.close(handle)
        try:
            book.save(temporary)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _append(self, book, append: Append) -> None:
        if append.tab not in book.sheetnames:
            add_tab(book, NewTab(append.tab, append.headers, []))
        sheet = book[append.tab]
        columns = _header_index(sheet)
        row_number = _last_used_row(sheet) + 1
        for key, value in append.values.items():
            column = columns.get(normalize_header(key))
            if column is None:
                column = columns[normalize_header(key)] = _add_column(sheet, key)
            set_value(sheet.cell(row_number, column), value)


def set_value(cell, value) -> None:
    """Store a plain value; text is never turned into a formula whatever it starts with."""
    if isinstance(value, str):
        cell.value = cell_text(_ILLEGAL_XML.sub("", value), EXCEL_CELL_LIMIT)
        cell.data_type = "s"
    else:
        cell.value = value


def add_tab(book, tab: NewTab) -> None:
    """A new sheet with a bold, frozen header row, column widths, checkboxes and dropdowns."""
    sheet = book.create_sheet(tab.title)
    for column, header in enumerate(tab.headers, start=1):
        set_value(sheet.cell(1, column), header)
        sheet.cell(1, column).font = openpyxl.styles.Font(bold=True)
        width = tab.column_widths.get(header)
        if width:
            sheet.column_dimensions[get_column_letter(column)].width = width
    for row_number, row in enumerate(tab.rows, start=2):
        for column, value in enumerate(row, start=1):
            set_value(sheet.cell(row_number, column), value)
    sheet.freeze_panes = "A2"
    if tab.checkbox_column and tab.rows:
        letter = get_column_letter(tab.headers.index(tab.checkbox_column) + 1)
        validation = DataValidation(type="list", formula1='"TRUE,FALSE"', allow_blank=True)
        validation.add(f"{letter}2:{letter}{len(tab.rows) + 1}")
        sheet.add_data_validation(validation)
    for header, choices in tab.dropdowns.items():
        letter = get_column_letter(tab.headers.index(header) + 1)
        # people also type up/down, yes/no: the reader accepts them, so the list only offers
        dropdown = DataValidation(type="list", formula1='"' + ",".join(choices) + '"', allow_blank=True,
                                  showErrorMessage=False)
        dropdown.add(f"{letter}2:{letter}1048576")
        sheet.add_data_validation(dropdown)


def _header_index(sheet) -> dict[str, int]:
    index = {}
    for cell in sheet[1]:
        key = normalize_header(cell.value)
        if key and key not in index:
            index[key] = cell.column
    return index


def _add_column(sheet, header: str) -> int:
    column = max((c.column for c in sheet[1] if c.value not in (None, "")), default=0) + 1
    sheet.cell(1, column).value = header
    sheet.cell(1, column).data_type = "s"
    return column


def _last_used_row(sheet) -> int:
    for row_number in range(sheet.max_row, 1, -1):
        if any(cell.value not in (None, "") for cell in sheet[row_number]):
            return row_number
    return 1
