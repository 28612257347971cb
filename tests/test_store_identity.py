"""CONTRACT §7a: every draft reaches the workbook it was logged for, and only that one.

A store moved beside another project's workbook refuses it; the archive of an earlier release is
imported whole, wherever LOOP_TRACES kept it, whatever its lines hold, once however many commands
start together; and a pending draft stays reachable through a renamed host, a store shared by two
folders and a link to the workbook, by the very command `loop status` names."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from loop import schema
from tests.conftest import draft, write_workbook
from tests.test_store import _old_archive, _old_record, as_if_a_new_process, run, stored, tickets

REPO = Path(__file__).resolve().parents[1]


def workbook_id(path: Path) -> str | None:
    from loop.sheets.xlsx import XlsxWorkbook

    return XlsxWorkbook(path).workbook_id()


def printed_commands(status_output: str) -> list[list[str]]:
    """The `loop sync …` commands `loop status` printed, as arguments after `loop`."""
    return [shlex.split(found)[1:] for found in re.findall(r"`(loop sync[^`]*)`", status_output)]


def child_env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    return {k: v for k, v in env.items() if v is not None}


# --- 7. another project's store beside this workbook --------------------------------------------


def test_another_projects_store_moved_beside_a_workbook_is_refused_with_one_line(workspace):
    ours, theirs = workspace / "ours", workspace / "theirs"
    for folder in (ours, theirs):
        folder.mkdir()
        write_workbook(folder / "loop.xlsx", [])
        assert run("log", "--sheet", str(folder / "loop.xlsx"), "--ticket", f"{folder.name} first", "--draft", "d")[0] == 0
    (theirs / "~$loop.xlsx").write_bytes(b"Excel")
    assert run("log", "--sheet", str(theirs / "loop.xlsx"), "--ticket", "theirs waits", "--draft", "d")[0] == 0
    as_if_a_new_process()
    (ours / "loop.db").unlink()
    shutil.move(theirs / "loop.db", ours / "loop.db")  # their store, moved in between two commands
    before = (ours / "loop.xlsx").read_bytes()
    code, out, err = run("sync", "--sheet", str(ours / "loop.xlsx"))
    assert code == 2 and "another workbook than the one the drafts in" in err and "put the store back" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (ours / "loop.xlsx").read_bytes() == before
    code, out, err = run("log", "--sheet", str(ours / "loop.xlsx"), "--ticket", "ours", "--draft", "d")
    assert code == 2 and out == "" and "another workbook" in err and tickets(ours / "loop.xlsx") == ["ours first"]
    assert stored(f"sqlite:///{ours / 'loop.db'}", "SELECT COUNT(*) FROM drafts WHERE ticket = 'ours'") == [(0,)]
    # back beside its own workbook, the store delivers there, and only there
    as_if_a_new_process()
    shutil.move(ours / "loop.db", theirs / "loop.db")
    (theirs / "~$loop.xlsx").unlink()
    assert run("sync", "--sheet", str(theirs / "loop.xlsx"))[0] == 0
    assert tickets(theirs / "loop.xlsx") == ["theirs first", "theirs waits"]
    assert tickets(ours / "loop.xlsx") == ["ours first"]
    assert workbook_id(ours / "loop.xlsx") != workbook_id(theirs / "loop.xlsx")


def test_a_workbook_without_an_id_is_adopted_keeping_its_other_properties(workspace):
    path = workspace / "loop.xlsx"
    book = openpyxl.Workbook()
    book.active.title = schema.DRAFTS
    book.active.append(schema.DRAFT_HEADERS)
    from openpyxl.packaging.custom import StringProperty

    book.custom_doc_props.append(StringProperty(name="Owner", value="Support desk"))
    book.save(path)
    assert workbook_id(path) is None
    assert run("log", "--ticket", "t", "--draft", "d")[0] == 0
    stamp = workbook_id(path)
    assert stamp and stored(f"sqlite:///{workspace / 'loop.db'}", "SELECT stamp FROM workbook_ids") == [(stamp,)]
    again = openpyxl.load_workbook(path)
    assert {p.name: p.value for p in again.custom_doc_props} == {"Owner": "Support desk", "loop.workbook": stamp}
    assert run("log", "--ticket", "t2", "--draft", "d")[0] == 0
    assert workbook_id(path) == stamp and tickets(path) == ["t", "t2"]


def _with_prefixed_package_parts(path: Path) -> None:
    """The package's relationships and content types written with namespace prefixes, as some
    producers write them."""
    source = zipfile.ZipFile(path)
    parts = {name: source.read(name) for name in source.namelist()}
    source.close()
    rels = parts["_rels/.rels"].decode()
    rels = re.sub(r"<Relationships xmlns=\"([^\"]+)\"", r'<pr:Relationships xmlns:pr="\1"', rels)
    parts["_rels/.rels"] = rels.replace("<Relationship ", "<pr:Relationship ").replace(
        "</Relationships>", "</pr:Relationships>").encode()
    types = parts["[Content_Types].xml"].decode()
    types = re.sub(r"<Types xmlns=\"([^\"]+)\"", r'<ct:Types xmlns:ct="\1"', types)
    parts["[Content_Types].xml"] = (types.replace("<Default ", "<ct:Default ").replace("<Override ", "<ct:Override ")
                                    .replace("</Types>", "</ct:Types>")).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            out.writestr(name, data)


def test_the_id_is_written_namespace_correct_whatever_prefixes_the_package_uses(workspace):
    import xml.etree.ElementTree as ElementTree

    path = write_workbook(workspace / "loop.xlsx", [])
    _with_prefixed_package_parts(path)
    assert run("log", "--ticket", "t", "--draft", "d")[0] == 0
    with zipfile.ZipFile(path) as package:
        rels = ElementTree.fromstring(package.read("_rels/.rels"))
        types = ElementTree.fromstring(package.read("[Content_Types].xml"))
    package_ns = "{http://schemas.openxmlformats.org/package/2006/relationships}"
    types_ns = "{http://schemas.openxmlformats.org/package/2006/content-types}"
    assert any(r.get("Target") == "docProps/custom.xml" for r in rels.findall(package_ns + "Relationship"))
    assert any(o.get("PartName") == "/docProps/custom.xml" for o in types.findall(types_ns + "Override"))
    assert openpyxl.load_workbook(path).custom_doc_props["loop.workbook"].value == workbook_id(path)


def test_a_folder_copied_whole_with_its_store_keeps_delivering_to_its_own_workbook(workspace):
    desk = workspace / "desk"
    desk.mkdir()
    write_workbook(desk / "loop.xlsx", [])
    assert run("log", "--sheet", "desk/loop.xlsx", "--ticket", "delivered", "--draft", "d")[0] == 0
    (desk / "~$loop.xlsx").write_bytes(b"Excel")
    assert run("log", "--sheet", "desk/loop.xlsx", "--ticket", "waits", "--draft", "d")[0] == 0
    as_if_a_new_process()
    shutil.copytree(desk, workspace / "copy")
    for folder in ("desk", "copy"):
        (workspace / folder / "~$loop.xlsx").unlink()
        assert run("log", "--sheet", f"{folder}/loop.xlsx", "--ticket", f"{folder} own", "--draft", "d")[0] == 0
    assert tickets(desk / "loop.xlsx") == ["delivered", "waits", "desk own"]
    assert tickets(workspace / "copy" / "loop.xlsx") == ["delivered", "waits", "copy own"]


# --- 8. the archive of earlier releases ---------------------------------------------------------


def test_an_archive_where_loop_traces_kept_it_is_imported_and_delivered(workspace, store_url, monkeypatch):
    monkeypatch.setenv("LOOP_STORE", store_url)
    path = write_workbook(workspace / "loop.xlsx", [])
    kept = workspace / "var" / "agent-traces"
    kept.parent.mkdir()
    _old_archive(kept, [_old_record(n) for n in range(3)], offset_after=0)
    monkeypatch.setenv("LOOP_TRACES", str(kept))
    code, out, err = run("status")
    assert code == 0 and "Imported 3 drafts" in err and "Pending: 3 logged drafts" in out
    assert run("sync")[0] == 0
    assert tickets(path) == ["old 0", "old 1", "old 2"]
    assert not kept.exists() and (kept.parent / "agent-traces.imported").is_dir()
    assert run("sync")[1].startswith("No pending drafts")
    assert tickets(path) == ["old 0", "old 1", "old 2"]


BAD_LINES = {
    "withdrawn": '{"withdrawn": 5}',
    "surrogate": '{"trace_id": "old-s", "created_at": "2026-11-20T10:00:00Z", "ticket": "bad \\ud800", "draft": "d"}',
    "nul": '{"trace_id": "old-n", "created_at": "2026-11-20T10:00:00Z", "ticket": "nul \\u0000 here", "draft": "d"}',
    "cut short": '{"trace_id": "old-c", "ticket": "cut',
    "not a draft": '["a", "list"]',
    "ticket a list": '{"trace_id": "old-l", "created_at": "2026-11-20T10:00:00Z", "ticket": ["x"], "draft": "d"}',
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_every_line_of_an_old_archive_is_imported_or_set_aside_never_a_traceback(workspace, store_url, monkeypatch,
                                                                                 kind):
    monkeypatch.setenv("LOOP_STORE", store_url)
    path = write_workbook(workspace / "loop.xlsx", [])
    good = [json.dumps(_old_record(n)) for n in range(2)]
    folder = workspace / "loop.traces"
    folder.mkdir()
    (folder / "traces.jsonl").write_text(good[0] + "\n" + BAD_LINES[kind] + "\n" + good[1] + "\n")
    (folder / "delivered.json").write_text(json.dumps({"offset": 0}))
    storable = kind == "nul"  # a NUL becomes the mark loop log gives it, on both stores
    code, out, err = run("log", "--ticket", "new", "--draft", "d")
    assert code == 0 and out.strip() and "Traceback" not in err
    if storable:
        assert "could not be imported" not in err and len(tickets(path)) == 4
        assert stored(store_url, "SELECT ticket FROM drafts WHERE trace_id = 'old-n'") == [("nul \ufffd here",)]
        return
    assert err.count("could not be imported") == 1 and "line 2:" in err and "set-aside/traces.jsonl" in err
    assert tickets(path) == ["old 0", "old 1", "new"]
    kept = workspace / "loop.traces.imported" / "set-aside"
    assert (kept / "traces.jsonl").read_text() == BAD_LINES[kind] + "\n"
    assert (workspace / "loop.traces.imported" / "traces.jsonl").read_text().count("\n") == 3
    for command in (["sync"], ["status"], ["log", "--ticket", "later", "--draft", "d"]):
        code, _, err = run(*command)
        assert code == 0 and "could not be imported" not in err and "Traceback" not in err
    # fixed where it is kept and moved back, as the warning says, the line is imported and delivered
    fixed = {"trace_id": "old-fixed", "created_at": "2026-11-20T10:00:00Z", "ticket": "fixed by hand", "draft": "d"}
    (kept / "traces.jsonl").write_text(json.dumps(fixed) + "\n")
    shutil.move(kept, workspace / "loop.traces")
    assert run("sync")[0] == 0
    assert tickets(path) == ["old 0", "old 1", "new", "later", "fixed by hand"]


def test_a_withdrawn_draft_named_by_a_malformed_line_stays_out(workspace):
    path = write_workbook(workspace / "loop.xlsx", [])
    folder = workspace / "loop.traces"
    folder.mkdir()
    lines = [json.dumps(_old_record(0)), json.dumps(_old_record(1)), '{"withdrawn": ["old-1", 7]}']
    (folder / "traces.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "delivered.json").write_text(json.dumps({"offset": 0}))
    code, _, err = run("sync")
    assert code == 0 and "line 3: withdrawn is not a list of trace ids" in err
    assert tickets(path) == ["old 0"]


IMPORTERS = 20_000


def test_two_commands_started_during_a_large_import_both_succeed_and_import_once(workspace, store_url):
    path = write_workbook(workspace / "loop.xlsx", [])
    records = [_old_record(n) for n in range(IMPORTERS)]
    _old_archive(workspace / "loop.traces", records, offset_after=IMPORTERS)  # the sheet had them all
    env = child_env(LOOP_STORE=store_url)
    commands = [[sys.executable, "-m", "loop", "log", "--ticket", "new", "--draft", "d"],
                [sys.executable, "-m", "loop", "status"]]
    started = [subprocess.Popen(c, cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for c in commands]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in started]
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, err
    assert sum("Imported 20000 drafts" in err for _, _, err in results) == 1
    assert stored(store_url, "SELECT COUNT(*), COUNT(DISTINCT trace_id) FROM drafts") == [(IMPORTERS + 1,) * 2]
    assert tickets(path) == ["new"]
    assert (workspace / "loop.traces.imported").is_dir() and not (workspace / "loop.traces").exists()


# --- 9. a pending draft is always reachable, by the command status names ------------------------


def run_printed_command(status_out: str, **kwargs) -> tuple[int, str, str]:
    commands = printed_commands(status_out)
    assert len(commands) == 1, status_out
    return run(*commands[0], **kwargs)


def test_a_store_shared_by_two_folders_delivers_by_the_command_status_prints(workspace, monkeypatch):
    monkeypatch.setenv("LOOP_STORE", f"sqlite:///{workspace / 'shared' / 'loop.db'}")
    (workspace / "shared").mkdir()
    first, second = workspace / "first", workspace / "second"
    for folder in (first, second):
        folder.mkdir()
        write_workbook(folder / "loop.xlsx", [])
    (first / "~$loop.xlsx").write_bytes(b"Excel")
    monkeypatch.chdir(first)
    assert run("log", "--ticket", "logged in first", "--draft", "d")[0] == 0
    (first / "~$loop.xlsx").unlink()
    monkeypatch.chdir(second)
    code, out, _ = run("status")
    assert code == 0 and "Pending for" in out and str(first / "loop.xlsx") in out
    assert run("sync")[1].startswith("No pending drafts") and "1 draft in the store waits for other" in run("sync")[1]
    code, out, _ = run_printed_command(out)
    assert code == 0 and "Wrote 1 pending draft" in out
    assert tickets(first / "loop.xlsx") == ["logged in first"] and tickets(second / "loop.xlsx") == []


def _linked_workbook(workspace, monkeypatch):
    """A workbook in real/, open in Excel (so drafts wait), and linked/loop.xlsx a link to it, the
    current folder."""
    real, linked = workspace / "real", workspace / "linked"
    real.mkdir()
    linked.mkdir()
    write_workbook(real / "loop.xlsx", [])
    (linked / "loop.xlsx").symlink_to(real / "loop.xlsx")
    (real / "~$loop.xlsx").write_bytes(b"Excel")
    monkeypatch.chdir(linked)
    return real, linked


def test_a_workbook_reached_through_a_link_shares_the_files_store(workspace, monkeypatch):
    real, linked = _linked_workbook(workspace, monkeypatch)
    assert run("log", "--ticket", "through the link", "--draft", "d")[0] == 0
    assert not (linked / "loop.db").exists() and (real / "loop.db").exists()
    (real / "~$loop.xlsx").unlink()
    monkeypatch.chdir(real)
    code, out, _ = run("status")
    assert "Pending: 1 logged draft" in out
    code, out, _ = run_printed_command(out)
    assert code == 0 and "Wrote 1 pending draft" in out
    assert tickets(real / "loop.xlsx") == ["through the link"]
    assert (linked / "loop.xlsx").is_symlink()


def test_a_workbook_logged_for_from_another_folder_is_named_by_number(workspace, monkeypatch):
    """Drafts logged in desk/ for loop.xlsx; `loop status --sheet desk/loop.xlsm` from the folder above
    names them, and the command it prints, run there, writes them to desk/loop.xlsx."""
    desk = workspace / "desk"
    desk.mkdir()
    write_workbook(desk / "loop.xlsx", [])
    write_workbook(desk / "loop.xlsm", [])
    (desk / "~$loop.xlsx").write_bytes(b"Excel")
    monkeypatch.chdir(desk)
    assert run("log", "--sheet", "loop.xlsx", "--ticket", "for xlsx", "--draft", "d")[0] == 0
    (desk / "~$loop.xlsx").unlink()
    monkeypatch.chdir(workspace)
    code, out, _ = run("status", "--sheet", "desk/loop.xlsm")
    assert "Pending for desk/loop.xlsx: 1 draft" in out and "--workbook 1" in out and "--store" in out
    code, out, _ = run_printed_command(out)
    assert code == 0 and "Wrote 1 pending draft" in out
    assert tickets(desk / "loop.xlsx") == ["for xlsx"] and tickets(desk / "loop.xlsm") == []


def test_sync_of_a_workbook_number_the_store_does_not_have_is_one_line(workspace):
    write_workbook(workspace / "loop.xlsx", [])
    code, out, err = run("sync", "--workbook", "9")
    assert code == 2 and "has no workbook 9" in err and "loop status" in err


def test_drafts_stored_under_the_host_name_of_an_earlier_release_are_delivered(workspace, postgres_url, monkeypatch):
    import socket

    monkeypatch.setenv("LOOP_STORE", postgres_url)
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="reviewed")])
    former = f"file://{socket.gethostname()}{os.path.realpath(path)}"
    stored(postgres_url, "INSERT INTO workbooks (identity, location) VALUES (?, ?)", (former, "loop.xlsx"))
    number = stored(postgres_url, "SELECT id FROM workbooks WHERE identity = ?", (former,))[0][0]
    stored(postgres_url, "INSERT INTO drafts (workbook_id, trace_id, created_at, ticket, draft, state) VALUES "
           "(?, 'old-host', '2026-11-20T10:00:00Z', 'logged before the upgrade', 'd', 'pending')", (number,))
    as_if_a_new_process()
    code, out, _ = run("status")
    assert "Pending: 1 logged draft" in out
    assert run_printed_command(out)[0] == 0
    assert tickets(path) == ["How do I export my timesheets?", "logged before the upgrade"]


def _renamed(name: str, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """`loop ARGS` on this machine under host name `name` (a UTS namespace of its own)."""
    script = f"hostname {shlex.quote(name)} && exec {shlex.quote(sys.executable)} -m loop " + shlex.join(args)
    return subprocess.run(["unshare", "--uts", "sh", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_renamed_host_delivers_its_pending_drafts_by_the_command_status_prints(workspace, postgres_url):
    probe = subprocess.run(["unshare", "--uts", "hostname", "loop-probe"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"a UTS namespace is refused here ({probe.stderr.strip()}); the host cannot be renamed")
    path = write_workbook(workspace / "loop.xlsx", [])
    from loop.store import machine

    # a machine without /etc/machine-id (a container) names itself with LOOP_MACHINE
    has_id = machine() != __import__("socket").gethostname()
    env = child_env(LOOP_STORE=postgres_url, LOOP_MACHINE=None if has_id else "desk-machine")
    (workspace / "~$loop.xlsx").write_bytes(b"Excel")
    logged = _renamed("desk-before", ["log", "--ticket", "logged before the rename", "--draft", "d"], workspace, env)
    assert logged.returncode == 0 and logged.stdout.strip(), logged.stderr
    (workspace / "~$loop.xlsx").unlink()
    status = _renamed("desk-after", ["status"], workspace, env)
    assert status.returncode == 0 and "Pending" in status.stdout, status.stderr
    commands = printed_commands(status.stdout)
    assert len(commands) == 1, status.stdout
    synced = _renamed("desk-after", commands[0], workspace, env)
    assert synced.returncode == 0 and "Wrote 1 pending draft" in synced.stdout, synced.stdout + synced.stderr
    assert tickets(path) == ["logged before the rename"]


def test_a_workbook_named_by_another_host_name_is_found_here_by_the_id_it_carries(workspace, postgres_url,
                                                                                   monkeypatch):
    """A host renamed where there is no machine id: the file at the path carries the id the store
    recorded, so it is the same workbook and the command status prints delivers to it; a file that
    carries another id is another machine's."""
    monkeypatch.setenv("LOOP_STORE", postgres_url)
    path = write_workbook(workspace / "loop.xlsx", [])
    assert run("log", "--ticket", "first", "--draft", "d")[0] == 0
    stamp = workbook_id(path)
    for host, recorded in (("renamed-host", stamp), ("another-host", "f" * 32)):
        identity = f"file://{host}{os.path.realpath(path)}"
        stored(postgres_url, "INSERT INTO workbooks (identity, location) VALUES (?, ?)", (identity, f"{host}:{path}"))
        number = stored(postgres_url, "SELECT id FROM workbooks WHERE identity = ?", (identity,))[0][0]
        stored(postgres_url, "INSERT INTO workbook_ids (workbook_id, stamp) VALUES (?, ?)", (number, recorded))
        stored(postgres_url, "INSERT INTO drafts (workbook_id, trace_id, created_at, ticket, draft, state) VALUES "
               "(?, ?, '2026-11-20T10:00:00Z', ?, 'd', 'pending')", (number, f"t-{host}", f"logged on {host}"))
    code, out, _ = run("status")
    assert "Pending for loop.xlsx: 1 draft" in out
    assert f"Pending for another-host:{path} on another machine: 1 draft" in out and "run there" in out
    here = [c for c in printed_commands(out) if "--workbook" in c][0]
    assert run(*here)[0] == 0
    assert tickets(path) == ["first", "logged on renamed-host"]
    other = printed_commands(out)[1]
    code, _, err = run(*other)
    assert code == 2 and "on another machine" in err and tickets(path) == ["first", "logged on renamed-host"]


def test_a_store_an_earlier_release_kept_beside_a_link_is_named_with_the_command_that_empties_it(workspace,
                                                                                                monkeypatch):
    real, linked = _linked_workbook(workspace, monkeypatch)
    assert run("log", "--store", "loop.db", "--ticket", "in the old store", "--draft", "d")[0] == 0  # as before
    (real / "~$loop.xlsx").unlink()
    code, _, err = run("status")
    assert code == 0 and err.count("beside the link") == 1
    command = re.search(r"`(loop sync[^`]*)`", err).group(1)
    assert run(*shlex.split(command)[1:])[0] == 0
    assert tickets(real / "loop.xlsx") == ["in the old store"]
    assert "beside the link" not in run("status")[2]
