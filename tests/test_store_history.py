"""CONTRACT §7a: history beyond the sheet. The store keeps the reviews as last read; `loop archive`
keeps the Drafts tab small; `loop report` and `loop improve --since` count what the store holds;
cut fields are made whole wherever a command runs."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from loop import schema
from loop.cli import main
from tests.conftest import draft


def run(*args, code=0):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout


def stored(store_url: str, sql: str, params=()):
    from loop.store.db import connect

    return connect(store_url).execute(sql, params)


def history_rows() -> list[dict]:
    """Old reviewed drafts (three failures, two successes), an old unreviewed one, and recent ones."""
    return [
        draft(trace_id="old-f1", days_ago=120, comment="too long"),
        draft(trace_id="old-f2", days_ago=110, comment="too long again"),
        draft(trace_id="old-f3", days_ago=100, comment="wrong menu path"),
        draft(trace_id="old-s1", days_ago=105, score="👍", comment=""),
        draft(trace_id="old-s2", days_ago=95, score="👍", comment=""),
        draft(trace_id="old-waiting", days_ago=100, score=None, comment=""),
        draft(trace_id="new-f1", days_ago=2, comment="too long"),
        draft(trace_id="new-s1", days_ago=1, score="👍", comment=""),
    ]


@pytest.fixture
def shared_store(workspace, store_url, monkeypatch):
    monkeypatch.setenv("LOOP_STORE", store_url)
    return store_url


def test_reading_commands_keep_the_sheets_reviews_in_the_store(sheet, shared_store, model):
    sheet.create(history_rows())
    run("report")
    reviews = dict(stored(shared_store, "SELECT trace_id, score FROM drafts"))
    assert reviews["old-f1"] == "down" and reviews["old-s1"] == "up" and reviews["old-waiting"] is None
    assert len(reviews) == 8


def test_archive_takes_out_old_reviewed_drafts_only_and_the_report_still_counts_them(sheet, shared_store, model):
    sheet.create(history_rows())
    before = json.loads(run("report", "--json"))
    out = run("archive", "--older-than", "30d")
    assert "Archived 5 reviewed drafts" in out and "now holds 3 drafts" in out
    assert "Kept 1 unreviewed draft" in out
    assert [r["trace_id"] for r in sheet.tab(schema.DRAFTS)] == ["old-waiting", "new-f1", "new-s1"]
    assert stored(shared_store, "SELECT COUNT(*) FROM drafts WHERE state = 'archived'") == [(5,)]
    after = json.loads(run("report", "--json"))
    assert after["versions"] == before["versions"]  # every review is still counted
    assert "5 archived drafts" in run("status")
    assert "Archived 0 reviewed drafts" in run("archive", "--older-than", "30d")  # again: nothing to do


def test_improve_since_reaches_back_past_the_sheet_through_the_store(sheet, shared_store, model, cli):
    sheet.create(history_rows())
    run("archive", "--older-than", "30d")
    out = cli("improve", "--since", "200d", "--no-check").output
    assert "4 failures, 3 successes" in out  # the three archived failures and two archived successes with the new
    sent = json.dumps(model.requests)
    assert "old-f1" in sent and "old-f3" in sent


def test_archive_keeps_every_draft_the_store_does_not_hold_with_the_review_shown(sheet, shared_store, monkeypatch):
    from loop.store import WorkbookStore

    sheet.create(history_rows())
    real = WorkbookStore.record

    def lose_one(self, changed, adopted):  # a store that failed to keep one review
        real(self, [r for r in changed if r["trace_id"] != "old-f2"], [r for r in adopted if r["trace_id"] != "old-f2"])

    monkeypatch.setattr(WorkbookStore, "record", lose_one)
    out = run("archive", "--older-than", "30d")
    assert "Archived 4 reviewed drafts" in out
    assert "old-f2" in [r["trace_id"] for r in sheet.tab(schema.DRAFTS)]


def test_a_review_changed_after_archiving_a_row_is_never_lost(sheet, shared_store):
    """Rows archived from the sheet keep the review they had; the sheet's own rows keep theirs."""
    sheet.create(history_rows())
    run("archive", "--older-than", "30d")
    rows = dict(stored(shared_store, "SELECT trace_id, comment FROM drafts WHERE state = 'archived'"))
    assert rows["old-f3"] == "wrong menu path"


def test_cut_fields_are_made_whole_on_another_host_that_shares_the_store(workspace, google, store_url, monkeypatch,
                                                                            tmp_path):
    """An agent host logs a thread longer than a Google cell; the weekly runner, in another folder
    with the same store, reads it whole."""
    from loop import log_draft
    from loop.workspace import Workspace
    from tests.backends import KEY, GoogleSheet

    if store_url.startswith("sqlite"):
        store_url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("LOOP_STORE", store_url)
    monkeypatch.setenv("LOOP_SHEET", KEY)
    GoogleSheet(google).create([])
    thread = "Customer: the export is empty. " * 2000  # 62,000 characters
    (workspace / "agent-host").mkdir()
    monkeypatch.chdir(workspace / "agent-host")
    trace_id = log_draft(ticket="Export broken", draft="Try again.", thread=thread)
    (workspace / "runner").mkdir()
    monkeypatch.chdir(workspace / "runner")
    here = Workspace()
    drafts, _ = here.drafts(here.workbook.read([schema.DRAFTS])[schema.DRAFTS])
    assert [(d.trace_id, d.thread) for d in drafts] == [(trace_id, thread)]
    assert not os.path.exists("loop.traces")


def test_an_archive_killed_at_any_commit_or_write_loses_no_review(workspace, store_url, monkeypatch):
    """Killed before or after each store commit and the workbook's replacement: the next archive
    finishes, every reviewed old draft leaves the sheet once, and nothing else moves."""
    from tests.backends import XlsxSheet
    from tests.test_store import KILLED, run_killed  # noqa: F401

    monkeypatch.setenv("LOOP_STORE", store_url)
    sheet = XlsxSheet(workspace)
    points = 0
    for kill_at in range(1, 30):
        died = False
        for when in ("before", "after"):
            sheet.create(history_rows())
            stored(store_url, "DELETE FROM drafts")
            died = run_killed(["archive", "--older-than", "30d"], kill_at, when)
            if not died:
                break
            run("archive", "--older-than", "30d")
            assert [r["trace_id"] for r in sheet.tab(schema.DRAFTS)] == ["old-waiting", "new-f1", "new-s1"]
            held = dict(stored(store_url, "SELECT trace_id, score FROM drafts"))
            assert len(held) == 8 and held["old-f1"] == "down" and held["old-s2"] == "up"
        if not died:
            break
        points += 1
    assert points >= 2 and KILLED  # every store commit of the command was tried


def test_archive_never_takes_out_a_row_copied_by_hand(sheet, shared_store):
    rows = history_rows()
    rows.append(dict(rows[0], comment="a copy with another comment"))
    sheet.create(rows)
    run("archive", "--older-than", "30d")
    assert [r["trace_id"] for r in sheet.tab(schema.DRAFTS)].count("old-f1") == 2
