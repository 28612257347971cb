"""Nothing we write may damage a reviewer's workbook: forbidden characters, a save that would not
open again, damaged, encrypted and macro-enabled files, a full tab, file modes, and warnings that
reach the user from every command."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile

import openpyxl
import pytest
from click.testing import CliRunner
from python_calamine import CalamineWorkbook

from loop import schema
from loop.cli import main
from tests.conftest import PROMPT, draft, edits_tab, read_tab, write_workbook

FORBIDDEN = "a\ufffeb\uffffc\x01d\x0be"
SHOWN = "a\ufffdb\ufffdc\ufffdd\ufffde"


def reopens(path) -> None:
    """The workbook opens with both readers, every tab read to the end."""
    book = openpyxl.load_workbook(path)
    for sheet in book.worksheets:
        list(sheet.iter_rows(values_only=True))
    calamine = CalamineWorkbook.from_path(str(path))
    for name in calamine.sheet_names:
        calamine.get_sheet_by_name(name).to_python()


def log(*lines: dict, code: int = 0):
    result = CliRunner().invoke(main, ["log"], input="".join(json.dumps(line) + "\n" for line in lines))
    assert result.exit_code == code, result.output
    return result


def logged_tickets(folder) -> list[str]:
    """The tickets the store beside the workbook holds, in the order logged."""
    import sqlite3

    if not (folder / "loop.db").exists():
        return []
    with sqlite3.connect(folder / "loop.db") as db:
        return [ticket for (ticket,) in db.execute("SELECT ticket FROM drafts ORDER BY seq")]


# --- 1. characters XML forbids ---------------------------------------------------------------------


def test_forbidden_characters_in_a_logged_draft_become_a_mark_and_later_writes_still_work(workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    log({"ticket": FORBIDDEN, "draft": "ok", "thread": ["Customer: x\uffff"]})
    reopens(path)
    log({"ticket": "second", "draft": "still writable"})
    rows = read_tab(path, schema.DRAFTS)
    assert rows[0]["ticket"] == SHOWN and rows[0]["thread"] == "Customer: x\ufffd"
    assert rows[1]["ticket"] == "second"
    assert logged_tickets(workspace)[0] == FORBIDDEN  # the store keeps the text as it was logged


def test_a_lone_surrogate_in_loop_log_is_exit_2_and_logs_nothing(workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["log"], input='{"ticket": "a\\ud800b", "draft": "ok"}\n')
    assert result.exit_code == 2 and "lone surrogate" in result.output
    assert len(result.output.strip().splitlines()) == 1
    raw = CliRunner().invoke(main, ["log"], input=b'{"ticket": "a\xed\xa0\x80b", "draft": "ok"}\n')
    assert raw.exit_code == 2 and "not UTF-8" in raw.output
    assert path.read_bytes() == before and logged_tickets(workspace) == []


def test_forbidden_characters_in_a_model_answer_never_reach_the_workbook(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="f1"), draft(trace_id="s1", score="👍")])
    model.queue(
        {"json": {"patterns": [{"name": "Too long\uffff", "description": "d\ufffe", "trace_ids": ["f1"]}]}},
        {"json": {"edits": [{"pattern": "Too long\uffff", "find": "Be friendly and professional in every reply.",
                             "replace": "Be brief\x01, friendly and professional.", "rationale": "r\ufffe",
                             "evidence": ["f1"]}]}},
    )
    cli("improve")
    reopens(path)
    row = read_tab(path, edits_tab(path))[0]
    assert (row["pattern"], row["replace"], row["rationale"]) == (
        "Too long\ufffd", "Be brief\ufffd, friendly and professional.", "r\ufffd")


def test_a_lone_surrogate_in_a_model_answer_becomes_a_mark(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="f1")])
    model.queue({"content": '{"patterns": [{"name": "Odd \\ud800 one", "description": "", "trace_ids": ["f1"]}]}'})
    result = cli("improve")
    assert "Odd \ufffd one" in result.output
    reopens(path)


def test_carriage_returns_and_escape_like_text_come_back_as_written(workspace):
    from loop.workspace import Workspace

    path = write_workbook(workspace / "loop.xlsx", [])
    text = "line one\r\nline two\rthree _x0041_ _x005F_ end"
    log({"ticket": text, "draft": "ok"})
    reopens(path)
    table = Workspace().workbook.read([schema.DRAFTS])[schema.DRAFTS]
    assert dict(table.records())[2]["ticket"] == text


# --- 2. a save that would not open again never replaces the workbook --------------------------------


def test_a_save_that_does_not_open_again_leaves_the_workbook_as_it_was(workspace, cli, monkeypatch):
    from loop.sheets.package import Package

    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="f1", score=None, comment=None)])
    before = path.read_bytes()
    real_save = Package.save

    def corrupting_save(self, target):  # as a U+FFFE once did: a part no XML parser accepts
        for name, data in list(self.changed.items()):
            if name.startswith("xl/worksheets/"):
                self.changed[name] = data.replace(b"</sheetData>", "\ufffe</sheetData>".encode())
        real_save(self, target)

    monkeypatch.setattr(Package, "save", corrupting_save)
    result = cli("log", "--ticket", "t", "--draft", "d", code=0)  # the draft waits as pending
    assert "did not open again" in result.output
    assert path.read_bytes() == before
    assert [p.name for p in workspace.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(Package, "save", real_save)
    cli("sync")
    assert [r["ticket"] for r in read_tab(path, schema.DRAFTS)][-1] == "t"


# --- 3. damaged and encrypted workbooks ------------------------------------------------------------


def test_a_workbook_with_a_damaged_part_is_exit_2_saying_so(workspace, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id=f"t{i}", ticket="x" * 200) for i in range(50)])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for position in range(start + 64, start + 96):
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))
    for command in (["status"], ["improve"], ["log", "--ticket", "t", "--draft", "d"]):
        result = cli(*command, code=2)
        assert "is damaged" in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_a_password_protected_workbook_is_exit_2_saying_so(workspace, cli):
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = write_workbook(workspace / "plain.xlsx", [draft()])
    with open(plain, "rb") as source, open(workspace / "loop.xlsx", "wb") as target:
        OOXMLFile(source).encrypt("secret", target)
    result = cli("status", code=2)
    assert "password-protected" in result.output and len(result.output.strip().splitlines()) == 1


def test_an_old_xls_workbook_is_named_as_such(workspace, cli):
    (workspace / "loop.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1024)
    assert ".xls (Excel 97-2003)" in cli("status", code=2).output


# --- 4. macros -------------------------------------------------------------------------------------


def test_a_macro_enabled_workbook_keeps_its_macros_and_content_type(workspace, cli, monkeypatch):
    base = write_workbook(workspace / "base.xlsx", [draft(trace_id="x", score=None, comment=None)])
    path = workspace / "loop.xlsm"
    vba = b"\xd0\xcf\x11\xe0 fake vba project bytes"
    with zipfile.ZipFile(base) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "[Content_Types].xml":
                data = data.replace(b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                                    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml").replace(
                    b"<Default ", b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/><Default ', 1)
            if name == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdVba" Type="http://schemas.microsoft.com/'
                                    b'office/2006/relationships/vbaProject" Target="vbaProject.bin"/></Relationships>')
            target.writestr(name, data)
        target.writestr("xl/vbaProject.bin", vba)
    monkeypatch.setenv("LOOP_SHEET", str(path))
    cli("log", "--ticket", "t", "--draft", "d")
    with zipfile.ZipFile(path) as archive:
        assert archive.read("xl/vbaProject.bin") == vba
        assert b"macroEnabled.main+xml" in archive.read("[Content_Types].xml")
    assert read_tab(path, schema.DRAFTS)[-1]["ticket"] == "t"


# --- 5. a full tab ---------------------------------------------------------------------------------


def test_a_full_drafts_tab_is_exit_2_and_nothing_is_archived(workspace, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft()])
    book = openpyxl.load_workbook(path)
    book[schema.DRAFTS].cell(1_048_576, 1).value = "last row"
    book.save(path)
    before = path.read_bytes()
    result = cli("log", "--ticket", "t", "--draft", "d", code=2)
    assert "is full" in result.output and len(result.output.strip().splitlines()) == 1
    assert path.read_bytes() == before and logged_tickets(workspace) == []


def test_a_full_tab_found_only_at_write_time_writes_nothing(tmp_path):
    from loop.errors import UsageError
    from loop.sheets import Append, WriteBatch
    from loop.sheets.xlsx import XlsxWorkbook

    path = write_workbook(tmp_path / "loop.xlsx", [draft()])
    book = openpyxl.load_workbook(path)
    book[schema.DRAFTS].cell(1_048_576, 1).value = "last row"
    book.save(path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="is full"):
        XlsxWorkbook(path).write(WriteBatch(appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": "x"})]))
    assert path.read_bytes() == before


# --- 6. file modes ---------------------------------------------------------------------------------


def test_writes_keep_the_mode_of_the_workbook_the_prompt_and_its_versions(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    prompt = workspace / "prompts" / "support_agent.md"
    os.chmod(path, 0o664)
    os.chmod(prompt, 0o644)
    previous = os.umask(0o022)
    try:
        cli("improve")
        book = openpyxl.load_workbook(path)
        book[edits_tab(path)].cell(2, 1).value = True
        book.save(path)
        os.chmod(path, 0o664)
        cli("apply")
        cli("log", "--ticket", "t", "--draft", "d")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o664
    assert stat.S_IMODE(os.stat(prompt).st_mode) == 0o644
    for version in (workspace / "prompts" / "support_agent.md.history").glob("v*.md"):
        assert stat.S_IMODE(os.stat(version).st_mode) == 0o644  # new files follow the umask


# --- 7. warnings and progress reach the user from every command -----------------------------------


@pytest.mark.parametrize("command", [
    ["log", "--ticket", "t", "--draft", "d"],
    ["judge"],
    ["draft", "--tickets", "tickets.jsonl", "--kb", "kb"],
    ["improve"],
    ["sync"],
])
def test_what_the_write_path_says_reaches_the_user_from_every_command(workspace, model, cli, command):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(score=None, comment=None)])
    (workspace / "prompts" / "judge.md").write_text("Good drafts are short.\n", encoding="utf-8")
    (workspace / "tickets.jsonl").write_text(json.dumps({"ticket": "How do I export?"}) + "\n")
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "examples", "kb"), workspace / "kb")
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    warned = cli("log", "--ticket", "while open", "--draft", "d").stderr
    assert "warning: loop.xlsx is open in Excel" in warned
    (workspace / "~$loop.xlsx").unlink()
    result = cli(*command)
    assert "Wrote 1 pending draft to loop.xlsx" in result.stderr
    assert [r["ticket"] for r in read_tab(path, schema.DRAFTS)].count("while open") == 1


# --- 8. one atomic write: no temporary file is left behind ------------------------------------------


def test_commands_leave_no_temporary_files(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    cli("improve")
    book = openpyxl.load_workbook(path)
    book[edits_tab(path)].cell(2, 1).value = True
    book.save(path)
    cli("apply")
    cli("rollback")
    cli("log", "--ticket", "t", "--draft", "d")
    leftovers = [p for p in workspace.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".new")]
    assert leftovers == []
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT
