"""The store under real faults: a PostgreSQL server restarted or a backend terminated under a running
process, locks another session holds, a database that is read-only or cancels statements, the
SQLite file or its companions deleted or replaced under a running watcher, a NUL in a ticket, and
passwords wherever a connection string keeps them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from loop import log_draft, schema
from loop.errors import RunFailure, UsageError
from tests.conftest import read_tab, write_workbook
from tests.test_store import as_if_a_new_process, run, stored

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(workspace, store_url, monkeypatch):
    monkeypatch.setenv("LOOP_STORE", store_url)
    monkeypatch.setenv("LOOP_STORE_TIMEOUT", "1")
    yield store_url
    as_if_a_new_process()


def env_for(store_url: str, **extra) -> dict:
    return {**os.environ, "LOOP_STORE": store_url, "PYTHONPATH": str(ROOT), **extra}


def start_watcher(workspace: Path, store_url: str, seconds: str = "0.2", **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "loop", "sync", "--watch", seconds], cwd=workspace,
                            env=env_for(store_url, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(watcher: subprocess.Popen) -> tuple[int, str]:
    if watcher.poll() is None:
        watcher.send_signal(signal.SIGTERM)
    code = watcher.wait(timeout=30)
    return code, watcher.stderr.read()


def trace_ids(path: Path) -> list[str]:
    return [row["trace_id"] for row in read_tab(path, schema.DRAFTS)]


def wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def within(seconds: float, call):
    """`call()` run in a thread: (its result or exception, the seconds it took); a call still running
    after `seconds` fails the test (it is a wait without bound)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as error:  # noqa: BLE001 -- handed back to the test
            outcome["value"] = error

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return outcome["value"], time.monotonic() - started


def backend_pids(admin_url: str, database: str) -> list[int]:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        return [row[0] for row in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                                                "pid <> pg_backend_pid()", (database,))]


def terminate_backends(admin_url: str, database: str) -> None:
    """pg_terminate_backend on every session of this test's own database, until none is left."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND "
                      "pid <> pg_backend_pid()", (database,))
    assert wait_for(lambda: not backend_pids(admin_url, database), 10)


# --- 1, 2: a server restarted, a backend terminated ---------------------------------------------


def test_a_watcher_reconnects_after_a_postgresql_restart_and_delivers_what_was_logged_meanwhile(
        private_postgres, workspace, monkeypatch):
    url = private_postgres.database()
    monkeypatch.setenv("LOOP_STORE", url)
    path = write_workbook(workspace / "loop.xlsx", [])
    watcher = start_watcher(workspace, url, LOOP_STORE_TIMEOUT="2")
    try:
        first = log_draft(ticket="before the restart", draft="d", wait=False)
        assert wait_for(lambda: trace_ids(path) == [first])
        private_postgres.stop()
        time.sleep(1.5)  # several rounds of the watcher find the server gone
        with pytest.raises(RunFailure, match="cannot be reached"):
            log_draft(ticket="while it is down", draft="d", wait=False)  # no commit, no id
        private_postgres.start()
        # this process's own connection was lost too: the next call replaces it
        later = [log_draft(ticket=f"after the restart {i}", draft="d", wait=False) for i in range(3)]
        assert wait_for(lambda: trace_ids(path) == [first, *later]), watcher.stderr
        assert watcher.poll() is None
    finally:
        private_postgres.start()  # running again for the next test, whatever happened
        as_if_a_new_process()
        code, err = stop(watcher)
    assert code == 0 and "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    # one warning for each thing the server said (it ended the connection, it does not answer, it is
    # starting up), never one a round
    assert 1 <= len(warnings) <= 3 and len(set(warnings)) == len(warnings), err
    assert "Delivering again" in err
    assert stored(url, "SELECT COUNT(*) FROM drafts WHERE state <> 'delivered'") == [(0,)]


def test_log_draft_in_a_long_running_process_survives_its_backend_being_terminated(postgres_server, postgres_url,
                                                                                   workspace, monkeypatch):
    monkeypatch.setenv("LOOP_STORE", postgres_url)
    database = postgres_url.rsplit("/", 1)[1]
    first = log_draft(ticket="first", draft="d", wait=False)
    terminate_backends(postgres_server, database)
    second = log_draft(ticket="second", draft="d", wait=False)
    assert stored(postgres_url, "SELECT trace_id FROM drafts ORDER BY seq") == [(first,), (second,)]
    as_if_a_new_process()


def test_a_statement_cut_off_on_the_way_is_reported_and_never_run_again(postgres_server, postgres_url, workspace,
                                                                        monkeypatch):
    """The logging session is terminated while its INSERT waits on a lock: the call fails (no id), the
    draft is not kept, and the next call works on a new connection."""
    import psycopg

    from loop.store.db import connect

    monkeypatch.setenv("LOOP_STORE", postgres_url)
    monkeypatch.setenv("LOOP_STORE_TIMEOUT", "20")
    log_draft(ticket="first", draft="d", wait=False)
    pid = connect(postgres_url)._conn.info.backend_pid
    with psycopg.connect(postgres_url, application_name="lock-holder") as holder:
        holder.execute("LOCK TABLE drafts")
        thread_result = {}
        thread = threading.Thread(target=lambda: thread_result.update(
            value=_catch(lambda: log_draft(ticket="cut off", draft="d", wait=False))))
        thread.start()
        assert wait_for(lambda: _waiting(postgres_server, pid), 10)
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        thread.join(20)
        holder.rollback()
    error = thread_result["value"]
    assert isinstance(error, RunFailure) and "Traceback" not in str(error), error
    third = log_draft(ticket="after", draft="d", wait=False)
    assert [t for t, in stored(postgres_url, "SELECT ticket FROM drafts ORDER BY seq")] == ["first", "after"]
    assert stored(postgres_url, "SELECT trace_id FROM drafts WHERE ticket = 'after'") == [(third,)]
    as_if_a_new_process()


def _catch(call):
    try:
        return call()
    except BaseException as error:  # noqa: BLE001
        return error


def _waiting(admin_url: str, pid: int) -> bool:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return bool(row and row[0] == "Lock")


def test_a_passing_outage_keeps_the_watcher_trying_with_one_warning(workspace):
    write_workbook(workspace / "loop.xlsx", [])
    watcher = start_watcher(workspace, "postgresql://agent:S3CRETPW@127.0.0.1:9/loop", "0.2")
    time.sleep(2.5)
    running = watcher.poll() is None
    code, err = stop(watcher)
    assert running and code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cannot be reached" in warnings[0] and "S3CRETPW" not in err


@pytest.mark.parametrize("fault", ["refused credentials", "a newer schema"])
def test_a_store_that_refuses_to_work_ends_the_watcher_non_zero(postgres_server, postgres_url, workspace, fault):
    """Refused credentials from the start; or a newer release upgrades the store and the watcher's
    connection drops, so the one it makes next finds a schema it does not know."""
    write_workbook(workspace / "loop.xlsx", [])
    url = postgres_url
    if fault == "refused credentials":
        url = postgres_url.replace("loop:loop@", "loop:not-the-password@")
    watcher = start_watcher(workspace, url)
    try:
        if fault == "a newer schema":
            from loop.store.db import MIGRATIONS

            database = url.rsplit("/", 1)[1]
            assert wait_for(lambda: backend_pids(postgres_server, database), 20)
            stored(url, "INSERT INTO migrations (version, applied_at) VALUES (?, 'later')", (len(MIGRATIONS) + 1,))
            as_if_a_new_process()
            time.sleep(0.5)
            assert watcher.poll() is None  # a store it has open goes on working
            terminate_backends(postgres_server, database)
        code = watcher.wait(timeout=30)
    finally:
        _, err = stop(watcher)
    assert code == 2, err
    assert ("refused the credentials" if fault == "refused credentials" else "newer release of loop") in err
    assert "not-the-password" not in err and "Traceback" not in err


# --- 3: every wait on the store is bounded and names what held it ---------------------------------

# For each lock another session holds: what each command does within the bound. "blocked": exit 1
# (log_draft raises) with an error naming the holder; "warned": the draft is logged (an id, exit 0)
# and the delivery waits, with a warning naming the holder; "ok": not in its way.
POSTGRES_LOCKS = {
    "a row lock on workbooks": ("SELECT * FROM workbooks FOR UPDATE", "workbooks",
                                {"log": "blocked", "log_draft": "blocked", "status": "ok"}),
    "a row lock on drafts": ("SELECT * FROM drafts FOR UPDATE", "drafts",
                             {"log": "warned", "log_draft": "ok", "status": "ok", "sync": "blocked"}),
    "LOCK TABLE drafts": ("LOCK TABLE drafts", "drafts",
                          {"log": "blocked", "log_draft": "blocked", "status": "blocked", "sync": "blocked"}),
    "the migration's advisory lock": ("SELECT pg_advisory_lock(7162534)", "the migration lock",
                                      {"log": "blocked", "log_draft": "blocked", "status": "blocked",
                                       "sync": "blocked"}),
}


def _command(name: str):
    def call():
        as_if_a_new_process()  # each command opens the store as a new process does
        if name == "log_draft":
            return log_draft(ticket=f"by {name}", draft="d", wait=False)
        args = {"log": ["log", "--ticket", "by log", "--draft", "d"], "status": ["status"], "sync": ["sync"]}[name]
        return run(*args)

    return call


def _check(name: str, expected: str, outcome, seconds: float, holder: str, pid: int) -> None:
    assert seconds < 6, (name, seconds)  # the bound is 1 s; connecting and the lookup take the rest
    if name == "log_draft":
        if expected == "blocked":
            assert isinstance(outcome, RunFailure), (name, outcome)
            text = str(outcome)
        else:
            assert isinstance(outcome, str), (name, outcome)
            return
    else:
        code, out, err = outcome
        if expected == "ok":
            assert code == 0, (name, err)
            return
        assert (code, bool(out.strip())) == ((1, False) if expected == "blocked" else (0, True)), (name, err)
        text = err
        assert len(text.strip().splitlines()) == 1, text
    assert f"pid {pid}" in text and holder in text, (name, text)


@pytest.mark.parametrize("lock", list(POSTGRES_LOCKS))
def test_a_lock_another_postgresql_session_holds_is_waited_for_a_bounded_time_and_named(postgres_url, workspace,
                                                                                        monkeypatch, lock):
    import psycopg

    store = postgres_url
    monkeypatch.setenv("LOOP_STORE", store)
    monkeypatch.setenv("LOOP_STORE_TIMEOUT", "1")
    sql, what, expected = POSTGRES_LOCKS[lock]
    write_workbook(workspace / "loop.xlsx", [])
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")  # the first draft waits
    if "advisory" not in lock:  # the store exists (with a waiting draft); for the advisory lock it is new
        assert run("log", "--ticket", "waiting", "--draft", "d")[0] == 0
    (workspace / "~$loop.xlsx").unlink()
    with psycopg.connect(store, application_name="lock-holder") as holder:
        holder.execute(sql)
        pid = holder.info.backend_pid
        for name, want in expected.items():
            outcome, seconds = within(15, _command(name))
            _check(name, want, outcome, seconds, what, pid)
            assert "lock-holder" in (str(outcome) if name == "log_draft" else outcome[2]) or want == "ok"
        holder.rollback()
    as_if_a_new_process()


@pytest.mark.parametrize("lock", ["BEGIN EXCLUSIVE", "BEGIN IMMEDIATE"])
def test_a_lock_another_sqlite_process_holds_is_waited_for_a_bounded_time_and_named(workspace, monkeypatch, lock):
    monkeypatch.setenv("LOOP_STORE_TIMEOUT", "1")
    path = write_workbook(workspace / "loop.xlsx", [])
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    assert run("log", "--ticket", "waiting", "--draft", "d")[0] == 0
    (workspace / "~$loop.xlsx").unlink()
    as_if_a_new_process()
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\n"
                               "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                               f"c.execute({lock!r}); c.execute('UPDATE drafts SET ticket = ticket')\n"
                               "print('held', flush=True); time.sleep(60)\n", str(workspace / "loop.db")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        reads = "blocked" if lock == "BEGIN EXCLUSIVE" else "ok"
        expected = {"log": "blocked", "log_draft": "blocked", "status": reads, "sync": "blocked"}
        for name, want in expected.items():
            outcome, seconds = within(15, _command(name))
            _check(name, want, outcome, seconds, "python -c", holder.pid)
    finally:
        holder.kill()
        holder.wait()
        as_if_a_new_process()
    assert run("sync")[0] == 0
    assert [row["ticket"] for row in read_tab(path, schema.DRAFTS)] == ["waiting"]


# --- 4: what the server said, and the right fix ---------------------------------------------------


def _alter_database(admin_url: str, store_url: str, setting: str) -> None:
    import psycopg

    name = store_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET {setting}')


def test_a_read_only_database_is_named_as_such_and_ends_a_watcher(postgres_server, postgres_url, workspace,
                                                                   monkeypatch):
    monkeypatch.setenv("LOOP_STORE", postgres_url)
    path = write_workbook(workspace / "loop.xlsx", [])
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    assert run("log", "--ticket", "waiting", "--draft", "d")[0] == 0
    (workspace / "~$loop.xlsx").unlink()
    _alter_database(postgres_server, postgres_url, "default_transaction_read_only = on")
    as_if_a_new_process()
    code, out, err = run("log", "--ticket", "refused", "--draft", "d")
    assert code == 2 and out == "" and "is read-only" in err and "default_transaction_read_only" in err, err
    assert "cannot be reached" not in err and "start the server" not in err
    code, out, err = run("status")  # a read-only store can still be read
    assert code == 0 and "Pending: 1" in out, out + err
    watcher = start_watcher(workspace, postgres_url)
    try:
        code = watcher.wait(timeout=30)
    finally:
        _, err = stop(watcher)
    assert code == 2 and "is read-only" in err and "Traceback" not in err, err
    assert read_tab(path, schema.DRAFTS) == []
    as_if_a_new_process()


def test_a_statement_timeout_is_named_with_its_fix(postgres_server, postgres_url, workspace, monkeypatch):
    """A statement_timeout shorter than a lock wait: the server cancels the statement (57014)."""
    import psycopg

    monkeypatch.setenv("LOOP_STORE", postgres_url)
    monkeypatch.setenv("LOOP_STORE_TIMEOUT", "5")
    write_workbook(workspace / "loop.xlsx", [])
    assert run("log", "--ticket", "before", "--draft", "d")[0] == 0
    _alter_database(postgres_server, postgres_url, "statement_timeout = 200")
    as_if_a_new_process()
    with psycopg.connect(postgres_url, application_name="lock-holder") as holder:
        holder.execute("SET statement_timeout = 0")
        holder.execute("LOCK TABLE drafts")
        (code, out, err), seconds = within(15, lambda: run("log", "--ticket", "cancelled", "--draft", "d"))
        holder.rollback()
    assert code == 2 and out == "" and seconds < 4
    assert "statement_timeout" in err and "cancel" in err and "cannot be reached" not in err, err
    as_if_a_new_process()


@pytest.mark.parametrize("fault, words", [("a wrong password", "refused the credentials"),
                                          ("no such database", "has no such database")])
def test_a_refused_connection_says_what_the_server_said(postgres_url, workspace, fault, words):
    write_workbook(workspace / "loop.xlsx", [])
    if fault == "a wrong password":
        url = postgres_url.replace("loop:loop@", "loop:Wr0ng-Passw0rd@")
    else:
        url = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    code, out, err = run("log", "--store", url, "--ticket", "t", "--draft", "d")
    assert code == 2 and out == "" and words in err and "Wr0ng-Passw0rd" not in err, err
    assert len(err.strip().splitlines()) == 1


# --- 6, 7: the SQLite file changed under a running watcher ---------------------------------------


def _log_in_a_new_process(workspace: Path, store_url: str, ticket: str) -> str:
    done = subprocess.run([sys.executable, "-m", "loop", "log", "--ticket", ticket, "--draft", "d"], cwd=workspace,
                          env=env_for(store_url), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_deleting_the_wal_and_shm_files_under_a_watcher_loses_no_logged_draft(workspace):
    store_url = f"sqlite:///{workspace / 'loop.db'}"
    path = write_workbook(workspace / "loop.xlsx", [])
    first = _log_in_a_new_process(workspace, store_url, "first")
    watcher = start_watcher(workspace, store_url)
    try:
        time.sleep(0.6)
        for name in ("loop.db-wal", "loop.db-shm"):
            (workspace / name).unlink(missing_ok=True)
        ids = [_log_in_a_new_process(workspace, store_url, f"after the delete {i}") for i in range(3)]
        time.sleep(0.6)
    finally:
        code, err = stop(watcher)
    assert code == 0, err
    as_if_a_new_process()
    assert [t for t, in stored(store_url, "SELECT trace_id FROM drafts ORDER BY seq")] == [first, *ids]
    assert trace_ids(path) == [first, *ids]
    as_if_a_new_process()
    assert not [p.name for p in workspace.iterdir() if p.name.endswith(("-wal", "-shm", "-journal"))]


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_a_store_file_replaced_or_deleted_under_a_watcher_is_reopened(workspace, monkeypatch, change):
    store_url = f"sqlite:///{workspace / 'loop.db'}"
    monkeypatch.setenv("LOOP_STORE", store_url)
    path = write_workbook(workspace / "loop.xlsx", [])
    watcher = start_watcher(workspace, store_url)
    try:
        first = log_draft(ticket="before", draft="d", wait=False)
        assert wait_for(lambda: trace_ids(path) == [first])
        db = workspace / "loop.db"
        if change == "replaced":  # a copy put in its place, as a restore from a backup does
            copy = workspace / "restored.db"
            copy.write_bytes(db.read_bytes())
            os.replace(copy, db)
        else:
            db.unlink()
        # this process's own connection notices too: the drafts go to the file now at that path
        later = [log_draft(ticket=f"after {i}", draft="d", wait=False) for i in range(2)]
        assert wait_for(lambda: trace_ids(path) == [first, *later]), trace_ids(path)
    finally:
        code, err = stop(watcher)
        as_if_a_new_process()
    assert code == 0 and "Traceback" not in err, err
    assert stored(store_url, "SELECT COUNT(*) FROM drafts WHERE state <> 'delivered'") == [(0,)]


# --- 15: the same text on both stores -------------------------------------------------------------


def test_a_nul_in_a_ticket_is_kept_alike_on_both_stores_as_the_mark_the_sheet_shows(store, workspace):
    from loop.store import Store, identity_of

    path = write_workbook(workspace / "loop.xlsx", [])
    code, out, err = run("log", input='{"ticket": "a\\u0000b", "draft": "d"}\n')
    assert code == 0 and out.strip(), err
    trace_id = log_draft(ticket="ok", draft="x\x00y", wait=False)
    assert stored(store, "SELECT ticket, draft FROM drafts ORDER BY seq") == [("a\ufffdb", "d"), ("ok", "x\ufffdy")]
    assert read_tab(path, schema.DRAFTS)[0]["ticket"] == "a\ufffdb"
    # any other way in (an old archive, a review) is refused alike, before anything is kept
    outbox = Store(store).workbook(identity_of(str(path), None, store), str(path))
    with pytest.raises(UsageError, match="NUL character"):
        outbox.add([{"trace_id": "t-nul", "created_at": "2026-12-01T00:00:00Z", "ticket": "a\x00", "draft": "d"}])
    assert stored(store, "SELECT COUNT(*) FROM drafts") == [(2,)] and trace_id


def _stored_text(url: str, folder: Path, text: str):
    from loop import config

    try:
        trace_id = log_draft(ticket=text, draft=text, thread=text, prompt_version="v1", wait=False,
                             settings=config.resolve(sheet=str(folder / "loop.xlsx"), store=url))
    except UsageError as error:
        return ("refused", str(error))
    return ("kept", stored(url, "SELECT ticket, thread FROM drafts WHERE trace_id = ?", (trace_id,)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40) | st.sampled_from(["\x00", "a\x00", "\ud800", "\U0010ffff",
                                                                 "\r\n\t", "\x7f\x9b", "🧵\u200d"]))
def test_any_text_sqlite_takes_postgresql_takes_identically(postgres_url, workspace, text):
    assume(text.strip())
    sqlite_url = f"sqlite:///{workspace / 'loop.db'}"
    on_sqlite = _stored_text(sqlite_url, workspace, text)
    on_postgres = _stored_text(postgres_url, workspace, text)
    assert on_sqlite == on_postgres
    if on_sqlite[0] == "kept":
        kept = text.replace("\x00", "\ufffd")
        assert on_sqlite[1] == [(kept, kept)]


# --- 16: secrets, wherever a connection string keeps them -----------------------------------------

SECRET = "Sekr3t-Pa55"


@pytest.mark.parametrize("url", [
    f"postgresql://agent@127.0.0.1:9/loop?password={SECRET}",
    f"postgresql://agent@127.0.0.1:9/loop?sslmode=disable&password={quote(SECRET + '/x y')}",
    f"postgresql://agent:{SECRET}/x@127.0.0.1:9/loop",
    f"postgresql://agent:{SECRET} x@127.0.0.1:9/loop",
    f"postgresql://agent:{quote(SECRET + '/@ x', safe='')}@127.0.0.1:9/loop",
    f"host=127.0.0.1 port=9 user=agent password={SECRET} dbname=loop",
    f"host=127.0.0.1 port=9 user=agent password='{SECRET} x' dbname=loop",
    f"host=127.0.0.1 port=9 user=agent password={SECRET} x dbname=loop",
])
def test_no_command_prints_a_store_password_in_any_form(workspace, url):
    write_workbook(workspace / "loop.xlsx", [])
    for args in (["status"], ["log", "--ticket", "t", "--draft", "d"], ["sync"]):
        code, out, err = run(*args, "--store", url)
        assert code in (1, 2) and SECRET not in out + err and "Pa55" not in out + err, (args, out, err)
        assert len(err.strip().splitlines()) == 1, err
    debug = subprocess.run([sys.executable, "-m", "loop", "status", "--debug", "--store", url], cwd=workspace,
                           env=env_for(url), capture_output=True, text=True, timeout=60)
    assert debug.returncode != 0 and "Pa55" not in debug.stdout + debug.stderr, debug.stderr
    assert not [p.name for p in workspace.iterdir() if "=" in p.name or p.suffix == ".db"]  # no SQLite file
    as_if_a_new_process()


def test_a_keyword_connection_string_is_a_postgresql_store(postgres_url, workspace):
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    keywords = make_conninfo(**conninfo_to_dict(postgres_url))
    path = write_workbook(workspace / "loop.xlsx", [])
    code, out, err = run("log", "--store", keywords, "--ticket", "by keywords", "--draft", "d")
    assert code == 0, err
    assert stored(postgres_url, "SELECT trace_id, ticket FROM drafts") == [(out.strip(), "by keywords")]
    assert trace_ids(path) == [out.strip()]
    code, out, _ = run("status", "--store", keywords)
    assert code == 0 and "password=***" in out and "password=loop" not in out
    assert not [p.name for p in workspace.iterdir() if "=" in p.name or p.suffix == ".db"]
    as_if_a_new_process()


_PASSWORDS = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=4, max_size=24)
_REST = ("postgresql://agent@db.example:5432/loop?sslmode=require&password=*** host=db.example port=5432 user=agent "
         "dbname=loop failed: connection to refused")


@settings(max_examples=300, deadline=None)
@given(password=_PASSWORDS, form=st.sampled_from(["encoded userinfo", "raw userinfo", "query", "raw query",
                                                   "keyword", "quoted keyword"]))
def test_a_store_password_is_masked_in_every_form(password, form):
    from loop.redact import mask_url, scrub, secrets_of

    assume(password.strip() and password not in _REST)
    if form == "raw query":
        assume(not any(c in password for c in "&#'") and not any(c.isspace() for c in password))
    if form == "keyword":
        assume(not any(c.isspace() or c in "'\\" for c in password))
    url = {
        "encoded userinfo": f"postgresql://agent:{quote(password, safe='')}@db.example:5432/loop",
        "raw userinfo": f"postgresql://agent:{password}@db.example:5432/loop",
        "query": f"postgresql://agent@db.example:5432/loop?sslmode=require&password={quote(password, safe='')}",
        "raw query": f"postgresql://agent@db.example:5432/loop?password={password}",
        "keyword": f"host=db.example port=5432 user=agent password={password} dbname=loop",
        "quoted keyword": "host=db.example user=agent password='{}' dbname=loop".format(
            password.replace("\\", "\\\\").replace("'", "\\'")),
    }[form]
    shown = mask_url(url)
    for secret in {password, quote(password, safe="")}:
        assert secret not in shown, (url, shown)
        message = scrub(f"connection to {url} failed: password {password} refused", secrets_of(url))
        assert secret not in message, (url, message)
    assert "db.example" in shown
