"""loop/sheets/package.py, the part-by-part writer: any sequence of appends and cell updates, at any
rows (before, between, after the rows there are; rows holding only formatting), gives the workbook
a simple model of cells predicts, as python-calamine and openpyxl read it."""

from __future__ import annotations

import zipfile

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.styles import Font
from python_calamine import CalamineWorkbook

from loop.cell_values import normalize_header, xml_safe
from loop.sheets import Append, CellUpdate, WriteBatch
from loop.sheets.ooxml import column_index, column_letter
from loop.sheets.package import Package
from loop.sheets.sheet_part import SheetPart
from loop.sheets.xlsx import XlsxWorkbook

HEADERS = ["trace_id", "ticket", "score", "notes"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.text(st.characters(exclude_categories=["Cs"]), max_size=12))
COLUMNS = st.sampled_from(["trace_id", "Ticket", "score", "notes", "new column"])
WRITES = st.lists(st.one_of(
    st.tuples(st.just("update"), st.integers(2, 40), COLUMNS, VALUES),
    st.tuples(st.just("append"), st.dictionaries(COLUMNS, VALUES, min_size=1, max_size=3)),
), min_size=1, max_size=6)


def workbook(path, rows: dict[int, list]):
    """A tab `T` with HEADERS in row 1 and `rows` at the given row numbers; row 30 holds only a style."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "T"
    sheet.append(HEADERS)
    for number, values in rows.items():
        for column, value in enumerate(values, start=1):
            sheet.cell(number, column).value = value
    sheet.cell(30, 2).font = Font(italic=True)  # formatting only: not a used row
    book.save(path)
    return path


def cells(rows: dict[int, list]) -> dict[tuple[int, str], object]:
    return {(number, HEADERS[c]): v for number, values in rows.items() for c, v in enumerate(values) if v is not None}


def comparable(value):
    if isinstance(value, str):  # as a cell stores it: XML-forbidden characters marked, whitespace kept
        value = xml_safe(value) or None
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def test_column_letters_round_trip():
    for index in (1, 26, 27, 52, 702, 703, 16384):
        assert column_index(column_letter(index)) == index
    assert (column_letter(1), column_letter(27), column_letter(16384)) == ("A", "AA", "XFD")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=WRITES)
def test_any_writes_give_what_a_model_of_cells_predicts(tmp_path, writes):
    start = {2: ["t1", "first", "👍", None], 4: ["t3", "third", None, "n"], 7: ["t6", None, "👎", None]}
    path = workbook(tmp_path / "book.xlsx", start)
    expected = cells(start)
    headers = list(HEADERS)

    def header(name: str) -> str:
        found = next((h for h in headers if normalize_header(h) == normalize_header(name)), None)
        if found is None:
            headers.append(name)
            found = name
        return found

    for kind, *args in writes:
        if kind == "update":
            row, column, value = args
            batch = WriteBatch(updates=[CellUpdate("T", row, column, value)])
            expected[(row, header(column))] = value
        else:
            (values,) = args
            batch = WriteBatch(appends=[Append("T", HEADERS, values)])
            # taken: rows with a value in a column the append knows (its headers and its own columns)
            known = {normalize_header(h) for h in (*HEADERS, *values)}
            used = max((r for (r, h), v in expected.items() if comparable(v) is not None
                        and normalize_header(h) in known), default=1)
            for column, value in values.items():
                expected[(used + 1, header(column))] = value
        XlsxWorkbook(path).write(batch)

    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("T").to_python(skip_empty_area=False)
    assert [h for h in rows[0] if h != ""] == headers
    got = {(number, headers[c]): (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
           for number, values in enumerate(rows[1:], start=2) for c, v in enumerate(values[:len(headers)])
           if v not in (None, "")}
    want = {key: comparable(v) for key, v in expected.items() if comparable(v) is not None}
    assert got == want
    book = openpyxl.load_workbook(path)
    assert book["T"]["B30"].font.i  # the formatting-only row kept its style
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None


def test_a_row_of_only_formatting_is_filled_in_place_not_duplicated(tmp_path):
    path = workbook(tmp_path / "book.xlsx", {2: ["t1", "x", None, None]})
    XlsxWorkbook(path).write(WriteBatch(updates=[CellUpdate("T", 30, "ticket", "now with text")]))
    part = Package(str(path))
    sheet = SheetPart(part.read("xl/worksheets/sheet1.xml"))
    part.close()
    assert sheet.xml.count(b'<row r="30"') == 1
    book = openpyxl.load_workbook(path)
    assert book["T"]["B30"].value == "now with text" and book["T"]["B30"].font.i  # the cell kept its style


def test_the_last_used_row_skips_rows_of_only_formatting(tmp_path):
    path = workbook(tmp_path / "book.xlsx", {2: ["t1", "x", None, None], 9: ["t8", None, None, None]})
    XlsxWorkbook(path).write(WriteBatch(appends=[Append("T", HEADERS, {"trace_id": "new"})]))
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("T").to_python()
    assert rows[9][0] == "new"  # row 10, after row 9, not after the styled row 30
