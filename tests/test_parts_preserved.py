"""A write touches only the parts of the package it changes: everything else — a chart, an image,
a pivot table, an x14 data validation, a defined name, a custom XML part, styles — is the same,
byte for byte, after `log`, `improve`, `apply`, `judge` and `rollback`, and the workbook opens
in openpyxl, python-calamine and (where it is installed) LibreOffice."""

from __future__ import annotations

import csv
import shutil
import subprocess
import zipfile

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from loop import schema
from loop.sheets import CellUpdate, WriteBatch
from loop.sheets.xlsx import XlsxWorkbook
from tests import rich_workbook
from tests.conftest import draft, edits_tab, read_tab

FRAGILE = ["xl/charts/chart1.xml", "xl/media/logo.png", "xl/pivotTables/pivotTable1.xml",
           "xl/pivotCache/pivotCacheDefinition1.xml", "xl/pivotCache/pivotCacheRecords1.xml", "customXml/item1.xml",
           "xl/drawings/drawing1.xml", "xl/styles.xml"]
DRAFTS, STATS = "xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"
NEW_TAB = {"xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml", "xl/styles.xml"}


def parts(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def changed(before: dict, after: dict) -> set[str]:
    assert set(before) <= set(after), set(before) - set(after)  # nothing is ever dropped
    return {name for name in after if before.get(name) != after[name]}


def opens(path) -> None:
    book = openpyxl.load_workbook(path)
    assert book["Stats"]._charts and book["Stats"]._pivots and "Weeks" in book.defined_names
    calamine = CalamineWorkbook.from_path(str(path))
    for name in calamine.sheet_names:
        calamine.get_sheet_by_name(name).to_python()


def libreoffice_rows(path, folder) -> list[list[str]] | None:
    """The first tab as LibreOffice reads it, or None where LibreOffice is not installed."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        return None
    out = folder / "lo"
    subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{folder}/lo-profile", "--convert-to",
                    "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(out), str(path)],
                   check=True, capture_output=True, timeout=180)
    with open(out / (path.stem + ".csv"), encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


@pytest.mark.filterwarnings("ignore:Data Validation extension:UserWarning")  # openpyxl, reading the x14 one
def test_every_command_leaves_the_parts_it_does_not_change_byte_identical(workspace, model, cli, tmp_path):
    path = rich_workbook.build(workspace / "loop.xlsx", [
        draft(trace_id="f1"), draft(trace_id="f2", comment="wrong menu path"), draft(trace_id="s1", score="👍"),
        draft(trace_id="u1", score=None, comment=None)])
    (workspace / "prompts" / "judge.md").write_text("Down if the draft is long.\n")
    original = parts(path)

    before = parts(path)
    cli("log", "--ticket", "A new ticket", "--draft", "A new draft")
    # the first date cell adds a date format; the first delivery gives the workbook its loop.workbook id
    assert changed(before, parts(path)) == {DRAFTS, "xl/styles.xml", "docProps/custom.xml", "_rels/.rels",
                                            "[Content_Types].xml"}
    before = parts(path)
    cli("log", "--ticket", "Another ticket", "--draft", "Another draft")
    assert changed(before, parts(path)) == {DRAFTS}

    before = parts(path)
    cli("improve")
    title = edits_tab(path)
    # the Edits tab, the Runs tab, the Replay tab, Drafts (each failure's pattern), and the feature
    # property bag that gives the approve column Excel 365's in-cell checkbox
    assert changed(before, parts(path)) - NEW_TAB == {DRAFTS, "xl/featurePropertyBag/featurePropertyBag.xml"} | {
        f"xl/worksheets/sheet{n}.xml" for n in (3, 4, 5)}

    XlsxWorkbook(path).write(WriteBatch(updates=[CellUpdate(title, 2, "approve", True)]))  # a reviewer ticks
    before = parts(path)
    cli("apply")
    assert changed(before, parts(path)) == {"xl/worksheets/sheet3.xml"}
    assert read_tab(path, title)[0]["status"] == "applied"

    before = parts(path)
    cli("judge")
    assert changed(before, parts(path)) == {DRAFTS}

    before = parts(path)
    cli("rollback")
    assert changed(before, parts(path)) == {"xl/worksheets/sheet3.xml"}

    before = parts(path)
    cli("report")  # a new Dashboard tab with a chart of its own, beside the Stats tab's chart
    made = changed(before, parts(path))
    dashboard = {n for n in made if n.startswith(("xl/worksheets/", "xl/drawings/", "xl/charts/"))}
    assert made - dashboard <= NEW_TAB and len(dashboard) == 5 and not dashboard & set(FRAGILE)
    before = parts(path)
    cli("report")  # replaced whole, in the same parts: its own chart is redrawn, the Stats chart stays
    assert changed(before, parts(path)) <= dashboard | {"[Content_Types].xml"}
    assert sum(n.startswith("xl/charts/") for n in parts(path)) == 2

    after = parts(path)
    for name in FRAGILE + [STATS, "xl/drawings/_rels/drawing1.xml.rels", "xl/worksheets/_rels/sheet2.xml.rels"]:
        if name != "xl/styles.xml":
            assert after[name] == original[name], name
    assert rich_workbook.X14_VALIDATION.encode() in after[DRAFTS]
    opens(path)
    rows = read_tab(path, schema.DRAFTS)
    assert [r["trace_id"] for r in rows][:4] == ["f1", "f2", "s1", "u1"] and rows[4]["ticket"] == "A new ticket"
    assert rows[5]["ticket"] == "Another ticket"
    assert rows[3]["judge_score"] in ("👍", "👎") and rows[3]["score"] is None
    book = openpyxl.load_workbook(path)
    drafts = book[schema.DRAFTS]
    assert drafts.freeze_panes == "A2" and drafts.auto_filter.ref.startswith("A1:")
    assert drafts["A1"].fill.fgColor.rgb.endswith("305496") and drafts["A1"].font.b
    lo = libreoffice_rows(path, tmp_path)
    if lo is not None:
        ticket, created = lo[0].index("ticket"), lo[0].index("created_at")
        assert "trace_id" in lo[0] and lo[5][ticket] == "A new ticket"
        assert lo[5][created].startswith("20")  # the date cell, shown as a date


@pytest.mark.skipif(not (shutil.which("soffice") or shutil.which("libreoffice")), reason="LibreOffice is not installed")
def test_libreoffice_reads_what_the_tool_wrote(workspace, model, cli, tmp_path):
    path = rich_workbook.build(workspace / "loop.xlsx", [draft(trace_id="f1"), draft(trace_id="f2", comment="wrong menu path")])
    cli("log", "--ticket", "=1+1 stays text\r\nsecond line", "--draft", "d")
    rows = libreoffice_rows(path, tmp_path)
    ticket = rows[0].index("ticket")
    assert rows[3][0] and rows[3][ticket].replace("\r\n", "\n") == "=1+1 stays text\nsecond line"  # text, not 2


@pytest.mark.parametrize("style", ["openpyxl", "shared strings", "prefixed", "shared strings, prefixed"])
def test_workbooks_as_other_programs_write_them_take_every_command(workspace, model, cli, style):
    from tests import excel_style
    from tests.conftest import write_workbook

    path = write_workbook(workspace / "loop.xlsx", [
        draft(trace_id="f1"), draft(trace_id="f2", comment="wrong menu path"), draft(trace_id="s1", score="👍"),
        draft(trace_id="u1", score=None, comment=None, draft="A long reply. " * 60)])
    if "shared" in style:
        excel_style.shared_strings(path)
    if "prefixed" in style:
        excel_style.prefixed(path)
    (workspace / "prompts" / "judge.md").write_text("Down if the draft is long.\n")
    cli("log", "--ticket", "A new ticket", "--draft", "A new draft")
    assert "Judged 2 of 2" in cli("judge").output
    cli("improve")
    title = edits_tab(path)
    XlsxWorkbook(path).write(WriteBatch(updates=[CellUpdate(title, 2, "approve", True)]))
    assert "v1 → v2" in cli("apply").output
    cli("rollback")
    rows = {r["trace_id"]: r for r in read_tab(path, schema.DRAFTS)}
    assert rows["f1"]["comment"] == "too long, two sentences would do" and rows["s1"]["score"] == "👍"
    assert rows["u1"]["judge_score"] == "👎" and rows["u1"]["score"] is None
    assert [r for r in rows.values() if r["ticket"] == "A new ticket"][0]["judge_score"] == "👍"
    assert read_tab(path, title)[0]["status"] == "rolled back"
    calamine = CalamineWorkbook.from_path(str(path))
    assert calamine.get_sheet_by_name(schema.DRAFTS).to_python()[0][:len(schema.DRAFT_HEADERS)] == schema.DRAFT_HEADERS
