"""CONTRACT §7: logging drafts from any agent, safely with several writers, through the store."""

import json
import subprocess
import sys
from datetime import datetime

import pytest

from loop import log_draft, schema
from tests.conftest import draft, read_tab, write_workbook


def test_log_draft_appends_a_row_with_a_new_trace_id_and_the_prompt_version(workspace, monkeypatch):
    write_workbook(workspace / "loop.xlsx", [draft(trace_id="old", comment="keep")])
    trace_id = log_draft(ticket="Where is my invoice?", draft="Under Invoices.", ticket_id="TH-1",
                         kb_sources=["kb/invoices.md", "kb/billing.md"])
    rows = read_tab(workspace / "loop.xlsx", schema.DRAFTS)
    assert rows[0]["trace_id"] == "old" and rows[0]["comment"] == "keep"
    new = rows[1]
    assert new["trace_id"] == trace_id and len(trace_id) == 36
    assert new["ticket"] == "Where is my invoice?" and new["ticket_id"] == "TH-1"
    assert new["kb_sources"] == "kb/invoices.md, kb/billing.md"
    assert new["prompt_version"] == "v1" and new["score"] is None
    assert isinstance(new["created_at"], datetime)  # a real date cell


def test_loop_log_reads_json_lines_and_prints_trace_ids(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [])
    lines = "\n".join(json.dumps({"ticket": f"t{i}", "draft": f"d{i}", "prompt_version": "v7"}) for i in range(3))
    from click.testing import CliRunner

    from loop.cli import main

    result = CliRunner().invoke(main, ["log"], input=lines + "\n")
    assert result.exit_code == 0, result.output
    ids = result.output.split()
    rows = read_tab(workspace / "loop.xlsx", schema.DRAFTS)
    assert [r["trace_id"] for r in rows] == ids and [r["prompt_version"] for r in rows] == ["v7"] * 3


def test_loop_log_takes_flags(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [])
    result = cli("log", "--ticket", "=1+1 help", "--draft", "Sure.")
    rows = read_tab(workspace / "loop.xlsx", schema.DRAFTS)
    assert rows[0]["trace_id"] == result.output.strip() and rows[0]["ticket"] == "=1+1 help"


@pytest.mark.parametrize("line, message", [
    ('{"ticket": "x"}', "draft is missing"),
    ("not json", "line 2 is not JSON"),
    ('{"ticket": "x", "draft": "y", "colour": "red"}', "unknown field(s) colour"),
])
def test_bad_input_to_loop_log_is_exit_2_and_writes_nothing(workspace, line, message):
    from click.testing import CliRunner

    from loop.cli import main

    path = write_workbook(workspace / "loop.xlsx", [])
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["log"], input='{"ticket": "ok", "draft": "ok"}\n' + line + "\n")
    assert result.exit_code == 2 and message in result.output
    assert path.read_bytes() == before


def test_fields_over_the_cell_limit_are_cut_and_kept_whole_in_the_store(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [])
    thread = "Customer (Nov 1): " + "the export is empty. " * 2500  # 52,500 characters
    trace_id = log_draft(ticket="Export broken", draft="Try again.", thread=thread)
    row = read_tab(workspace / "loop.xlsx", schema.DRAFTS)[0]
    assert len(row["thread"]) == 32_767 and "more characters]" in row["thread"]
    import sqlite3

    stored = sqlite3.connect(workspace / "loop.db").execute("SELECT trace_id, thread FROM drafts").fetchall()
    assert stored == [(trace_id, thread)]

    # the improver reads the whole thread back from the store
    from loop.workspace import Workspace

    here = Workspace()
    drafts, _ = here.drafts(here.workbook.read([schema.DRAFTS])[schema.DRAFTS])
    assert drafts[0].thread == thread


WRITER = """
import sys
from loop import log_draft
for i in range(int(sys.argv[2])):
    log_draft(ticket=f"writer {sys.argv[1]} ticket {i}", draft="draft")
"""


def test_several_writers_at_once_lose_no_row_and_keep_reviewer_cells(workspace):
    """Four agents, each logging 25 drafts one call at a time, into a 10,000-row workbook."""
    import openpyxl

    path = workspace / "loop.xlsx"
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(schema.DRAFTS)
    sheet.append(schema.DRAFT_HEADERS)
    def row(**values):
        return [values.get(h, "") for h in schema.DRAFT_HEADERS]

    sheet.append(row(trace_id="reviewed", created_at="2026-11-01T00:00:00Z", ticket="ticket", draft="draft",
                     prompt_version="v1", score="👎", comment="too long"))
    for i in range(9_999):
        sheet.append(row(trace_id=f"old-{i}", created_at="2026-11-01T00:00:00Z", ticket=f"an older ticket {i} " * 8,
                         draft="an older draft " * 12))
    book.save(path)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(w), "25"], cwd=workspace,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for w in range(4)]
    outputs = [w.communicate(timeout=300)[0] for w in writers]
    assert all(w.returncode == 0 for w in writers), outputs
    assert all("warning" not in out for out in outputs), outputs  # none had to leave its drafts pending
    rows = read_tab(path, schema.DRAFTS)
    logged = [r["ticket"] for r in rows if str(r["ticket"]).startswith("writer ")]
    assert sorted(logged) == sorted(f"writer {w} ticket {i}" for w in range(4) for i in range(25))
    for w in range(4):  # each writer's drafts in the order it logged them
        assert [t for t in logged if t.startswith(f"writer {w} ")] == [f"writer {w} ticket {i}" for i in range(25)]
    assert len(rows) == 10_100 and len({r["trace_id"] for r in rows}) == 10_100
    assert (rows[0]["trace_id"], rows[0]["score"], rows[0]["comment"]) == ("reviewed", "👎", "too long")


def test_log_draft_works_on_a_google_sheet(workspace, google, monkeypatch):
    from tests.backends import KEY, GoogleSheet

    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="reviewed")])
    google.requests.clear()
    monkeypatch.setenv("LOOP_SHEET", KEY)
    trace_id = log_draft(ticket="=HYPERLINK(1)", draft="ok")
    rows = sheet.tab(schema.DRAFTS)
    assert [r["trace_id"] for r in rows] == ["reviewed", trace_id]
    assert rows[1]["ticket"] == "=HYPERLINK(1)" and google.formulas(KEY, schema.DRAFTS) == []
    assert [r["path"].rsplit("/", 1)[-1] for r in google.requests] == [KEY, "values:batchGet", f"{KEY}:batchUpdate"]


def test_several_writers_at_once_on_a_google_sheet_lose_no_row(workspace, google, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from tests.backends import KEY, GoogleSheet

    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="reviewed", comment="too long")])
    monkeypatch.setenv("LOOP_SHEET", KEY)
    google.requests.clear()
    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(lambda i: log_draft(ticket=f"ticket {i}", draft="d", prompt_version="v1"), range(24)))
    writes = [r for r in google.requests if r["path"].endswith(":batchUpdate")]
    assert len(writes) < 24  # drafts waiting together go out together, under the per-minute write quota
    appended = [len(q["appendCells"]["rows"]) for w in writes for q in w["body"]["requests"] if "appendCells" in q]
    assert sum(appended) == 24 and max(appended) > 1  # one appendCells carries every waiting draft
    rows = sheet.tab(schema.DRAFTS)
    assert [r["trace_id"] for r in rows[1:]] and sorted(r["trace_id"] for r in rows[1:]) == sorted(ids)
    assert sorted(r["ticket"] for r in rows[1:]) == sorted(f"ticket {i}" for i in range(24))
    assert rows[0]["comment"] == "too long"


# --- pending drafts: durable when the sheet cannot take them yet (CONTRACT §7) ---------------------


def test_drafts_logged_while_excel_has_the_workbook_open_reach_it_later_in_order_once(workspace, cli):
    from click.testing import CliRunner

    from loop.cli import main

    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="reviewed")])
    owner = workspace / "~$loop.xlsx"
    owner.write_bytes(b"Excel")
    printed = []
    for i in range(3):
        result = CliRunner().invoke(main, ["log", "--ticket", f"ticket {i}", "--draft", "d"])
        assert result.exit_code == 0
        assert "warning: loop.xlsx is open in Excel" in result.stderr and "1 draft waits" in result.stderr
        printed.append(result.stdout.strip())
    assert len(read_tab(path, schema.DRAFTS)) == 1
    assert "Pending: 3 logged drafts" in cli("status").output

    owner.unlink()
    assert "Wrote 3 pending drafts" in cli("sync").output
    rows = read_tab(path, schema.DRAFTS)
    assert [r["trace_id"] for r in rows] == ["reviewed", *printed]
    assert [r["ticket"] for r in rows[1:]] == ["ticket 0", "ticket 1", "ticket 2"]
    assert "No pending drafts" in cli("sync").output
    assert len(read_tab(path, schema.DRAFTS)) == 4


def test_pending_drafts_ride_along_with_the_next_command_that_writes(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    trace_id = cli("log", "--ticket", "late", "--draft", "d").stdout.strip()
    (workspace / "~$loop.xlsx").unlink()
    cli("improve")
    ids = [r["trace_id"] for r in read_tab(path, schema.DRAFTS)]
    assert ids.count(trace_id) == 1 and ids[-1] == trace_id


def test_a_delivery_cut_short_after_the_save_is_not_repeated(workspace):
    """A crash after the workbook was replaced but before the store recorded it: the next delivery
    looks at the sheet and finds the drafts already there."""
    from loop.sheets import Append, WriteBatch
    from loop.store import SENT
    from loop.store.outbox import sheet_row
    from loop.workspace import Workspace

    path = write_workbook(workspace / "loop.xlsx", [])
    log_draft(ticket="one", draft="d", wait=False)
    outbox = Workspace().traces
    pending = outbox.pending()
    # the delivery got as far as replacing the workbook, with the draft marked as sent
    outbox.mark(pending, SENT)
    Workspace().workbook.write(WriteBatch(appends=[
        Append(schema.DRAFTS, schema.DRAFT_HEADERS, sheet_row(pending[0]), key="trace_id")]))
    log_draft(ticket="two", draft="d")
    assert [r["ticket"] for r in read_tab(path, schema.DRAFTS)] == ["one", "two"]


def test_log_draft_without_waiting_leaves_the_sheet_to_a_later_sync(workspace, cli):
    path = write_workbook(workspace / "loop.xlsx", [])
    trace_id = log_draft(ticket="t", draft="d", wait=False)
    assert read_tab(path, schema.DRAFTS) == []
    cli("sync")
    assert [r["trace_id"] for r in read_tab(path, schema.DRAFTS)] == [trace_id]


def test_drafts_logged_during_a_google_outage_reach_the_sheet_later(workspace, google, cli, monkeypatch):
    from loop.sheets.google import RetryingHTTPClient
    from tests.backends import KEY, GoogleSheet

    monkeypatch.setattr(RetryingHTTPClient, "attempts", 2)
    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="reviewed")])
    google.fail(*[{"status": 503}] * 6)
    result = cli("log", "--sheet", KEY, "--ticket", "during the outage", "--draft", "d")
    trace_id = result.stdout.strip()
    assert "1 draft waits" in result.stderr
    assert [r["trace_id"] for r in sheet.tab(schema.DRAFTS)] == ["reviewed"]
    google._faults.clear()
    cli("sync", "--sheet", KEY)
    assert [r["trace_id"] for r in sheet.tab(schema.DRAFTS)] == ["reviewed", trace_id]
