"""The local `.xlsx` backend: python-calamine reads (fast); writes edit only the parts they change.

A write takes a lock, refuses while Excel or LibreOffice has the file open, rewrites the sheet parts
it touches (`package.py`), copies every other part as it is, checks that the new file opens again,
and only then moves it into place: a crash, a concurrent writer or a bad character never leaves a
damaged or half-written workbook, and charts, images, pivot tables and macros are never dropped.

A workbook reached through a symbolic link is written through it (`files.atomic_path`): the lock and
the check for Excel's and LibreOffice's owner files are beside the real file, so two links to one
shared workbook take the same lock.

What a write refuses, it refuses before anything is written, and `ensure_readable` runs the same
checks for a command that must know before it keeps anything (`loop log`, before the store's commit):
a part that does not unpack or whose CRC-32 does not match (any part, also one copied as it is), a
part loop or python-calamine reads over `MAX_PART_BYTES` (by the zip's directory, before any of it
is unpacked), a shared-string index past the end of the shared strings,
a row stored twice (`sheet_part.py`), and a tab with no free row left.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

from filelock import FileLock, Timeout
from python_calamine import CalamineError, CalamineWorkbook

from loop import files
from loop.cell_values import as_text
from loop.errors import RunFailure, TitleTaken, UsageError, WorkbookBusy, WrongWorkbook
from loop.sheets.base import Append, CellUpdate, DeleteRows, NewTab, Table, WriteBatch
from loop.sheets.charts import chart_parts
from loop.sheets.ooxml import EXCEL_MAX_ROWS, DamagedPart, PackageError, RowInsert, RowShift, column_letter
from loop.sheets.package import Package, PartTooLarge, WriteRefused
from loop.sheets.sheet_part import (SheetPart, grown_table, moved_table, table_bottom, table_top,
                                    table_with_rows_inserted, totals_rows)
from loop.sheets.tab_xml import grid_sheet_xml
from loop.sheets.workbook_id import read_workbook_id, set_workbook_id

log = logging.getLogger(__name__)
EXCEL_CELL_LIMIT = 32_767
DEFAULT_WAIT = 120.0
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# What a deletion would leave beside the wrong rows: the relationship type, what a person calls it.
_ANCHORED = (("comments", "notes"), ("threadedComment", "threaded comments"), ("drawing", "images or charts"),
             ("vmlDrawing", "notes or form controls"))


class XlsxWorkbook:
    cell_limit = EXCEL_CELL_LIMIT
    landing_seconds = 0.0  # a write lands under the workbook's lock, or never

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.location = str(self.path)
        _check_format(self.path)
        self._book: CalamineWorkbook | None = None
        self._rows_left: dict[str, int] = {}
        # The part ensure_readable checked, kept for the write that follows (loop log): (file, part, xml).
        self._checked: tuple[tuple, str, bytes] | None = None
        # The file (Package.signature) whose every part is known to match its CRC-32: checked by
        # ensure_readable, or written by this object. A write to it copies its parts unchecked.
        self._sound: tuple | None = None
        real = Path(os.path.realpath(self.path))
        self._paths = [self.path] + ([real] if real != self.path.absolute() else [])

    # -- reading ---------------------------------------------------------------------------

    def _calamine(self, titles: list[str] = ()) -> CalamineWorkbook:
        self._check_sizes(titles)
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
        before = _version(self.path)
        book = self._calamine(titles)
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
        if before is not None and _version(self.path) == before:  # one version of the file throughout
            for table in tables.values():
                table.version = before
        return tables

    def _check_sizes(self, titles) -> None:
        """Refuse, from the zip's directory alone, a part python-calamine reads (the content types, the
        workbook and its relationships, checked as the package opens; the styles, the shared strings,
        the tabs among `titles`) that unpacks to more than MAX_PART_BYTES: it would hold all of it in memory."""
        try:
            package = Package(str(self.path))
            try:
                parts = dict(package.sheets())
                for name in [package.styles_part(), package.strings_part(), *(parts.get(title) for title in titles)]:
                    if name:
                        package.check_size(name)
            finally:
                package.close()
        except PartTooLarge as error:
            raise _too_large(self.path, error) from None
        except (PackageError, zipfile.BadZipFile, KeyError, OSError, ValueError):
            return  # the read names what is wrong

    def ensure_readable(self, title: str, columns: list[str] | None = None) -> None:
        """Raise UsageError now if a write to tab `title` would be refused, with the write's own checks:
        a part that does not unpack or fails its checksum, one over MAX_PART_BYTES, a damaged part (a
        shared-string index past the end, a row stored twice). A command calls it before it keeps
        anything. It also counts the rows left for appends of `columns` (`rows_left`): below the last
        row holding a value in one of them, less rows a merged range takes."""
        try:
            package = Package(str(self.path))
            try:
                part = dict(package.sheets()).get(title)
                if part is None:
                    self._rows_left[title] = EXCEL_MAX_ROWS - 1
                    return
                signature = package.signature()
                target = SheetPart(package.read(part), package.strings())
                known = {c for c in (target.find_column(name) for name in columns or []) if c}
                written = known or set(range(1, len(target.headers()) + 1)) or {1}
                last = target.last_used_row(known or None)
                taken = [*target.merges(), *_reserved(package, part)]
                merged = sum(bottom - top + 1 for top, left, bottom, right in _disjoint_rows(taken, last, written))
                self._rows_left[title] = EXCEL_MAX_ROWS - last - merged
                package.check_crcs()  # every part the write would copy, so a damaged one is refused now
                self._checked, self._sound = (signature, part, target.xml), signature
            finally:
                package.close()
        except PartTooLarge as error:
            raise _too_large(self.path, error) from None
        except DamagedPart as error:
            raise _damaged(self.path, error) from None
        except PackageError as error:
            raise UsageError(f"{self.path} cannot be written: {error}.") from None
        except (zipfile.BadZipFile, zlib.error, KeyError, OSError, ValueError) as error:
            raise _damaged(self.path, error) from None

    def rows_left(self, title: str) -> int | None:
        """How many rows appends to tab `title` can still take: counted by `ensure_readable` (which this
        calls first when it has not run), from the rows that hold values, never from the dimension a
        tab records (one styled cell on the sheet's last row is formatting, not data)."""
        if title not in self._rows_left:
            try:
                self.ensure_readable(title)
            except UsageError:
                return None  # the write will say so
        return self._rows_left.get(title)

    # -- writing ---------------------------------------------------------------------------

    def _lock_path(self) -> Path:
        real = self._paths[-1]
        return real.with_name(f".{real.name}.lock")

    def link(self, title: str) -> str:
        """Where a reader finds the tab: the workbook's full path (a file has no link to one tab)."""
        return str(self.path.resolve())

    def ensure_writable(self) -> None:
        """Excel keeps `~$name.xlsx`, LibreOffice `.~lock.name#`, beside a workbook it has open;
        saving now would be lost when they save."""
        for path in self._paths:  # beside the link and beside the file it points to
            for owner, program in ((f"~${path.name}", "Excel"), (f".~lock.{path.name}#", "LibreOffice")):
                if path.with_name(owner).exists():
                    raise WorkbookBusy(f"{path.name} is open in {program} ({owner} exists); close it there and run "
                                       "again.")

    def write(self, batch: WriteBatch, wait: float | None = None, fence=None) -> None:
        """`fence()` runs under the workbook's lock, just before the write, and raises if this writer may
        no longer write: a write then lands before the lock is released, or never."""
        if not batch:
            return
        lock = FileLock(str(self._lock_path()), timeout=DEFAULT_WAIT if wait is None else wait)
        try:
            lock.acquire()
        except Timeout:
            raise WorkbookBusy(f"Another loop command is writing {self.path.name}; try again in a moment.") from None
        try:
            self.ensure_writable()
            if fence is not None:
                fence()
            self._write(batch)
        finally:
            lock.release()
            self._book = None
            self._rows_left.clear()

    def _write(self, batch: WriteBatch) -> None:
        checked, self._checked = self._checked, None
        try:
            package = Package(str(self.path))
        except (zipfile.BadZipFile, KeyError, OSError) as error:
            raise _damaged(self.path, error) from None
        except PartTooLarge as error:
            raise _too_large(self.path, error) from None
        except PackageError as error:
            raise UsageError(f"{self.path} cannot be written: {error}.") from None
        if checked and (checked[0] is None or checked[0] != package.signature()):
            checked = None  # another version of the file since it was checked: read and check it again
        if self._sound is not None and self._sound == package.signature():
            package.trust_crcs()  # every part of this very file was checked, or written here
        saved_as = []

        def checked_save(saved: Path) -> None:
            verify(saved, titles, written)
            found = os.stat(saved)  # the same inode, size and time once it is moved into place
            saved_as.append((found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns))

        try:
            self._check_workbook_id(package, batch.workbook_id)
            self._splice(package, batch, checked)
            titles = [title for title, _ in package.sheets()]
            written: dict[str, tuple[int, int]] = {}
            with files.atomic_path(self.path, verify=checked_save) as temporary:
                written.update(package.save(temporary))
            self._sound = saved_as[0]
        except WriteRefused as error:
            raise RunFailure(f"The saved workbook did not open again ({error}); {self.path.name} was left as it was.") from None
        except PartTooLarge as error:
            raise _too_large(self.path, error) from None
        except (zipfile.BadZipFile, zlib.error, KeyError, ValueError) as error:
            if isinstance(error, PackageError) and not isinstance(error, DamagedPart):
                raise UsageError(f"{self.path} cannot be written: {error}.") from None
            raise _damaged(self.path, error) from None
        finally:
            package.close()

    def workbook_id(self) -> str | None:
        """The id loop keeps in the workbook itself (`workbook_id.py`); None when it has none."""
        try:
            package = Package(str(self.path))
        except (PackageError, zipfile.BadZipFile, KeyError, OSError, ValueError):
            return None  # the write names what is wrong
        try:
            return read_workbook_id(package)
        except (PackageError, zipfile.BadZipFile, zlib.error, KeyError, OSError, ValueError):
            return None
        finally:
            package.close()

    def _check_workbook_id(self, package: Package, expected: str | None) -> None:
        """Refuse a write meant for another workbook, before anything is written; a workbook without an
        id is given `expected`."""
        if not expected:
            return
        found = read_workbook_id(package)
        if found is None:
            set_workbook_id(package, expected)
        elif found != expected:
            raise WrongWorkbook(self.path, found, expected)

    def _splice(self, package: Package, batch: WriteBatch, checked: tuple | None = None) -> None:
        """Apply the batch to the parts it touches; every other part stays as it is. A part `checked`
        holds (ensure_readable, on this very file) is taken as it was checked, not unpacked again."""
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
                if checked and checked[1] == parts[title]:
                    sheets[title] = SheetPart(checked[2], package.strings(), package.style, checked=True)
                else:
                    sheets[title] = SheetPart(package.read(parts[title]), package.strings(), package.style)
            return sheets[title]

        appends = self._unwritten(batch.appends, sheet) if batch.recheck else batch.appends
        for tab in dict.fromkeys(append.tab for append in appends):
            self._append(package, parts[tab], sheet(tab), [append for append in appends if append.tab == tab])
        for update in self._placed(batch.updates, sheet):
            target = sheet(update.tab)
            column = target.column(update.column)
            merge = target.merged_over(update.row, column)
            if merge:  # its value would be hidden under the merge's first cell, and lost when it is undone
                log.warning("%s of the %s tab is inside the merged range %s, so %s was not written there; unmerge "
                            "it to let loop write it.", f"{column_letter(column)}{update.row}", update.tab, merge,
                            update.column)
                continue
            target.set(update.row, column, update.value)
        for deletion in batch.deletions:
            self._delete(package, sheet(deletion.tab), deletion)
        for title, target in sheets.items():
            if target.writes or target.deleted:
                package.put(parts[title], target.render(), check=target.written)
            if target.appended or target.added_columns or target.deleted:
                for table in package.related(parts[title], "table"):
                    xml = package.read(table)
                    if target.appended or target.added_columns:
                        xml = grown_table(xml, target.appended, set(target.appended_columns),
                                          {c: target.writes[1][c] for c in target.added_columns})
                    if target.deleted:
                        xml = moved_table(xml, RowShift(target.deleted))
                    if xml != package.read(table):
                        package.put(table, xml)
        for grid in batch.grids:
            drawing, chart = chart_parts(grid) if grid.chart else (None, None)
            package.put_tab(grid.title, grid_sheet_xml(grid, package.style, package.default_font()), drawing, chart)

    def _append(self, package: Package, part: str, target: SheetPart, appends: list[Append]) -> None:
        """Appends to one tab, in order, each to the next free row (see sheet_part.py: which rows are
        taken): never over a cell that holds a value, never into a merged range or a table's totals row;
        inside an Excel Table with a totals row, above it (`_into_table`)."""
        known = {c for append in appends for name in (*append.headers, *append.values)
                 for c in [target.find_column(name)] if c}
        columns = [{target.column(key): value for key, value in append.values.items()} for append in appends]
        written = {c for row in columns for c in row}
        target.appended_columns = written
        rows = (self._into_table(package, part, target, len(appends), written, known)
                or target.free_rows(len(appends), written, known, _reserved(package, part)))
        if len(rows) < len(appends):
            tab = appends[0].tab
            raise UsageError(f"The {tab} tab is full (Excel holds {EXCEL_MAX_ROWS:,} rows); move older rows to "
                             "another workbook and run again. Nothing was written.")
        for number, values, append in zip(rows, columns, appends):
            for column, value in values.items():
                target.set(number, column, value)
            if append.lines:
                target.set_height(number, append.lines)

    def _into_table(self, package: Package, part: str, target: SheetPart, count: int, written: set[int],
                    known: set[int]) -> list[int] | None:
        """The rows for `count` appends to a tab whose drafts sit in an Excel Table with a totals row:
        the table's empty rows above the totals row, then rows inserted above it, as Excel adds them
        (the totals row moves down and stays last, the table and its filter grow, formulas referring
        to its rows follow). None, for the rows below everything, when there is no such table, or
        when moving the totals row would move anything else: a row, a merge, notes or a drawing below
        it, another table, or a formula (on any tab, or a defined name) pointing at it by row."""
        tables = [t for t in package.related(part, "table") if package.exists(t)]
        for table in tables:
            xml = package.read(table)
            for top, left, bottom, right in totals_rows(xml):
                if not any(left <= c <= right for c in written):
                    continue
                if target.last_used_row(known or None) > bottom or (target.last_row() or EXCEL_MAX_ROWS) > bottom:
                    return None  # something below the totals row: not moved
                head = table_top(xml)
                last = max(target.last_used_row(known or None, above=top), head)
                if any(b > last and t <= top and l <= right and r >= left for t, l, b, r in target.merges()):
                    return None
                rows = list(range(last + 1, top))[:count]
                more = count - len(rows)
                if more:
                    shift = RowInsert(top, more, (head, left, right))
                    title = next(t for t, p in package.sheets() if p == part)
                    if not self._movable(package, part, target, shift, title, tables, table):
                        return None
                    target.insert_rows(shift, title)
                    package.put(table, table_with_rows_inserted(xml, shift))
                    rows += range(top, top + more)
                target.appended += rows
                return rows
        return None

    def _movable(self, package: Package, part: str, target: SheetPart, shift: RowInsert, title: str,
                 tables: list[str], table: str) -> bool:
        """Whether rows from `shift.at` down (a table's totals row, the tab's last) can move down without
        anything else pointing at the wrong rows afterwards."""
        if any(bottom >= shift.at for top, left, bottom, right in target.merges()):
            return False
        for kind, _ in _ANCHORED:
            for related in package.related(part, kind):
                if package.exists(related) and any(r >= shift.at for r in _anchored_rows(package.read(related), kind)):
                    return False
        if any(t != table and table_bottom(package.read(t)) >= shift.at for t in tables):
            return False
        if target.formulas_reach(shift, title, shift.at):
            return False
        return package.formula_naming(title) is None

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
        """Mark the rows whose key is one of the deletion's values, read off the key column now, under
        the lock and in the part about to be written: a row whose cells no longer hold what the deletion
        expects stays. Refused, before anything is written, when formulas compute from the tab: they
        would point at other rows."""

        def now(number: int):
            values = target.row_values(number)
            return lambda name: values.get(target.find_column(name))

        found = [(number, as_text(value)) for number, value in target.column_values(target.find_column(deletion.key))
                 if as_text(value) in deletion.values]
        unchanged = deletion.read_from is not None and deletion.read_from == package.signature()
        rows = [number for number, key in found
                if unchanged or key not in deletion.expected or deletion.still_as_read(key, now(number))]
        if not rows:
            return
        itself = target.has_formulas(deletion.tab)
        where = f"the {deletion.tab} tab itself" if itself else package.formula_naming(deletion.tab)
        if where:
            raise UsageError(
                f"{self.path.name} has formulas that refer to {deletion.tab} rows ({where}); archiving would "
                "break them. Replace them with their values (Paste Special → Values) or delete them, and run again.")
        part = dict(package.sheets())[deletion.tab]
        first = min(rows)
        for kind, what in _ANCHORED:
            for related in package.related(part, kind):
                if not package.exists(related):
                    continue
                row = next((r for r in _anchored_rows(package.read(related), kind) if r >= first), None)
                if row is not None:
                    raise UsageError(
                        f"{self.path.name} has {what} on {deletion.tab} rows that archiving would move (row {row}); "
                        f"they would stay beside the wrong rows. Move them above row {first} or delete them, and "
                        "run again.")
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


def _version(path: Path) -> tuple | None:
    """The file's version as `Package.signature` names it (inode, size, modification time)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


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


def _anchored_rows(xml: bytes, kind: str) -> list[int]:
    """The rows (1-based) that notes, threaded comments, or the shapes of a drawing are anchored to:
    every row an anchor starts or ends on."""
    if kind in ("comments", "threadedComment"):
        return [int(found.group(2)) for found in re.finditer(rb'<(?:\w+:)?(?:comment|threadedComment)\b[^>]*?\sref="'
                                                              rb'([A-Z]+)(\d+)', xml)]
    if kind == "drawing":  # <xdr:from> and <xdr:to> count rows from 0
        return [int(row) + 1 for row in re.findall(rb"<(?:\w+:)?row>\s*(\d+)\s*</(?:\w+:)?row>", xml)]
    rows = []  # VML: a note by the row of its cell (its hidden box may hang below), a control by its box
    for shape in re.findall(rb"<(?:\w+:)?ClientData\b.*?</(?:\w+:)?ClientData>", xml, re.S):
        cell_row = re.search(rb"<(?:\w+:)?Row>\s*(\d+)\s*</(?:\w+:)?Row>", shape)
        anchor = re.search(rb"<(?:\w+:)?Anchor>([^<]*)</(?:\w+:)?Anchor>", shape)
        numbers = [int(n) for n in re.findall(rb"\d+", anchor.group(1))] if anchor else []
        if cell_row:
            rows.append(int(cell_row.group(1)) + 1)
        elif len(numbers) == 8:
            rows += [numbers[2] + 1, numbers[6] + 1]
    return rows


def _reserved(package: Package, part: str) -> list[tuple[int, int, int, int]]:
    """The areas of a tab no appended row may take: its tables' totals rows."""
    return [area for table in package.related(part, "table") if package.exists(table)
            for area in totals_rows(package.read(table))]


def _disjoint_rows(merges, last: int, columns: set[int]):
    """The merged ranges below row `last` covering one of `columns`, with rows two of them share counted once."""
    spans = sorted((max(top, last + 1), bottom) for top, left, bottom, right in merges
                   if bottom > last and any(left <= c <= right for c in columns))
    joined: list[list[int]] = []
    for top, bottom in spans:
        if joined and top <= joined[-1][1] + 1:
            joined[-1][1] = max(joined[-1][1], bottom)
        else:
            joined.append([top, bottom])
    return [(top, 0, bottom, 0) for top, bottom in joined]


def _too_large(path: Path, error: PartTooLarge) -> UsageError:
    fix = ("delete the empty rows and columns below and beside the data, save it" if "worksheets/" in error.name
           else "save it again (or copy its tabs into a new workbook)")
    return UsageError(f"{path.name} is too large to edit safely: {error} (see README, Troubleshooting). Open it in "
                      f"Excel, {fix}, and run again.")


def _damaged(path: Path, error: Exception) -> UsageError:
    reason = " ".join(str(error).split())[:160] or error.__class__.__name__
    return UsageError(f"{path} is damaged and cannot be read ({reason}); restore it from a backup, "
                      "or open it in Excel and save it again.")
