"""Nothing lost, nothing corrupted, second pass: files reached through links, the prompt history,
copied Edits tabs, secrets in URLs, webhooks and the terminal, and settings at their edges."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loop import schema
from loop.cell_values import shown
from loop.cli import main
from loop.prompt_store import PromptStore
from loop.redact import scrub, webhook_host
from tests.backends import KEY, GoogleSheet
from tests.conftest import PROMPT, draft, edits_tab, read_tab, tick, write_workbook
from tests.local_server import LocalServer
from tests.test_prompt_store import old_history

ROOT = Path(__file__).resolve().parent.parent
PROMPT_FILE = "prompts/support_agent.md"


def one_line_error(result, *fragments):
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    lines = output.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in lines[-1], output


def improved(workspace, cli, rows=None):
    path = write_workbook(workspace / "loop.xlsx", rows or [draft(), draft(comment="wrong menu path")])
    cli("improve", "--no-check")
    return path, edits_tab(path)


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- 11. files reached through a symbolic link are written through it --------------------------------


def test_apply_writes_through_a_prompt_symlink(workspace, model, cli):
    target = workspace / "agent" / "system.md"
    target.parent.mkdir()
    prompt = workspace / PROMPT_FILE
    prompt.rename(target)
    os.chmod(target, 0o640)
    prompt.symlink_to(Path("..") / "agent" / "system.md")
    path, title = improved(workspace, cli)
    edit = read_tab(path, title)[0]
    tick(path, title, [2])

    assert "Applied 1 edit" in cli("apply").output
    assert prompt.is_symlink() and prompt.resolve() == target.resolve()
    assert target.read_text() == PROMPT.replace(edit["find"], edit["replace"], 1)
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o640)
    assert not [p for p in (workspace / "agent").iterdir() if p.name != "system.md"]  # no temporary left

    cli("rollback")
    assert prompt.is_symlink() and target.read_text() == PROMPT


def test_log_into_a_linked_workbook_keeps_the_link_and_the_target_gets_the_row(workspace, cli):
    shared = workspace / "shared" / "book.xlsx"
    shared.parent.mkdir()
    write_workbook(shared, [draft(trace_id="t-old")])
    link = workspace / "loop.xlsx"
    link.symlink_to(shared)

    trace_id = cli("log", "--ticket", "Where are invoices?", "--draft", "Billing → Invoices.").output.strip()
    assert link.is_symlink() and link.resolve() == shared.resolve()
    rows = read_tab(shared, schema.DRAFTS)
    assert [r["trace_id"] for r in rows] == ["t-old", trace_id]
    # no temporary file left; the lock, and the store, sit beside the real file, so every link to it shares them
    assert sorted(p.name for p in shared.parent.iterdir() if not p.name.startswith("loop.db")) == [
        ".book.xlsx.lock", "book.xlsx"]
    assert (shared.parent / "loop.db").is_file() and not (workspace / "loop.db").exists()


# --- 12. an old history line that is JSON but not a record ------------------------------------------


@pytest.mark.parametrize("line", ['{}', '[1, 2]', '"v2"', '{"event": "version", "version": 4}',
                                  '{"event": "rollback", "version": 9, "created_at": "2026-11-01T00:00:00+00:00"}'])
def test_a_history_line_that_is_not_a_record_is_one_line_naming_the_file_and_the_line(workspace, cli, line):
    write_workbook(workspace / "loop.xlsx", [draft(prompt_version="v1")])
    folder = old_history(workspace / PROMPT_FILE, versions=(PROMPT,), rollback_to=0)
    with open(folder / "log.jsonl", "a", encoding="utf-8") as log:
        log.write(line + "\n")
    for command in ("status", "report"):
        one_line_error(cli(command, code=2), "log.jsonl", "line 2", "delete that line")


def test_a_history_line_cut_short_by_a_crash_is_still_skipped(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [draft(prompt_version="v1")])
    folder = old_history(workspace / PROMPT_FILE, versions=(PROMPT,), rollback_to=0)
    with open(folder / "log.jsonl", "a", encoding="utf-8") as log:
        log.write('{"event": "version", "vers\n')
    assert "at v1" in cli("status").output


# --- 13. each prompt file has its own versions ---------------------------------------------------------


def _commit(store: PromptStore, text: str) -> None:
    store.sync()
    store.commit(text, "apply", edits=[])


def test_two_prompt_files_of_one_stem_keep_their_own_versions(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [draft()])
    md, txt = workspace / "prompts" / "agent.md", workspace / "prompts" / "agent.txt"
    md.write_text("Markdown agent.\n")
    txt.write_text("Text agent.\n")
    _commit(PromptStore(md), "Markdown agent, v2.\n")
    _commit(PromptStore(txt), "Text agent, v2.\n")

    assert "back from v2 to v1" in cli("rollback", "--prompt", str(txt)).output
    assert txt.read_text() == "Text agent.\n"
    assert md.read_text() == "Markdown agent, v2.\n"
    assert [PromptStore(md).text_of(n) for n in (1, 2)] == ["Markdown agent.\n", "Markdown agent, v2.\n"]
    assert "agent.md at v2" in cli("status", "--prompt", str(md)).output


def _legacy_history(prompt: Path) -> Path:
    """`<stem>.history/` as an earlier release wrote it: no file name in its log."""
    folder = old_history(prompt, versions=(prompt.read_text(), prompt.read_text() + "Be brief.\n"), rollback_to=0)
    legacy = prompt.with_name(prompt.stem + ".history")
    folder.rename(legacy)
    log = legacy / "log.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("".join(json.dumps({k: v for k, v in e.items() if k != "prompt"}) + "\n" for e in events))
    return legacy


def test_an_older_stem_history_is_imported_for_the_file_it_belongs_to(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [draft()])
    md, txt = workspace / "prompts" / "agent.md", workspace / "prompts" / "agent.txt"
    md.write_text("Markdown agent.\n")
    legacy = _legacy_history(md)
    before = {p.name: p.read_bytes() for p in legacy.iterdir()}
    txt.write_text("Text agent.\n")  # a second file of the same stem, arriving later

    _commit(PromptStore(txt), "Text agent, v2.\n")
    cli("rollback", "--prompt", str(txt))
    assert [v.source for v in PromptStore(txt).versions().values()] == ["initial", "apply"]
    assert "agent.md at v2" in cli("status", "--prompt", str(md)).output  # imported: v1, then v2
    assert {p.name: p.read_bytes() for p in legacy.iterdir()} == before  # left as it was
    cli("rollback", "--prompt", str(md))
    assert md.read_text() == "Markdown agent.\n"


def test_an_older_history_two_files_could_own_is_refused_naming_the_fix(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [draft()])
    md, txt = workspace / "prompts" / "agent.md", workspace / "prompts" / "agent.txt"
    md.write_text("Markdown agent.\n")
    _legacy_history(md)
    md.write_text("Hand edit.\n")
    txt.write_text("Text agent.\n")
    one_line_error(cli("status", "--prompt", str(md), code=2), "agent.history", "rename it")


# --- 14. an edit ticked in a copied Edits tab -----------------------------------------------------------


def test_an_edit_ticked_in_a_copied_edits_tab_is_applied_once_and_the_copy_is_reported(workspace, model, cli):
    path, title = improved(workspace, cli)
    book = openpyxl.load_workbook(path)
    copy = book.copy_worksheet(book[title])
    copy.title = title + " (2)"
    book.save(path)
    tick(path, title, [2])
    tick(path, copy.title, [2])
    edit = read_tab(path, title)[0]

    output = cli("apply").output
    assert "Applied 1 edit" in output
    assert f"duplicate {edit['edit_id']} in {copy.title!r} row 2" in output and "applied once" in output
    assert (workspace / PROMPT_FILE).read_text() == PROMPT.replace(edit["find"], edit["replace"], 1)
    assert [read_tab(path, t)[0]["status"] for t in (title, copy.title)] == ["applied", "applied"]
    assert [read_tab(path, t)[0]["applied_version"] for t in (title, copy.title)] == ["v2", "v2"]
    again = cli("apply").output
    assert "Applied" not in again and (workspace / PROMPT_FILE).read_text().count(edit["replace"]) == 1


def test_a_changed_copy_of_an_applied_edit_is_not_applied_again(workspace, model, cli):
    path, title = improved(workspace, cli)
    tick(path, title, [2])
    cli("apply")
    applied = (workspace / PROMPT_FILE).read_text()
    book = openpyxl.load_workbook(path)
    copy = book.copy_worksheet(book[title])
    copy.title = title + " (2)"
    headers = [c.value for c in copy[1]]
    copy.cell(2, headers.index("status") + 1).value = "proposed"
    copy.cell(2, headers.index("replace") + 1).value = "Read the ticket twice."
    copy.cell(2, headers.index("find") + 1).value = "Read the ticket"
    book.save(path)
    tick(path, copy.title, [2])

    output = cli("apply").output
    assert "duplicate" in output and "v2 holds edit_id" in output and "Applied" not in output
    assert (workspace / PROMPT_FILE).read_text() == applied
    assert read_tab(path, copy.title)[0]["status"] == "stale"
    assert "Applied" not in cli("apply").output and (workspace / PROMPT_FILE).read_text() == applied


# --- 22. no message, --debug output or cell shows a URL's password or a webhook's path -----------------

_PASSWORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()+,;=%",
                    min_size=4, max_size=30)
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.text(max_size=40), after=st.text(max_size=40), user=_NAME, password=_PASSWORD, host=_NAME,
       scheme=st.sampled_from(["http", "https", "postgresql", "postgres+psycopg", "redis"]),
       path=st.sampled_from(["", "/", "/db", "/v1?x=1"]), separator=st.sampled_from([" ", "\n", "(", "'", ": "]))
def test_scrub_never_leaks_a_password_in_a_url_inside_arbitrary_text(before, after, user, password, host, scheme,
                                                                    path, separator):
    text = f"{before}{separator}{scheme}://{user}:{password}@{host}{path} {after}"
    masked = f"{before}{separator}{scheme}://{user}:***@{host}{path} {after}"
    if password in masked:  # the surrounding text holds it anyway: nothing to tell
        return
    assert password not in scrub(text)


@settings(max_examples=200)
@given(secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=8,
                      max_size=40), host=_NAME, userinfo=st.sampled_from(["", "user@", "user:pw@"]))
def test_a_webhook_is_named_by_its_host_never_its_path(secret, host, userinfo):
    shown_as = webhook_host(f"https://{userinfo}{host}.example/services/T0/{secret}")
    assert shown_as == f"https://{host}.example/***"


def test_a_digest_that_fails_never_shows_the_webhook_password_or_path(workspace, cli):
    write_workbook(workspace / "loop.xlsx", [draft(score="👍", prompt_version="v1")])
    url = f"http://hookuser:SECRETPASS@127.0.0.1:{dead_port()}/services/T0/B0/XYZSECRET"
    for extra in ([], ["--debug"]):
        result = cli("report", "--notify", url, *extra)
        output = result.output + result.stderr
        assert "warning: The digest was not posted to http://127.0.0.1" in result.stderr
        assert "SECRETPASS" not in output and "XYZSECRET" not in output and "services" not in output


def test_a_model_server_error_never_shows_the_url_password(workspace, monkeypatch):
    write_workbook(workspace / "loop.xlsx", [draft()])
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://proxyuser:S3CRETPW@127.0.0.1:{dead_port()}/v1")
    monkeypatch.setenv("LOOP_MAX_RETRIES", "0")
    runner = CliRunner()
    result = runner.invoke(main, ["improve"])
    assert result.exit_code == 1 and "could not be reached" in result.output
    assert "S3CRETPW" not in result.output and "proxyuser:***@" in result.output

    debug = runner.invoke(main, ["improve", "--debug"])
    shown_text = debug.output + "".join(traceback.format_exception(debug.exception))
    assert "could not be reached" in shown_text and "S3CRETPW" not in shown_text


# --- 23. a notify URL that does not parse -----------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://[::1/x", "not a url", "ftp://example.com/hook", "http://"])
def test_a_notify_url_that_cannot_be_posted_to_is_a_warning(workspace, cli, monkeypatch, url):
    write_workbook(workspace / "loop.xlsx", [draft(score="👍", prompt_version="v1")])
    monkeypatch.setenv("LOOP_NOTIFY_URL", url)
    result = cli("report")
    assert "warning: The digest was not posted" in result.stderr and "Traceback" not in result.output
    assert "Dashboard" in openpyxl.load_workbook(workspace / "loop.xlsx", read_only=True).sheetnames


# --- 24. a webhook that trickles its answer ----------------------------------------------------------------


class Trickle(LocalServer):
    """Reads the post, then sends its answer one byte at a time: the status line and headers too
    (`headers=True`), or full headers and then a body a byte at a time."""

    def __init__(self, headers: bool, every: float = 0.2):
        super().__init__()
        self.headers, self.every, self.stop = headers, every, threading.Event()

    def handle(self, handler) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        body = b"ok" * 500
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        if not self.headers:
            handler.wfile.write(head)
            head = b""
        for byte in head + body:
            if self.stop.wait(self.every):
                return
            handler.wfile.write(bytes([byte]))

    def __exit__(self, *exc):
        self.stop.set()
        super().__exit__(*exc)


@pytest.mark.parametrize("headers", [True, False])
def test_a_webhook_that_trickles_its_answer_cannot_hold_the_run(workspace, cli, monkeypatch, headers):
    from loop.measure import digest

    monkeypatch.setattr(digest, "TIMEOUT", 1.5)  # the total deadline; a byte comes every 0.2 s
    write_workbook(workspace / "loop.xlsx", [draft(score="👍", prompt_version="v1")])
    with Trickle(headers) as hook:
        started = time.monotonic()
        result = cli("report", "--notify", hook.root + "/services/secret")
        took = time.monotonic() - started
    assert took < 6
    if headers:
        assert "not posted" in result.stderr and "no answer within 1.5 s" in result.stderr
    else:  # the answer's status is in: its body is not waited for
        assert "warning" not in result.stderr


# --- 25. a Google 429 with an unusable Retry-After -----------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon", "-inf", "1e400"])
def test_a_google_rate_limit_with_an_unusable_retry_after_gets_the_usual_backoff(workspace, google, cli, value):
    GoogleSheet(google).create([draft()])
    google.fail({"status": 429, "headers": {"Retry-After": value}, "match": "batchGet"})
    assert "Drafts: 1 in all" in cli("status", "--sheet", KEY).output


# --- 26. no terminal control codes from model or sheet text ----------------------------------------------------

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b31m"


def test_draft_replay_prints_the_model_text_without_control_characters(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [draft(trace_id="t-1", ticket="Is SSO on the Team plan?")])
    (workspace / "kb").mkdir()
    (workspace / "kb" / "sso.md").write_text("SSO is on the Business plan.\n")
    model.queue({"content": f"SSO is on Business.{ESCAPES}\nThanks!"})
    output = cli("draft", "--replay", "t-1", "--kb", "kb").output
    assert "SSO is on Business." in output and "Thanks!" in output
    assert not any(c in output for c in "\x1b\x07\x9b")


# what an xlsx cell can hold: C1 controls (CSI, OSC, ST) and DEL, which terminals act on too
SHEET_ESCAPES = "\x9b2J\x9d0;owned\x9c\x7f"


def test_sheet_text_is_printed_without_control_characters(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(score=f"meh{SHEET_ESCAPES}")])
    for result in (cli("status"), cli("improve", "--no-check")):
        output = result.output + result.stderr
        assert "meh" in output and not any(c in output for c in "\x9b\x9d\x9c\x7f")
    title = edits_tab(path)
    book = openpyxl.load_workbook(path)
    headers = [c.value for c in book[title][1]]
    book[title].cell(2, headers.index("edit_id") + 1).value = f"e-1{SHEET_ESCAPES}"
    book[title].cell(2, headers.index("find") + 1).value = f"a passage gone from the prompt{SHEET_ESCAPES}"
    book.save(path)
    tick(path, title, [2])
    output = cli("apply").output
    assert "stale e-1" in output
    assert not any(c in output for c in "\x9b\x9d\x9c\x7f")


def test_shown_leaves_no_control_character_but_newlines_and_tabs():
    @given(st.text())
    def check(text):
        assert not any((ord(c) < 32 and c not in "\t\n") or 0x7f <= ord(c) <= 0x9f for c in shown(text))

    check()


# --- 27. a closed pipe -------------------------------------------------------------------------------------------


def test_a_closed_pipe_ends_loop_status_quietly(workspace):
    write_workbook(workspace / "loop.xlsx", [draft() for _ in range(3)])
    read, write = os.pipe()
    os.close(read)  # `| head -1` that has already gone
    try:
        done = subprocess.run([sys.executable, "-c", "from loop.cli import main; main()", "status"],
                              stdout=write, stderr=subprocess.PIPE, cwd=workspace, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write)
    assert done.stderr.decode() == "" and done.returncode == 1


# --- 28. schedule checks its flags as the scheduled command would ----------------------------------------------


@pytest.mark.parametrize("since", ["99999999999999999999w", "1e400d", "99999999999d"])
def test_schedule_refuses_a_window_the_scheduled_improve_would_refuse(workspace, cli, since):
    for kind in ("--github", "--cron", "--systemd"):
        one_line_error(cli("schedule", kind, "--since", since, code=2), "--since")
    assert not (workspace / ".github").exists()


# --- 29. every value a setting accepts works, or is refused when read --------------------------------------------


@pytest.mark.parametrize("name, value", [
    ("LOOP_REPLAY_SUCCESSES", "0"), ("LOOP_REPLAY_HELD_OUT", "0"), ("LOOP_REPLAY_CITED", "1"),
    ("LOOP_CHECK_BUDGET", "1"), ("LOOP_MAX_RETRIES", "0"), ("LOOP_MAX_EDIT_CHARS", "1"),
    ("LOOP_MAX_EDIT_SHARE", "0.01"),
])
def test_improve_works_with_every_replay_and_edit_setting_at_its_smallest_accepted_value(workspace, model, cli,
                                                                                    monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    rows = [draft(trace_id=f"f{i}") for i in range(4)]
    rows += [draft(trace_id=f"s{i}", score="👍", comment="good") for i in range(6)]
    path = write_workbook(workspace / "loop.xlsx", rows)
    cli("improve")
    assert edits_tab(path)


def test_a_token_budget_too_small_for_any_request_is_refused_in_one_line(workspace, model, cli, monkeypatch):
    monkeypatch.setenv("LOOP_MAX_INPUT_TOKENS", "1")
    write_workbook(workspace / "loop.xlsx", [draft()])
    one_line_error(cli("improve", code=2), "LOOP_MAX_INPUT_TOKENS")
