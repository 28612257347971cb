"""The local writer against workbooks as Excel, LibreOffice and the .NET Open XML SDK write them
(tests/hand_built.py): any Drafts tab — rows in or out of order, with gaps, with or without their
numbers, shared or inline strings, an `x:` prefix, formulas in a helper column or in a column loop
writes, values in columns loop does not know, formatting-only cells (down to the sheet's last row),
a merged block, an Excel Table — and any run of commands on it: `log` (through the public API, the
store included), a judge's keyed cell updates and an archive's row deletion.

After each command every cell that held a value still holds it (or moved up exactly as a deletion
moves it), the new cells hold what was logged, where the rules of docs/workbook.md's "Where a new draft goes"
put them, nothing else changed, and openpyxl and python-calamine read the same cells. LibreOffice,
where installed, reads them too, on a few examples (it is slow)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from loop import config, schema
from loop.cell_values import normalize_header
from loop.collect.traces import log_drafts
from loop.errors import UsageError
from loop.sheets import CellUpdate, DeleteRows, WriteBatch
from loop.sheets.ooxml import EXCEL_MAX_ROWS, column_letter
from loop.sheets.xlsx import XlsxWorkbook
from tests.conftest import PROMPT
from tests.hand_built import FLAVOURS, Formula, Tab, build, headers

KNOWN = {normalize_header(name) for name in schema.DRAFT_HEADERS}
LOGGED = ["trace_id", "created_at", "ticket_id", "ticket", "thread", "draft", "kb_sources", "prompt_version"]
TEXT = st.text("abZé &<>\"'👍", min_size=1, max_size=8).filter(lambda t: t.strip() == t and t)
WHEN = datetime(2026, 11, 1, tzinfo=timezone.utc)
UNKNOWN_VALUE = st.one_of(TEXT, st.integers(-999, 999), st.booleans())


# --- the workbooks -----------------------------------------------------------------------------------


@st.composite
def workbooks(draw):
    flavour = draw(st.sampled_from(FLAVOURS))
    shared = True if flavour == "libreoffice" else draw(st.booleans())
    numbered = draw(st.booleans()) if flavour == "sdk" else True
    dropped = draw(st.sets(st.sampled_from(["prompt_version", "kb_sources", "judge_score", "judge_comment", "thread"])))
    names = list(draw(st.permutations([n for n in schema.DRAFT_HEADERS if n not in dropped])))
    for extra in draw(st.lists(st.sampled_from(["notes", "week"]), unique=True)):
        names.insert(draw(st.integers(0, len(names))), extra)
    column = {name: index for index, name in enumerate(names, start=1)}
    rows: dict[int, dict[int, object]] = {1: headers(names)}
    for number in sorted(draw(st.lists(st.integers(2, 30), max_size=8, unique=True))):
        if "notes" in column and draw(st.integers(0, 3)) == 0:  # a note below, in a column loop does not know
            rows[number] = {column["notes"]: draw(UNKNOWN_VALUE)}
            continue
        values = {"trace_id": f"t{number}", "created_at": WHEN + timedelta(hours=number), "ticket": draw(TEXT),
                  "draft": draw(TEXT), "score": draw(st.sampled_from(["👍", "👎", None])),
                  "comment": draw(st.one_of(st.none(), TEXT))}
        if "notes" in column:
            values["notes"] = draw(st.one_of(st.none(), UNKNOWN_VALUE))
        rows[number] = {column[k]: v for k, v in values.items() if v is not None}
    if "week" in column and draw(st.booleans()):  # a helper column filled down with a formula
        for number in range(2, draw(st.integers(2, 40)) + 1):
            trace = column_letter(column["trace_id"])  # reads another column, always "" (as cached)
            rows.setdefault(number, {})[column["week"]] = Formula(f'IF(1>2,{trace}{number},"")', "")
    if draw(st.integers(0, 4)) == 0:  # a formula in a column loop writes: never written over
        rows.setdefault(draw(st.integers(2, 35)), {})[column["ticket_id"]] = Formula('"TK-"&1', "TK-1")
    if draw(st.integers(0, 4)) == 0:  # a column of values without a header
        for number in draw(st.lists(st.integers(2, 30), min_size=1, max_size=3, unique=True)):
            rows.setdefault(number, {})[len(names) + 1] = draw(UNKNOWN_VALUE)
    last = max(rows)
    styled = [(draw(st.integers(2, 60)), draw(st.integers(1, len(names) + 2)))
              for _ in range(draw(st.integers(0, 3)))]
    if numbered and draw(st.integers(0, 5)) == 0:
        styled.append((EXCEL_MAX_ROWS, 3))
    merges = []
    if draw(st.booleans()):
        top, left = draw(st.integers(2, 40)), draw(st.integers(1, len(names) + 1))
        bottom, right = top + draw(st.integers(0, 2)), left + draw(st.integers(0, 2))
        assume(top < bottom or left < right)
        assume(not any(top <= r <= bottom and left <= c <= right for r, cells in rows.items() for c in cells))
        merges.append((top, left, bottom, right))
    table = None
    if draw(st.integers(0, 2)) == 0:
        table = (1, 1, max(last, 2), len(names))
        assume(not any(t <= table[2] and l <= table[3] for t, l, b, r in merges))
    order = None
    if numbered and draw(st.integers(0, 2)) == 0:
        order = list(draw(st.permutations(sorted(set(rows) | {r for r, _ in styled}))))
    tab = Tab(rows=rows, styled=styled, order=order,
              merges=[f"{column_letter(l)}{t}:{column_letter(r)}{b}" for t, l, b, r in merges],
              table=f"A1:{column_letter(table[3])}{table[2]}" if table else None)
    return tab, flavour, shared, numbered, merges, table


COMMANDS = st.lists(st.one_of(
    st.tuples(st.just("log"), st.lists(TEXT, min_size=1, max_size=3)),
    st.tuples(st.just("update"), st.sampled_from(["judge_score", "judge_comment"]), TEXT, st.integers(0, 50)),
    st.tuples(st.just("delete"), st.lists(st.integers(0, 50), min_size=1, max_size=3)),
), min_size=1, max_size=3)


# --- the model: where every cell must be --------------------------------------------------------------


class Model:
    """The cells of the Drafts tab (row, column) → value, as readers return them, and where loop puts
    what it writes (README: "Where a new draft goes")."""

    def __init__(self, tab: Tab, merges, table):
        self.cells = {(r, c): _plain(v) for r, values in tab.rows.items() for c, v in values.items()}
        self.formulas = {(r, c) for r, values in tab.rows.items() for c, v in values.items() if isinstance(v, Formula)}
        self.cells = {spot: v for spot, v in self.cells.items() if v is not None}
        self.merges = list(merges)
        self.table = table

    def headers(self) -> dict[int, str]:
        return {c: str(v) for (r, c), v in self.cells.items() if r == 1}

    def column(self, name: str) -> int | None:
        return next((c for c, h in sorted(self.headers().items()) if normalize_header(h) == normalize_header(name)), None)

    def taken(self, spot) -> bool:
        return spot in self.cells or spot in self.formulas

    def log(self, tickets: list[str], ids: list[str]) -> list[int]:
        known = {c for c, h in self.headers().items() if normalize_header(h) in KNOWN}
        last = max([r for (r, c) in [*self.cells, *self.formulas] if c in known], default=1)
        written, added = [], []
        for name in LOGGED:
            found = self.column(name)
            if found is None:
                widest = max([c for (_, c) in [*self.cells, *self.formulas]]
                             + [right for top, left, bottom, right in self.merges if top <= 1 <= bottom] + added)
                found = widest + 1
                added.append(found)
                self.cells[(1, found)] = name
            written.append(found)
        rows, number = [], last + 1
        while len(rows) < len(tickets):
            blocked = [b for t, l, b, r in self.merges if t <= number <= b and any(l <= c <= r for c in written)]
            if blocked:
                number = max(blocked) + 1
                continue
            rows.append(number)
            number += 1
        for number, ticket, trace_id in zip(rows, tickets, ids):
            assert not any(self.taken((number, c)) for c in written)  # never over a cell that holds a value
            self.cells[(number, self.column("trace_id"))] = trace_id
            self.cells[(number, self.column("ticket"))] = ticket
            self.cells[(number, self.column("draft"))] = f"reply to {ticket}"
            self.cells[(number, self.column("created_at"))] = "a date"
            self.cells[(number, self.column("prompt_version"))] = "v1"
        if self.table:
            top, left, bottom, right = self.table
            if rows and top < rows[0] <= bottom + 1:
                for number in rows:
                    if number > bottom + 1:
                        break
                    bottom = max(bottom, number)
            while right + 1 in added:
                right += 1
            self.table = (top, left, bottom, right)
        return rows

    def row_of(self, trace_id: str) -> int | None:
        column = self.column("trace_id")
        return next((r for (r, c), v in self.cells.items() if c == column and v == trace_id and r > 1), None)

    def update(self, trace_id: str, name: str, value) -> None:
        row = self.row_of(trace_id)
        if row is None:
            return
        column = self.column(name)
        if column is None:
            widest = max([c for (_, c) in [*self.cells, *self.formulas]]
                         + [right for top, left, bottom, right in self.merges if top <= 1 <= bottom])
            column = widest + 1
            self.cells[(1, column)] = name
            if self.table and self.table[3] + 1 == column:  # a header typed beside a table joins it
                self.table = (*self.table[:3], column)
        if any(t <= row <= b and l <= column <= r and (row, column) != (t, l) for t, l, b, r in self.merges):
            return  # hidden under a merge: not written (a warning says so)
        self.cells[(row, column)] = value

    def delete(self, trace_ids: set[str]) -> None:
        doomed = sorted(r for r in (self.row_of(t) for t in trace_ids) if r is not None)
        if not doomed:
            return

        def moved(r: int) -> int:
            return r - sum(d < r for d in doomed)

        self.cells = {(moved(r), c): v for (r, c), v in self.cells.items() if r not in doomed}
        self.formulas = {(moved(r), c) for r, c in self.formulas if r not in doomed}
        merges = []
        for t, l, b, r in self.merges:  # as Excel moves a merge: gone with its rows, or left on one cell
            top, bottom = t - sum(d < t for d in doomed), b - sum(d <= b for d in doomed)
            if top <= bottom and (top, l) != (bottom, r):
                merges.append((top, l, bottom, r))
        self.merges = merges
        if self.table:
            top, left, bottom, right = self.table
            self.table = (top, left, max(top + 1, bottom - sum(d <= bottom for d in doomed)), right)


def _plain(value):
    if isinstance(value, Formula):
        value = value.cached
    if value in (None, ""):
        return None
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return "a date"
    return float(value)


def _read(value):
    if isinstance(value, (datetime, date)):
        return "a date"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def cells_read(path: Path) -> dict[tuple[int, int], object]:
    """Every cell holding a value, as python-calamine reads it; openpyxl must read the very same."""
    grid = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(schema.DRAFTS).to_python(skip_empty_area=False)
    calamine = {(r, c): _read(v) for r, row in enumerate(grid, start=1) for c, v in enumerate(row, start=1)
                if v not in ("", None)}
    sheet = openpyxl.load_workbook(path, data_only=True)[schema.DRAFTS]
    other = {spot: _read(cell.value) for spot, cell in sheet._cells.items() if cell.value not in (None, "")}
    assert other == calamine, difference(other, calamine)
    return calamine


def difference(got: dict, want: dict) -> str:
    return "; ".join(f"{spot}: {got.get(spot, '—')!r} ≠ {want.get(spot, '—')!r}" for spot in sorted(set(got) | set(want))
                     if got.get(spot, "—") != want.get(spot, "—"))


def table_ref(path: Path) -> str | None:
    tables = openpyxl.load_workbook(path)[schema.DRAFTS].tables
    return next(iter(tables.values())).ref if tables else None


def run_commands(folder: Path, built, commands, libreoffice: bool = False) -> None:
    tab, flavour, shared, numbered, merges, table = built
    (folder / "prompts").mkdir()
    (folder / "prompts" / "support_agent.md").write_text(PROMPT, encoding="utf-8")
    path = build(folder / "loop.xlsx", tab, flavour, shared, numbered)
    settings_ = config.resolve(sheet=str(path), prompt=str(folder / "prompts" / "support_agent.md"),
                               store=f"sqlite:///{folder}/loop.db")
    model = Model(tab, merges, table)
    assert cells_read(path) == model.cells, difference(cells_read(path), model.cells)
    for command in commands:
        ids = sorted({v for (r, c), v in model.cells.items() if c == model.column("trace_id") and r > 1 and
                      isinstance(v, str)})
        if command[0] == "log":
            tickets = command[1]
            logged = log_drafts([{"ticket": t, "draft": f"reply to {t}"} for t in tickets], settings_)
            model.log(tickets, logged)
        elif command[0] == "update":
            if not ids:
                continue
            _, name, value, pick = command
            trace_id = ids[pick % len(ids)]
            XlsxWorkbook(path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, name, value,
                                                                    key=("trace_id", trace_id))]))
            model.update(trace_id, name, value)
        else:
            if not ids:
                continue
            doomed = {ids[pick % len(ids)] for pick in command[1]}
            before = path.read_bytes()
            if model.formulas:  # moving rows would break them: refused, nothing written
                with pytest.raises(UsageError, match="formulas that refer to Drafts rows"):
                    XlsxWorkbook(path).write(WriteBatch(deletions=[DeleteRows(schema.DRAFTS, "trace_id",
                                                                              frozenset(doomed))]))
                assert path.read_bytes() == before
                continue
            XlsxWorkbook(path).write(WriteBatch(deletions=[DeleteRows(schema.DRAFTS, "trace_id", frozenset(doomed))]))
            model.delete(doomed)
        assert cells_read(path) == model.cells, (command, difference(cells_read(path), model.cells))
        if model.table:
            top, left, bottom, right = model.table
            assert table_ref(path) == f"{column_letter(left)}{top}:{column_letter(right)}{bottom}", command
    if libreoffice:
        assert libreoffice_cells(path, folder) == {spot: v for spot, v in model.cells.items()}


# --- the tests --------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(built=workbooks(), commands=COMMANDS)
def test_any_workbook_any_commands_keep_every_value_and_place_every_new_one(built, commands, monkeypatch):
    for name in ("LOOP_SHEET", "LOOP_PROMPT", "LOOP_STORE", "LOOP_JUDGE_PROMPT"):
        monkeypatch.delenv(name, raising=False)
    with tempfile.TemporaryDirectory() as folder:
        monkeypatch.chdir(folder)
        run_commands(Path(folder), built, commands)


SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def libreoffice_cells(path: Path, folder: Path) -> dict[tuple[int, int], object]:
    """The Drafts tab as LibreOffice reads it (as CSV), each cell compared as the model holds it."""
    out = folder / "lo"
    subprocess.run([SOFFICE, "--headless", f"-env:UserInstallation=file://{folder}/lo-profile", "--convert-to",
                    "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(out), str(path)],
                   check=True, capture_output=True, timeout=180)
    with open(out / (path.stem + ".csv"), encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    seen = {}
    for r, row in enumerate(rows, start=1):
        for c, text in enumerate(row, start=1):
            if text == "":
                continue
            if text in ("TRUE", "FALSE"):
                seen[(r, c)] = text == "TRUE"
            elif text[:2] == "20" and text[4:5] == "-" and len(text) >= 10:
                seen[(r, c)] = "a date"
            else:
                try:
                    seen[(r, c)] = float(text)
                except ValueError:
                    seen[(r, c)] = text
    return seen


@pytest.mark.skipif(not SOFFICE, reason="LibreOffice is not installed")
@settings(max_examples=3, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(built=workbooks(), commands=COMMANDS)
def test_libreoffice_reads_the_same_cells_after_the_commands(built, commands, monkeypatch):
    tab = built[0]
    assume(not any(r == EXCEL_MAX_ROWS for r, _ in tab.styled))  # a CSV to the sheet's last row is slow
    assume(not any(isinstance(v, str) and v[:1].isdigit() for row in tab.rows.values() for v in row.values()))
    for name in ("LOOP_SHEET", "LOOP_PROMPT", "LOOP_STORE", "LOOP_JUDGE_PROMPT"):
        monkeypatch.delenv(name, raising=False)
    with tempfile.TemporaryDirectory() as folder:
        monkeypatch.chdir(folder)
        run_commands(Path(folder), built, commands, libreoffice=True)
