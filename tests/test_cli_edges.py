"""What a new user meets: inputs that must be a clear error rather than a traceback, a first run
from `loop init`, help and version, progress, and plain wording (CONTRACT §8)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from loop import log_draft, schema
from loop.cli import main
from tests.conftest import draft, read_tab, write_workbook


def one_line_error(result, *fragments):
    lines = result.output.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output


# --- 16. edges that printed a traceback ------------------------------------------------------------


@pytest.mark.parametrize("since, fragment", [
    ("3000000d", "before the year 1900"),
    ("99999999999w", "before the year 1900"),
    ("14", "write 14d for 14 days"),
    ("2.5", "write 2.5d"),
])
def test_a_window_that_cannot_be_meant_is_exit_2(workspace, cli, since, fragment):
    write_workbook(workspace / "loop.xlsx", [draft()])
    one_line_error(cli("improve", "--since", since, code=2), fragment)
    one_line_error(cli("status", "--since", since, code=2), fragment)


def test_a_rubric_that_does_not_fit_the_budget_is_exit_2_naming_it(workspace, model, cli, monkeypatch):
    write_workbook(workspace / "loop.xlsx", [draft(score=None, comment=None)])
    (workspace / "prompts" / "judge.md").write_text("Be strict. " * 3000)
    monkeypatch.setenv("LOOP_MAX_INPUT_TOKENS", "4000")
    one_line_error(cli("judge", code=2), "judge.md", "LOOP_MAX_INPUT_TOKENS=4000")
    assert model.requests == []


def test_a_request_over_the_budget_is_a_usage_error_not_an_assertion(workspace, model, cli, monkeypatch):
    write_workbook(workspace / "loop.xlsx", [draft()])
    (workspace / "prompts" / "support_agent.md").write_text("Answer the ticket. " * 2000)
    monkeypatch.setenv("LOOP_MAX_INPUT_TOKENS", "3000")
    one_line_error(cli("improve", code=2), "LOOP_MAX_INPUT_TOKENS=3000")


@pytest.mark.parametrize("content", ['{"installed": {"client_id": "x"}}', "[1, 2]", "not json", '{"web": "x"}'])
def test_loop_auth_with_a_malformed_client_file_is_exit_2(workspace, cli, content):
    (workspace / "client.json").write_text(content)
    one_line_error(cli("auth", "--client-secret", "client.json", code=2), "client.json")


# --- 17. a first run from `loop init` ----------------------------------------------------------------


def test_init_then_log_then_judge_works(tmp_path, monkeypatch, model, cli):
    monkeypatch.chdir(tmp_path)
    for name in ("LOOP_SHEET", "LOOP_PROMPT", "LOOP_JUDGE_PROMPT"):
        monkeypatch.delenv(name, raising=False)
    output = cli("init").output
    assert "starter judge rubric at prompts/judge.md" in output
    cli("log", "--ticket", "How do I export?", "--draft", "Reports → Export.")
    assert "Judged 1 of 1" in cli("judge").output


def test_a_missing_rubric_names_loop_judge_prompt(workspace, model, cli, monkeypatch):
    write_workbook(workspace / "loop.xlsx", [draft(score=None, comment=None)])
    monkeypatch.setenv("LOOP_JUDGE_PROMPT", "rubrics/none.md")
    one_line_error(cli("judge", code=2), "rubrics/none.md", "LOOP_JUDGE_PROMPT")


# --- 18. small things ----------------------------------------------------------------------------------


def test_version_and_a_help_that_cuts_no_description(cli):
    assert "loop, version" in cli("--version").output
    help_text = cli("--help").output
    commands = help_text.split("Commands:")[1]
    assert "..." not in commands
    for command in ("init", "improve", "apply", "rollback", "status", "log", "sync", "draft", "judge", "auth"):
        assert f"  {command} " in help_text


def test_auth_takes_debug(workspace, cli):
    (workspace / "client.json").write_text("not json")
    result = CliRunner().invoke(main, ["auth", "--client-secret", "client.json", "--debug"])
    assert result.exit_code != 0 and result.exception is not None  # the traceback, as asked


def test_counts_are_worded_for_one_and_for_many(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [draft(), draft(score="👍")])
    assert "1 failure, 1 success." in cli("improve").output
    status = cli("status").output
    assert "Edits (1 tab)" in status and "1 failure," in status and "1 success." in status


# --- 19. progress while improve runs; drafts waiting for review ---------------------------------------


def test_improve_shows_progress_on_stderr(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    result = CliRunner().invoke(main, ["improve"])
    assert result.exit_code == 0
    assert "Finding failure patterns: batch 1 of 1" in result.stderr
    assert "Proposing edits" in result.stderr
    assert "Finding failure patterns" not in result.stdout


def test_drafts_logged_but_not_scored_are_counted(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [draft(score=None, comment=None) for _ in range(3)])
    assert "3 drafts wait for review" in cli("improve").output


# --- 20. a thread given as a list ------------------------------------------------------------------------


def test_a_thread_given_as_a_list_is_one_message_a_line(workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    log_draft(ticket="Export broken", draft="Try again.",
              thread=["Customer: the export is empty", {"role": "agent", "content": "Which report?"}])
    assert read_tab(path, schema.DRAFTS)[0]["thread"] == "Customer: the export is empty\nAgent: Which report?"
    result = CliRunner().invoke(main, ["log"], input=json.dumps(
        {"ticket": "t", "draft": "d", "thread": ["one", "two"]}) + "\n")
    assert result.exit_code == 0
    assert read_tab(path, schema.DRAFTS)[1]["thread"] == "one\ntwo"


@pytest.mark.parametrize("name", ["LOOP_TIMEOUT", "LOOP_MAX_EDIT_SHARE"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_setting_that_is_not_a_finite_number_is_refused_when_read(workspace, monkeypatch, name, value):
    from loop import config
    from loop.errors import UsageError

    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=name):
        config.resolve()
