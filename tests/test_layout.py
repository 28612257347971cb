"""The layout a reviewer works in, the same on a local workbook and a Google Sheet: the order of the
Edits, Replay and Drafts columns, what stays frozen, one link per evidence case (and per success an
edit did worse on), rows as tall as their text (capped), the Dashboard's headline for a known
workbook, and the marks on the current and the rolled-back versions. Old Edits tabs, in the old
column order, still apply; a tab loop did not write — a chartsheet included — is never replaced."""

from __future__ import annotations

import json
import re
import zipfile

import openpyxl
import pytest

from loop import schema
from loop.measure.report import DASHBOARD, VERSION_HEADERS
from loop.prompt_store import PromptStore
from tests.backends import KEY
from tests.conftest import PROMPT, draft, write_workbook
from tests.test_report import create, dashboard_rows, history, known_drafts, section

LINE = "Be friendly and professional in every reply."


def tab_titles(sheet, prefix: str) -> str:
    return next(t for t in sheet.titles() if t.startswith(prefix))


def headers_of(sheet, title: str) -> list[str]:
    if sheet.name == "xlsx":
        return [c.value for c in openpyxl.load_workbook(sheet.path)[title][1]]
    return sheet.fake.values(KEY, title)[0]


def frozen(sheet, title: str) -> tuple[int, int]:
    """(frozen rows, frozen columns) of a tab."""
    if sheet.name == "xlsx":
        corner = openpyxl.load_workbook(sheet.path)[title].freeze_panes
        cell = openpyxl.utils.cell.coordinate_from_string(corner)
        return cell[1] - 1, openpyxl.utils.column_index_from_string(cell[0]) - 1
    grid = sheet.fake.properties(KEY, title)["gridProperties"]
    return grid.get("frozenRowCount", 0), grid.get("frozenColumnCount", 0)


def links(sheet, title: str) -> dict[tuple[int, str], list[tuple[str, int]]]:
    """(sheet row, header) → the distinct (tab, row) targets the cell links to."""
    headers = headers_of(sheet, title)
    found: dict[tuple[int, str], list[tuple[str, int]]] = {}
    if sheet.name == "xlsx":
        tab = openpyxl.load_workbook(sheet.path)[title]
        for row in tab.iter_rows():
            for cell in row:
                if cell.hyperlink is not None:  # a workbook holds one link a cell
                    name, target = cell.hyperlink.location.split("!A")
                    found[(cell.row, headers[cell.column - 1])] = [(name.strip("'").replace("''", "'"), int(target))]
        return found
    ids = {sheet.fake.properties(KEY, t)["sheetId"]: t for t in sheet.fake.titles(KEY)}
    for (row, column), runs in sheet.fake.runs(KEY, title).items():
        targets = []
        for run in runs:
            uri = run["format"].get("link", {}).get("uri")
            if uri:
                gid, cell = uri[len("#gid="):].split("&range=A")
                targets.append((ids[int(gid)], int(cell)))
        if targets:
            found[(row + 1, headers[column])] = list(dict.fromkeys(targets))
    return found


def row_height(sheet, title: str, row: int) -> float | None:
    """A row's height in lines (15 points, or 21 pixels, a line); None when it was left as it is."""
    if sheet.name == "xlsx":
        height = openpyxl.load_workbook(sheet.path)[title].row_dimensions[row].height
        return height / 15 if height else None
    pixels = sheet.fake.sizes(KEY, title).get(("ROWS", row - 1))
    return pixels / 21 if pixels else None


@pytest.fixture
def improved(sheet, workspace, model, cli):
    """Four failures and two successes (one a "fragile" case the edit's guard hurts), one edit replayed."""
    rows = [draft(trace_id=f"v{i}", ticket_id=f"TH-{10 + i}", comment=f"too long, reply {i} rambles " + "on " * 30)
            for i in range(4)]
    rows += [draft(trace_id="ok1", ticket_id="TH-90", score="👍", comment="good", ticket="Invoices? fragile case",
                   draft="A long logged draft. " * 80),
             draft(trace_id="ok2", ticket_id="TH-91", score="👍", comment="good", ticket="How do I add a member?")]
    sheet.create(rows)
    model.queue({}, {"json": {"edits": [
        {"pattern": "Too verbose", "find": LINE, "replace": LINE + "\n- Guard against too verbose: check before sending.",
         "rationale": "Reviewers keep saying the replies run long.", "evidence": ["v0", "v1", "v2"]},
        {"pattern": "p", "find": "Not in the prompt.", "replace": "x", "rationale": "r", "evidence": ["v3"]},
    ]}})
    cli("improve")
    return sheet


def test_the_edits_tab_reads_in_the_order_a_reviewer_decides_with_its_first_columns_frozen(improved):
    sheet = improved
    title = tab_titles(sheet, schema.EDITS_PREFIX)
    headers = headers_of(sheet, title)
    # three cited failures and one success the edit did worse on: four case columns
    assert headers == schema.edit_headers(4)
    assert headers[:8] == ["approve", "pattern", "failures", "change", "fixed_cited", "fixed_held_out", "regressed",
                           "cited_comments"]
    assert headers[8:12] == ["case_1", "case_2", "case_3", "case_4"]
    assert headers[12:15] == ["rationale", "check", "status"]
    assert headers.index("find") > headers.index("status") and headers[-4:-1] == ["edit_id", "evidence", "applied_version"]
    assert frozen(sheet, title) == (1, 2)  # the header row, approve and pattern
    rows = sheet.tab(title)
    assert rows[0]["pattern"] == "Too verbose" and rows[0]["failures"] == 4
    assert rows[0]["change"] == "Add: - Guard against too verbose: check before sending."  # an addition: the new line only
    assert rows[1]["change"].startswith("not shown: rejected — ")  # a rejected edit: why, no diff
    if sheet.name == "xlsx":  # no header is cut: every column is at least as wide as its header
        tab = openpyxl.load_workbook(sheet.path)[title]
        for index, header in enumerate(headers, start=1):
            assert tab.column_dimensions[openpyxl.utils.get_column_letter(index)].width >= len(header) + 1, header
    else:
        sizes = sheet.fake.sizes(KEY, title)
        assert all(sizes[("COLUMNS", i)] >= 7 * (len(h) + 1) for i, h in enumerate(headers))


def test_each_evidence_case_has_one_link_to_its_own_drafts_row(improved):
    sheet = improved
    title = tab_titles(sheet, schema.EDITS_PREFIX)
    found = links(sheet, title)
    drafts_rows = {r["trace_id"]: n for n, r in enumerate(sheet.tab(schema.DRAFTS), start=2)}
    edit = sheet.tab(title)[0]
    assert edit["evidence"] == "v0, v1, v2"
    for n, trace_id in enumerate(["v0", "v1", "v2"], start=1):
        assert edit[f"case_{n}"] == f"TH-{10 + n - 1}"
        assert found[(2, f"case_{n}")] == [(schema.DRAFTS, drafts_rows[trace_id])]  # one link, its own row
    # the reviewers' words, a line a case, and no other cell of the row links anywhere
    assert edit["cited_comments"].splitlines()[0].startswith("TH-10 “How do I export my timesheets?” 👎 too long")
    assert {header for row, header in found if row == 2} == {"case_1", "case_2", "case_3", "case_4"}
    assert all(len(targets) == 1 for targets in found.values())


def test_each_success_the_edit_did_worse_on_is_named_and_linked_to_its_replay_row(improved):
    sheet = improved
    title, replay = tab_titles(sheet, schema.EDITS_PREFIX), tab_titles(sheet, schema.REPLAY_PREFIX)
    edit = sheet.tab(title)[0]
    assert edit["regressed"] == "1/2" and edit["check"].endswith("worse on: TH-90")
    assert edit["case_4"] == "TH-90 worse"
    (target,) = links(sheet, title)[(2, "case_4")]
    replay_rows = sheet.tab(replay)
    assert target[0] == replay and replay_rows[target[1] - 2]["trace_id"] == "ok1"


def test_the_replay_tab_has_a_block_per_edit_verdicts_in_words_and_rows_sized_to_their_text(improved):
    sheet = improved
    title = tab_titles(sheet, schema.REPLAY_PREFIX)
    assert headers_of(sheet, title) == schema.REPLAY_HEADERS
    assert schema.REPLAY_HEADERS[:6] == ["verdict", "kind", "case", "ticket", "comment", "logged_draft"]
    assert schema.REPLAY_HEADERS[5:7] == ["logged_draft", "candidate_draft"]  # side by side
    assert frozen(sheet, title) == (1, 3)
    rows = sheet.tab(title)
    heading = rows[0]
    assert heading["verdict"].startswith("Edit 1 of 1 · Too verbose · + “- Guard against too verbose")
    assert "worse on 1/2 successes" in heading["verdict"] and not heading["trace_id"]
    cases = rows[1:]
    assert cases[0]["trace_id"] == "ok1" and cases[0]["verdict"] == "better without"  # what got worse comes first
    assert {c["verdict"] for c in cases[1:]} <= {"better with the edit", "no difference"}
    assert [c["kind"] for c in cases].count("cited") == 3
    # the logged draft of ok1 runs long: its row is as tall as the cap; the heading row is one line
    assert row_height(sheet, title, 3) == schema.REPLAY_LINES and row_height(sheet, title, 2) in (None, 1)
    if sheet.name == "xlsx":
        tab = openpyxl.load_workbook(sheet.path, rich_text=True)[title]
        assert tab["A2"].fill.fgColor.rgb.endswith("DDEBF7") and tab["A2"].font.b  # the block's heading
        assert tab["A3"].font.color.rgb.endswith("C00000") and tab["A3"].fill.fgColor.rgb.endswith("FBE4E4")
        new = tab.cell(3, schema.REPLAY_HEADERS.index("candidate_draft") + 1).value
        marked = [str(b.text) for b in new if hasattr(b, "font") and b.font.color is not None
                  and str(b.font.color.rgb).endswith("00B050")]
    else:
        formats = sheet.fake.formats(KEY, title)
        assert formats[(1, 0)]["backgroundColorStyle"]["rgbColor"]["blue"] == pytest.approx(0xF7 / 255)
        assert formats[(2, 0)]["textFormat"]["foregroundColorStyle"]["rgbColor"]["red"] == pytest.approx(0xC0 / 255)
        column = schema.REPLAY_HEADERS.index("candidate_draft")
        text = sheet.tab(title)[1]["candidate_draft"]
        runs = sheet.fake.runs(KEY, title)[(2, column)]
        bounds = [r["startIndex"] for r in runs] + [len(text)]
        marked = [text[a:b] for r, a, b in zip(runs, bounds, bounds[1:]) if "foregroundColorStyle" in r["format"]]
    assert "".join(marked).strip() == "[guarded: too verbose]"  # what the edit changed, marked


def test_drafts_tabs_loop_creates_are_laid_out_for_scoring(workspace, cli, google, monkeypatch):
    from tests.backends import GoogleSheet, XlsxSheet

    monkeypatch.delenv("LOOP_SHEET", raising=False)
    cli("init", "--force")
    google.add_spreadsheet(KEY, {"Sheet1": []})
    cli("init", "--sheet", KEY)
    long_ticket = "My invoices do not add up and I have tried everything. " * 12
    for sheet in (XlsxSheet(workspace), GoogleSheet(google)):
        assert headers_of(sheet, schema.DRAFTS)[:5] == ["ticket", "draft", "score", "comment", "final_reply"]
        assert headers_of(sheet, schema.DRAFTS) == schema.DRAFT_HEADERS
        assert frozen(sheet, schema.DRAFTS) == (1, 1)  # the header row and the ticket
    cli("log", "--sheet", KEY, "--ticket", long_ticket, "--draft", "Short.")
    cli("log", "--sheet", KEY, "--ticket", "One line?", "--draft", "Yes.")
    sheet = GoogleSheet(google)
    assert row_height(sheet, schema.DRAFTS, 2) == schema.DRAFT_LINES  # 660 characters at 45: capped at 6 lines
    assert row_height(sheet, schema.DRAFTS, 3) is None  # one line: left as Google makes it
    assert schema.draft_lines({"ticket": long_ticket}) == schema.DRAFT_LINES
    assert schema.draft_lines({"ticket": "One line?"}) is None
    cli("log", "--ticket", long_ticket, "--draft", "Short.")
    cli("log", "--ticket", "One line?", "--draft", "Yes.")
    sheet = XlsxSheet(workspace)
    assert row_height(sheet, schema.DRAFTS, 2) == schema.DRAFT_LINES  # the same rows, the same heights, locally
    assert row_height(sheet, schema.DRAFTS, 3) is None


def test_a_row_logged_over_a_formatted_empty_row_takes_the_height_of_its_text(workspace, cli):
    """A row Excel stored with a height of its own but no value is taken by `loop log`; its height becomes
    the text's, and the row below keeps the height it had."""
    from tests.backends import XlsxSheet

    sheet = XlsxSheet(workspace)
    sheet.create([])
    book = openpyxl.load_workbook(sheet.path)
    drafts = book[schema.DRAFTS]
    for row in (2, 3):
        drafts.row_dimensions[row].height = 40
    book.save(sheet.path)
    cli("log", "--ticket", "My invoices do not add up and I have tried everything. " * 12, "--draft", "Short.")
    assert row_height(sheet, schema.DRAFTS, 2) == schema.DRAFT_LINES
    assert row_height(sheet, schema.DRAFTS, 3) == 40 / 15


def test_the_committed_template_is_laid_out_for_scoring():
    from pathlib import Path

    book = openpyxl.load_workbook(Path(__file__).resolve().parent.parent / "sheets_template.xlsx")
    drafts = book[schema.DRAFTS]
    assert [c.value for c in drafts[1]][:5] == ["ticket", "draft", "score", "comment", "final_reply"]
    assert drafts.freeze_panes == "B2"


def known(sheet, workspace, rolled_back: bool = False) -> None:
    history(workspace)  # v1, v2 (edit e-short), v3 (edit e-cite)
    if rolled_back:
        store = PromptStore(workspace / "prompts" / "support_agent.md")
        store.rollback()  # v3 undone: v2 is current again
    create(sheet, known_drafts())


def test_the_dashboard_opens_with_a_headline_for_a_known_workbook(sheet, workspace, cli):
    known(sheet, workspace)
    figures = json.loads(cli("report", "--json").stdout)
    rows = dashboard_rows(sheet)
    day = PromptStore(workspace / "prompts" / "support_agent.md").periods()[3][0][0]
    from loop.measure.report import _day

    expected = (f"Now v3, since {_day(day)}: 25% 👍 (17–35%) of 80 reviews; -40 points on v2, worse (p < 0.001); "
                "its edit: helped")
    assert rows[0][0] == expected and figures["headline"] == expected
    assert rows[1][0].startswith("Dashboard, refreshed") and rows[2][0].startswith("⚠ v3's 👍 rate (25% of 80)")
    assert "p < 0.001" in rows[2][0]  # the warning words its p-value as the headline and the table do
    shown = section(rows, VERSION_HEADERS)
    assert [r["p"] for r in shown] == [None, "< 0.001", "< 0.001"]
    assert [r["verdict"] for r in shown] == [None, "better", "worse"]
    if sheet.name == "xlsx":
        tab = openpyxl.load_workbook(sheet.path, rich_text=True)[DASHBOARD]
        header = next(r for r in range(1, 60) if tab.cell(r, 1).value == "version")
        drafts = VERSION_HEADERS.index("drafts") + 1
        # numbers under their header, in one format: right-aligned both, whole numbers
        assert tab.cell(header, drafts).alignment.horizontal == "right"
        assert {tab.cell(header + n, VERSION_HEADERS.index("👍 rate %") + 1).number_format for n in (1, 2, 3)} == {"0"}
        assert tab.cell(header + 3, VERSION_HEADERS.index("verdict") + 1).font.color.rgb.endswith("C00000")
        assert tab.cell(3, 1).font.color.rgb.endswith("C00000")  # the warning
        coloured = [b for b in tab["A1"].value if hasattr(b, "font") and b.font.color is not None]
        assert [(str(b.text), b.font.color.rgb[-6:]) for b in coloured] == [("worse (p < 0.001)", "C00000"),
                                                                             ("helped", "00692E")]
    else:
        formats = sheet.fake.formats(KEY, DASHBOARD)
        values = sheet.fake.values(KEY, DASHBOARD)
        header = next(r for r, row in enumerate(values) if row and row[0] == "version")
        drafts = VERSION_HEADERS.index("drafts")
        assert formats[(header, drafts)]["horizontalAlignment"] == "RIGHT"
        assert formats[(header + 1, VERSION_HEADERS.index("👍 rate %"))]["numberFormat"]["pattern"] == "0"
        assert formats[(2, 0)]["textFormat"]["foregroundColorStyle"]["rgbColor"]["red"] == pytest.approx(0xC0 / 255)
        runs = sheet.fake.runs(KEY, DASHBOARD)[(0, 0)]
        assert sum("foregroundColorStyle" in r["format"] for r in runs) == 2


def test_the_current_and_the_rolled_back_versions_are_marked_in_the_table_and_the_chart(sheet, workspace, cli):
    known(sheet, workspace, rolled_back=True)
    figures = json.loads(cli("report", "--json").stdout)
    assert [(v["version"], v["state"]) for v in figures["versions"]] == [
        ("v1", ""), ("v2", "current"), ("v3", "rolled back")]
    assert figures["warning"] == ""  # v3 was worse, and it is rolled back already
    rows = dashboard_rows(sheet)
    assert rows[0][0].startswith("Now v2, since ") and "(v3 rolled back on " in rows[0][0]
    assert "+27 points on v1, better (p < 0.001); its edit: helped" in rows[0][0]
    shown = section(rows, VERSION_HEADERS)
    assert [r["version"] for r in shown] == ["v1", "v2 (current)", "v3 (rolled back)"]
    first = next(n for n, row in enumerate(rows, start=1) if row and row[0] == "v1")
    if sheet.name == "xlsx":
        book = openpyxl.load_workbook(sheet.path)
        tab = book[DASHBOARD]
        assert tab.cell(first + 1, 1).font.b and tab.cell(first + 1, 1).fill.fgColor.rgb.endswith("E2F0D9")
        assert tab.cell(first + 2, 1).font.i and tab.cell(first + 2, 1).font.color.rgb.endswith("808080")
        with zipfile.ZipFile(sheet.path) as archive:
            chart = next(archive.read(n) for n in archive.namelist() if n.startswith("xl/charts/chart"))
        # the chart's categories are the marked version cells
        assert f"'Dashboard'!$A${first}:$A${first + 2}".encode() in chart.replace(b"Dashboard!", b"'Dashboard'!")
    else:
        formats = sheet.fake.formats(KEY, DASHBOARD)
        assert formats[(first, 0)]["textFormat"]["bold"] and formats[(first + 1, 0)]["textFormat"]["italic"]
        domain = sheet.fake.charts(KEY, DASHBOARD)[0]["spec"]["basicChart"]["domains"][0]["domain"]
        area = domain["sourceRange"]["sources"][0]
        assert (area["startRowIndex"], area["endRowIndex"], area["startColumnIndex"]) == (first - 1, first + 2, 0)


def test_an_edits_tab_in_the_old_column_order_is_still_read_by_name(workspace, cli):
    """Tabs written before the new layout: approve, edit_id, pattern, find, replace, … in that order."""
    old = ["approve", "edit_id", "pattern", "find", "replace", "rationale", "evidence", "status", "check",
           "applied_version", "fixed_cited", "fixed_held_out", "regressed", "change", "about_pattern", "cited_comments"]
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="t1")])
    book = openpyxl.load_workbook(path)
    tab = book.create_sheet("Edits 2026-10-01 0900")
    tab.append(old)
    edit = {"approve": True, "edit_id": "e-old", "pattern": "Tone", "find": LINE, "replace": "Be warm in every reply.",
            "rationale": "r", "evidence": "t1", "status": "proposed"}
    tab.append([edit.get(h) for h in old])
    book.save(path)
    assert "Applied 1 edit" in cli("apply").output
    assert "Be warm in every reply." in (workspace / "prompts" / "support_agent.md").read_text()
    row = {h: c.value for h, c in zip(old, openpyxl.load_workbook(path)["Edits 2026-10-01 0900"][2])}
    assert (row["status"], row["applied_version"]) == ("applied", "v2")
    assert [c.value for c in openpyxl.load_workbook(path)["Edits 2026-10-01 0900"][1]] == old  # left in its order


def test_a_chartsheet_called_dashboard_is_never_replaced(workspace, cli):
    from openpyxl.chart import BarChart, Reference

    path = write_workbook(workspace / "loop.xlsx", [draft(score="👍", prompt_version="v1")])
    book = openpyxl.load_workbook(path)
    chartsheet = book.create_chartsheet(DASHBOARD)
    chart = BarChart()
    chart.add_data(Reference(book[schema.DRAFTS], min_col=1, min_row=1, max_row=2))
    chartsheet.add_chart(chart)
    book.save(path)
    before = path.read_bytes()
    result = cli("report", code=2)
    assert f"a tab {DASHBOARD!r} that loop did not write" in result.output
    assert path.read_bytes() == before


def test_a_chart_sheet_called_dashboard_on_google_is_never_replaced(workspace, cli, google):
    google.add_spreadsheet(KEY, {schema.DRAFTS: [schema.DRAFT_HEADERS]}, charts=(DASHBOARD,))
    before = google.titles(KEY)
    result = cli("report", "--sheet", KEY, code=2)
    assert f"a tab {DASHBOARD!r} that loop did not write" in result.output
    assert google.titles(KEY) == before and not any(
        "deleteSheet" in r for q in google.requests if q["path"].endswith(":batchUpdate") for r in q["body"]["requests"])


def test_approve_is_an_excel_checkbox_that_every_reader_reads_as_true_or_false(workspace, model, cli):
    from python_calamine import CalamineWorkbook

    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id=f"t{i}") for i in range(3)])
    cli("improve", "--no-check")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        types = archive.read("[Content_Types].xml")
        rels = archive.read("xl/_rels/workbook.xml.rels")
        styles = archive.read("xl/styles.xml")
    assert "xl/featurePropertyBag/featurePropertyBag.xml" in names
    assert b"application/vnd.ms-excel.featurepropertybag+xml" in types and b"/relationships/FeaturePropertyBag" in rels
    title = next(t for t in openpyxl.load_workbook(path).sheetnames if t.startswith(schema.EDITS_PREFIX))
    cell = openpyxl.load_workbook(path)[title]["A2"]
    assert cell.value is False and cell.number_format == '"TRUE";"TRUE";"FALSE"'
    from loop.sheets.package import Package

    package = Package(str(path))
    sheet_xml = package.read(dict(package.sheets())[title])
    package.close()
    style = int(re.search(rb'<c r="A2" s="(\d+)"', sheet_xml).group(1))
    xfs = styles.split(b"<cellXfs")[1].split(b"</cellXfs>")[0].split(b"<xf ")[1:]
    assert b"xfComplement" in xfs[style]  # the in-cell checkbox's cell format
    assert CalamineWorkbook.from_path(str(path)).get_sheet_by_name(title).to_python()[1][0] is False
    # ticked, it applies as before; a second improve reuses the same part
    from loop.sheets import CellUpdate, WriteBatch
    from loop.sheets.xlsx import XlsxWorkbook

    XlsxWorkbook(path).write(WriteBatch(updates=[CellUpdate(title, 2, "approve", True)]))
    assert "Applied 1 edit" in cli("apply").output
    assert (workspace / "prompts" / "support_agent.md").read_text() != PROMPT


def test_a_feature_property_bag_of_another_shape_is_left_alone_and_approve_stays_plain(tmp_path):
    from loop.collect import workbook_template
    from loop.sheets.package import FEATURE_BAG_CONTENT, FEATURE_BAG_TYPE, Package

    path = tmp_path / "book.xlsx"
    workbook_template.build(path)
    theirs = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<FeaturePropertyBags '
              b'xmlns="http://schemas.microsoft.com/office/spreadsheetml/2022/featurepropertybag"><bag type="Other"/>'
              b"</FeaturePropertyBags>")
    with zipfile.ZipFile(path) as source:
        parts = {n: source.read(n) for n in source.namelist()}
    parts["xl/featurePropertyBag/featurePropertyBag.xml"] = theirs
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>", f'<Relationship Id="rId99" Type="{FEATURE_BAG_TYPE}" '
                             f'Target="featurePropertyBag/featurePropertyBag.xml"/></Relationships>'.encode())
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", f'<Override PartName="/xl/featurePropertyBag/featurePropertyBag.xml" '
                     f'ContentType="{FEATURE_BAG_CONTENT}"/></Types>'.encode())
    with zipfile.ZipFile(path, "w") as target:
        for name, data in parts.items():
            target.writestr(name, data)
    package = Package(str(path))
    assert package.checkbox_style() is None and not package.added
    package.close()
