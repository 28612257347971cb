"""loop/sheets (the local .xlsx backend) against CONTRACT §3 and §8: headers matched loosely, text
never stored as a formula, long text cut, unknown columns left alone, an open or fragile workbook
never silently damaged, and a failed save that leaves the workbook exactly as it was."""

from __future__ import annotations

import logging
import re
import zipfile
from datetime import datetime

import openpyxl
import pytest

from loop import schema
from loop.errors import UsageError
from loop.sheets import Append, CellUpdate, NewTab, RichText, Run, Table, WriteBatch, open_workbook
from loop.sheets.xlsx import EXCEL_CELL_LIMIT, XlsxWorkbook
from tests.conftest import add_chart, draft, write_workbook

FORMULA_LIKE = ['=HYPERLINK("http://x")', "=1+1", "+1+1", "-1+1", "@SUM(A1:A2)", "=cmd|' /C calc'!A0", "-", "+"]
MARKER = re.compile(r"…\[cut: \d+ more characters\]$")


@pytest.fixture
def book_path(tmp_path):
    return write_workbook(tmp_path / "loop.xlsx", [draft(trace_id="t-1"), draft(trace_id="t-2", score="👍")])


def sheet_xml(path, title) -> str:
    """The raw XML of one worksheet, to see how each cell is stored."""
    with zipfile.ZipFile(path) as archive:
        workbook = archive.read("xl/workbook.xml").decode()
        rels = archive.read("xl/_rels/workbook.xml.rels").decode()
        rid = re.search(rf'<sheet [^>]*name="{re.escape(title)}"[^>]*r:id="([^"]+)"', workbook).group(1)
        target = re.search(rf'<Relationship [^>]*Id="{rid}"[^>]*Target="([^"]+)"', rels) or re.search(
            rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid}"', rels)
        return archive.read("xl/" + target.group(1).lstrip("/").removeprefix("xl/")).decode()


def assert_plain_text(path, title, cells):
    """Each (row, column, text) is a text cell holding exactly `text`, with no formula anywhere in the tab."""
    sheet = openpyxl.load_workbook(path)[title]
    for row, column, text in cells:
        cell = sheet.cell(row, column)
        assert (cell.data_type, cell.value) == ("s", text), (cell.coordinate, cell.data_type, cell.value)
    assert "<f>" not in sheet_xml(path, title) and "<f " not in sheet_xml(path, title)


def leftovers(folder) -> list[str]:
    """Temporary files a save might leave beside the workbook (the lock file is not one)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


# --- headers (§3) --------------------------------------------------------------------------------


def test_table_column_matches_headers_ignoring_case_spaces_underscores_and_dashes():
    table = Table("Drafts", ["Trace ID", "created-at", "SCORE", "Final_Reply"], [])
    assert table.column("trace_id") == 0
    assert table.column("Created At") == 1
    assert table.column("score") == 2
    assert table.column("final reply") == 3
    assert table.column("comment") is None


def test_table_records_key_by_normalized_header_and_skip_empty_rows():
    table = Table("Drafts", ["Trace ID", "SCORE", "Comment"],
                  [["t-1", "👎", "too long"], [None, "", None], ["t-2", "👍", None]])
    assert list(table.records()) == [
        (2, {"traceid": "t-1", "score": "👎", "comment": "too long"}),
        (4, {"traceid": "t-2", "score": "👍", "comment": None}),
    ]


def test_reading_a_workbook_matches_its_headers_loosely(tmp_path):
    path = write_workbook(tmp_path / "loop.xlsx", [{"trace_id": "t-1", "score": "down"}],
                          headers=["Trace ID", "Score", "Created-At"])
    table = XlsxWorkbook(path).read([schema.DRAFTS])[schema.DRAFTS]
    assert table.column("trace_id") == 0 and table.column("created_at") == 2
    assert [record for _, record in table.records()] == [{"traceid": "t-1", "score": "down", "createdat": None}]


def test_writes_find_existing_columns_by_loose_header_instead_of_adding_new_ones(tmp_path):
    path = write_workbook(tmp_path / "loop.xlsx", [{"trace_id": "t-1", "score": None}],
                          headers=["Trace ID", "SCORE", "Judge-Score"])
    XlsxWorkbook(path).write(WriteBatch(
        appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": "t-2", "judge_score": "down"})],
        updates=[CellUpdate(schema.DRAFTS, 2, "judge_score", "up")],
    ))
    rows = list(openpyxl.load_workbook(path)[schema.DRAFTS].iter_rows(values_only=True))
    assert rows == [("Trace ID", "SCORE", "Judge-Score"), ("t-1", None, "up"), ("t-2", None, "down")]


# --- plain text, never a formula (§3) ------------------------------------------------------------


def test_every_column_of_a_new_edits_tab_is_stored_as_plain_text_whatever_it_starts_with(book_path):
    rows = [[text] * len(schema.EDIT_HEADERS) for text in FORMULA_LIKE]
    XlsxWorkbook(book_path).write(WriteBatch(new_tabs=[
        NewTab("Edits 2026-11-23 1530", schema.EDIT_HEADERS, rows, checkbox_column="approve")]))
    assert_plain_text(book_path, "Edits 2026-11-23 1530", [
        (row, column, text)
        for row, text in enumerate(FORMULA_LIKE, start=2)
        for column in range(1, len(schema.EDIT_HEADERS) + 1)
    ])


def test_an_appended_runs_row_is_stored_as_plain_text_whatever_it_starts_with(book_path):
    values = {header: FORMULA_LIKE[i % len(FORMULA_LIKE)] for i, header in enumerate(schema.RUN_HEADERS)}
    XlsxWorkbook(book_path).write(WriteBatch(appends=[Append(schema.RUNS, schema.RUN_HEADERS, values)]))
    assert_plain_text(book_path, schema.RUNS, [
        (2, column, FORMULA_LIKE[(column - 1) % len(FORMULA_LIKE)])
        for column in range(1, len(schema.RUN_HEADERS) + 1)
    ])


def test_an_appended_row_to_an_existing_tab_is_stored_as_plain_text(book_path):
    XlsxWorkbook(book_path).write(WriteBatch(appends=[
        Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": "=1+1", "ticket": '=HYPERLINK("http://x")',
                                                     "draft": "@me", "comment": "-2"})]))
    columns = {h: i + 1 for i, h in enumerate(schema.DRAFT_HEADERS)}
    assert_plain_text(book_path, schema.DRAFTS, [(4, columns["trace_id"], "=1+1"),
                                                 (4, columns["ticket"], '=HYPERLINK("http://x")'),
                                                 (4, columns["draft"], "@me"), (4, columns["comment"], "-2")])


def test_a_cell_update_is_stored_as_plain_text_whatever_it_starts_with(book_path):
    column = schema.DRAFT_HEADERS.index("judge_comment") + 1
    updates = [CellUpdate(schema.DRAFTS, 2, "judge_comment", "=1+1"),
               CellUpdate(schema.DRAFTS, 3, "judge_comment", '=HYPERLINK("http://x")')]
    XlsxWorkbook(book_path).write(WriteBatch(updates=updates))
    assert_plain_text(book_path, schema.DRAFTS, [(2, column, "=1+1"), (3, column, '=HYPERLINK("http://x")')])


def test_a_new_column_header_is_stored_as_plain_text(book_path):
    XlsxWorkbook(book_path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "=notes", "=x")]))
    column = len(schema.DRAFT_HEADERS) + 1
    assert_plain_text(book_path, schema.DRAFTS, [(1, column, "=notes"), (2, column, "=x")])


def test_plain_values_stay_plain_values(book_path):
    XlsxWorkbook(book_path).write(WriteBatch(appends=[Append(schema.RUNS, schema.RUN_HEADERS, {
        "run_id": "r-1", "drafts": 9, "failures": 7, "successes": 2, "input_tokens": 1234})]))
    sheet = openpyxl.load_workbook(book_path)[schema.RUNS]
    row = {sheet.cell(1, c).value: sheet.cell(2, c) for c in range(1, sheet.max_column + 1)}
    assert (row["drafts"].value, row["drafts"].data_type) == (9, "n")
    assert row["input_tokens"].value == 1234


# --- long text and control characters (§3) -------------------------------------------------------


def test_text_longer_than_the_excel_cell_limit_is_cut_with_a_marker_not_a_failed_write(book_path):
    long_text = "x" * (EXCEL_CELL_LIMIT + 5_000)
    XlsxWorkbook(book_path).write(WriteBatch(
        new_tabs=[NewTab("Edits long", schema.EDIT_HEADERS, [["", "e-1", "p", long_text] + [""] * 6])],
        updates=[CellUpdate(schema.DRAFTS, 2, "judge_comment", long_text)],
    ))
    book = openpyxl.load_workbook(book_path)
    for value in (book["Edits long"].cell(2, 4).value,
                  book[schema.DRAFTS].cell(2, schema.DRAFT_HEADERS.index("judge_comment") + 1).value):
        assert len(value) <= EXCEL_CELL_LIMIT
        assert value.startswith("x" * 30_000)
        assert MARKER.search(value), value[-50:]


def test_characters_xml_forbids_become_a_visible_mark(book_path):
    text = "a\x00b\x07c\x1bd\x1fe\tf\ng\ufffeh\uffffi\ud800j"
    XlsxWorkbook(book_path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "judge_comment", text)]))
    value = openpyxl.load_workbook(book_path)[schema.DRAFTS].cell(
        2, schema.DRAFT_HEADERS.index("judge_comment") + 1).value
    assert value == "a\ufffdb\ufffdc\ufffdd\ufffde\tf\ng\ufffdh\ufffdi\ufffdj"


# --- a workbook open in Excel (§3, §8) -----------------------------------------------------------


def test_a_workbook_open_in_excel_is_not_written(book_path):
    (book_path.parent / "~$loop.xlsx").write_bytes(b"owner file")
    before = book_path.read_bytes()
    workbook = XlsxWorkbook(book_path)
    with pytest.raises(UsageError, match="Excel"):
        workbook.write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "judge_score", "up")]))
    with pytest.raises(UsageError, match="Excel"):
        workbook.ensure_writable()
    assert book_path.read_bytes() == before


def test_a_workbook_not_open_in_excel_passes_the_check(book_path):
    XlsxWorkbook(book_path).ensure_writable()
    (book_path.parent / "~$other.xlsx").write_bytes(b"owner file of another workbook")
    XlsxWorkbook(book_path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "judge_score", "up")]))
    assert openpyxl.load_workbook(book_path)[schema.DRAFTS].cell(
        2, schema.DRAFT_HEADERS.index("judge_score") + 1).value == "up"


# --- parts openpyxl cannot keep ------------------------------------------------------------------


def test_a_chart_survives_a_write_byte_for_byte_without_a_backup(book_path, caplog):
    add_chart(book_path)
    with zipfile.ZipFile(book_path) as archive:
        before = {name: archive.read(name) for name in archive.namelist()}
    assert any(name.startswith("xl/charts/") for name in before)
    with caplog.at_level(logging.WARNING, logger="loop"):
        XlsxWorkbook(book_path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "judge_score", "up")]))
    assert caplog.records == []
    assert list(book_path.parent.glob("*.backup-*.xlsx")) == []
    with zipfile.ZipFile(book_path) as archive:
        after = {name: archive.read(name) for name in archive.namelist()}
    assert sorted(after) == sorted(before)
    assert [name for name in before if after[name] != before[name]] == ["xl/worksheets/sheet1.xml"]


# --- not a workbook (§8) -------------------------------------------------------------------------


def test_a_missing_workbook_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="No workbook"):
        XlsxWorkbook(tmp_path / "loop.xlsx")
    with pytest.raises(UsageError):
        open_workbook(str(tmp_path / "loop.xlsx"))


def test_a_text_file_named_xlsx_is_a_usage_error(tmp_path):
    path = tmp_path / "x.xlsx"
    path.write_text("trace_id,score\nt-1,down\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not an .xlsx workbook"):
        XlsxWorkbook(path)


def test_a_zip_that_is_not_a_workbook_is_a_usage_error_when_read(tmp_path):
    path = tmp_path / "x.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    with pytest.raises(UsageError):
        XlsxWorkbook(path).titles()


# --- columns the tool does not know (§3) ---------------------------------------------------------


def _with_extra_column(path):
    book = openpyxl.load_workbook(path)
    sheet = book[schema.DRAFTS]
    extra = sheet.max_column + 1
    sheet.cell(1, extra).value = "notes"
    sheet.cell(2, extra).value = "call back Monday"
    sheet.cell(3, extra).value = "=LEN(A3)"
    sheet.cell(4, extra).value = datetime(2026, 1, 2, 3, 4)
    book.save(path)
    return extra


def test_columns_the_tool_does_not_know_are_left_untouched(book_path):
    extra = _with_extra_column(book_path)
    XlsxWorkbook(book_path).write(WriteBatch(
        appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": "t-3", "ticket": "hi", "draft": "hello"})],
        updates=[CellUpdate(schema.DRAFTS, 2, "judge_score", "up"), CellUpdate(schema.DRAFTS, 3, "score", "👎")],
    ))
    sheet = openpyxl.load_workbook(book_path)[schema.DRAFTS]
    assert sheet.cell(1, extra).value == "notes"
    assert sheet.cell(2, extra).value == "call back Monday"
    assert (sheet.cell(3, extra).data_type, sheet.cell(3, extra).value) == ("f", "=LEN(A3)")
    assert sheet.cell(4, extra).value == datetime(2026, 1, 2, 3, 4)
    # row 4 holds a value only in a column loop does not know: it is free for the draft, and that
    # value stays where it was (docs/workbook.md: which rows count as taken)
    trace_id, ticket = (schema.DRAFT_HEADERS.index(name) + 1 for name in ("trace_id", "ticket"))
    assert sheet.cell(4, trace_id).value == "t-3" and sheet.cell(4, ticket).value == "hi"
    assert sheet.cell(5, trace_id).value is None
    assert sheet.max_column == extra


# --- a failed save (§4: failure leaves no trace) -------------------------------------------------


def test_a_failed_save_leaves_the_workbook_byte_identical_and_no_temp_file(book_path, monkeypatch):
    before = book_path.read_bytes()
    names_before = sorted(p.name for p in book_path.parent.iterdir())

    def broken_save(self, filename):
        with open(filename, "wb") as stream:
            stream.write(b"PK half a workbook")
        raise OSError("disk full")

    from loop.sheets.package import Package

    monkeypatch.setattr(Package, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        XlsxWorkbook(book_path).write(WriteBatch(
            new_tabs=[NewTab("Edits x", schema.EDIT_HEADERS, [])],
            updates=[CellUpdate(schema.DRAFTS, 2, "judge_score", "up")]))
    assert book_path.read_bytes() == before
    assert leftovers(book_path.parent) == []
    assert [n for n in sorted(p.name for p in book_path.parent.iterdir()) if not n.endswith(".lock")] == names_before


def test_a_successful_save_leaves_no_temp_file(book_path):
    XlsxWorkbook(book_path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "judge_score", "up")]))
    assert leftovers(book_path.parent) == []


def test_an_empty_batch_writes_nothing(book_path):
    before = book_path.read_bytes()
    (book_path.parent / "~$loop.xlsx").write_bytes(b"owner file")
    XlsxWorkbook(book_path).write(WriteBatch())
    assert book_path.read_bytes() == before


def test_rich_text_written_into_an_existing_tab_keeps_each_run_s_look(tmp_path):
    """Bold, struck and coloured runs land as they do in a new tab (and on Google), each in the workbook's font."""
    path = write_workbook(tmp_path / "loop.xlsx", [draft(trace_id="t-1")])
    text = RichText((Run("kept "), Run("old", strike=True, color="C00000"), Run(" new", bold=True)))
    XlsxWorkbook(path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "comment", text)]))
    sheet = openpyxl.load_workbook(path, rich_text=True)[schema.DRAFTS]
    column = next(c.column for c in sheet[1] if c.value == "comment")
    runs = [(str(part), getattr(part, "font", None)) for part in sheet.cell(2, column).value]
    assert "".join(text for text, _ in runs) == "kept old new"
    looks = {text: (bool(font.b), bool(font.strike), font.color.rgb if font.color else None)
             for text, font in runs if font}
    assert looks == {"old": (False, True, "FFC00000"), " new": (True, False, None)}
