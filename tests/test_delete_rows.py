"""Rows deleted by key in the one write of a batch (`DeleteRows`, for `loop archive`): on both backends the
rows whose key is named go, keys not there are passed over, a row a reviewer sorted elsewhere is still
found, and the rows below move up with what refers to them, as Excel and Google Sheets move them. A
workbook whose formulas compute from those rows is refused with nothing written; every part of the
package but the tab's own (and its tables) keeps its bytes."""

from __future__ import annotations

import re
import zipfile

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.formatting.rule import CellIsRule
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table
from python_calamine import CalamineWorkbook

from loop import schema
from loop.errors import UsageError
from loop.sheets import Append, CellUpdate, DeleteRows, WriteBatch, open_workbook
from loop.sheets.xlsx import XlsxWorkbook
from tests import rich_workbook
from tests.backends import KEY
from tests.conftest import draft
from tests.test_parts_preserved import changed, opens, parts

DRAFTS_PART = "xl/worksheets/sheet1.xml"


def delete(*keys: str) -> DeleteRows:
    return DeleteRows(schema.DRAFTS, "trace_id", frozenset(keys))


def ids(sheet) -> list[str]:
    return [row["trace_id"] for row in sheet.tab(schema.DRAFTS)]


def test_rows_go_by_key_in_the_same_write_as_updates_and_appends(sheet):
    sheet.create([draft(trace_id=f"t{i}", comment=f"comment {i}") for i in range(8)])
    open_workbook(sheet.location).write(WriteBatch(
        updates=[CellUpdate(schema.DRAFTS, 9, "comment", "changed", key=("trace_id", "t7"))],
        appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": "new", "comment": "appended"})],
        deletions=[delete("t1", "t2", "t5", "not-there")]))
    rows = sheet.tab(schema.DRAFTS)
    assert [(r["trace_id"], r["comment"]) for r in rows] == [
        ("t0", "comment 0"), ("t3", "comment 3"), ("t4", "comment 4"), ("t6", "comment 6"), ("t7", "changed"),
        ("new", "appended")]


def test_keys_that_no_row_holds_change_nothing(sheet):
    sheet.create([draft(trace_id=f"t{i}") for i in range(3)])
    before = sheet.tab(schema.DRAFTS)
    open_workbook(sheet.location).write(WriteBatch(deletions=[delete("gone", "t9")]))
    assert sheet.tab(schema.DRAFTS) == before


def test_a_row_sorted_elsewhere_since_it_was_read_is_still_the_one_deleted(sheet):
    rows = [draft(trace_id=f"t{i}", comment=f"comment {i}") for i in range(6)]
    sheet.create(rows)
    read = open_workbook(sheet.location).read([schema.DRAFTS])[schema.DRAFTS]
    where = {record["traceid"]: number for number, record in read.records()}
    sheet.create(rows[::-1])  # a reviewer sorted the tab the other way round meanwhile
    open_workbook(sheet.location).write(WriteBatch(
        updates=[CellUpdate(schema.DRAFTS, where["t4"], "comment", "still t4's", key=("trace_id", "t4"))],
        deletions=[delete("t1", "t2")]))
    assert [(r["trace_id"], r["comment"]) for r in sheet.tab(schema.DRAFTS)] == [
        ("t5", "comment 5"), ("t4", "still t4's"), ("t3", "comment 3"), ("t0", "comment 0")]


def test_google_deletes_in_one_batch_update_bottom_up_after_one_read_of_the_key_column(workspace, google):
    from tests.backends import GoogleSheet

    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id=f"t{i}") for i in range(8)])
    rows_before = google.properties(KEY, schema.DRAFTS)["gridProperties"]["rowCount"]
    google.requests.clear()
    open_workbook(KEY).write(WriteBatch(deletions=[delete("t1", "t2", "t3", "t6", "absent")]))
    reads = [r for r in google.requests if r["path"].endswith("values:batchGet")]
    writes = [r for r in google.requests if r["path"].endswith(":batchUpdate")]
    key = openpyxl.utils.get_column_letter(schema.DRAFT_HEADERS.index("trace_id") + 1)  # found by name
    assert [r["query"]["ranges"] for r in reads] == [["'Drafts'!1:1"], [f"'Drafts'!{key}1:{key}"]]
    assert [r["deleteDimension"]["range"] for r in writes[0]["body"]["requests"]] == [
        {"sheetId": 0, "dimension": "ROWS", "startIndex": 7, "endIndex": 8},
        {"sheetId": 0, "dimension": "ROWS", "startIndex": 2, "endIndex": 5}]
    assert len(writes) == 1 and ids(sheet) == ["t0", "t4", "t5", "t7"]
    assert google.properties(KEY, schema.DRAFTS)["gridProperties"]["rowCount"] == rows_before - 4


def test_every_row_below_a_frozen_header_can_go_from_a_grid_with_no_spare_row(workspace, google):
    from tests.backends import GoogleSheet

    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id=f"t{i}") for i in range(3)])
    google._sheet(KEY, schema.DRAFTS)["properties"]["gridProperties"].update(rowCount=4, frozenRowCount=1)
    open_workbook(KEY).write(WriteBatch(deletions=[delete("t0", "t1", "t2")]))
    assert sheet.tab(schema.DRAFTS) == [] and google.values(KEY, schema.DRAFTS)[0] == schema.DRAFT_HEADERS
    assert google.properties(KEY, schema.DRAFTS)["gridProperties"] == {"rowCount": 2, "columnCount": 26,
                                                                      "frozenRowCount": 1}


def test_the_fake_refuses_deleting_what_google_refuses(workspace, google):
    from tests.backends import GoogleSheet

    GoogleSheet(google).create([draft(trace_id="t0")])
    http = open_workbook(KEY)._http
    rows = google.properties(KEY, schema.DRAFTS)["gridProperties"]["rowCount"]
    google._sheet(KEY, schema.DRAFTS)["properties"]["gridProperties"]["frozenRowCount"] = 1
    for start, end, message in [
        (0, rows, "You can't delete all the rows on the sheet."),
        (1, rows, "Sorry, it is not possible to delete all non-frozen rows."),
        (rows - 1, rows + 1, f"Cannot delete a row that doesn't exist. Tried to delete row index {rows} "
                             f"but there are only {rows} rows."),
    ]:
        body = {"requests": [{"deleteDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": start,
                                                            "endIndex": end}}}]}
        with pytest.raises(Exception) as refused:
            http.batch_update(KEY, body)
        assert refused.value.response.json()["error"]["message"] == f"Invalid requests[0].deleteDimension: {message}"


# --- xlsx: what Excel moves along with the rows -------------------------------------------------------


def features_workbook(path, rows: int = 10, table: bool = True):
    """Drafts rows t2…t{rows+1} at sheet rows 2… with a table over them (or a sheet filter), merges beside
    it, a conditional format, a validation, a link and a frozen header."""
    book = openpyxl.Workbook()
    tab = book.active
    tab.title = schema.DRAFTS
    tab.append(["trace_id", "ticket", "score"])
    for number in range(2, rows + 2):
        tab.append([f"t{number}", f"ticket {number}", number])
    last = rows + 1
    if table:
        tab.add_table(Table(displayName="Reviews", ref=f"A1:C{last}"))
    else:
        tab.auto_filter.ref = f"A1:C{last}"
    tab.merge_cells("E3:F4")
    tab.merge_cells("E8:F9")
    tab.merge_cells("E5:E7")  # left on one cell when rows 5 and 6 go: no merge at all
    tab.conditional_formatting.add(f"C2:C{last}", CellIsRule(operator="greaterThan", formula=["5"]))
    tab.conditional_formatting.add("D3:D5", CellIsRule(operator="greaterThan", formula=["1"]))
    check = DataValidation(type="list", formula1='"up,down"')
    check.add(f"D2:D{last}")
    tab.add_data_validation(check)
    tab["B10"].hyperlink = "https://example.com/10"
    tab["B4"].hyperlink = "https://example.com/4"
    tab.freeze_panes = "A2"
    book.save(path)
    return path


def drafts_xml(path) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read(DRAFTS_PART).decode()


def test_merges_filters_formats_validations_links_and_tables_move_with_the_rows(tmp_path):
    path = features_workbook(tmp_path / "book.xlsx")
    XlsxWorkbook(path).write(WriteBatch(deletions=[delete("t3", "t4", "t5", "t6")]))
    tab = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert [[c.value for c in row] for row in tab.iter_rows(max_col=3)] == [
        ["trace_id", "ticket", "score"], *([f"t{n}", f"ticket {n}", n] for n in (2, 7, 8, 9, 10, 11))]
    assert sorted(str(r) for r in tab.merged_cells.ranges) == ["E4:F5"]  # E3:F4 went with its rows
    assert tab.tables["Reviews"].ref == "A1:C7" and tab.tables["Reviews"].autoFilter.ref == "A1:C7"
    assert sorted(str(f.sqref) for f in tab.conditional_formatting) == ["C2:C7"]  # D3:D5 went
    assert [str(v.sqref) for v in tab.data_validations.dataValidation] == ["D2:D7"]
    assert [(c.coordinate, c.hyperlink.target) for row in tab.iter_rows() for c in row if c.hyperlink] == [
        ("B6", "https://example.com/10")]
    xml = drafts_xml(path)
    assert '<dimension ref="A1:F7"' in xml and 'topLeftCell="A2"' in xml
    assert '<mergeCells count="1">' in xml and re.search(r'<conditionalFormatting sqref="D', xml) is None
    CalamineWorkbook.from_path(str(path)).get_sheet_by_name(schema.DRAFTS).to_python()


def test_a_sheet_filter_shrinks_and_a_table_keeps_its_header_and_one_row(tmp_path):
    path = features_workbook(tmp_path / "filtered.xlsx", table=False)
    XlsxWorkbook(path).write(WriteBatch(deletions=[delete("t2", "t11")]))
    assert openpyxl.load_workbook(path)[schema.DRAFTS].auto_filter.ref == "A1:C9"

    path = features_workbook(tmp_path / "table.xlsx", rows=3)
    XlsxWorkbook(path).write(WriteBatch(deletions=[delete("t2", "t3", "t4")]))
    tab = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert not any(row[0] for row in tab.iter_rows(min_row=2, values_only=True))
    assert tab.tables["Reviews"].ref == "A1:C2"


@pytest.mark.parametrize("formula", ["cell", "other tab", "defined name", "validation"])
def test_formulas_that_compute_from_the_rows_refuse_the_write_and_nothing_changes(tmp_path, formula):
    path = features_workbook(tmp_path / "book.xlsx", table=False)
    book = openpyxl.load_workbook(path)
    if formula == "cell":
        book[schema.DRAFTS]["H2"] = "=C2*2"
    elif formula == "other tab":
        book.create_sheet("Stats")["A1"] = "=COUNTA(Drafts!A2:A11)"
    elif formula == "defined name":
        book.defined_names["Recent"] = DefinedName("Recent", attr_text="Drafts!$A$2:$A$11")
    else:
        rule = DataValidation(type="list", formula1="'Drafts'!$A$2:$A$11")
        rule.add("H2:H11")
        book[schema.DRAFTS].add_data_validation(rule)
    book.save(path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="formulas that refer to Drafts rows .*archiving would break them"):
        XlsxWorkbook(path).write(WriteBatch(appends=[Append(schema.DRAFTS, ["trace_id"], {"trace_id": "x"})],
                                            deletions=[delete("t3")]))
    assert path.read_bytes() == before


def test_formulas_elsewhere_that_do_not_name_the_tab_do_not_refuse(tmp_path):
    path = features_workbook(tmp_path / "book.xlsx")
    book = openpyxl.load_workbook(path)
    book.create_sheet("Stats")["A1"] = "=SUM(MyDrafts!A1:A3)+1"
    book.save(path)
    XlsxWorkbook(path).write(WriteBatch(deletions=[delete("t3")]))
    assert "t3" not in [row[0] for row in openpyxl.load_workbook(path)[schema.DRAFTS].iter_rows(values_only=True)]


@pytest.mark.filterwarnings("ignore:Data Validation extension:UserWarning")  # openpyxl, reading the x14 one
def test_every_part_but_the_tabs_own_keeps_its_bytes(tmp_path):
    path = rich_workbook.build(tmp_path / "loop.xlsx", [draft(trace_id=f"t{i}") for i in range(6)])
    before = parts(path)
    XlsxWorkbook(path).write(WriteBatch(deletions=[delete("t1", "t4")]))
    assert changed(before, parts(path)) == {DRAFTS_PART}
    opens(path)
    key = schema.DRAFT_HEADERS.index("trace_id")
    assert [r[key] for r in openpyxl.load_workbook(path)[schema.DRAFTS].iter_rows(min_row=2, values_only=True)] == [
        "t0", "t2", "t3", "t5"]
    assert "<xm:sqref>L2:L998</xm:sqref>" in drafts_xml(path)  # the x14 validation moved up with the rows

    path = features_workbook(tmp_path / "table.xlsx")
    before = parts(path)
    XlsxWorkbook(path).write(WriteBatch(deletions=[delete("t5")]))
    assert changed(before, parts(path)) == {DRAFTS_PART, "xl/tables/table1.xml"}


# --- xlsx: any rows, any of them deleted, against a model of where Excel puts every cell --------------

ROW_NUMBERS = st.lists(st.integers(2, 60), min_size=1, max_size=25, unique=True).map(sorted)
CELL = st.one_of(st.none(), st.integers(-50, 50), st.booleans(),
                 st.text("ab ✓&<", min_size=1, max_size=6).filter(str.strip))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), numbers=ROW_NUMBERS)
def test_any_rows_deleted_leave_every_other_cell_where_excel_puts_it(tmp_path, data, numbers):
    cells = {(n, c): data.draw(CELL) for n in numbers for c in (2, 3)}
    doomed = set(data.draw(st.lists(st.sampled_from(numbers), unique=True)))
    book = openpyxl.Workbook()
    tab = book.active
    tab.title = schema.DRAFTS
    tab.append(["trace_id", "ticket", "score"])
    for n in numbers:
        tab.cell(n, 1, f"t{n}")
        for (row, column), value in cells.items():
            if row == n and value is not None:
                tab.cell(n, column, value)
    path = tmp_path / "model.xlsx"
    book.save(path)

    XlsxWorkbook(path).write(WriteBatch(deletions=[delete(*(f"t{n}" for n in doomed), "t999")]))

    def moved(n: int) -> int:
        return n - sum(d < n for d in doomed)

    expected = {(1, 1): "trace_id", (1, 2): "ticket", (1, 3): "score"}
    expected.update({(moved(n), 1): f"t{n}" for n in numbers if n not in doomed})
    expected.update({(moved(n), c): v for (n, c), v in cells.items() if n not in doomed and v is not None})
    expected = {spot: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for spot, v in expected.items()}
    grid = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(schema.DRAFTS).to_python(skip_empty_area=False)
    assert {(r, c): v for r, row in enumerate(grid, start=1) for c, v in enumerate(row, start=1) if v != ""} == expected
    rows = openpyxl.load_workbook(path)[schema.DRAFTS].iter_rows(values_only=True)
    assert {(r, c): v for r, row in enumerate(rows, start=1) for c, v in enumerate(row, start=1) if v is not None} == {
        spot: int(v) if isinstance(v, float) else v for spot, v in expected.items()}
    xml = drafts_xml(path)
    stored = [int(n) for n in re.findall(r'<row r="(\d+)"', xml)]
    assert stored == sorted(set(stored))  # rows stay in order, each once
    for number, body in re.findall(r'<row r="(\d+)"[^>]*>(.*?)</row>', xml):
        assert set(re.findall(r'<c r="[A-Z]+(\d+)"', body)) <= {number}
