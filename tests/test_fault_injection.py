"""Kill `loop apply` and `loop log` at every file replacement they make, just before it and just
after it, then run the next command: each ticked edit is applied once, each logged draft reaches
the sheet once, nothing is lost, and no temporary file is left behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from loop import files
from loop.cli import main
from loop.prompt_store import PromptStore
from tests.conftest import PROMPT, draft, edits_tab, read_tab, tick, write_workbook

KILLED = 77


def run_in_child(args: list[str], install, kill_at: int, when: str) -> bool:
    """Run the command in a forked child in which `install(die)` has set up its kill point (`die()`
    ends the child at once: no cleanup, no finally blocks, as after a power cut or kill -9); True if
    it died there."""
    pid = os.fork()
    if pid == 0:
        install(lambda: os._exit(KILLED))
        try:
            main(args, standalone_mode=False)
        except BaseException:  # noqa: BLE001
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, KILLED), f"{args} failed with exit {code} (kill at {kill_at} {when})"
    return code == KILLED


def run_killed(args: list[str], kill_at: int, when: str) -> bool:
    """The command, killed just before or just after its `kill_at`-th os.replace."""

    def install(die):
        real, calls = os.replace, [0]

        def replace(source, target, *args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at and when == "before":
                die()
            real(source, target, *args, **kwargs)
            if calls[0] == kill_at and when == "after":
                die()

        os.replace = replace

    return run_in_child(args, install, kill_at, when)


def snapshot(folder: Path, into: Path) -> None:
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(folder, into, symlinks=True)


def restore(backup: Path, folder: Path) -> None:
    for entry in folder.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for entry in backup.iterdir():
        (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, folder / entry.name)


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if files._TEMPORARY.match(p.name)]


def kill_points(args: list[str], workspace: Path, backup: Path, check) -> int:
    """Kill the command at each replacement in turn; `check` runs after each recovery. Returns the count."""
    points = 0
    for kill_at in range(1, 50):
        died = False
        for when in ("before", "after"):
            restore(backup, workspace)
            died = run_killed(args, kill_at, when)
            if not died:
                break
            check(kill_at, when)
        if not died:
            return points
        points += 1
    raise AssertionError("the command never finished")


@pytest.fixture
def backup(tmp_path_factory):
    return tmp_path_factory.mktemp("backup") / "workspace"


def test_apply_killed_at_any_replacement_applies_each_edit_once(workspace, model, cli, backup):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    cli("improve")
    title = edits_tab(path)
    tick(path, title, [2, 3])
    edits = read_tab(path, title)
    expected = PROMPT
    for edit in edits:
        expected = expected.replace(edit["find"], edit["replace"])
    snapshot(workspace, backup)

    def check(kill_at, when):
        cli("apply")  # the next run recovers and finishes
        prompt = (workspace / "prompts" / "support_agent.md").read_text()
        assert prompt == expected, (kill_at, when)
        rows = read_tab(path, title)
        assert [r["status"] for r in rows] == ["applied", "applied"], (kill_at, when)
        store = PromptStore(workspace / "prompts" / "support_agent.md")
        applied = [e["edit_id"] for v in store.lineage() for e in v.edits]
        assert sorted(applied) == sorted(e["edit_id"] for e in edits), (kill_at, when)
        assert not store.hand_edited()
        assert temporaries(workspace) == [], (kill_at, when)
        assert "No ticked edits" in cli("apply").output  # and a further apply changes nothing
        assert (workspace / "prompts" / "support_agent.md").read_text() == expected

    # the prompt file (after the store's commit: the next apply finds it behind and brings it up), the workbook
    assert kill_points(["apply"], workspace, backup, check) == 2


def test_log_killed_at_any_replacement_loses_no_draft_and_doubles_none(workspace, cli, backup):
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="reviewed", comment="keep me")])
    cli("log", "--ticket", "earlier", "--draft", "d")  # a store that already has a delivered draft
    (workspace / "prompts" / "support_agent.md").write_text(PROMPT + "A hand edit to record.\n")
    snapshot(workspace, backup)

    def check(kill_at, when):
        import sqlite3

        with sqlite3.connect(workspace / "loop.db") as db:
            logged = db.execute("SELECT COUNT(*) FROM drafts WHERE ticket = 'killed'").fetchone()[0]
        cli("log", "--ticket", "after", "--draft", "d")
        cli("sync")
        rows = read_tab(path, "Drafts")
        tickets = [r["ticket"] for r in rows]
        assert (rows[0]["trace_id"], rows[0]["comment"]) == ("reviewed", "keep me")
        assert tickets.count("earlier") == 1 and tickets.count("after") == 1, (kill_at, when, tickets)
        assert tickets.count("killed") == logged <= 1, (kill_at, when, tickets)  # committed means delivered
        if logged:
            assert tickets.index("killed") < tickets.index("after")  # in order
        assert temporaries(workspace) == [], (kill_at, when)
        store = PromptStore(workspace / "prompts" / "support_agent.md")
        assert store.hand_edited() and store.current().source == "initial"  # logging never records a hand edit

    # the workbook
    assert kill_points(["log", "--ticket", "killed", "--draft", "d"], workspace, backup, check) == 1
