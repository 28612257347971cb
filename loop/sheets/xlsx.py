"""The local `.xlsx` backend: python-calamine reads (fast); writes edit only the parts they change.

A write takes a lock, refuses while Excel or LibreOffice has the file open, rewrites the sheet parts
it touches (`package.py`), copies every other part as it is, checks that the new file opens again,
and only then moves it into place: a crash, a concurrent writer or a bad character never leaves a
damaged or half-written workbook, and charts, images, pivot tables and macros are never dropped.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

from filelock import FileLock, Timeout
from python_calamine import CalamineError, CalamineWorkbook

from .. import files
from ..errors import RunFailure, TitleTaken, UsageError, WorkbookBusy
from ..values import as_text
from .base import Append, CellUpdate, DeleteRows, NewTab, Table, WriteBatch
from .charts import chart_parts
from .ooxml import EXCEL_MAX_ROWS, PackageError, RowShift
from .package import Package, WriteRefused
from .sheet_part import SheetPart, grid_sheet_xml, moved_table

EXCEL_CELL_LIMIT = 32_767
DEFAULT_WAIT = 120.0
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension ref="[A-Z]+\d+(?::[A-Z]+(\d+))?"')


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
            body = rows[1:]  # empty cells are "" here; Table.records reads them as None
            if any(len(row) > len(headers) for row in body[:1]):
                body = [row[: len(headers)] for row in body]
            tables[title] = Table(title, headers, body)
        return tables

    def ensure_readable(self, title: str) -> None:
        """Raise UsageError now if tab `title`'s part is damaged (it does not unpack, or fails its
        checksum), as the write would: a command refuses before it keeps anything. Unpacks the part
        in chunks, so memory stays small at any size."""
        try:
            package = Package(str(self.path))
            try:
                part = dict(package.sheets()).get(title)
                if part is not None:
                    with package.open(part) as stream:
                        while stream.read(1 << 20):
                            pass
            finally:
                package.close()
        except PackageError as error:
            raise UsageError(f"{self.path} cannot be written: {error}.") from None
        except (zipfile.BadZipFile, zlib.error, KeyError, OSError, ValueError) as error:
            raise _damaged(self.path, error) from None

    def rows_left(self, title: str) -> int | None:
        """From the tab's recorded dimension, read off the first bytes of its part: cheap at any size."""
        try:
            package = Package(str(self.path))
            try:
                part = dict(package.sheets()).get(title)
                if part is None:
                    return EXCEL_MAX_ROWS - 1
                with package.open(part) as stream:
                    match = _DIMENSION.search(stream.read(4096))
            finally:
                package.close()
        except Exception:  # noqa: BLE001 -- a damaged file: the write will say so
            return None
        if not match:
            return None
        return EXCEL_MAX_ROWS - int(match.group(1) or 1)

    # -- writing ---------------------------------------------------------------------------

    def link(self, title: str) -> str:
        """Where a reader finds the tab: the workbook's full path (a file has no link to one tab)."""
        return str(self.path.resolve())

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
        try:
            package = Package(str(self.path))
        except (zipfile.BadZipFile, KeyError, OSError) as error:
            raise _damaged(self.path, error) from None
        except PackageError as error:
            raise UsageError(f"{self.path} cannot be written: {error}.") from None
        try:
            self._splice(package, batch)
            titles = [title for title, _ in package.sheets()]
            written: dict[str, tuple[int, int]] = {}
            with files.atomic_path(self.path, verify=lambda saved: verify(saved, titles, written)) as temporary:
                written.update(package.save(temporary))
        except WriteRefused as error:
            raise RunFailure(f"The saved workbook did not open again ({error}); {self.path.name} was left as it was.") from None
        except (zipfile.BadZipFile, zlib.error, KeyError, ValueError) as error:
            if isinstance(error, PackageError):
                raise UsageError(f"{self.path} cannot be written: {error}.") from None
            raise _damaged(self.path, error) from None
        finally:
            package.close()

    def _splice(self, package: Package, batch: WriteBatch) -> None:
        """Apply the batch to the parts it touches; every other part stays as it is."""
        parts = dict(package.sheets())
        new_tabs = list(batch.new_tabs)
        for append in batch.appends:
            if append.tab not in parts and all(t.title != append.tab for t in new_tabs):
                new_tabs.append(NewTab(append.tab, append.headers, []))
        taken = {title.casefold() for title in parts}
        for tab in new_tabs:
            if tab.title.casefold() in taken:
                raise TitleTaken(tab.title)
            taken.add(tab.title.casefold())
        for tab in new_tabs:
            parts[tab.title] = package.add_tab(tab)

        sheets: dict[str, SheetPart] = {}

        def sheet(title: str) -> SheetPart:
            if title not in sheets:
                if title not in parts:
                    raise UsageError(f"{self.path.name} has no {title} tab; add it (see sheets_template.xlsx).")
                sheets[title] = SheetPart(package.read(parts[title]), package.strings(), package.style)
            return sheets[title]

        appends = self._unwritten(batch.appends, sheet) if batch.recheck else batch.appends
        next_row: dict[str, int] = {}
        for append in appends:
            target = sheet(append.tab)
            if append.tab not in next_row:
                next_row[append.tab] = target.last_used_row() + 1
                if next_row[append.tab] - 1 + sum(a.tab == append.tab for a in appends) > EXCEL_MAX_ROWS:
                    raise UsageError(
                        f"The {append.tab} tab is full (Excel holds {EXCEL_MAX_ROWS:,} rows); move older rows to "
                        "another workbook and run again. Nothing was written.")
            for key, value in append.values.items():
                target.set(next_row[append.tab], target.column(key), value)
            next_row[append.tab] += 1
        for update in self._placed(batch.updates, sheet):
            target = sheet(update.tab)
            target.set(update.row, target.column(update.column), update.value)
        for deletion in batch.deletions:
            self._delete(package, sheet(deletion.tab), deletion)
        for title, target in sheets.items():
            if target.writes or target.deleted:
                package.put(parts[title], target.render())
            if target.deleted:
                for table in package.related(parts[title], "table"):
                    package.put(table, moved_table(package.read(table), RowShift(target.deleted)))
        for grid in batch.grids:
            drawing, chart = chart_parts(grid) if grid.chart else (None, None)
            package.put_tab(grid.title, grid_sheet_xml(grid, package.style, package.default_font()), drawing, chart)

    def _placed(self, updates: list[CellUpdate], sheet) -> list[CellUpdate]:
        """Updates with a key, at the row that holds the key now; dropped when it is gone, or when
        their `unless` cell is no longer empty. The row they name is checked first, so a tab nobody
        sorted costs a cell's parse; a key found elsewhere costs one pass over the key column."""
        placed, moved = [], {}
        for update in updates:
            if update.key is None:
                placed.append(update)
                continue
            target = sheet(update.tab)
            column, wanted = update.key
            row = update.row
            if as_text(target.value(row, target.find_column(column))) != wanted:
                if (update.tab, column) not in moved:
                    moved[(update.tab, column)] = {as_text(value): number for number, value
                                                   in target.column_values(target.find_column(column))}
                row = moved[(update.tab, column)].get(wanted)
                if row is None:
                    continue
            if update.unless and as_text(target.value(row, target.find_column(update.unless))):
                continue
            placed.append(update if row == update.row else replace(update, row=row))
        return placed

    def _delete(self, package: Package, target: SheetPart, deletion: DeleteRows) -> None:
        """Mark the rows whose key is one of the deletion's values, read off the key column now. Refused,
        before anything is written, when formulas compute from the tab: they would point at other rows."""
        rows = [number for number, value in target.column_values(target.find_column(deletion.key))
                if as_text(value) in deletion.values]
        if not rows:
            return
        itself = target.has_formulas(deletion.tab)
        where = f"the {deletion.tab} tab itself" if itself else package.formula_naming(deletion.tab)
        if where:
            raise UsageError(
                f"{self.path.name} has formulas that refer to {deletion.tab} rows ({where}); archiving would "
                "break them. Replace them with their values (Paste Special → Values) or delete them, and run again.")
        target.delete(rows)

    def _unwritten(self, appends: list[Append], sheet) -> list[Append]:
        """The appends whose key is not in their tab yet (an earlier attempt may have added some): one
        pass over each key column, in the part about to be written."""
        present = {}
        for tab, key in {(a.tab, a.key) for a in appends if a.key}:
            present[(tab, key)] = {as_text(value) for _, value in sheet(tab).column_values(sheet(tab).find_column(key))}
        return [a for a in appends if not a.key or as_text(a.values.get(a.key)) not in present[(a.tab, a.key)]]


def verify(path: Path, titles: list[str], written: dict[str, tuple[int, int]]) -> None:
    """Refuse a saved workbook that would not open again. Parts written anew were parsed before they
    were compressed; here their checksums and sizes must be the ones written, and python-calamine
    must see every tab. Parts copied as they were keep their bytes and checksums."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name, (crc, size) in written.items():
                info = archive.getinfo(name)
                if (info.CRC, info.file_size) != (crc, size):
                    raise zipfile.BadZipFile(f"{name} was not written as meant")
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
