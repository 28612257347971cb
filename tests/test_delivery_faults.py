"""A draft reaches its sheet exactly once, under real faults: the deliverer's database session ends
mid-write, lock files are deleted under a running delivery, the store is put back to an older copy,
Google applies a write after its client gave up or answers slowly, a backlog larger than one write
waits, and `loop log` is told to stop while it waits for a held lock."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loop import log_draft, log_drafts, schema
from loop.errors import UsageError
from tests.backends import KEY, GoogleSheet
from tests.conftest import draft, read_tab, write_workbook
from tests.test_store import as_if_a_new_process, run, stored

ROOT = Path(__file__).resolve().parents[1]
# a command in a process of its own, with a lease that lapses in a second and a Sheets client that
# gives up in seconds, so a lost lease or an unconfirmed write shows within a test
COMMAND = """
import sys
from loop.sheets.google import GoogleWorkbook, RetryingHTTPClient
from loop.store import lease
lease.TTL, lease.RENEW_EVERY = 1.0, 0.2
GoogleWorkbook.landing_grace = 0.3
RetryingHTTPClient.timeout_seconds, RetryingHTTPClient.base_delay = (0.5, 2.0), 0.01
from loop.cli import main
main(sys.argv[1:])
"""


def start(*args, store: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "LOOP_STORE": store, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", COMMAND, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def finished(process: subprocess.Popen, timeout: float = 60.0) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    return process.returncode, out, err


def sent(store: str) -> int:
    return stored(store, "SELECT COUNT(*) FROM drafts WHERE state = 'sent'")[0][0]


def drafts_rows(sheet) -> list[str]:
    return [row["trace_id"] for row in sheet.tab(schema.DRAFTS)]


@pytest.fixture
def short_timeouts(monkeypatch):
    """This process's Sheets client and lease, as COMMAND sets them for a process of its own."""
    from loop.sheets.google import GoogleWorkbook, RetryingHTTPClient
    from loop.store import lease

    monkeypatch.setattr(lease, "TTL", 1.0)
    monkeypatch.setattr(lease, "RENEW_EVERY", 0.2)
    monkeypatch.setattr(GoogleWorkbook, "landing_grace", 0.3)
    monkeypatch.setattr(RetryingHTTPClient, "timeout_seconds", (0.5, 2.0))


# --- 5: a lost lock never lets a second deliverer write the same drafts ---------------------------


@pytest.mark.parametrize("fault", ["terminated", "idle in transaction"])
def test_a_deliverers_session_ending_mid_write_lets_no_second_one_write_its_drafts(
        workspace, google, postgres_url, monkeypatch, fault):
    """A `loop sync` writes 5 drafts to a Sheets API that takes 3 s to apply them; meanwhile its
    database session is terminated, or ended by idle_in_transaction_session_timeout, and a second
    `loop sync` starts. The sheet gets 5 rows."""
    import psycopg

    monkeypatch.setenv("LOOP_STORE", postgres_url)
    monkeypatch.setenv("LOOP_SHEET", KEY)
    sheet = GoogleSheet(google)
    sheet.create([])
    ids = [log_draft(ticket=f"t{i}", draft="d", wait=False) for i in range(5)]
    as_if_a_new_process()
    name = postgres_url.rsplit("/", 1)[1]
    admin_url = os.environ["LOOP_TEST_POSTGRES"]
    if fault == "idle in transaction":
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET idle_in_transaction_session_timeout = 300')
    google.fail({"delay": 3.0, "match": "batchUpdate"})  # applied after 3 s, when its client gave up
    first = start("sync", "--sheet", KEY, store=postgres_url, cwd=workspace)
    wait_for(lambda: any(r["path"].endswith(":batchUpdate") for r in google.requests))
    landed = time.monotonic() + 3.2  # that write is in the sheet by then
    if fault == "terminated":
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND pid <> pg_backend_pid()", (name,))
    else:
        time.sleep(0.6)  # past the timeout: a transaction held open meanwhile is gone
    second = start("sync", "--sheet", KEY, store=postgres_url, cwd=workspace)
    finished(first)
    code, _, err = finished(second)
    assert code == 0, err
    time.sleep(max(0.0, landed - time.monotonic()))
    assert drafts_rows(sheet) == ids
    assert stored(postgres_url, "SELECT COUNT(*) FROM drafts WHERE state <> 'delivered'") == [(0,)]


def test_store_lock_files_deleted_under_a_running_delivery_let_no_second_one_write_its_drafts(
        workspace, store_url, monkeypatch):
    """A `loop sync` has marked 3 drafts sent and waits for the workbook, which another writer holds;
    every lock file beside the store is deleted, that sync is frozen (SIGSTOP), a second `loop sync`
    starts and writes, and the first one goes on. The workbook gets 3 rows."""
    from filelock import FileLock

    monkeypatch.setenv("LOOP_STORE", store_url)
    path = write_workbook(workspace / "loop.xlsx", [])
    ids = [log_draft(ticket=f"t{i}", draft="d", wait=False) for i in range(3)]
    as_if_a_new_process()
    other_writer = FileLock(str(workspace / ".loop.xlsx.lock"))
    other_writer.acquire()
    first = start("sync", store=store_url, cwd=workspace)
    try:
        wait_for(lambda: sent(store_url) == 3)
        for lock in workspace.glob("*.db*.lock"):
            lock.unlink()
        first.send_signal(signal.SIGSTOP)
        second = start("sync", store=store_url, cwd=workspace)
        other_writer.release()
        code, _, err = finished(second)
        assert code == 0, err
    finally:
        first.send_signal(signal.SIGCONT)
    code, _, err = finished(first)
    assert [r["trace_id"] for r in read_tab(path, schema.DRAFTS)] == ids
    assert code in (0, 2) and (code == 0 or "took over the delivery" in err), err
    assert not list(workspace.glob("*.db*.lock"))  # the lease is in the store: no lock file to delete


# --- 7: a store behind the sheet never writes a draft twice --------------------------------------


def test_a_store_put_back_to_an_older_copy_never_writes_a_delivered_draft_again(sheet, workspace, monkeypatch):
    """The store is replaced, between two deliveries of one long-running process, by a copy from
    before the first: it holds two delivered drafts as pending. Neither is written again."""
    store = f"sqlite:///{workspace / 'loop.db'}"
    monkeypatch.setenv("LOOP_STORE", store)
    sheet.create([draft(trace_id="reviewed")])
    ids = [log_draft(ticket=f"t{i}", draft="d", wait=False) for i in range(2)]
    as_if_a_new_process()
    shutil.copy(workspace / "loop.db", workspace / "backup.db")
    assert run("sync")[0] == 0
    assert drafts_rows(sheet) == ["reviewed", *ids]
    as_if_a_new_process()  # the same process, its store opened again (the file was replaced)
    os.replace(workspace / "backup.db", workspace / "loop.db")
    code, out, err = run("sync")
    assert code == 0, err
    assert drafts_rows(sheet) == ["reviewed", *ids]
    assert stored(store, "SELECT COUNT(*) FROM drafts WHERE state <> 'delivered'") == [(0,)]
    later = log_draft(ticket="later", draft="d")
    assert drafts_rows(sheet) == ["reviewed", *ids, later]


def test_loop_log_on_google_asks_the_sheet_only_when_the_store_may_be_behind_it(workspace, google, monkeypatch):
    """Its own new drafts cannot be in the sheet yet: metadata, the header row, one batchUpdate. Drafts
    that waited, delivered by a process that has not delivered before, are looked up first."""
    monkeypatch.setenv("LOOP_SHEET", KEY)
    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="reviewed")])
    google.requests.clear()
    mine = run("log", "--ticket", "t", "--draft", "d")[1].strip()
    assert [r["path"].rsplit("/", 1)[-1] for r in google.requests] == [KEY, "values:batchGet", f"{KEY}:batchUpdate"]
    waiting = log_draft(ticket="waited", draft="d", wait=False)
    as_if_a_new_process()
    from loop.store import lease

    lease._LAST.clear()  # a process of its own
    google.requests.clear()
    assert run("sync")[0] == 0
    assert len([r for r in google.requests if r["path"].endswith("values:batchGet")]) == 2  # headers, trace ids
    assert drafts_rows(sheet) == ["reviewed", mine, waiting]


# --- 10: a draft that could never be delivered is refused before it is committed ------------------


@pytest.mark.parametrize("name", ["loop.xslx", "loop", "drafts.csv", "no such folder/loop.xlsx",
                                  "https://example.com/sheet", "a folder.xlsx"])
def test_a_sheet_no_delivery_could_reach_is_refused_before_anything_is_committed(workspace, monkeypatch, name):
    (workspace / "a folder.xlsx").mkdir()
    monkeypatch.setenv("LOOP_SHEET", name)
    monkeypatch.setenv("LOOP_STORE", str(workspace / "store.db"))
    with pytest.raises(UsageError) as refused:
        log_draft(ticket="t", draft="d", wait=False)
    message = str(refused.value)
    assert ("LOOP_SHEET" in message or "Google Sheets URL" in message) and "\n" not in message
    code, out, err = run("log", "--ticket", "t", "--draft", "d")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert stored(f"sqlite:///{workspace / 'store.db'}", "SELECT COUNT(*) FROM drafts") == [(0,)]


# --- 11: a write whose outcome is unknown is never sent again blindly; log keeps to its wait --------


def test_an_append_google_applies_after_the_client_gave_up_reaches_the_sheet_once(
        workspace, google, short_timeouts, monkeypatch):
    from loop.collect import traces
    from loop.sheets.google import GoogleWorkbook

    monkeypatch.setattr(traces, "LOG_WAIT_SECONDS", 3.0)
    monkeypatch.setattr(GoogleWorkbook, "landing_grace", 1.5)  # such a write lands within 4 s: past log's wait
    monkeypatch.setenv("LOOP_SHEET", KEY)
    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="reviewed")])
    google.fail({"delay": 2.5, "match": "batchUpdate"})  # applied 2.5 s after it came: the client waits 2 s
    code, out, err = run("log", "--ticket", "late", "--draft", "d")
    trace_id = out.strip()
    assert code == 0 and trace_id and "did not confirm" in err and "1 draft waits" in err
    assert stored(f"sqlite:///{workspace / 'loop.db'}", "SELECT state FROM drafts WHERE trace_id = ?",
                  (trace_id,)) == [("sent",)]
    code, out, err = run("log", "--ticket", "next", "--draft", "d")  # behind a write that may still land
    following = out.strip()
    assert code == 0 and following and "may still land" in err and "1 draft waits" in err
    wait_for(lambda: trace_id in drafts_rows(sheet))
    code, out, err = run("sync")  # waits until that write can no longer land, then asks the sheet
    assert code == 0, err
    after = log_draft(ticket="after", draft="d")
    assert drafts_rows(sheet) == ["reviewed", trace_id, following, after]
    assert len([r for r in google.requests if r["path"].endswith(":batchUpdate")]) == 3  # none sent twice


def test_loop_log_against_a_slow_sheets_api_ends_within_its_wait(workspace, google, monkeypatch):
    from loop.collect import traces

    monkeypatch.setattr(traces, "LOG_WAIT_SECONDS", 1.0)
    monkeypatch.setenv("LOOP_SHEET", KEY)
    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="reviewed")])
    google.fail(*[{"delay": 3.0}] * 6)  # every request answered after 3 s
    started = time.monotonic()
    code, out, err = run("log", "--ticket", "slow", "--draft", "d")
    took = time.monotonic() - started
    assert code == 0 and out.strip() and "1 draft waits" in err
    assert len(err.strip().splitlines()) == 1 and took < 2.0, (took, err)
    time.sleep(3.0)
    google._faults.clear()
    assert run("sync")[0] == 0
    assert drafts_rows(sheet) == ["reviewed", out.strip()]


# --- 13: loop log's own drafts go out after a backlog larger than one write -----------------------


def test_loop_log_delivers_its_own_draft_after_a_backlog_larger_than_one_write(sheet, workspace):
    from loop.store import DELIVERY_BATCH

    sheet.create([])
    backlog = log_drafts([{"ticket": f"old {i}", "draft": "d"} for i in range(DELIVERY_BATCH + 500)], wait=False)
    code, out, err = run("log", "--ticket", "mine", "--draft", "d")
    assert code == 0 and "wait" not in err, err
    assert drafts_rows(sheet) == [*backlog, out.strip()]


def test_loop_log_says_its_draft_waits_when_a_backlog_takes_longer_than_its_wait(sheet, workspace, monkeypatch):
    from loop.collect import traces
    from loop.store import DELIVERY_BATCH

    monkeypatch.setattr(traces, "LOG_WAIT_SECONDS", 0.01)
    sheet.create([])
    log_drafts([{"ticket": f"old {i}", "draft": "d"} for i in range(DELIVERY_BATCH + 500)], wait=False)
    code, out, err = run("log", "--ticket", "mine", "--draft", "d")
    assert code == 0 and out.strip() and "1 draft waits" in err
    assert out.strip() not in drafts_rows(sheet)


# --- 14: the id is printed iff the draft is committed, also when the process is told to stop -------


def test_sigterm_while_log_waits_for_a_held_workbook_lock_prints_the_id_iff_the_draft_is_kept(workspace):
    from filelock import FileLock

    write_workbook(workspace / "loop.xlsx", [])
    store = f"sqlite:///{workspace / 'loop.db'}"
    log_draft(ticket="first", draft="d")  # the store exists, so a commit is all a log does before it waits
    as_if_a_new_process()
    other_writer = FileLock(str(workspace / ".loop.xlsx.lock"))
    other_writer.acquire()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kept = 0
    try:
        for n, moment in enumerate(["committed", 0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5]):
            ticket = f"stopped {n}"
            process = subprocess.Popen([sys.executable, "-m", "loop", "log", "--ticket", ticket, "--draft", "d"],
                                       cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            if moment == "committed":
                wait_for(lambda: stored(store, "SELECT 1 FROM drafts WHERE ticket = ?", (ticket,)))
            else:
                time.sleep(moment)
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
            as_if_a_new_process()
            committed = [row[0] for row in stored(store, "SELECT trace_id FROM drafts WHERE ticket = ?", (ticket,))]
            assert out.split() == committed, (moment, out, committed)
            kept += bool(committed)
    finally:
        other_writer.release()
    assert kept >= 1
    assert run("sync")[0] == 0
    assert len(read_tab(workspace / "loop.xlsx", schema.DRAFTS)) == 1 + kept
