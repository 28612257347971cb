"""An Edits tab a reviewer can decide from, on both backends: proposed edits first, rejected ones
after them greyed and with no checkbox; the change readable (a rewrite's old passage struck through in
red above the new one in green); each cited case linked to its Drafts row, with what the reviewer said;
the pattern's description and size; wrapped text in rows tall enough to read it. Columns are found by
name (tests/test_layout.py holds their order)."""

from __future__ import annotations

import openpyxl
import pytest

from loop import schema
from tests.backends import KEY
from tests.conftest import draft

COLUMN = {name: i for i, name in enumerate(schema.edit_headers(2))}  # the fixture's edit cites two failures
LINE = "Be friendly and professional in every reply."


@pytest.fixture
def improved(sheet, workspace, model, cli):
    rows = [draft(trace_id=f"v{i}", comment=f"too long, reply {i} rambles") for i in range(4)]
    sheet.create(rows)
    model.queue({}, {"json": {"edits": [
        {"pattern": "p", "find": "Read the ticket", "replace": "Read the whole ticket", "rationale": "r",
         "evidence": ["not-a-failure"]},  # rejected: evidence that is no failure
        {"pattern": "Too verbose", "find": LINE, "replace": "Be brief, friendly and professional in every reply.",
         "rationale": "Reviewers keep saying the replies run long.", "evidence": ["v0", "v2"]},
    ]}})
    cli("improve", "--no-check")
    title = next(t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX))
    return sheet, title


def test_proposed_edits_come_first_and_rejected_ones_are_greyed_without_a_checkbox(improved):
    sheet, title = improved
    rows = sheet.tab(title)
    assert [r["status"] for r in rows] == ["proposed", "rejected"]
    assert rows[0]["approve"] is False and rows[1]["approve"] in (None, "")
    if sheet.name == "xlsx":
        tab = openpyxl.load_workbook(sheet.path)[title]
        assert [str(v.sqref) for v in tab.data_validations.dataValidation] == ["A2"]  # not row 3
        assert tab["B3"].font.color.rgb.endswith("808080") and tab["B2"].font.color.rgb != "FF808080"
    else:
        checks = [v for v in sheet.fake.validations(KEY, title) if v["rule"]["condition"]["type"] == "BOOLEAN"]
        assert [(v["range"]["startRowIndex"], v["range"]["endRowIndex"]) for v in checks] == [(1, 2)]
        formats = sheet.fake.formats(KEY, title)
        grey = formats[(2, 1)]["textFormat"]["foregroundColorStyle"]["rgbColor"]
        assert grey["red"] == grey["green"] == grey["blue"] == pytest.approx(0.5)
        assert "foregroundColorStyle" not in formats.get((1, 1), {}).get("textFormat", {})


def test_the_change_is_a_diff_with_removed_text_struck_in_red_and_added_text_green(improved):
    sheet, title = improved
    assert sheet.tab(title)[0]["find"] == LINE  # find and replace stay plain, for machines
    if sheet.name == "xlsx":
        cell = openpyxl.load_workbook(sheet.path, rich_text=True)[title].cell(2, COLUMN["change"] + 1).value
        runs = [(str(block.text) if hasattr(block, "text") else str(block),
                 getattr(getattr(block, "font", None), "strike", None),
                 getattr(getattr(getattr(block, "font", None), "color", None), "rgb", None)) for block in cell]
    else:
        text = sheet.tab(title)[0]["change"]
        found = sheet.fake.runs(KEY, title)[(1, COLUMN["change"])]
        bounds = [r["startIndex"] for r in found] + [len(text)]
        runs = [(text[a:b], r["format"].get("strikethrough"),
                 _hex(r["format"].get("foregroundColorStyle", {}).get("rgbColor")))
                for r, a, b in zip(found, bounds, bounds[1:])]
    added = [t for t, strike, color in runs if color and color.endswith("00B050")]
    removed = [t for t, strike, color in runs if strike and color and color.endswith("C00000")]
    # a rewrite: the old line struck through in red, the new one beneath it in green, each after its label
    assert removed == [LINE] and added == ["Be brief, friendly and professional in every reply."]
    assert "".join(t for t, strike, color in runs) == "Before: " + LINE + "\nAfter: " + added[0]
    assert [t for t, strike, color in runs if not strike and not color] == ["Before: ", "\n", "After: "]


def test_the_change_says_which_line_is_old_in_a_workbook_saved_without_rich_text(improved, tmp_path):
    """A script that loads and saves the workbook with openpyxl keeps cell values, not their runs;
    a CSV round trip keeps less. The labels still tell the old passage from the new."""
    import csv

    sheet, title = improved
    if sheet.name == "xlsx":
        openpyxl.load_workbook(sheet.path).save(tmp_path / "resaved.xlsx")
        tab = openpyxl.load_workbook(tmp_path / "resaved.xlsx", rich_text=True)[title]
        assert type(tab.cell(2, COLUMN["change"] + 1).value) is str  # the runs, strike and colours are gone
        values = [[c.value for c in row] for row in tab.iter_rows()]
    else:
        values = sheet.fake.values(KEY, title)
    with open(tmp_path / "edits.csv", "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(values)
    with open(tmp_path / "edits.csv", newline="", encoding="utf-8") as back:
        change = list(csv.reader(back))[1][COLUMN["change"]]
    assert change == f"Before: {LINE}\nAfter: Be brief, friendly and professional in every reply."


@pytest.mark.parametrize("find, replace, shown", [
    ("Be kind.", "Be kind.\nSign with your name.", "Add: Sign with your name."),
    ("Be kind.\nBe quick.", "", "Remove: Be kind.\nRemove: Be quick."),  # every line labelled
    ("- Be kind.\n- Be quick.\n- Escalate.", "- Be kind.\n- Be brief.\n- Escalate.",
     "- Be kind.\nBefore: - Be quick.\nAfter: - Be brief.\n- Escalate."),  # line by line: kept lines bare
    ("Read the ticket and search the knowledge base before you answer, and copy the menu path exactly as the "
     "article gives it, word for word.",
     "Read the whole ticket and search the knowledge base before you answer, and copy the menu path exactly as "
     "the article gives it, word for word.",
     "Before: Read the ticket and search the knowledge base before you answer, and copy the menu path exactly as "
     "the article gives it, word for word.\nAfter: Read the whole ticket and search the knowledge base before you answer, and "
     "copy the menu path exactly as the article gives it, word for word."),  # a long line changed in a word: both, words marked
])
def test_every_form_of_change_labels_its_old_and_new_lines_in_the_text(find, replace, shown):
    from loop.improver.review_tabs import ADDED, REMOVED, diff

    change = diff(find, replace)
    assert str(change) == shown
    marked = [(run.text, run.strike, run.color) for run in change.runs if run.color]
    assert all(strike for _, strike, color in marked if color == REMOVED)
    assert all(not strike for _, strike, color in marked if color == ADDED)
    if "whole" in replace:
        assert [text for text, _, color in marked] == [" whole"]  # only the word the edit adds


def _hex(rgb: dict | None) -> str | None:
    if not rgb:
        return None
    return "".join(f"{round(rgb.get(c, 0) * 255):02X}" for c in ("red", "green", "blue"))


def test_each_cited_case_links_to_its_drafts_row_with_what_the_reviewer_said(improved):
    sheet, title = improved
    row = sheet.tab(title)[0]
    assert row["evidence"] == "v0, v2"  # the trace ids, as machines read them
    assert row["cited_comments"] == ("v0 “How do I export my timesheets?” 👎 too long, reply 0 rambles\n"
                                     "v2 “How do I export my timesheets?” 👎 too long, reply 2 rambles")
    assert row["about_pattern"].startswith("Too verbose: 4 failures; this edit cites 2.")
    assert (row["case_1"], row["case_2"]) == ("v0", "v2")  # no ticket id: the start of the trace id
    if sheet.name == "xlsx":
        tab = openpyxl.load_workbook(sheet.path)[title]
        links = [tab.cell(2, COLUMN[f"case_{n}"] + 1).hyperlink.location for n in (1, 2)]
        assert links == ["'Drafts'!A2", "'Drafts'!A4"]  # v0 is the first draft, row 2; v2 row 4
    else:
        drafts_id = sheet.fake.properties(KEY, schema.DRAFTS)["sheetId"]
        links = [[r["format"]["link"]["uri"] for r in sheet.fake.runs(KEY, title)[(1, COLUMN[f"case_{n}"])]
                  if "link" in r["format"]] for n in (1, 2)]
        assert links == [[f"#gid={drafts_id}&range=A2"], [f"#gid={drafts_id}&range=A4"]]


def test_text_wraps_in_rows_tall_enough_to_read(improved):
    sheet, title = improved
    if sheet.name == "xlsx":
        tab = openpyxl.load_workbook(sheet.path)[title]
        assert tab.cell(2, COLUMN["cited_comments"] + 1).alignment.wrap_text
        assert tab.row_dimensions[2].height and tab.row_dimensions[2].height >= 30
    else:
        formats = sheet.fake.formats(KEY, title)
        assert formats[(1, COLUMN["cited_comments"])]["wrapStrategy"] == "WRAP"
        assert sheet.fake.sizes(KEY, title)[("ROWS", 1)] >= 42


def test_the_replay_tab_links_each_case_to_its_draft(sheet, workspace, model, cli):
    sheet.create([draft(trace_id=f"v{i}", comment="too long") for i in range(2)])
    cli("improve")
    title = next(t for t in sheet.titles() if t.startswith(schema.REPLAY_PREFIX))
    rows = sheet.tab(title)
    assert rows[0]["verdict"].startswith("Edit 1 of 1 · Too verbose") and not rows[0]["trace_id"]  # the block's heading
    assert {r["trace_id"] for r in rows[1:]} == {"v0", "v1"}
    case = schema.REPLAY_HEADERS.index("case")
    if sheet.name == "xlsx":
        tab = openpyxl.load_workbook(sheet.path)[title]
        assert {tab.cell(r, case + 1).hyperlink.location for r in (3, 4)} == {"'Drafts'!A2", "'Drafts'!A3"}
    else:
        linked = {r: runs for (r, c), runs in sheet.fake.runs(KEY, title).items() if c == case}
        assert sorted(linked) == [2, 3] and all("link" in runs[0]["format"] for runs in linked.values())


def test_drafts_wrap_their_text_filter_their_header_and_hold_real_dates(workspace, cli, google, monkeypatch):
    from datetime import datetime

    monkeypatch.delenv("LOOP_SHEET", raising=False)
    (workspace / "loop.xlsx").unlink(missing_ok=True)
    cli("init", "--force")
    cli("log", "--ticket", "A long question " * 20, "--draft", "A reply")
    tab = openpyxl.load_workbook(workspace / "loop.xlsx")[schema.DRAFTS]
    ticket = schema.DRAFT_HEADERS.index("ticket") + 1
    assert tab.auto_filter.ref.startswith("A1:") and tab.cell(2, ticket).alignment.wrap_text
    created = tab.cell(2, schema.DRAFT_HEADERS.index("created_at") + 1)
    assert isinstance(created.value, datetime) and created.number_format == "yyyy-mm-dd hh:mm:ss"

    google.add_spreadsheet(KEY, {"Sheet1": []})
    cli("init", "--sheet", KEY)
    assert google.basic_filter(KEY, schema.DRAFTS)["range"].get("endRowIndex") is None  # new rows too
    wrapped = google.formats(KEY, schema.DRAFTS)[(1, ticket - 1)]
    assert wrapped["wrapStrategy"] == "WRAP"
    cli("log", "--sheet", KEY, "--ticket", "Where is my invoice?", "--draft", "Under Invoices.")
    created = schema.DRAFT_HEADERS.index("created_at")
    assert isinstance(google.values(KEY, schema.DRAFTS)[1][created], float)  # a serial date
    assert google.formats(KEY, schema.DRAFTS)[(1, created)]["numberFormat"]["type"] == "DATE_TIME"
