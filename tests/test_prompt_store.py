"""loop/prompt_store.py against CONTRACT §5 and §5b: every version kept in the store (hand edits too)
with the edits behind it, rollback to the previous version byte for byte, a file behind the store
brought up, an earlier release's history folder imported once, and canaries promoted and ended, on
SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from loop.errors import UsageError
from loop.prompt_store import CanaryRunning, PromptStore, sha256
from loop.store.db import connect
from loop.store.prompts import ServingChanged
from tests.conftest import PROMPT

V2 = PROMPT.replace("Be friendly and professional in every reply.", "Be friendly, brief and professional.")
V3 = V2.replace("Escalate billing disputes to a person.", "Escalate billing disputes and refunds to a person.")
EDIT_A = {"edit_id": "e-a", "tab": "Edits 2026-11-23 1530", "evidence": ["f1", "f2"]}
EDIT_B = {"edit_id": "e-b", "tab": "Edits 2026-11-24 0900", "evidence": ["f3"]}


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "prompts" / "support_agent.md"
    path.parent.mkdir()
    path.write_text(PROMPT, encoding="utf-8")
    return path


@pytest.fixture
def store(path, store_url):
    return PromptStore(path, db=connect(store_url))


def again(store: PromptStore) -> PromptStore:
    """The same prompt as another command (or host, sharing the store) opens it."""
    return PromptStore(store.path, db=store.records.db)


def commit(store: PromptStore, text: str, edits=None, **canary):
    store.sync()
    return store.commit(text, "apply", edits=edits, **canary)


def test_first_sync_records_v1_initial(store):
    version = store.sync()
    assert (version.number, version.parent, version.source) == (1, None, "initial")
    assert store.text_of(1) == PROMPT and store.current().number == 1
    assert store.path.read_text(encoding="utf-8") == PROMPT
    assert not store.path.with_name("support_agent.md.history").exists()  # the store, not a folder, keeps it


def test_sync_again_without_changes_records_nothing(store):
    store.sync()
    assert again(store).sync().number == 1
    assert len(store.versions()) == 1


def test_commit_makes_v2_writes_the_file_and_records_its_edits(store):
    version = commit(store, V2, edits=[EDIT_A])
    assert (version.number, version.parent, version.source) == (2, 1, "apply")
    assert store.path.read_text(encoding="utf-8") == V2 and store.text_of(2) == V2
    assert again(store).versions()[2].edits == [EDIT_A]
    assert store.versions()[2].sha256 == sha256(V2.encode())
    assert again(store).current().number == 2


def test_a_hand_edit_is_recorded_as_its_own_version_on_next_sync(store):
    commit(store, V2, edits=[EDIT_A])
    by_hand = V2 + "Sign every reply with your first name.\n"
    store.path.write_text(by_hand, encoding="utf-8")
    assert store.hand_edited()
    version = again(store).sync()
    assert (version.number, version.parent, version.source) == (3, 2, "hand edit")
    assert store.text_of(3) == by_hand and store.path.read_text(encoding="utf-8") == by_hand
    assert [e["kind"] for e in store.records.events()] == ["initial", "apply", "hand edit"]


def test_rollback_restores_the_previous_versions_bytes(store):
    commit(store, V2, edits=[EDIT_A])
    result = store.rollback()
    assert (result.undone.number, result.current.number) == (2, 1)
    assert store.path.read_text(encoding="utf-8") == PROMPT and store.current().number == 1
    commit(store, V3, edits=[EDIT_B])
    assert sorted(store.versions()) == [1, 2, 3] and store.versions()[3].parent == 1  # every version kept


def test_a_second_rollback_goes_further_back_and_the_first_version_stays(store):
    commit(store, V2, edits=[EDIT_A])
    commit(store, V3, edits=[EDIT_B])
    store.rollback()
    assert store.path.read_text(encoding="utf-8") == V2
    assert store.applied_edits() == {"e-a": "v2"}
    result = store.rollback()
    assert (result.undone.number, result.current.number) == (2, 1) and store.applied_edits() == {}
    assert store.path.read_text(encoding="utf-8") == PROMPT
    result = store.rollback()
    assert result.undone is None and result.current.number == 1
    assert [e["kind"] for e in store.records.events()] == ["initial", "apply", "apply", "rollback", "rollback"]


def test_rollback_undoes_a_hand_edit_too(store):
    store.sync()
    store.path.write_text(PROMPT + "Extra line by hand.\n", encoding="utf-8")
    store.rollback()
    assert store.path.read_text(encoding="utf-8") == PROMPT
    assert [v.source for v in store.versions().values()] == ["initial", "hand edit"]


def test_bom_crlf_and_mode_are_kept_through_commit_and_rollback(store):
    original = b"\xef\xbb\xbf" + PROMPT.replace("\n", "\r\n").encode()
    store.path.write_bytes(original)
    os.chmod(store.path, 0o640)
    commit(store, V2, edits=[EDIT_A])
    assert store.path.read_bytes() == b"\xef\xbb\xbf" + V2.replace("\n", "\r\n").encode()
    assert store.read() == V2  # edits work on `\n` text
    store.rollback()
    assert store.path.read_bytes() == original
    assert os.stat(store.path).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["support_agent.md"]  # no stray temporaries


def test_a_file_behind_the_store_is_brought_up_not_recorded_as_a_hand_edit(store):
    store.sync()
    with store.records.change(store.serving()) as change:  # an apply cut short after the store's commit
        change.make_current(change.add_version(V2.encode(), 1, "apply", [EDIT_A]).number, "apply")
    other = again(store)
    assert other.sync().number == 2 and other.read() == V2  # the store's current version is what is read
    assert len(store.versions()) == 2 and not store.hand_edited()
    other.bring_up()
    assert store.path.read_text(encoding="utf-8") == V2
    assert "was behind the store" in other.notes[0]


def test_another_hosts_file_of_an_older_version_is_behind(store, tmp_path):
    commit(store, V2, edits=[EDIT_A])
    host2 = tmp_path / "host2" / "support_agent.md"
    host2.parent.mkdir()
    host2.write_text(PROMPT, encoding="utf-8")  # deployed before v2 was applied elsewhere
    second = PromptStore(host2, db=store.records.db)
    assert not second.hand_edited() and second.bring_up().number == 2
    assert host2.read_text(encoding="utf-8") == V2 and len(store.versions()) == 2


def test_a_file_reverted_by_hand_to_an_older_version_is_a_hand_edit_kept(store):
    commit(store, V2, edits=[EDIT_A])
    store.path.write_text(PROMPT, encoding="utf-8")  # someone put v1's text back by hand
    assert store.hand_edited()
    version = again(store).bring_up()
    assert (version.number, version.source, version.parent) == (3, "hand edit", 1)
    assert store.path.read_text(encoding="utf-8") == PROMPT and store.applied_edits() == {}


def test_a_host_without_the_file_reads_the_stores_version(store, tmp_path):
    commit(store, V2, edits=[EDIT_A])
    elsewhere = PromptStore(tmp_path / "nowhere" / "support_agent.md", db=store.records.db)
    assert elsewhere.read() == V2


def test_hosts_with_different_paths_agree_by_name(store, tmp_path):
    commit(store, V2)
    (tmp_path / "other").mkdir()
    renamed = tmp_path / "other" / "agent.md"
    renamed.write_text(PROMPT, encoding="utf-8")
    assert PromptStore(renamed, db=store.records.db, name="support_agent.md").read() == V2


def test_reading_a_missing_prompt_with_no_records_is_a_usage_error(tmp_path, store_url):
    with pytest.raises(UsageError, match="LOOP_PROMPT"):
        PromptStore(tmp_path / "missing.md", db=connect(store_url)).read()


# --- canaries ------------------------------------------------------------------------------------

def test_a_canary_serves_the_new_version_while_the_file_keeps_the_current_one(store):
    version = commit(store, V2, edits=[EDIT_A], canary_share=0.1)
    serving = store.serving()
    assert (serving.current, serving.canary.version, serving.canary.share) == (1, 2, 0.1)
    assert store.path.read_text(encoding="utf-8") == PROMPT and store.current().number == 1
    assert {v.label for v in store.lineage(with_canary=True)} == {"v1", "v2"}
    with pytest.raises(CanaryRunning, match="loop promote"):
        store.commit(V3, "apply", edits=[EDIT_B])
    assert sorted(store.versions()) == [1, 2]  # nothing was changed
    assert version.number == 2


def test_promote_raises_the_share_then_makes_the_canary_current_and_writes_the_file(store):
    commit(store, V2, edits=[EDIT_A], canary_share=0.1)
    raised = store.promote(0.5)
    assert raised.canary.share == 0.5 and store.path.read_text(encoding="utf-8") == PROMPT
    with pytest.raises(UsageError, match="only raises"):
        store.promote(0.2)
    done = store.promote()
    assert (done.previous.number, done.current.number, done.canary.outcome) == (1, 2, "promoted")
    assert store.serving().canary is None and store.current().number == 2
    assert store.path.read_text(encoding="utf-8") == V2
    assert [e["kind"] for e in store.records.events()] == ["initial", "canary", "share", "promote"]
    with pytest.raises(UsageError, match="No canary"):
        store.promote()


def test_rollback_during_a_canary_ends_it_and_keeps_the_current_version(store):
    commit(store, V2, edits=[EDIT_A], canary_share=0.1)
    result = store.rollback()
    assert result.canary.outcome == "rolled back" and result.current.number == 1
    assert store.serving().canary is None and store.path.read_text(encoding="utf-8") == PROMPT
    assert store.lineage(with_canary=True)[0].number == 1


def _promote_in_another_process(path, url, start, results):
    start.wait()
    store = PromptStore(path, db=connect(url))
    try:
        results.put(("promoted", store.promote().current.number))
    except (ServingChanged, UsageError) as refusal:
        results.put(("refused", str(refusal)))


def test_two_hosts_promoting_at_once_promote_once(store, store_url, path):
    commit(store, V2, edits=[EDIT_A], canary_share=0.2)
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    hosts = [context.Process(target=_promote_in_another_process, args=(path, store_url, start, results))
             for _ in range(2)]
    for host in hosts:
        host.start()
    start.set()
    outcomes = sorted(results.get(timeout=60) for _ in hosts)
    for host in hosts:
        host.join(30)
    assert [o[0] for o in outcomes] == ["promoted", "refused"], outcomes
    assert "No canary" in outcomes[1][1] or "changed by another command" in outcomes[1][1]
    assert [e["kind"] for e in store.records.events()].count("promote") == 1
    assert store.current().number == 2 and store.serving().canary is None


# --- an earlier release's history folder ----------------------------------------------------------

def old_history(path, versions=(PROMPT, V2, V3), rollback_to=2):
    """`support_agent.md.history/` as an earlier release wrote it: versions, then a rollback."""
    folder = path.with_name(path.name + ".history")
    folder.mkdir()
    lines = []
    for number, text in enumerate(versions, start=1):
        (folder / f"v{number}.md").write_text(text, encoding="utf-8")
        lines.append({"event": "version", "version": number, "parent": number - 1 or None,
                      "source": "initial" if number == 1 else "apply",
                      "created_at": (datetime(2026, 9, 30, 9, tzinfo=timezone.utc) + timedelta(days=number)).isoformat(),
                      "sha256": sha256(text.encode()), "edits": [] if number == 1 else [{"edit_id": f"e{number}"}],
                      "prompt": path.name})
    if rollback_to:
        lines.append({"event": "rollback", "version": rollback_to, "from": len(versions),
                      "created_at": "2026-10-09T09:00:00+00:00", "prompt": path.name})
    (folder / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    path.write_text(versions[rollback_to - 1] if rollback_to else versions[-1], encoding="utf-8")
    return folder


def test_an_old_history_folder_is_imported_once_losing_and_doubling_nothing(store, path):
    folder = old_history(path)
    assert store.sync().number == 2
    assert "Imported" in store.notes[0]
    versions = store.versions()
    assert [(v.number, v.parent, v.source, v.created_at[:10]) for v in versions.values()] == [
        (1, None, "initial", "2026-10-01"), (2, 1, "apply", "2026-10-02"), (3, 2, "apply", "2026-10-03")]
    assert [store.bytes_of(n) for n in versions] == [(folder / f"v{n}.md").read_bytes() for n in versions]
    assert versions[3].edits == [{"edit_id": "e3"}]
    assert store.periods() == {1: [("2026-10-01T09:00:00+00:00", "2026-10-02T09:00:00+00:00")],
                               2: [("2026-10-02T09:00:00+00:00", "2026-10-03T09:00:00+00:00"),
                                   ("2026-10-09T09:00:00+00:00", None)],
                               3: [("2026-10-03T09:00:00+00:00", "2026-10-09T09:00:00+00:00")]}
    assert again(store).sync().number == 2 and len(store.versions()) == 3  # run again: imported once
    assert folder.is_dir()  # left where it was


def test_a_second_hosts_own_history_is_left_alone_with_one_warning(store, path, tmp_path, caplog):
    commit(store, V2)
    other = tmp_path / "host2" / "support_agent.md"
    other.parent.mkdir()
    old_history(other, versions=(PROMPT, V3), rollback_to=0)
    second = PromptStore(other, db=store.records.db)
    assert second.sync().number == 3  # its V3 file is a hand edit on top of the store's current v2
    assert len(store.versions()) == 3
    assert sum("holds versions the store does not" in r.getMessage() for r in caplog.records) == 1


IMPORT = """
import sys
from loop.prompt_store import PromptStore
from loop.store.db import connect
db = connect(sys.argv[2])
if db.postgres:
    db.execute("SET synchronous_commit = on")
print("started", flush=True)
PromptStore(sys.argv[1], db=db).sync()
print("done", flush=True)
"""


def test_an_import_killed_part_way_keeps_nothing_and_the_next_run_imports_once(store, store_url, path):
    old_history(path, versions=tuple(PROMPT + f"line {i}\n" * 2000 for i in range(1, 41)), rollback_to=0)
    holder = connect(store_url)
    store.records.db.execute("SELECT 1 FROM prompt_serving")  # the schema exists before the lock is taken
    # another session holds the events table, so the import blocks inside its one transaction, half done
    with holder.transaction():
        holder.execute("LOCK TABLE prompt_events IN ACCESS EXCLUSIVE MODE" if holder.postgres else
                       "INSERT INTO prompt_events (prompt, at, kind, current, actor, reason) "
                       "VALUES ('other', '', 'x', 1, '', '')")
        process = subprocess.Popen([sys.executable, "-c", IMPORT, str(path), store_url], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, "LOOP_STORE_TIMEOUT": "60"})
        assert process.stdout.readline().strip() == "started"
        time.sleep(1.5)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        holder.execute("DELETE FROM prompt_events WHERE prompt = 'other'")
    assert store.records.versions() == {} and store.records.serving() is None
    assert store.sync().number == 40 and sorted(store.versions()) == list(range(1, 41))
    assert again(store).sync().number == 40 and len(store.records.events()) == 40
