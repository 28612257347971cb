"""CONTRACT §7a: what `loop archive` keeps is what the sheet shows when the rows go, and a row a
person deleted is out of the figures, kept in the store as deleted, and can be put back.

A reviewer changing a row between archive's read and its write is a real second writer here: on a
local workbook another process rewrites the file with openpyxl while archive waits for the
workbook's lock; on Google the sheet is edited at the fake API the moment archive reads it again
before its batchUpdate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import openpyxl
import pytest
from click.testing import CliRunner
from filelock import FileLock

from loop import schema
from loop.cli import main
from tests.backends import KEY, GoogleSheet, XlsxSheet
from tests.conftest import draft

OLD = ["old-f1", "old-f2", "old-f3", "old-s1", "old-s2"]


def run(*args, code=0):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout + result.stderr


def stored(store_url: str, sql: str, params=()):
    from loop.store.db import connect

    return connect(store_url).execute(sql, params)


def held(store_url: str) -> dict[str, dict]:
    columns = ("trace_id", "state", "score", "comment", "ticket", "thread")
    return {row[0]: dict(zip(columns, row)) for row in stored(store_url, f"SELECT {', '.join(columns)} FROM drafts")}


def rows() -> list[dict]:
    return [
        draft(trace_id="old-f1", days_ago=120, comment="too long"),
        draft(trace_id="old-f2", days_ago=110, comment="too long again", ticket="My card 4111 1111 1111 1111 fails"),
        draft(trace_id="old-f3", days_ago=100, comment="wrong menu path"),
        draft(trace_id="old-s1", days_ago=105, score="👍", comment=""),
        draft(trace_id="old-s2", days_ago=95, score="👍", comment=""),
        draft(trace_id="old-waiting", days_ago=100, score=None, comment=""),
        draft(trace_id="new-f1", days_ago=2, comment="too long"),
    ]


def ids(sheet) -> list[str]:
    return [r["trace_id"] for r in sheet.tab(schema.DRAFTS)]


@pytest.fixture
def shared_store(workspace, store_url, monkeypatch):
    monkeypatch.setenv("LOOP_STORE", store_url)
    return store_url


# --- 12: the review and text the sheet shows at the moment of the delete ----------------------------


def _wait_for(check, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_local_workbook_rewritten_by_another_program_between_the_read_and_the_write(workspace, shared_store):
    """archive reads, then waits for the workbook's lock, held by another writer that rewrites the file
    with openpyxl meanwhile: a 👎 turned 👍 with a comment, a ticket redacted, a comment added."""
    sheet = XlsxSheet(workspace)
    sheet.create(rows())
    lock = FileLock(str(workspace / ".loop.xlsx.lock"))
    lock.acquire()
    try:
        env = dict(os.environ, LOOP_SHEET=sheet.location)
        child = subprocess.Popen([sys.executable, "-m", "loop", "archive", "--older-than", "30d"], cwd=workspace,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # archive has read the sheet and recorded what it read once it marks the rows it takes out
        _wait_for(lambda: stored(shared_store, "SELECT COUNT(*) FROM drafts WHERE state = 'archived'") == [(5,)])
        book = openpyxl.load_workbook(sheet.path)
        tab = book[schema.DRAFTS]
        column = {cell.value: cell.column for cell in tab[1]}
        where = {tab.cell(r, column["trace_id"]).value: r for r in range(2, tab.max_row + 1)}
        tab.cell(where["old-f1"], column["score"]).value = "👍"
        tab.cell(where["old-f1"], column["comment"]).value = "fine after all"
        tab.cell(where["old-f2"], column["ticket"]).value = "My card [redacted] fails"
        tab.cell(where["old-s1"], column["comment"]).value = "clear and short"
        book.save(sheet.path)
    finally:
        lock.release()
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert "Archived 5 reviewed drafts" in out, out  # the changed rows were read again and taken out too
    assert ids(sheet) == ["old-waiting", "new-f1"]
    store = held(shared_store)
    assert (store["old-f1"]["score"], store["old-f1"]["comment"]) == ("up", "fine after all")
    assert store["old-f2"]["ticket"] == "My card [redacted] fails"
    assert store["old-s1"]["comment"] == "clear and short"
    assert {t for t, r in store.items() if r["state"] == "archived"} == set(OLD)


def _edit_google(google, changes: dict[str, dict]):
    """Cells of the Drafts tab changed at the API, as another person's edit lands."""
    def edit():
        values = google.values(KEY, schema.DRAFTS)
        headers = values[0]
        for index, row in enumerate(values[1:], start=1):
            if row and row[headers.index("trace_id")] in changes:
                for name, value in changes[row[headers.index("trace_id")]].items():
                    google._sheet(KEY, schema.DRAFTS)["cells"][(index, headers.index(name))] = value
    return edit


def test_a_google_sheet_edited_right_before_the_batch_update(workspace, google, shared_store, monkeypatch):
    sheet = GoogleSheet(google)
    sheet.create(rows())
    monkeypatch.setenv("LOOP_SHEET", KEY)
    # archive's read passes; the read right before the delete finds the rows edited by a reviewer
    google.fail({"match": "batchGet"}, {"match": "batchGet", "call": _edit_google(google, {
        "old-f1": {"score": "👍", "comment": "fine after all"}, "old-f2": {"ticket": "My card [redacted] fails"}})})
    out = run("archive", "--older-than", "30d")
    assert "Archived 5 reviewed drafts" in out
    deletes = [[(r["deleteDimension"]["range"]["startIndex"], r["deleteDimension"]["range"]["endIndex"])
                for r in request["body"]["requests"]] for request in google.requests
               if request["path"].endswith(":batchUpdate")]
    assert deletes == [[(3, 6)], [(1, 3)]]  # first old-f3, old-s1 and old-s2; then the two edited, read again
    assert ids(sheet) == ["old-waiting", "new-f1"]
    store = held(shared_store)
    assert (store["old-f1"]["score"], store["old-f1"]["comment"]) == ("up", "fine after all")
    assert store["old-f2"]["ticket"] == "My card [redacted] fails"


def test_a_row_that_changes_at_every_attempt_stays_with_its_newest_review(workspace, google, shared_store,
                                                                         monkeypatch):
    sheet = GoogleSheet(google)
    sheet.create(rows())
    monkeypatch.setenv("LOOP_SHEET", KEY)
    google.fail({"match": "batchGet"}, {"match": "batchGet", "call": _edit_google(google, {"old-f1": {"comment": "a"}})},
                {"match": "batchGet"}, {"match": "batchGet", "call": _edit_google(google, {"old-f1": {"comment": "b"}})})
    out = run("archive", "--older-than", "30d")
    assert "Archived 4 reviewed drafts" in out and "old-f1" in out and "changed in the sheet" in out
    assert ids(sheet) == ["old-f1", "old-waiting", "new-f1"]
    assert (held(shared_store)["old-f1"]["state"], held(shared_store)["old-f1"]["comment"]) == ("delivered", "b")
    assert "Archived 1 reviewed draft" in run("archive", "--older-than", "30d")  # the next run takes it


def test_a_ticket_redacted_in_the_sheet_is_what_the_store_keeps_and_a_cut_thread_stays_whole(sheet, shared_store):
    from loop import log_draft

    thread = "Customer: the export is empty. " * 2000  # longer than a cell of either backend
    sheet.create([])
    trace_id = log_draft(ticket="My card 4111 1111 1111 1111 fails", draft="Try again.", thread=thread)
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    if sheet.name == "xlsx":
        book = openpyxl.load_workbook(sheet.path)
        tab = book[schema.DRAFTS]
        column = {cell.value: cell.column for cell in tab[1]}
        tab.cell(2, column["ticket"]).value = "My card [redacted] fails"
        tab.cell(2, column["score"]).value = "👎"
        book.save(sheet.path)
    else:
        headers = sheet.fake.values(KEY, schema.DRAFTS)[0]
        cells = sheet.fake._sheet(KEY, schema.DRAFTS)["cells"]
        cells[(1, headers.index("ticket"))] = "My card [redacted] fails"
        cells[(1, headers.index("score"))] = "👎"
    assert "Archived 1 reviewed draft" in run("archive", "--older-than", tomorrow)
    assert ids(sheet) == []
    record = held(shared_store)[trace_id]
    assert (record["state"], record["score"], record["ticket"]) == ("archived", "down", "My card [redacted] fails")
    assert record["thread"] == thread


# --- 17: rows a person deleted -----------------------------------------------------------------------


def recent_rows() -> list[dict]:
    return [draft(trace_id=f"f{i}", days_ago=i + 1, comment=f"too long {i}", prompt_version="v1") for i in range(4)] + [
        draft(trace_id=f"s{i}", days_ago=i + 1, score="👍", comment="", prompt_version="v1") for i in range(3)]


def delete_by_hand(sheet, *trace_ids: str) -> None:
    """A person selects rows of the Drafts tab and deletes them (Excel; the Sheets API, as the web app does)."""
    if sheet.name == "xlsx":
        book = openpyxl.load_workbook(sheet.path)
        tab = book[schema.DRAFTS]
        column = next(c.column for c in tab[1] if c.value == "trace_id")
        for row in sorted((r for r in range(2, tab.max_row + 1) if tab.cell(r, column).value in trace_ids),
                          reverse=True):
            tab.delete_rows(row)
        book.save(sheet.path)
        return
    from loop.sheets import open_workbook

    values = sheet.fake.values(KEY, schema.DRAFTS)
    column = values[0].index("trace_id")
    doomed = sorted((i for i, row in enumerate(values) if i and row and row[column] in trace_ids), reverse=True)
    open_workbook(KEY)._http.batch_update(KEY, {"requests": [
        {"deleteDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": i, "endIndex": i + 1}}}
        for i in doomed]})


def reviewed(sheet, report_json: str) -> tuple[int, int]:
    """(reviewed, 👍) over every version, from `loop report --json` and from the Dashboard it wrote."""
    from tests.test_report import VERSION_HEADERS, dashboard_rows, section

    figures = json.loads(report_json)["versions"]
    on_dashboard = section(dashboard_rows(sheet), VERSION_HEADERS)
    assert sum(int(v["reviewed"]) for v in on_dashboard) == sum(v["reviewed"] for v in figures)
    return sum(v["reviewed"] for v in figures), sum(v["up"] for v in figures)


def states(store_url: str) -> dict[str, str]:
    return dict(stored(store_url, "SELECT trace_id, state FROM drafts"))


def test_rows_deleted_by_hand_leave_the_figures_and_come_back_with_their_reviews(sheet, shared_store, model, cli):
    sheet.create(recent_rows())
    assert reviewed(sheet, run("report", "--json")) == (7, 3)
    delete_by_hand(sheet, "f1", "s2")
    assert reviewed(sheet, run("report", "--json")) == (5, 2)  # report and the Dashboard
    assert {t for t, s in states(shared_store).items() if s == "deleted"} == {"f1", "s2"}
    assert "2 drafts deleted from the sheet (`loop sync --restore-deleted` puts them back)" in run("status")
    out = cli("improve", "--since", "30d", "--no-check").output
    assert "3 failures, 2 successes" in out  # its window
    assert "f1" not in json.dumps(model.requests)

    out = run("sync", "--restore-deleted", "s2", "nope")
    assert "Restored 1 deleted draft" in out and "not restored nope" in out
    assert "Restored 1 deleted draft" in run("sync", "--restore-deleted")
    assert "Restored 0 deleted drafts" in run("sync", "--restore-deleted")
    back = {r["trace_id"]: r for r in sheet.tab(schema.DRAFTS)}
    assert (back["f1"]["score"], back["f1"]["comment"]) == ("👎", "too long 1")
    assert (back["s2"]["score"], back["s2"]["comment"] or "") == ("👍", "")
    assert reviewed(sheet, run("report", "--json")) == (7, 3)
    assert set(states(shared_store).values()) == {"delivered"}
    assert "deleted from the sheet" not in run("status")


def test_a_row_put_back_by_hand_counts_again_and_is_never_written_twice(sheet, shared_store):
    sheet.create(recent_rows())
    run("report")
    delete_by_hand(sheet, "f0", "f1")
    run("status")
    assert (states(shared_store)["f0"], states(shared_store)["f1"]) == ("deleted", "deleted")
    sheet.create(recent_rows())  # an undo in the sheet: the rows are there again
    assert "Restored 1 deleted draft" in run("sync", "--restore-deleted", "f0")  # before any read saw the undo
    assert ids(sheet).count("f0") == 1
    run("status")
    assert set(states(shared_store).values()) == {"delivered"}
    assert reviewed(sheet, run("report", "--json")) == (7, 3)


def test_only_a_delivered_draft_missing_from_the_whole_tab_counts_as_deleted(sheet, shared_store):
    from loop import log_draft

    rows = recent_rows()
    sheet.create(rows + [draft(trace_id="old", days_ago=100)])
    run("archive", "--older-than", "30d")
    rows[0]["score"] = "maybe"  # a reviewer's typo: the row is skipped, yet the tab holds its trace id
    sheet.create(rows)
    run("report")
    waiting = log_draft(ticket="t", draft="d", wait=False)  # pending: not in the sheet yet
    stored(shared_store, "UPDATE drafts SET state = 'sent' WHERE trace_id = 's0'")  # a write that may have landed
    delete_by_hand(sheet, "s0")
    assert "deleted from the sheet" not in run("status")
    assert states(shared_store) == {**{r["trace_id"]: "delivered" for r in rows}, "old": "archived",
                                    waiting: "pending", "s0": "sent"}


def test_a_draft_delivered_while_the_sheet_is_read_is_not_taken_for_deleted(workspace, google, shared_store,
                                                                          monkeypatch):
    """A second process delivers a draft right after `loop report` read the tab: the store says
    delivered, the rows read do not hold it; the second look does."""
    from loop import log_draft

    sheet = GoogleSheet(google)
    sheet.create(recent_rows())
    monkeypatch.setenv("LOOP_SHEET", KEY)
    waiting = log_draft(ticket="late", draft="d", wait=False)

    def deliver():
        env = dict(os.environ, LOOP_SHEET=KEY)
        subprocess.run([sys.executable, "-m", "loop", "sync"], cwd=workspace, env=env, check=True, capture_output=True)

    google.fail({"match": "batchGet", "after": True, "call": deliver})
    run("report")
    assert states(shared_store)[waiting] == "delivered" and waiting in ids(sheet)


def test_a_drafts_tab_that_cannot_be_read_marks_nothing_deleted(sheet, shared_store):
    sheet.create(recent_rows())
    run("report")
    sheet.create([{"ticket": "t"}], headers=["ticket", "draft", "score", "comment", "created_at"])  # no trace_id
    run("status", code=2)
    run("report", code=2)
    assert set(states(shared_store).values()) == {"delivered"}
