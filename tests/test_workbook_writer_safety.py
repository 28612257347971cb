"""The local workbook writer under hostile workbooks (issue: nothing lost, nothing corrupted, second
pass): rows stored out of order, an Excel Table, formatting to the sheet's last row, helper columns,
merged blocks, damaged shared strings, a part that inflates to gigabytes, relationship targets
climbing above the root, notes and drawings beside rows an archive would move, and a workbook
reached through a link. Each through the CLI (or the public API), as a reviewer's file would be."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from python_calamine import CalamineWorkbook

from loop import schema
from loop.cli import main
from loop.errors import UsageError
from loop.sheets import CellUpdate, WriteBatch
from loop.sheets.package import MAX_PART_BYTES
from loop.sheets.xlsx import XlsxWorkbook
from tests.hand_built import LOOK_STYLE, Formula, Tab, build, headers
from tests.test_workbook_safety import logged_tickets

NOW = datetime.now(timezone.utc).replace(microsecond=0)
COLUMN = {name: index for index, name in enumerate(schema.DRAFT_HEADERS, start=1)}


def drafts(rows: dict[int, dict[str, object]], names=schema.DRAFT_HEADERS, **extra) -> Tab:
    """A Drafts tab: `rows` by row number, each {header: value}."""
    column = {name: index for index, name in enumerate(names, start=1)}
    return Tab(rows={1: headers(list(names)), **{number: {column[k]: v for k, v in values.items()}
                                                  for number, values in rows.items()}}, **extra)


def reviewed(trace_id: str, score="👎", comment="too long", days_ago: float = 1, **fields) -> dict:
    return {"trace_id": trace_id, "created_at": NOW - timedelta(days=days_ago), "ticket": f"ticket of {trace_id}",
            "draft": f"draft of {trace_id}", "score": score, "comment": comment, **fields}


def log(*tickets: str, code: int = 0):
    lines = "".join(json.dumps({"ticket": t, "draft": f"reply to {t}"}) + "\n" for t in tickets)
    result = CliRunner().invoke(main, ["log"], input=lines)
    assert result.exit_code == code, result.output
    return result


def one_line(result, *fragments: str) -> None:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], result.output


def cell(path: Path, row: int, column: int | str, names=schema.DRAFT_HEADERS):
    column = names.index(column) + 1 if isinstance(column, str) else column
    return openpyxl.load_workbook(path)[schema.DRAFTS].cell(row, column).value


def grid(path: Path) -> dict[tuple[int, int], object]:
    """Every cell holding a value, as python-calamine reads it; openpyxl must read the same."""
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(schema.DRAFTS).to_python(skip_empty_area=False)
    seen = {(r, c): v for r, row in enumerate(rows, start=1) for c, v in enumerate(row, start=1) if v != ""}
    book = openpyxl.load_workbook(path, data_only=True)[schema.DRAFTS]
    other = {(c.row, c.column): c.value for row in book.iter_rows() for c in row if c.value not in (None, "")}
    assert {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in other.items()} == seen
    return seen


# --- 1. rows stored out of order are never written over -----------------------------------------------


@pytest.mark.parametrize("flavour", ["excel", "sdk"])
def test_rows_stored_out_of_order_are_never_written_over(workspace, flavour):
    tab = drafts({2: reviewed("t-first", score="👍", comment=""), 3: reviewed("t-third", comment="wrong menu path")},
                 order=[1, 3, 2])
    path = build(workspace / "loop.xlsx", tab, flavour)
    trace_id = log("a new ticket").output.strip()
    assert (cell(path, 2, "trace_id"), cell(path, 2, "score")) == ("t-first", "👍")
    assert (cell(path, 3, "trace_id"), cell(path, 3, "score"), cell(path, 3, "comment")) == (
        "t-third", "👎", "wrong menu path")
    assert (cell(path, 4, "trace_id"), cell(path, 4, "ticket"), cell(path, 4, "score")) == (trace_id, "a new ticket", None)
    with zipfile.ZipFile(path) as archive:
        stored = [int(n) for n in re.findall(rb'<(?:x:)?row r="(\d+)"', archive.read("xl/worksheets/sheet1.xml"))]
    assert stored == [1, 2, 3, 4]  # put in order, as Excel itself requires
    grid(path)


def test_a_row_stored_twice_is_refused_before_anything_is_kept(workspace):
    tab = drafts({2: reviewed("t-a"), 3: reviewed("t-b")}, order=[1, 2, 3, 2])
    path = build(workspace / "loop.xlsx", tab)
    before = path.read_bytes()
    result = log("a new ticket", code=2)
    one_line(result, "is damaged", "row 2 is stored twice")
    assert path.read_bytes() == before and logged_tickets(workspace) == []


# --- 2. an Excel Table grows over what is written -------------------------------------------------------


def test_an_excel_table_over_drafts_grows_over_appended_rows_and_a_new_column(workspace):
    names = [n for n in schema.DRAFT_HEADERS if n != "prompt_version"]  # loop adds it, right of the table
    last = openpyxl.utils.get_column_letter(len(names))
    path = build(workspace / "loop.xlsx", drafts({2: reviewed("t-a"), 3: reviewed("t-b")}, names, table=f"A1:{last}3"))
    first, second = log("one", "two").output.split()
    table = openpyxl.load_workbook(path)[schema.DRAFTS].tables["Reviews"]
    new = openpyxl.utils.get_column_letter(len(names) + 1)
    assert table.ref == f"A1:{new}5" and table.autoFilter.ref == f"A1:{new}5"
    assert [c.name for c in table.tableColumns] == [*names, "prompt_version"]
    assert cell(path, 1, len(names) + 1) == "prompt_version" and cell(path, 5, "trace_id", names) == second
    log("three")
    assert openpyxl.load_workbook(path)[schema.DRAFTS].tables["Reviews"].ref == f"A1:{new}6"
    grid(path)


def test_a_table_with_a_totals_row_keeps_it_last_and_drafts_go_above_it(workspace):
    tab = drafts({2: reviewed("t-a")}, table="A1:P3", totals=True)
    path = build(workspace / "loop.xlsx", tab)
    trace_id = log("one").output.strip()
    assert cell(path, 3, "trace_id") == trace_id and cell(path, 4, "trace_id") is None  # the totals row, moved
    assert openpyxl.load_workbook(path)[schema.DRAFTS].tables["Reviews"].ref == "A1:P4"


# --- 3. formatting is not data ----------------------------------------------------------------------------


def test_a_styled_empty_cell_on_the_sheets_last_row_is_formatting_not_a_full_tab(workspace):
    tab = drafts({2: reviewed("t-a"), 3: reviewed("t-b")}, styled=[(1_048_576, 6)], dimension="A1:P1048576")
    path = build(workspace / "loop.xlsx", tab)
    trace_id = log("one").output.strip()
    sheet = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert sheet.cell(4, COLUMN["trace_id"]).value == trace_id
    assert sheet.cell(1_048_576, 6).fill.fgColor.rgb == "FFFFFF00"  # the format stays where it was
    assert XlsxWorkbook(path).rows_left(schema.DRAFTS) == 1_048_576 - 4


# --- 4. which rows are taken -------------------------------------------------------------------------------


def test_a_row_holding_values_only_in_columns_loop_does_not_know_takes_the_next_draft(workspace):
    week = len(schema.DRAFT_HEADERS) + 1
    rows = {2: reviewed("t-a"), 3: reviewed("t-b")}
    tab = drafts(rows, [*schema.DRAFT_HEADERS, "week"])
    for number in range(2, 201):  # a helper column filled down to row 200
        tab.rows.setdefault(number, {})[week] = Formula(f'IF(A{number}="","",WEEKNUM(A{number}))', "")
    path = build(workspace / "loop.xlsx", tab)
    trace_id = log("one").output.strip()
    sheet = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert sheet.cell(4, COLUMN["trace_id"]).value == trace_id and sheet.cell(4, COLUMN["ticket"]).value == "one"
    assert [sheet.cell(n, week).value for n in (2, 4, 5, 200)] == [
        f'=IF(A{n}="","",WEEKNUM(A{n}))' for n in (2, 4, 5, 200)]  # every helper cell as it was
    assert sheet.cell(5, COLUMN["trace_id"]).value is None


def test_a_formula_in_a_column_loop_writes_is_never_written_over(workspace):
    tab = drafts({2: reviewed("t-a")})
    for number in range(2, 11):
        tab.rows.setdefault(number, {})[COLUMN["ticket_id"]] = Formula(f'"TK-"&ROW(A{number})', "")
    path = build(workspace / "loop.xlsx", tab)
    trace_id = log("one").output.strip()
    assert cell(path, 11, "trace_id") == trace_id
    assert openpyxl.load_workbook(path)[schema.DRAFTS].cell(10, COLUMN["ticket_id"]).value == '="TK-"&ROW(A10)'


# --- 5. merged ranges -------------------------------------------------------------------------------------


def test_appended_drafts_never_land_in_a_merged_range(workspace):
    tab = drafts({2: reviewed("t-a"), 3: reviewed("t-b")}, merges=["A5:F7", "R4:S9"])
    path = build(workspace / "loop.xlsx", tab)
    ids = log("one", "two", "three").output.split()
    sheet = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert [sheet.cell(n, COLUMN["trace_id"]).value for n in (4, 8, 9)] == ids
    assert sorted(str(r) for r in sheet.merged_cells.ranges) == ["A5:F7", "R4:S9"]
    assert all(sheet.cell(r, c).value is None for r in range(5, 8) for c in range(1, 7))
    assert XlsxWorkbook(path).rows_left(schema.DRAFTS) == 1_048_576 - 9


# --- 6. a damaged shared-strings part -------------------------------------------------------------------------


def damage_a_shared_string(path: Path, header: bool) -> None:
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    ref = "A1" if header else "D2"
    xml = re.sub(rf'(<c r="{ref}"[^>]*t="s"><v>)\d+', r"\g<1>999", xml)
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("header", [False, True], ids=["a body cell", "a header"])
def test_a_shared_string_index_past_the_end_is_refused_by_every_writing_command(workspace, cli, model, header):
    path = build(workspace / "loop.xlsx", drafts({2: reviewed("t-a", days_ago=100), 3: reviewed("t-b")}))
    damage_a_shared_string(path, header)
    before = path.read_bytes()
    for command in (["status"], ["log", "--ticket", "t", "--draft", "d"], ["archive", "--older-than", "30d"],
                    ["improve", "--no-check"]):
        result = cli(*command, code=2)
        one_line(result, "is damaged")
        assert result.stdout.strip().startswith("error") or not result.stdout.strip()
    assert path.read_bytes() == before and logged_tickets(workspace) == []
    with pytest.raises(UsageError, match="is damaged .*shared string 999"):
        XlsxWorkbook(path).write(WriteBatch(updates=[CellUpdate(schema.DRAFTS, 3, "judge_score", "up",
                                                                key=("trace_id", "t-b"))]))
    assert path.read_bytes() == before


# --- 8. a part that inflates to gigabytes --------------------------------------------------------------------------


def inflating_workbook(path: Path, size: int) -> Path:
    """A small file whose Drafts part unpacks to `size` bytes of styled, empty rows."""
    build(path, drafts({2: reviewed("t-a")}))
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    head, tail = parts.pop("xl/worksheets/sheet1.xml").split(b"</sheetData>")
    row = b'<row r="3" s="2" customFormat="1"/>'  # the same row again and again: a bomb, not a tab
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as stream:
            stream.write(head)
            chunk = row * (2**20 // len(row))
            written = len(head)
            while written < size:
                stream.write(chunk)
                written += len(chunk)
            stream.write(b"</sheetData>" + tail)
    return path


def test_a_tab_that_unpacks_past_the_limit_is_refused_at_once_with_little_memory(workspace):
    path = inflating_workbook(workspace / "loop.xlsx", MAX_PART_BYTES + 2**20)
    assert path.stat().st_size < 8 * 2**20
    probe = textwrap.dedent("""
        import resource, subprocess, sys, time
        started = time.monotonic()
        done = subprocess.run(sys.argv[1:], capture_output=True, text=True, input="")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes
        print(done.returncode, peak, time.monotonic() - started)
        print(done.stdout + done.stderr)
    """)
    for command in (["log", "--ticket", "t", "--draft", "d"], ["status"]):
        out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "loop", *command],
                             capture_output=True, text=True, cwd=workspace, timeout=120).stdout
        code, peak, seconds = out.split("\n", 1)[0].split()
        assert int(code) == 2, out
        assert "too large to edit safely" in out and "MB" in out and "README" in out, out
        assert int(peak) < 400 * 1024, out  # kilobytes: nothing of the part was unpacked
        assert float(seconds) < 20, out
    assert logged_tickets(workspace) == []


# --- 9. relationship targets as the Open Packaging Conventions resolve them ----------------------------------------


@pytest.mark.parametrize("custom, sheet", [
    ("../../customXml/item1.xml", "worksheets/sheet1.xml"),  # climbs above the root: stays at the root
    ("/customXml/item1.xml", "/xl/worksheets/sheet1.xml"),
    ("../customXml/item1.xml", "/xl/worksheets/sheet1.xml"),
])
def test_relationship_targets_resolve_as_the_packaging_conventions_say(workspace, cli, custom, sheet):
    path = build(workspace / "loop.xlsx", drafts({2: reviewed("t-a")}), custom_target=custom, sheet_target=sheet)
    with zipfile.ZipFile(path) as archive:
        custom_xml = archive.read("customXml/item1.xml")
    trace_id = log("one").output.strip()
    assert cell(path, 3, "trace_id") == trace_id
    with zipfile.ZipFile(path) as archive:
        assert archive.read("customXml/item1.xml") == custom_xml
    cli("status")


def test_a_relationship_to_a_missing_tab_part_is_one_line(workspace):
    path = build(workspace / "loop.xlsx", drafts({2: reviewed("t-a")}))
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"worksheets/sheet1.xml", b"../../worksheets/gone.xml")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    result = log("one", code=2)
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    assert logged_tickets(workspace) == []


# --- archive: notes, threaded comments and drawings beside rows that would move ------------------------------------


def archivable(**extra) -> Tab:
    return drafts({2: reviewed("old-1", days_ago=120), 3: reviewed("old-2", days_ago=110, score="👍", comment=""),
                   4: reviewed("new-1"), 5: reviewed("new-2", score=None, comment="")}, **extra)


@pytest.mark.parametrize("extra, what", [({"notes": ["J4"]}, "notes"), ({"threads": ["J3"]}, "threaded comments"),
                                         ({"picture_row": 5}, "images or charts")])
def test_archive_refuses_to_move_rows_that_notes_or_drawings_sit_beside(workspace, cli, extra, what):
    path = build(workspace / "loop.xlsx", archivable(**extra))
    before = path.read_bytes()
    result = cli("archive", "--older-than", "30d", code=2)
    one_line(result, what, "archiving would move", "above row 2")
    assert path.read_bytes() == before


def test_archive_goes_ahead_when_notes_sit_above_the_archived_rows(workspace, cli):
    tab = drafts({2: reviewed("new-0"), 3: reviewed("old-1", days_ago=120), 4: reviewed("new-1")}, notes=["J2"])
    path = build(workspace / "loop.xlsx", tab)
    assert "Archived 1 reviewed draft" in cli("archive", "--older-than", "30d").output
    assert [cell(path, n, "trace_id") for n in (2, 3, 4)] == ["new-0", "new-1", None]
    with zipfile.ZipFile(path) as archive:
        assert b'ref="J2"' in archive.read("xl/comments1.xml")


# --- 10. a workbook reached through a link ----------------------------------------------------------------------------


def test_a_linked_workbook_is_locked_and_checked_beside_the_file_it_points_to(workspace, cli):
    shared = workspace / "shared" / "book.xlsx"
    shared.parent.mkdir()
    build(shared, drafts({2: reviewed("t-a")}))
    (workspace / "loop.xlsx").symlink_to(shared)
    (shared.parent / "~$book.xlsx").write_bytes(b"")  # Excel has the shared workbook open
    result = cli("log", "--ticket", "t", "--draft", "d")
    assert "open in Excel" in result.output and cell(shared, 3, "trace_id") is None  # it waits, pending
    (shared.parent / "~$book.xlsx").unlink()
    cli("sync")
    assert cell(shared, 3, "ticket") == "t" and (workspace / "loop.xlsx").is_symlink()
    assert (shared.parent / ".book.xlsx.lock").exists() and not (workspace / ".loop.xlsx.lock").exists()


# --- the pre-check costs little ---------------------------------------------------------------------------------------


def test_the_check_before_the_commit_reads_the_drafts_part_once(workspace):
    path = build(workspace / "loop.xlsx", drafts({n: reviewed(f"t-{n}") for n in range(2, 2002)}))
    started = time.perf_counter()
    XlsxWorkbook(path).ensure_readable(schema.DRAFTS, schema.DRAFT_HEADERS)
    assert time.perf_counter() - started < 2


def test_a_cell_update_never_lands_under_a_merge_and_says_so(workspace, caplog):
    path = build(workspace / "loop.xlsx", drafts({2: reviewed("t-a"), 3: reviewed("t-b")}))
    judge = COLUMN["judge_score"]
    merged = f"{openpyxl.utils.get_column_letter(judge - 1)}3:{openpyxl.utils.get_column_letter(judge)}3"
    build(path, drafts({2: reviewed("t-a"), 3: reviewed("t-b")}, merges=[merged]))
    XlsxWorkbook(path).write(WriteBatch(updates=[
        CellUpdate(schema.DRAFTS, 2, "judge_score", "👍", key=("trace_id", "t-a")),
        CellUpdate(schema.DRAFTS, 3, "judge_score", "👎", key=("trace_id", "t-b"))]))
    assert cell(path, 2, "judge_score") == "👍" and cell(path, 3, "judge_score") is None
    assert f"inside the merged range {merged}" in caplog.text


def test_a_workbook_written_between_the_check_and_the_write_is_read_again(workspace):
    from loop.sheets import Append

    path = build(workspace / "loop.xlsx", drafts({2: reviewed("t-a")}))
    checking = XlsxWorkbook(path)
    checking.ensure_readable(schema.DRAFTS, schema.DRAFT_HEADERS)
    XlsxWorkbook(path).write(WriteBatch(appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": "t-other"})]))
    checking.write(WriteBatch(appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": "t-mine"})]))
    assert [cell(path, n, "trace_id") for n in (2, 3, 4)] == ["t-a", "t-other", "t-mine"]
