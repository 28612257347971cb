"""CONTRACT §7 and §7a: the store behind the sheet, on SQLite and on a real PostgreSQL server.

A trace id is printed if and only if its draft is committed; a committed draft reaches its own
workbook, once and in order, whatever fails, whoever else logs or delivers at the same time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from loop import log_draft, schema
from loop.cli import main
from tests.conftest import draft, read_tab, write_workbook
from tests.test_fault_injection import KILLED, run_in_child


def run(*args, env=None, input=None):
    """The CLI as a user runs it; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, list(args), input=input, env=env)
    return result.exit_code, result.stdout, result.stderr


def stored(store_url: str, sql: str, params=()):
    from loop.store.db import connect

    return connect(store_url).execute(sql, params)


def as_if_a_new_process() -> None:
    """Close the store connections this test process keeps open, as the end of a command does."""
    from loop.store import db

    db._close_all()
    db._OPEN.clear()


def tickets(path: Path) -> list[str]:
    return [row["ticket"] for row in read_tab(path, schema.DRAFTS)]


@pytest.fixture
def store(workspace, store_url, monkeypatch):
    """A workspace whose LOOP_STORE is a fresh SQLite file or PostgreSQL database."""
    monkeypatch.setenv("LOOP_STORE", store_url)
    return store_url


# --- the commit point -------------------------------------------------------------------------


def test_a_trace_id_is_printed_once_its_draft_is_committed_to_the_store(store, workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    code, out, _ = run("log", "--ticket", "one", "--draft", "d")
    assert code == 0
    trace_id = out.strip()
    assert stored(store, "SELECT trace_id, ticket, state FROM drafts") == [(trace_id, "one", "delivered")]
    assert [r["trace_id"] for r in read_tab(path, schema.DRAFTS)] == [trace_id]


def test_bad_input_prints_no_id_and_keeps_nothing(store, workspace):
    write_workbook(workspace / "loop.xlsx", [])
    code, out, err = run("log", input='{"ticket": "ok", "draft": "ok"}\nnot json\n')
    assert code == 2 and out == "" and "line 2 is not JSON" in err
    assert stored(store, "SELECT COUNT(*) FROM drafts") == [(0,)]


def test_a_drafts_tab_under_another_name_is_refused_before_anything_is_kept(store, workspace):
    import openpyxl

    path = workspace / "loop.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "drafts"
    book.active.append(schema.DRAFT_HEADERS)
    book.save(path)
    code, out, err = run("log", "--ticket", "t", "--draft", "d")
    assert code == 2 and out == ""
    assert "named 'drafts'; rename it 'Drafts'" in err
    assert stored(store, "SELECT COUNT(*) FROM drafts") == [(0,)]


def test_a_missing_workbook_is_refused_but_log_draft_without_waiting_never_touches_the_sheet(store, workspace):
    code, out, err = run("log", "--ticket", "t", "--draft", "d")
    assert code == 2 and out == "" and "No workbook at loop.xlsx" in err
    assert stored(store, "SELECT COUNT(*) FROM drafts") == [(0,)]
    trace_id = log_draft(ticket="t", draft="d", wait=False)  # no workbook needed: a commit, nothing more
    assert stored(store, "SELECT trace_id, state FROM drafts") == [(trace_id, "pending")]
    write_workbook(workspace / "loop.xlsx", [])
    assert run("sync")[0] == 0
    assert tickets(workspace / "loop.xlsx") == ["t"]


def test_an_unreachable_postgresql_store_is_exit_1_with_the_password_masked(workspace, monkeypatch):
    write_workbook(workspace / "loop.xlsx", [])
    url = "postgresql://agent:S3CRETPW@127.0.0.1:9/loop"
    for args in (["log", "--ticket", "t", "--draft", "d"], ["status"], ["log", "--debug", "--ticket", "t",
                                                                       "--draft", "d"]):
        result = CliRunner().invoke(main, [*args, "--store", url])
        text = result.output + result.stderr + ("".join(map(str, [result.exception])) if result.exception else "")
        assert result.exit_code != 0 and "S3CRETPW" not in text
        if "--debug" not in args:
            assert result.exit_code == 1 and result.stdout == ""
            assert "postgresql://agent:***@127.0.0.1:9/loop" in result.stderr
    assert read_tab(workspace / "loop.xlsx", schema.DRAFTS) == []


def test_status_shows_the_store_masked_and_what_waits(store, workspace):
    write_workbook(workspace / "loop.xlsx", [])
    log_draft(ticket="t", draft="d", wait=False)
    code, out, _ = run("status")
    assert code == 0
    from loop.redact import mask_url

    assert f"Store: {mask_url(store)}" in out and "Pending: 1 logged draft" in out
    if "@" in store:
        password = store.split("://")[1].split("@")[0].split(":")[1]
        assert f":{password}@" not in out and ":***@" in out


def test_a_full_disk_during_a_log_prints_no_id_and_a_retry_doubles_nothing(workspace):
    """A file-size limit hit while SQLite writes: no id, exit 2, and the store as it was."""
    write_workbook(workspace / "loop.xlsx", [])
    log_draft(ticket="first", draft="d")
    size = (workspace / "loop.db").stat().st_size
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({size}, {size}))\n"
              "from loop.cli import main\n"
              "main(['log', '--ticket', 'big', '--draft', 'x' * 200000])\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=workspace, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert "full" in done.stderr or "cannot be written" in done.stderr
    assert "Traceback" not in done.stderr
    assert tickets(workspace / "loop.xlsx") == ["first"]
    log_draft(ticket="again", draft="d")
    assert tickets(workspace / "loop.xlsx") == ["first", "again"]


@pytest.mark.parametrize("first_log", [False, True])
def test_a_read_only_folder_prints_no_id_and_keeps_nothing(workspace, first_log):
    """The workbook's folder (and so the store's) on a read-only mount: exit 2, no id, nothing kept."""
    folder = workspace / "desk"
    folder.mkdir()
    write_workbook(folder / "loop.xlsx", [])
    if first_log:
        log_draft(ticket="before", draft="d", settings=__import__("loop").config.resolve(sheet=str(folder / "loop.xlsx")))
        as_if_a_new_process()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True).returncode:
        pytest.skip("a read-only bind mount needs root")
    try:
        before = (folder / "loop.xlsx").read_bytes()
        code, out, err = run("log", "--sheet", str(folder / "loop.xlsx"), "--ticket", "t", "--draft", "d")
        assert code == 2 and out == "" and "cannot be written" in err and "Traceback" not in err
        assert (folder / "loop.xlsx").read_bytes() == before
    finally:
        as_if_a_new_process()
        subprocess.run(["umount", "-l", str(folder)], check=True)
    assert tickets(folder / "loop.xlsx") == (["before"] if first_log else [])


def test_a_damaged_store_file_is_refused_with_one_line(workspace):
    write_workbook(workspace / "loop.xlsx", [])
    log_draft(ticket="first", draft="d")
    as_if_a_new_process()
    db = workspace / "loop.db"
    db.write_bytes(db.read_bytes()[:1000])  # cut short
    code, out, err = run("log", "--ticket", "t", "--draft", "d")
    assert code == 2 and out == "" and "damaged" in err and len(err.strip().splitlines()) == 1
    assert tickets(workspace / "loop.xlsx") == ["first"]


def test_a_deleted_store_is_started_anew_and_the_sheet_keeps_what_it_had(workspace):
    write_workbook(workspace / "loop.xlsx", [])
    log_draft(ticket="first", draft="d")
    as_if_a_new_process()
    for name in ("loop.db", "loop.db-wal", "loop.db-shm"):
        (workspace / name).unlink(missing_ok=True)
    log_draft(ticket="second", draft="d")
    assert tickets(workspace / "loop.xlsx") == ["first", "second"]


def test_the_store_is_one_file_between_commands(workspace):
    write_workbook(workspace / "loop.xlsx", [])
    subprocess.run([sys.executable, "-m", "loop", "log", "--ticket", "t", "--draft", "d"], cwd=workspace,
                   check=True, capture_output=True)
    assert not (workspace / "loop.db-wal").exists()
    (workspace / "loop.db-shm").unlink(missing_ok=True)
    assert stored(f"sqlite:///{workspace / 'loop.db'}", "SELECT ticket FROM drafts") == [("t",)]


# --- delivery: once, in order, to its own workbook ----------------------------------------------


def test_drafts_wait_while_excel_has_the_workbook_open_and_reach_it_in_order(store, workspace):
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="reviewed")])
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    ids = []
    for i in range(3):
        code, out, err = run("log", "--ticket", f"ticket {i}", "--draft", "d")
        assert code == 0 and "1 draft waits in the store" in err and "reaches the sheet" in err
        ids.append(out.strip())
    assert tickets(path) == ["How do I export my timesheets?"]
    (workspace / "~$loop.xlsx").unlink()
    assert "Wrote 3 pending drafts" in run("sync")[1]
    assert [r["trace_id"] for r in read_tab(path, schema.DRAFTS)] == ["reviewed", *ids]
    assert "No pending drafts" in run("sync")[1]


def test_two_workbooks_sharing_one_store_each_get_only_their_own_drafts(store, workspace):
    xlsx = write_workbook(workspace / "loop.xlsx", [])
    xlsm = write_workbook(workspace / "loop.xlsm", [])
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    assert run("log", "--sheet", "loop.xlsx", "--ticket", "for xlsx", "--draft", "d")[0] == 0
    assert run("log", "--sheet", "loop.xlsm", "--ticket", "for xlsm", "--draft", "d")[0] == 0
    assert tickets(xlsm) == ["for xlsm"] and tickets(xlsx) == []
    code, out, _ = run("status", "--sheet", "loop.xlsm")
    assert "Pending for loop.xlsx: 1 draft" in out
    (workspace / "~$loop.xlsx").unlink()
    run("sync", "--sheet", "loop.xlsm")
    assert tickets(xlsx) == []
    run("sync", "--sheet", "loop.xlsx")
    assert tickets(xlsx) == ["for xlsx"] and tickets(xlsm) == ["for xlsm"]


def test_a_folder_moved_with_its_store_keeps_pending_drafts_for_its_workbook(workspace, tmp_path):
    folder = workspace / "desk"
    folder.mkdir()
    write_workbook(folder / "loop.xlsx", [])
    (folder / "~$loop.xlsx").write_bytes(b"Excel")
    assert run("log", "--sheet", "desk/loop.xlsx", "--ticket", "waits", "--draft", "d")[0] == 0
    moved = workspace / "moved"
    shutil.move(folder, moved)
    (moved / "~$loop.xlsx").unlink()
    # a copy of the workbook elsewhere, with a store of its own, never receives the moved folder's draft
    shutil.copy(moved / "loop.xlsx", workspace / "copy.xlsx")
    run("sync", "--sheet", "copy.xlsx")
    assert tickets(workspace / "copy.xlsx") == []
    assert "Wrote 1 pending draft" in run("sync", "--sheet", "moved/loop.xlsx")[1]
    assert tickets(moved / "loop.xlsx") == ["waits"]


def test_a_copied_workbook_sharing_the_store_never_takes_the_originals_drafts(store, workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    shutil.copy(path, workspace / "demo.xlsx")
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    run("log", "--ticket", "original's", "--draft", "d")
    run("log", "--sheet", "demo.xlsx", "--ticket", "demo's", "--draft", "d")
    assert tickets(workspace / "demo.xlsx") == ["demo's"]


WRITER = """
import sys
from loop import log_draft
for i in range(int(sys.argv[2])):
    log_draft(ticket=f"writer {sys.argv[1]} ticket {i}", draft="draft", wait=sys.argv[3] == "wait")
"""


def test_writers_and_deliverers_at_once_deliver_each_draft_once_and_in_order(store, workspace):
    """Four writers (two waiting, two not) and two `loop sync` deliverers, all at once."""
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="reviewed", comment="keep")])
    env = {**os.environ, "LOOP_STORE": store, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(n), "12", "wait" if n % 2 else "nowait"],
                                cwd=workspace, env=env, stderr=subprocess.PIPE, text=True) for n in range(4)]
    syncs = [subprocess.Popen([sys.executable, "-m", "loop", "sync"], cwd=workspace, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in writers + syncs:
        assert process.wait(timeout=120) == 0, process.stderr.read()
    run("sync")
    rows = read_tab(path, schema.DRAFTS)
    assert rows[0]["comment"] == "keep"
    got = [r["ticket"] for r in rows[1:]]
    assert sorted(got) == sorted(f"writer {n} ticket {i}" for n in range(4) for i in range(12))
    for n in range(4):
        mine = [t for t in got if t.startswith(f"writer {n} ")]
        assert mine == [f"writer {n} ticket {i}" for i in range(12)]
    assert stored(store, "SELECT COUNT(*) FROM drafts WHERE state <> 'delivered'") == [(0,)]


def test_sync_watch_delivers_until_stopped(store, workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    env = {**os.environ, "LOOP_STORE": store, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    watcher = subprocess.Popen([sys.executable, "-m", "loop", "sync", "--watch", "0.2"], cwd=workspace, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ids = [log_draft(ticket=f"t{i}", draft="d", wait=False) for i in range(5)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(read_tab(path, schema.DRAFTS)) < 5:
            time.sleep(0.1)
        assert [r["trace_id"] for r in read_tab(path, schema.DRAFTS)] == ids
    finally:
        watcher.send_signal(signal.SIGTERM)
        code = watcher.wait(timeout=30)
    assert code == 0 and "Traceback" not in watcher.stderr.read()


# --- kills at every commit point ----------------------------------------------------------------

def run_killed(args: list[str], kill_at: int, when: str) -> bool:
    """The command, killed just before or just after its `kill_at`-th store commit."""
    from contextlib import contextmanager

    from loop.store import db as database

    def install(die):
        real, calls = database.Database.transaction, [0]

        @contextmanager
        def transaction(self):
            calls[0] += 1
            with real(self) as inside:
                yield inside
                if calls[0] == kill_at and when == "before":
                    die()  # inside the transaction: it never commits
            if calls[0] == kill_at and when == "after":
                die()

        database.Database.transaction = transaction

    return run_in_child(args, install, kill_at, when)


@pytest.mark.parametrize("command", [["log", "--ticket", "killed", "--draft", "d"], ["sync"]])
def test_a_kill_at_any_commit_of_log_or_delivery_loses_and_doubles_nothing(store, workspace, command):
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="reviewed", comment="keep")])
    log_draft(ticket="waiting", draft="d", wait=False)
    before = path.read_bytes()
    points = 0
    for kill_at in range(1, 30):
        died = False
        for when in ("before", "after"):
            path.write_bytes(before)
            stored(store, "DELETE FROM drafts WHERE ticket <> 'waiting'")
            stored(store, "UPDATE drafts SET state = 'pending'")
            died = run_killed(command, kill_at, when)
            if not died:
                break
            logged = stored(store, "SELECT COUNT(*) FROM drafts WHERE ticket = 'killed'")[0][0]
            run("sync")
            got = tickets(path)
            assert got.count("waiting") == 1 and got.count("killed") == logged <= 1, (kill_at, when, got)
            assert read_tab(path, schema.DRAFTS)[0]["comment"] == "keep"
            if logged:
                assert got.index("waiting") < got.index("killed")
        if not died:
            break
        points += 1
    assert points >= 2  # every transaction of the command was tried


# --- the archive of earlier releases ------------------------------------------------------------


def _old_archive(folder: Path, records: list[dict], offset_after: int | None, state: str | None = None) -> None:
    folder.mkdir()
    lines = [json.dumps(r) + "\n" for r in records]
    (folder / "traces.jsonl").write_text("".join(lines))
    if state is not None:
        (folder / "delivered.json").write_text(state)
    elif offset_after is not None:
        offset = len("".join(lines[:offset_after]).encode())
        (folder / "delivered.json").write_text(json.dumps({"offset": offset, "inflight": None}))


def _old_record(n: int) -> dict:
    return {"trace_id": f"old-{n}", "created_at": "2026-11-20T10:00:00Z", "ticket": f"old {n}", "draft": "d",
            "ticket_id": "", "thread": "", "kb_sources": "", "prompt_version": "v1"}


@pytest.mark.parametrize("state", [None, '{"offset": 12', '{"offset":"abc"}', "[]", '{"offset": 999999}'])
def test_an_old_trace_archive_is_imported_once_losing_and_doubling_nothing(store, workspace, state):
    records = [_old_record(n) for n in range(4)]
    delivered = [dict(r, created_at="2026-11-20 10:00:00") for r in records[:2]]
    path = write_workbook(workspace / "loop.xlsx", delivered)
    _old_archive(workspace / "loop.traces", records, offset_after=2, state=state)
    code, out, err = run("log", "--ticket", "new", "--draft", "d")
    assert code == 0, err
    assert tickets(path) == ["old 0", "old 1", "old 2", "old 3", "new"]
    assert not (workspace / "loop.traces").exists() and (workspace / "loop.traces.imported").is_dir()
    # a second copy of the old folder (restored from a backup) imports nothing twice
    shutil.copytree(workspace / "loop.traces.imported", workspace / "loop.traces")
    run("sync")
    assert tickets(path) == ["old 0", "old 1", "old 2", "old 3", "new"]
    assert stored(store, "SELECT COUNT(*) FROM drafts") == [(5,)]


def test_an_import_killed_at_any_commit_is_done_again_whole(store, workspace):
    records = [_old_record(n) for n in range(3)]
    path = write_workbook(workspace / "loop.xlsx", [])
    points = 0
    for kill_at in range(1, 30):
        died = False
        for when in ("before", "after"):
            shutil.rmtree(workspace / "loop.traces", ignore_errors=True)
            shutil.rmtree(workspace / "loop.traces.imported", ignore_errors=True)
            _old_archive(workspace / "loop.traces", records, offset_after=0)
            write_workbook(path, [])
            stored(store, "DELETE FROM drafts")
            died = run_killed(["sync"], kill_at, when)
            if not died:
                break
            run("sync")
            assert tickets(path) == ["old 0", "old 1", "old 2"], (kill_at, when)
            assert stored(store, "SELECT COUNT(*) FROM drafts") == [(3,)]
        if not died:
            break
        points += 1
    assert points >= 3  # the import's commit among them


# --- the schema ---------------------------------------------------------------------------------


def test_the_schema_is_versioned_and_a_newer_one_is_refused(store, workspace):
    from loop.store.db import MIGRATIONS, connect

    database = connect(store)
    assert database.schema_version == len(MIGRATIONS)
    database.execute("INSERT INTO migrations (version, applied_at) VALUES (?, ?)", (len(MIGRATIONS) + 1, "later"))
    database.close()
    from loop.store import db

    db._OPEN.clear()
    write_workbook(workspace / "loop.xlsx", [])
    code, out, err = run("log", "--ticket", "t", "--draft", "d")
    assert code == 2 and out == "" and "newer release of loop" in err




def test_a_first_command_killed_while_it_creates_the_schema_leaves_a_store_the_next_one_completes(workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    for when in ("before", "after"):
        for name in ("loop.db", "loop.db-wal", "loop.db-shm"):
            (workspace / name).unlink(missing_ok=True)
        assert run_killed(["log", "--ticket", "killed", "--draft", "d"], 1, when)  # the migration's commit
        as_if_a_new_process()
        code, out, _ = run("log", "--ticket", f"after a kill {when}", "--draft", "d")
        assert code == 0 and out.strip()
    from loop.store.db import MIGRATIONS

    assert stored(f"sqlite:///{workspace / 'loop.db'}", "SELECT COUNT(*) FROM migrations") == [(len(MIGRATIONS),)]
    assert tickets(path) == ["after a kill before", "after a kill after"]
