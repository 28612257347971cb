"""The weekly chain end to end on the fake Google API: the commands the generated workflow runs, in
its order, against the fake model server; weeks with and without ticks."""

from __future__ import annotations

import shlex

import pytest
import yaml

from loop import schema
from loop.measure.schedule import Schedule, github_workflow
from loop.store.prompts import PROMOTED, RUNNING
from loop.workspace import Workspace
from tests.backends import GoogleSheet
from tests.conftest import PROMPT
from tests.test_loop_end_to_end import reviewed_drafts
from tests.test_rollout_ticks import PROMOTE, edits_title, tick


@pytest.fixture
def google_sheet(workspace, google, monkeypatch):
    target = GoogleSheet(google)
    monkeypatch.setenv("LOOP_SHEET", target.location)
    return target


def week(plan: Schedule, cli) -> list[str]:
    """Run the workflow's `loop` steps in order, as the runner would (each must succeed); their output."""
    steps = yaml.safe_load(github_workflow(plan))["jobs"]["loop"]["steps"]
    commands = [shlex.split(step["run"]) for step in steps if step.get("run", "").startswith("loop ")]
    assert [words[1] for words in commands] == ["improve", "apply", "report"]
    return [cli(*words[1:]).output for words in commands]


def test_the_weekly_chain_applies_what_was_ticked_as_a_canary_and_a_tick_promotes_it(
        google_sheet, model, cli, workspace):
    prompt_file = workspace / "prompts" / "support_agent.md"
    google_sheet.create(reviewed_drafts())

    improved, applied, reported = week(Schedule(canary="10%"), cli)  # week 1: nothing ticked yet
    assert "No ticked edits to apply" in applied
    title = edits_title(google_sheet)
    assert prompt_file.read_text() == PROMPT and Workspace().prompt.records.canaries() == []
    assert schema.ROLLOUT not in google_sheet.titles()

    google_sheet.tick(title, 2)  # a reviewer approves the first edit during the week
    edit = google_sheet.tab(title)[0]
    _, applied, _ = week(Schedule(canary="10%"), cli)  # week 2: it ships to one ticket in ten
    assert "as the canary v2" in applied
    records = Workspace().prompt.records
    serving = records.serving()
    assert (serving.current, serving.canary.version, serving.canary.share) == (1, 2, 0.1)
    assert prompt_file.read_text() == PROMPT  # the file keeps what most tickets get
    assert records.body(2).decode() == PROMPT.replace(edit["find"], edit["replace"])
    (row,) = google_sheet.tab(schema.ROLLOUT)
    assert (row["version"], row["status"], row["share"]) == ("v2", RUNNING, "10%")
    assert google_sheet.tab(title)[0]["status"] == "applied"

    tick(google_sheet, 2, PROMOTE)  # the figures look good: a reviewer ticks promote
    _, applied, _ = week(Schedule(), cli)  # week 3
    assert "promoted by a tick" in applied and "No ticked edits to apply" in applied
    assert records.serving().current == 2 and records.serving().canary is None
    assert prompt_file.read_text() == PROMPT.replace(edit["find"], edit["replace"])
    (row,) = google_sheet.tab(schema.ROLLOUT)
    assert (row["status"], row["promote"]) == (PROMOTED, False)

    before = records.serving().revision
    _, applied, _ = week(Schedule(), cli)  # week 4: nothing ticked, nothing changes
    assert "No ticked edits to apply" in applied and "Rollout tab" not in applied
    assert records.serving().revision == before


def test_without_canary_the_chain_applies_the_ticked_edits_for_everyone(google_sheet, model, cli, workspace):
    google_sheet.create(reviewed_drafts())
    week(Schedule(), cli)
    title = edits_title(google_sheet)
    google_sheet.tick(title, 2)
    edit = google_sheet.tab(title)[0]
    _, applied, _ = week(Schedule(), cli)
    assert "v1 → v2" in applied
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT.replace(edit["find"], edit["replace"])
    assert Workspace().prompt.records.serving().canary is None and schema.ROLLOUT not in google_sheet.titles()
