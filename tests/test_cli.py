"""The commands' promises: reading the workbook, reporting, refusing bad input (CONTRACT §3, §4, §8)."""

import subprocess
import sys
from datetime import datetime

import openpyxl
import pytest

from loop import schema
from tests.conftest import PROMPT, draft, edits_tab, read_tab, tick, write_workbook


def test_rows_that_cannot_be_read_are_skipped_and_listed(workspace, model, cli):
    rows = [draft(trace_id="ok"), draft(trace_id="bad-score", score="meh"), draft(trace_id="bad-date", created_at="last tuesday")]
    write_workbook(workspace / "loop.xlsx", rows)
    result = cli("improve")
    assert "Drafts row 3: score 'meh'" in result.output
    assert "Drafts row 4: created_at 'last tuesday'" in result.output
    assert "1 failures" in result.output


def test_headers_match_ignoring_case_spaces_and_order(workspace, model, cli):
    headers = ["Comment", "SCORE", "Draft", "Ticket", "Created At", "Trace ID", "My own notes"]
    rows = [draft(trace_id="a1", my_own_notes="keep me"), draft(trace_id="a2", score="thumbs up")]
    write_workbook(workspace / "loop.xlsx", rows, headers=headers)
    result = cli("improve")
    assert "1 failure, 1 success." in result.output
    assert read_tab(workspace / "loop.xlsx", "Drafts")[0]["My own notes"] == "keep me"


def test_a_missing_required_column_is_exit_2_naming_it(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [draft()], headers=["trace_id", "created_at", "ticket", "draft", "score"])
    result = cli("improve", code=2)
    assert "no comment column" in result.output
    assert len(result.output.strip().splitlines()) <= 2


def test_no_reviewed_drafts_in_the_window_is_a_message_and_no_tab(workspace, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(score=None), draft(days_ago=30)])
    before = path.read_bytes()
    result = cli("improve")
    assert "nothing to improve" in result.output
    assert path.read_bytes() == before


def test_since_takes_a_date(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [draft(days_ago=30), draft(days_ago=1)])
    result = cli("improve", "--since", f"{datetime.now():%Y}-01-01")
    assert "2 failures" in result.output or "2 drafts" in result.output


@pytest.mark.parametrize("args, message", [
    (["--sheet", "missing.xlsx"], "No workbook at missing.xlsx"),
    (["--prompt", "nope.md"], "No prompt at nope.md"),
    (["--since", "fortnight"], "--since 'fortnight'"),
])
def test_bad_input_is_exit_2_with_one_clear_line(workspace, model, cli, args, message):
    write_workbook(workspace / "loop.xlsx", [draft()])
    result = cli("improve", *args, code=2)
    assert message in result.output
    assert len(result.output.strip().splitlines()) <= 2


def test_a_file_that_is_not_a_workbook_is_exit_2(workspace, cli):
    (workspace / "loop.xlsx").write_text("trace_id,score\n")
    assert "not an .xlsx workbook" in cli("status", code=2).output


def test_a_workbook_open_in_excel_is_refused_before_any_model_call(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [draft()])
    (workspace / "~$loop.xlsx").write_text("owner")
    result = cli("improve", code=2)
    assert "open in Excel" in result.output
    assert model.requests == []


def test_judge_scores_count_only_with_include_judge_and_are_flagged(workspace, model, cli):
    rows = [draft(score=None, judge_score="👎", comment="", judge_comment="too long", trace_id="j1"),
            draft(score="👍", judge_score="👎", trace_id="p1")]
    write_workbook(workspace / "loop.xlsx", rows)
    assert "nothing to improve" in cli("improve").output
    cli("improve", "--include-judge")
    edits = read_tab(workspace / "loop.xlsx", edits_tab(workspace / "loop.xlsx"))
    assert edits and edits[0]["rationale"].startswith("[evidence is judge-only]")


def test_a_hand_edit_of_the_prompt_is_kept_as_its_own_version(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft()])
    cli("improve")
    prompt = workspace / "prompts" / "support_agent.md"
    prompt.write_text(PROMPT + "Sign every reply with the team name.\n")
    book = openpyxl.load_workbook(path)
    book[edits_tab(path)].cell(2, 1).value = "x"
    book.save(path)
    result = cli("apply")
    assert "v2 → v3" in result.output  # v1 initial, v2 the hand edit, v3 the apply
    assert "Sign every reply with the team name." in prompt.read_text()
    cli("rollback")
    assert prompt.read_text() == PROMPT + "Sign every reply with the team name.\n"
    assert "at v2" in cli("status").output


def test_an_edit_whose_passage_is_gone_becomes_stale(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft()])
    cli("improve")
    title = edits_tab(path)
    find = read_tab(path, title)[0]["find"]
    prompt = workspace / "prompts" / "support_agent.md"
    prompt.write_text(PROMPT.replace(find, "Something else entirely."))
    tick(path, title, [2])
    cli("apply")
    row = read_tab(path, title)[0]
    assert row["status"] == "stale" and "not in the prompt" in row["check"]
    assert "Something else entirely." in prompt.read_text()


def test_rejected_edits_are_never_applied_even_if_ticked(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="f1")])
    model.queue({}, {"json": {"edits": [{"pattern": "p", "find": "Read the ticket", "replace": "Read the whole ticket",
                                          "rationale": "r", "evidence": ["not-a-failure"]}]}})
    cli("improve")
    title = edits_tab(path)
    assert read_tab(path, title)[0]["status"] == "rejected"
    tick(path, title, [2])
    cli("apply")
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT


def test_marks_lost_after_the_prompt_was_written_are_restored_without_applying_twice(workspace, model, cli, monkeypatch):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft()])
    cli("improve")
    title = edits_tab(path)
    tick(path, title, [2])
    from loop.sheets.xlsx import XlsxWorkbook

    def broken_write(self, batch, wait=None, fence=None):
        raise OSError(28, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(XlsxWorkbook, "write", broken_write)
        assert "No space left on device" in cli("apply", code=1).output
    prompt = (workspace / "prompts" / "support_agent.md").read_text()
    assert read_tab(path, title)[0]["status"] == "proposed"
    result = cli("apply")
    assert "already in v2" in result.output
    assert (workspace / "prompts" / "support_agent.md").read_text() == prompt
    assert read_tab(path, title)[0]["status"] == "applied"


def test_two_applies_at_once_apply_each_edit_once(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    cli("improve")
    title = edits_tab(path)
    tick(path, title, [2, 3])
    command = [sys.executable, "-c", "from loop.cli import main; main()", "apply"]
    runs = [subprocess.Popen(command, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert sum("Applied 2 edits" in out for out in outputs) == 1
    prompt = (workspace / "prompts" / "support_agent.md").read_text()
    for edit in read_tab(path, title):
        assert prompt.count(edit["replace"]) == 1
        assert edit["status"] == "applied" and edit["applied_version"] == "v2"


def test_status_reports_what_is_pending(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path"), draft(score=None)])
    cli("improve")
    book = openpyxl.load_workbook(path)
    book[edits_tab(path)].cell(2, 1).value = True
    book.save(path)
    output = cli("status").output
    assert "1 unreviewed, 2 failures" in output
    assert "1 approved, not yet applied, 1 proposed" in output
    assert "not versioned yet" not in output and "at v1" in output


def test_init_creates_the_workbook_from_the_template_and_never_overwrites_it(workspace, cli):
    cli("init", "--sheet", "mine.xlsx")
    book = openpyxl.load_workbook(workspace / "mine.xlsx")
    assert book.sheetnames == [schema.DRAFTS, schema.RUNS, "About"]
    before = (workspace / "mine.xlsx").read_bytes()
    assert "already has the Drafts and Runs tabs" in cli("init", "--sheet", "mine.xlsx").output
    assert (workspace / "mine.xlsx").read_bytes() == before


def test_formula_like_text_from_the_model_and_the_sheet_is_written_as_plain_text(workspace, model, cli):
    prompt = workspace / "prompts" / "support_agent.md"
    prompt.write_text(PROMPT + "=== Tone ===\n")
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="=t1"), draft(trace_id="+t2")])
    answer = {"pattern": "@pattern", "find": "=== Tone ===", "replace": "=HYPERLINK(\"http://evil\")",
              "rationale": "-rationale", "evidence": ["=t1", "+t2"]}
    model.queue({"json": {"patterns": [{"name": "=cmd|' /C calc'!A0", "description": "=1+1", "trace_ids": ["=t1", "+t2"]}]}},
                {"json": {"edits": [answer]}})
    cli("improve")
    book = openpyxl.load_workbook(path)
    sheet = book[edits_tab(path)]
    row = {sheet.cell(1, c).value: sheet.cell(2, c) for c in range(1, sheet.max_column + 1)}
    for column in ("pattern", "find", "replace", "rationale", "evidence", "edit_id", "status"):
        assert row[column].data_type == "s", column
    assert row["replace"].value == answer["replace"] and row["evidence"].value == "=t1, +t2"
    book[edits_tab(path)].cell(2, 1).value = True
    book.save(path)
    cli("apply")
    assert prompt.read_text().endswith("=HYPERLINK(\"http://evil\")\n")
    sheet = openpyxl.load_workbook(path)[edits_tab(path)]
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
