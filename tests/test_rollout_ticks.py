"""Ticks in the Rollout tab promote or stop a canary (CONTRACT §5b), acted on by the next `loop apply`
or a running `loop sync --watch`, on the local workbook and on the fake Google API."""

from __future__ import annotations

import openpyxl

from loop import schema
from loop.ship import rollout
from loop.store import outbox
from loop.store.prompts import PROMOTED, RUNNING, STOPPED
from loop.workspace import Workspace
from tests.conftest import PROMPT
from tests.test_loop_end_to_end import reviewed_drafts

PROMOTE, STOP = schema.ROLLOUT_HEADERS.index("promote"), schema.ROLLOUT_HEADERS.index("stop")


def edits_title(sheet) -> str:
    return next(t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX))


def canary_running(sheet, cli) -> tuple[str, str]:
    """Improve, a reviewer ticks the first edit, `loop apply --canary 10%`: (the canary's text, the edit's id)."""
    sheet.create(reviewed_drafts())
    cli("improve")
    title = edits_title(sheet)
    sheet.tick(title, 2)
    edit = sheet.tab(title)[0]
    result = cli("apply", "--canary", "10%")
    assert "as the canary v2" in result.output
    return PROMPT.replace(edit["find"], edit["replace"]), edit["edit_id"]


def tick(sheet, row: int, column: int, value=True) -> None:
    """A reviewer ticks a checkbox of the Rollout tab (row 2 is the first canary's)."""
    if sheet.name == "google":
        sheet.fake._sheet(sheet.location, schema.ROLLOUT)["cells"][(row - 1, column)] = value
        return
    book = openpyxl.load_workbook(sheet.path)
    book[schema.ROLLOUT].cell(row, column + 1).value = value
    book.save(sheet.path)


def test_a_ticked_promote_makes_the_canary_current_for_everyone(sheet, model, cli, workspace):
    canary_text, _ = canary_running(sheet, cli)
    (row,) = sheet.tab(schema.ROLLOUT)
    assert (row["version"], row["status"], row["share"], row["promote"], row["stop"]) == (
        "v2", RUNNING, "10%", False, False)
    tick(sheet, 2, PROMOTE)
    result = cli("apply")
    assert "canary v2" in result.output and "promoted by a tick" in result.output
    records = Workspace().prompt.records
    serving = records.serving()
    assert serving.current == 2 and serving.canary is None
    assert records.canaries()[-1].outcome == PROMOTED
    assert records.events()[-1]["actor"] == rollout.WHO and records.events()[-1]["kind"] == "promote"
    assert (workspace / "prompts" / "support_agent.md").read_text() == canary_text  # the file follows
    (row,) = sheet.tab(schema.ROLLOUT)
    assert (row["status"], row["promote"], row["stop"], row["note"]) == (
        PROMOTED, False, False, "promoted by a tick")
    again = cli("apply")  # the tick is gone: nothing is acted on twice
    assert "Rollout tab" not in again.output and records.serving().revision == serving.revision


def test_a_ticked_stop_ends_the_canary_and_the_current_version_keeps_serving(sheet, model, cli, workspace):
    canary_running(sheet, cli)
    tick(sheet, 2, STOP)
    cli("apply")
    records = Workspace().prompt.records
    assert records.serving().current == 1 and records.serving().canary is None
    ended = records.canaries()[-1]
    assert (ended.outcome, ended.reason) == (STOPPED, rollout.STOP_REASON)
    assert records.events()[-1]["actor"] == rollout.WHO
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT
    (row,) = sheet.tab(schema.ROLLOUT)
    assert (row["status"], row["reason"], row["share"], row["promote"], row["stop"]) == (
        STOPPED, rollout.STOP_REASON, "10%", False, False)


def test_both_ticked_stop_wins_and_says_so(sheet, model, cli):
    canary_running(sheet, cli)
    tick(sheet, 2, PROMOTE)
    tick(sheet, 2, STOP)
    result = cli("apply")
    assert "stop wins" in result.output
    records = Workspace().prompt.records
    assert records.canaries()[-1].outcome == STOPPED and records.serving().current == 1
    (row,) = sheet.tab(schema.ROLLOUT)
    assert "stop wins" in row["note"] and (row["promote"], row["stop"]) == (False, False)


def test_ticks_on_an_ended_canary_are_cleared_and_ignored_with_a_note(sheet, model, cli):
    canary_running(sheet, cli)
    cli("rollback")  # ends the canary
    records = Workspace().prompt.records
    revision = records.serving().revision
    tick(sheet, 2, PROMOTE)
    result = cli("apply")
    assert "ticked after it ended (rolled back); nothing done" in result.output
    assert records.serving().revision == revision and records.serving().current == 1
    (row,) = sheet.tab(schema.ROLLOUT)
    assert (row["status"], row["promote"], row["stop"]) == ("rolled back", False, False)
    assert row["note"] == "ticked after it ended (rolled back); nothing done"


def test_a_running_sync_watch_round_acts_on_the_ticks(sheet, model, cli):
    canary_running(sheet, cli)
    tick(sheet, 2, STOP)
    here = Workspace()
    outbox.watch(here, 0.1, rounds=1, also=rollout.act_and_log)
    assert here.prompt.records.canaries()[-1].outcome == STOPPED
    (row,) = sheet.tab(schema.ROLLOUT)
    assert (row["status"], row["stop"]) == (STOPPED, False)


def test_watch_looks_at_the_tab_at_most_every_so_often(sheet, model, cli):
    canary_running(sheet, cli)
    here = Workspace()
    seen = []
    outbox.watch(here, 0.01, rounds=5, also=lambda w: seen.append(rollout.act(w)), also_every=60)
    assert len(seen) == 1
