"""CONTRACT §3–§5 on both backends: a local .xlsx workbook and a Google Sheet (through the real
gspread and google-auth, against the fake Sheets API)."""

from datetime import datetime, timedelta, timezone

import pytest

from loop import schema
from tests.conftest import PROMPT, draft

DOWN_FORMS = ["👎", "down", "Thumbs Down", "bad", "no", "n", "0", "-", "false", "FAIL", False, 0]
UP_FORMS = ["👍", "up", "thumbs up", "good", "yes", "y", "1", "+", "TRUE", "pass", True, 1]


def prompt_text(workspace):
    return (workspace / "prompts" / "support_agent.md").read_text()


def edits_title(sheet):
    return next(t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX))


def test_every_score_form_is_read(sheet, workspace, model, cli):
    rows = [draft(score=form, trace_id=f"d{i}") for i, form in enumerate(DOWN_FORMS)]
    rows += [draft(score=form, trace_id=f"u{i}") for i, form in enumerate(UP_FORMS)]
    rows += [draft(score=None, trace_id="blank"), draft(score="meh", trace_id="odd")]
    sheet.create(rows)
    result = cli("improve")
    assert f"{len(DOWN_FORMS)} failures, {len(UP_FORMS)} successes" in result.output
    assert "score 'meh'" in result.output


def test_every_date_form_is_read(sheet, workspace, model, cli):
    now = datetime.now(timezone.utc)
    yesterday = now - timedelta(days=1)
    forms = [
        yesterday.replace(tzinfo=None),                      # a datetime cell
        yesterday.date().isoformat(),                        # ISO date only
        yesterday.strftime("%Y-%m-%dT%H:%M:%S"),             # naive ISO = UTC
        yesterday.strftime("%Y-%m-%dT%H:%M:%S+02:00"),       # with an offset
        yesterday.strftime("%Y-%m-%dT%H:%M:%SZ"),            # with Z
        (yesterday - datetime(1899, 12, 30, tzinfo=timezone.utc)) / timedelta(days=1),  # a serial number
    ]
    rows = [draft(created_at=form, trace_id=f"t{i}") for i, form in enumerate(forms)]
    rows += [draft(created_at="someday", trace_id="bad"), draft(created_at=(now - timedelta(days=40)).isoformat(), trace_id="old")]
    sheet.create(rows)
    result = cli("improve")
    assert f"{len(forms)} failures" in result.output
    assert "created_at 'someday'" in result.output


def test_the_whole_loop_improve_tick_apply_rollback(sheet, workspace, model, cli):
    sheet.create([draft(), draft(), draft(comment="wrong menu path"), draft(score="👍")])
    cli("improve")
    title = edits_title(sheet)
    edits = sheet.tab(title)
    cases = sum(name.startswith("case_") for name in edits[0])
    assert list(edits[0]) == schema.edit_headers(cases) and cases >= 1
    assert [e["approve"] for e in edits] == [False, False]
    assert [e["status"] for e in edits] == ["proposed", "proposed"]
    runs = sheet.tab(schema.RUNS)
    assert len(runs) == 1 and runs[0]["failures"] == 3 and runs[0]["edits_tab"] == title

    sheet.tick(title, 3)
    cli("apply")
    assert prompt_text(workspace) == PROMPT.replace(edits[1]["find"], edits[1]["replace"])
    after = sheet.tab(title)
    assert [(e["status"], e["applied_version"]) for e in after] == [("proposed", None), ("applied", "v2")]

    cli("apply")  # again: nothing changes
    assert prompt_text(workspace) == PROMPT.replace(edits[1]["find"], edits[1]["replace"])
    cli("rollback")
    assert prompt_text(workspace) == PROMPT


def test_ticks_typed_as_text_count(sheet, workspace, model, cli):
    sheet.create([draft(), draft(comment="wrong menu path")])
    cli("improve")
    title = edits_title(sheet)
    sheet.tick(title, 2, "✔")
    sheet.tick(title, 3, "no")
    cli("apply")
    assert [e["status"] for e in sheet.tab(title)] == ["applied", "proposed"]


def test_a_model_failure_mid_run_leaves_sheet_and_prompt_as_they_were(sheet, workspace, model, cli):
    sheet.create([draft(), draft()])
    before = sheet.snapshot()
    model.queue({}, *[{"status": 500}] * 3)  # patterns succeed, edits fail after retries
    cli("improve", code=1)
    assert sheet.snapshot() == before
    assert prompt_text(workspace) == PROMPT


def test_formula_like_text_is_stored_as_text(sheet, workspace, model, cli):
    prompt = workspace / "prompts" / "support_agent.md"
    prompt.write_text(PROMPT + "=== Tone ===\n")
    sheet.create([draft(trace_id="=t1", ticket="=SUM(A1:A3) is wrong"), draft(trace_id="+t2")])
    answer = {"pattern": "@pattern", "find": "=== Tone ===", "replace": "=HYPERLINK(\"http://x\")",
              "rationale": "-rationale", "evidence": ["=t1", "+t2"]}
    model.queue({"json": {"patterns": [{"name": "=1+1", "description": "=2", "trace_ids": ["=t1", "+t2"]}]}},
                {"json": {"edits": [answer]}})
    cli("improve")
    title = edits_title(sheet)
    row = sheet.tab(title)[0]
    assert (row["pattern"], row["replace"], row["rationale"], row["evidence"]) == (
        "@pattern", answer["replace"], "-rationale", "=t1, +t2")
    assert sheet.formulas(title) == [] and sheet.formulas(schema.RUNS) == []
    sheet.tick(title, 2)
    cli("apply")
    assert sheet.formulas(title) == []
    assert prompt.read_text().endswith(answer["replace"] + "\n")


def test_characters_xml_forbids_become_a_visible_mark_on_both_backends(sheet, workspace, model, cli):
    sheet.create([draft(trace_id="f1")])
    model.queue({"json": {"patterns": [{"name": "Odd\uffff", "description": "", "trace_ids": ["f1"]}]}},
                {"json": {"edits": [{"pattern": "Odd\uffff", "find": "Read the ticket", "rationale": "r\x01",
                                     "replace": "Read the \ufffewhole ticket", "evidence": ["f1"]}]}})
    cli("improve")
    row = sheet.tab(edits_title(sheet))[0]
    assert (row["pattern"], row["replace"], row["rationale"]) == ("Odd\ufffd", "Read the \ufffdwhole ticket", "r\ufffd")
    cli("log", "--ticket", "a\ufffeb\x00c", "--draft", "d")
    assert sheet.tab(schema.DRAFTS)[-1]["ticket"] == "a\ufffdb\ufffdc"


def test_columns_the_tool_does_not_know_are_left_alone(sheet, workspace, model, cli):
    headers = schema.DRAFT_HEADERS + ["my_notes"]
    sheet.create([draft(my_notes="=keep(this)"), draft(my_notes="note")], headers=headers)
    cli("improve")
    assert [r["my_notes"] for r in sheet.tab(schema.DRAFTS)] == ["=keep(this)", "note"]


@pytest.mark.parametrize("count", [0])
def test_no_reviewed_drafts_writes_nothing(sheet, workspace, cli, count):
    sheet.create([draft(score=None)])
    before = sheet.snapshot()
    assert "nothing to improve" in cli("improve").output
    assert sheet.snapshot() == before
