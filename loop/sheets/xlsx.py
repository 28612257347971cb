"""The local `.xlsx` backend: python-calamine reads (fast), openpyxl writes.

A write takes a lock, refuses while Excel or LibreOffice has the file open, reloads the workbook,
applies the whole batch, saves it to a temporary file, checks that what was saved opens again, and
only then moves it into place: a crash, a concurrent writer or a bad character never leaves a
damaged or half-written workbook.
"""

from __future__ import annotations

import logging
import re
import shutil
import zipfile
from datetime import datetime
from pathlib import Path
from xml.parsers import expat

import openpyxl
from filelock import FileLock, Timeout
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from python_calamine import CalamineError, CalamineWorkbook

from .. import files
from ..errors import RunFailure, TitleTaken, UsageError, WorkbookBusy
from ..values import cell_text, normalize_header
from .base import Append, NewTab, Table, WriteBatch

log = logging.getLogger(__name__)

EXCEL_CELL_LIMIT = 32_767
EXCEL_MAX_ROWS = 1_048_576
DEFAULT_WAIT = 120.0
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# OOXML writes `_xHHHH_` for a character by its code; a literal one is escaped by its underscore.
_ESCAPE_LIKE = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
_XML_PART = (".xml", ".rels", ".vml")
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension ref="[A-Z]+\d+(?::[A-Z]+(\d+))?"')
# Parts of a workbook that openpyxl cannot read and so drops when it saves.
_FRAGILE_PARTS = {
    "xl/charts/": "charts",
    "xl/media/": "images",
    "xl/pivotTables/": "pivot tables",
    "xl/slicers/": "slicers",
}


class XlsxWorkbook:
    cell_limit = EXCEL_CELL_LIMIT

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.location = str(self.path)
        _check_format(self.path)
        self._book: CalamineWorkbook | None = None

    # -- reading ---------------------------------------------------------------------------

    def _calamine(self) -> CalamineWorkbook:
        if self._book is None:
            try:
                self._book = CalamineWorkbook.from_path(str(self.path))
            except (CalamineError, OSError, ValueError) as error:
                raise _damaged(self.path, error) from None
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
            try:
                rows = book.get_sheet_by_name(title).to_python(skip_empty_area=False)
            except (CalamineError, ValueError) as error:
                raise _damaged(self.path, error) from None
            headers = [str(v).strip() if v not in (None, "") else "" for v in (rows[0] if rows else [])]
            while headers and not headers[-1]:
                headers.pop()
            body = [[None if v == "" else v for v in row[: len(headers)]] for row in rows[1:]]
            tables[title] = Table(title, headers, body)
        return tables

    def rows_left(self, title: str) -> int | None:
        """From the tab's recorded dimension, read off the first bytes of its part: cheap at any size."""
        try:
            with zipfile.ZipFile(self.path) as archive:
                part = _sheet_parts(archive).get(title)
                if part is None:
                    return EXCEL_MAX_ROWS - 1
                with archive.open(part) as stream:
                    match = _DIMENSION.search(stream.read(4096))
        except Exception:  # noqa: BLE001 -- a damaged file: the write will say so
            return None
        if not match:
            return None
        return EXCEL_MAX_ROWS - int(match.group(1) or 1)

    # -- writing ---------------------------------------------------------------------------

    def ensure_writable(self) -> None:
        """Excel keeps `~$name.xlsx`, LibreOffice `.~lock.name#`, beside a workbook it has open;
        saving now would be lost when they save."""
        for owner, program in ((f"~${self.path.name}", "Excel"), (f".~lock.{self.path.name}#", "LibreOffice")):
            if self.path.with_name(owner).exists():
                raise WorkbookBusy(f"{self.path.name} is open in {program} ({owner} exists); close it there and run again.")

    def write(self, batch: WriteBatch, wait: float | None = None) -> None:
        if not batch:
            return
        lock = FileLock(str(self.path.with_name(f".{self.path.name}.lock")), timeout=DEFAULT_WAIT if wait is None else wait)
        try:
            lock.acquire()
        except Timeout:
            raise WorkbookBusy(f"Another loop command is writing {self.path.name}; try again in a moment.") from None
        try:
            self.ensure_writable()
            self._write(batch)
        finally:
            lock.release()
            self._book = None

    def _write(self, batch: WriteBatch) -> None:
        book = self._load()
        taken = {title.casefold() for title in book.sheetnames}
        for tab in batch.new_tabs:
            if tab.title.casefold() in taken:
                raise TitleTaken(tab.title)
            taken.add(tab.title.casefold())
        for tab in batch.new_tabs:
            add_tab(book, tab)
        appends = _unwritten(book, batch.appends) if batch.recheck else batch.appends
        _check_room(book, appends)
        for append in appends:
            _append(book, append)
        for update in batch.updates:
            sheet = book[update.tab]
            column = _header_index(sheet).get(normalize_header(update.column))
            if column is None:
                column = _add_column(sheet, update.column)
            set_value(sheet.cell(update.row, column), update.value)
        self._back_up_fragile_parts()
        tabs = [sheet.title for sheet in book.worksheets]
        with files.atomic_path(self.path, verify=lambda saved: verify(saved, tabs)) as temporary:
            book.save(temporary)

    def _load(self):
        """The workbook for writing; macros are kept when it has them."""
        try:
            with zipfile.ZipFile(self.path) as archive:
                macros = "xl/vbaProject.bin" in archive.namelist()
            return openpyxl.load_workbook(self.path, rich_text=True, keep_vba=macros)
        except Exception as error:  # openpyxl fails in many ways on a damaged part: zlib, XML, KeyError
            raise _damaged(self.path, error) from None

    def _back_up_fragile_parts(self) -> None:
        lost = _fragile_parts(self.path)
        if lost:
            backup = self.path.with_name(f"{self.path.stem}.backup-{datetime.now():%Y%m%d-%H%M%S}{self.path.suffix}")
            shutil.copy2(self.path, backup)
            log.warning("%s holds %s that openpyxl cannot keep; the original is saved as %s.",
                        self.path.name, ", ".join(lost), backup.name)


def verify(path: Path, titles: list[str]) -> None:
    """Refuse a saved workbook that would not open again: every part must unpack with a good
    checksum, every XML part must parse, and python-calamine must see every tab in `titles`."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as stream:
                    if info.filename.endswith(_XML_PART):
                        expat.ParserCreate().ParseFile(stream)
                    else:
                        while stream.read(1 << 20):
                            pass
        seen = CalamineWorkbook.from_path(str(path)).sheet_names
    except Exception as error:  # noqa: BLE001 -- whatever the reason, the original must stay
        raise RunFailure(f"The saved workbook did not open again ({error}); {path.name} was left as it was.") from None
    missing = [title for title in titles if title not in seen]
    if missing:
        raise RunFailure(f"The saved workbook lacks tabs {missing}; {path.name} was left as it was.")


def _check_format(path: Path) -> None:
    """Refuse, with the reason, a file that is not an .xlsx workbook we can open."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
    except FileNotFoundError:
        raise UsageError(f"No workbook at {path}; run `loop init` to create one, or set LOOP_SHEET.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a workbook; point LOOP_SHEET at an .xlsx file.") from None
    if head == _OLE_MAGIC:
        if "EncryptedPackage".encode("utf-16-le") in path.read_bytes():
            raise UsageError(f"{path} is password-protected; remove the password in Excel "
                             "(File → Info → Protect Workbook) and save it, then run again.")
        raise UsageError(f"{path} is an old .xls (Excel 97-2003) workbook; save it as .xlsx and run again.")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path} is not an .xlsx workbook; point LOOP_SHEET at an .xlsx file.")


def _damaged(path: Path, error: Exception) -> UsageError:
    reason = " ".join(str(error).split())[:160] or error.__class__.__name__
    return UsageError(f"{path} is damaged and cannot be read ({reason}); restore it from a backup, "
                      "or open it in Excel and save it again.")


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Tab title → the zip path of its sheet XML, from the workbook part and its relationships."""
    workbook = archive.read("xl/workbook.xml")
    relationships = archive.read("xl/_rels/workbook.xml.rels")
    targets = {}
    for element in re.finditer(rb"<(?:\w+:)?Relationship\b[^>]*>", relationships):
        attributes = dict(re.findall(rb'(\w+)="([^"]*)"', element.group(0)))
        target = attributes.get(b"Target", b"").decode()
        targets[attributes.get(b"Id", b"").decode()] = target.lstrip("/") if target.startswith("/") else "xl/" + target
    parts = {}
    for element in re.finditer(rb"<(?:\w+:)?sheet\b[^>]*>", workbook):
        name = re.search(rb'\bname="([^"]*)"', element.group(0))
        rid = re.search(rb'\br:id="([^"]*)"', element.group(0)) or re.search(rb'\b\w+:id="([^"]*)"', element.group(0))
        if name and rid:
            title = _unescape_attribute(name.group(1).decode())
            parts[title] = targets.get(rid.group(1).decode(), "")
    return parts


def _unescape_attribute(text: str) -> str:
    from xml.sax.saxutils import unescape

    return unescape(text, {"&quot;": '"', "&apos;": "'"})


def _fragile_parts(path: Path) -> list[str]:
    found = []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for prefix, what in _FRAGILE_PARTS.items():
            if any(name.startswith(prefix) for name in names) and what not in found:
                found.append(what)
        for name in names:
            if name.startswith("xl/worksheets/sheet") and b"x14:dataValidation" in archive.read(name):
                found.append("data validations stored as extensions")
                break
    return found


def _unwritten(book, appends: list[Append]) -> list[Append]:
    """The appends whose key value is not in their tab yet (an earlier attempt may have added some)."""
    present: dict[tuple[str, str], set] = {}
    result = []
    for append in appends:
        if not append.key or append.tab not in book.sheetnames:
            result.append(append)
            continue
        if (append.tab, append.key) not in present:
            sheet = book[append.tab]
            column = _header_index(sheet).get(normalize_header(append.key))
            values = set()
            if column:
                values = {str(row[0]) for row in sheet.iter_rows(min_row=2, min_col=column, max_col=column,
                                                                 values_only=True) if row[0] is not None}
            present[(append.tab, append.key)] = values
        if str(append.values.get(append.key)) not in present[(append.tab, append.key)]:
            result.append(append)
    return result


def _check_room(book, appends: list[Append]) -> None:
    wanted: dict[str, int] = {}
    for append in appends:
        wanted[append.tab] = wanted.get(append.tab, 0) + 1
    for title, count in wanted.items():
        used = _last_used_row(book[title]) if title in book.sheetnames else 1
        if used + count > EXCEL_MAX_ROWS:
            raise UsageError(
                f"The {title} tab is full (Excel holds {EXCEL_MAX_ROWS:,} rows); move older rows to another "
                "workbook and run again. Nothing was written."
            )


def _append(book, append: Append) -> None:
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
        cell.value = ooxml_text(cell_text(value, EXCEL_CELL_LIMIT))
        cell.data_type = "s"
    else:
        cell.value = value


def ooxml_text(text: str) -> str:
    """Text as OOXML stores it: a carriage return (which XML would turn into a line feed) and a literal
    `_xHHHH_` (which readers would decode) are written in the format's own escape."""
    return _ESCAPE_LIKE.sub("_x005F_", text).replace("\r", "_x000D_")


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
        dropdown.add(f"{letter}2:{letter}{EXCEL_MAX_ROWS}")
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
    set_value(sheet.cell(1, column), header)
    return column


def _last_used_row(sheet) -> int:
    for row_number in range(sheet.max_row, 1, -1):
        if any(cell.value not in (None, "") for cell in sheet[row_number]):
            return row_number
    return 1
