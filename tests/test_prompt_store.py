"""loop/prompt_store.py against CONTRACT §5: every version kept (hand edits too) with the edits
behind it, rollback to the previous version, and a prompt file that is never half-written."""

from __future__ import annotations

import hashlib
import json

import pytest

from loop.errors import UsageError
from loop.prompt_store import PromptStore
from tests.conftest import PROMPT

V2 = PROMPT.replace("Be friendly and professional in every reply.", "Be friendly, brief and professional.")
V3 = V2.replace("Escalate billing disputes to a person.", "Escalate billing disputes and refunds to a person.")
EDIT_A = {"edit_id": "e-a", "tab": "Edits 2026-11-23 1530", "evidence": ["f1", "f2"]}
EDIT_B = {"edit_id": "e-b", "tab": "Edits 2026-11-24 0900", "evidence": ["f3"]}


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "prompts" / "support_agent.md"
    path.parent.mkdir()
    path.write_text(PROMPT, encoding="utf-8")
    return PromptStore(path)


def synced(store: PromptStore):
    with store.lock():
        return store.sync()


def commit(store: PromptStore, text: str, edits=None):
    with store.lock():
        store.sync()
        return store.commit(text, "apply", edits=edits)


def rollback(store: PromptStore):
    with store.lock():
        return store.rollback()


def log_lines(store: PromptStore) -> list[str]:
    return (store.history / "log.jsonl").read_text(encoding="utf-8").splitlines()


def test_first_sync_records_v1_initial(store):
    version = synced(store)
    assert (version.number, version.parent, version.source) == (1, None, "initial")
    assert store.text_of(1) == PROMPT
    assert store.current().number == 1
    assert store.path.read_text(encoding="utf-8") == PROMPT


def test_sync_again_without_changes_records_nothing(store):
    synced(store)
    assert synced(store).number == 1
    assert len(store.versions()) == 1


def test_commit_makes_v2_writes_the_file_and_records_its_edits(store):
    synced(store)
    version = commit(store, V2, edits=[EDIT_A])
    assert (version.number, version.parent, version.source) == (2, 1, "apply")
    assert store.path.read_text(encoding="utf-8") == V2
    assert store.text_of(2) == V2
    assert store.versions()[2].edits == [EDIT_A]
    assert store.current().number == 2
    # a fresh store reads the same history back from disk
    assert PromptStore(store.path).versions()[2].edits == [EDIT_A]


def test_a_hand_edit_is_recorded_as_its_own_version_on_next_sync(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    by_hand = V2 + "Sign every reply with your first name.\n"
    store.path.write_text(by_hand, encoding="utf-8")
    version = synced(store)
    assert (version.number, version.parent, version.source) == (3, 2, "hand edit")
    assert store.text_of(3) == by_hand
    assert store.path.read_text(encoding="utf-8") == by_hand
    assert version.edits == []


def test_rollback_restores_the_previous_versions_text(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    result = rollback(store)
    assert (result.undone.number, result.current.number) == (2, 1)
    assert store.path.read_text(encoding="utf-8") == PROMPT
    assert store.current().number == 1


def test_a_second_rollback_goes_further_back(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    commit(store, V3, edits=[EDIT_B])
    rollback(store)
    assert store.path.read_text(encoding="utf-8") == V2
    result = rollback(store)
    assert (result.undone.number, result.current.number) == (2, 1)
    assert store.path.read_text(encoding="utf-8") == PROMPT


def test_rollback_undoes_a_hand_edit_too(store):
    synced(store)
    store.path.write_text(PROMPT + "Extra line by hand.\n", encoding="utf-8")
    rollback(store)
    assert store.path.read_text(encoding="utf-8") == PROMPT
    assert [v.source for v in store.versions().values()] == ["initial", "hand edit"]


def test_rollback_at_v1_does_nothing_and_says_so(store):
    synced(store)
    result = rollback(store)
    assert result.undone is None and result.current.number == 1
    assert store.path.read_text(encoding="utf-8") == PROMPT
    assert len(log_lines(store)) == 1


def test_every_version_is_kept_after_rollback(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    rollback(store)
    commit(store, V3, edits=[EDIT_B])
    assert sorted(store.versions()) == [1, 2, 3]
    assert store.text_of(2) == V2
    assert store.versions()[3].parent == 1


def test_applied_edits_lists_the_edits_of_the_current_version_and_its_ancestors(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    commit(store, V3, edits=[EDIT_B])
    assert store.applied_edits() == {"e-a": "v2", "e-b": "v3"}


def test_applied_edits_drops_the_rolled_back_edits(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    commit(store, V3, edits=[EDIT_B])
    rollback(store)
    assert store.applied_edits() == {"e-a": "v2"}
    rollback(store)
    assert store.applied_edits() == {}


def test_an_interrupted_commit_with_its_log_line_is_finished_on_next_sync(store):
    synced(store)
    # crash after the version file, the marker and the log line, before the prompt file was written
    (store.history / "v2.md").write_text(V2, encoding="utf-8")
    event = {"event": "version", "version": 2, "parent": 1, "source": "apply",
             "created_at": "2026-11-23T15:30:00+00:00",
             "sha256": hashlib.sha256(V2.encode()).hexdigest(), "edits": [EDIT_A]}
    (store.history / "pending").write_text(json.dumps({"event": event, "write_prompt": True}))
    with open(store.history / "log.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(event) + "\n")
    assert store.path.read_text(encoding="utf-8") == PROMPT

    version = synced(store)
    assert store.path.read_text(encoding="utf-8") == V2
    assert version.number == 2 and version.source == "apply"  # not recorded again as a hand edit
    assert not (store.history / "pending").exists()
    assert store.applied_edits() == {"e-a": "v2"}


def test_an_interrupted_commit_without_its_log_line_is_discarded(store):
    synced(store)
    (store.history / "v2.md").write_text(V2, encoding="utf-8")
    event = {"event": "version", "version": 2, "parent": 1, "source": "apply",
             "created_at": "2026-11-23T15:30:00+00:00", "sha256": hashlib.sha256(V2.encode()).hexdigest(), "edits": []}
    (store.history / "pending").write_text(json.dumps({"event": event, "write_prompt": True}))

    version = synced(store)
    assert version.number == 1
    assert store.path.read_text(encoding="utf-8") == PROMPT
    assert not (store.history / "v2.md").exists()
    assert not (store.history / "pending").exists()
    assert sorted(store.versions()) == [1]


def test_a_truncated_last_log_line_is_ignored(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    with open(store.history / "log.jsonl", "a", encoding="utf-8") as log:
        log.write('{"event": "version", "version": 3, "parent": 2, "sou')
    assert store.current().number == 2
    assert sorted(store.versions()) == [1, 2]
    assert store.applied_edits() == {"e-a": "v2"}


def test_a_commit_after_a_truncated_log_line_is_recorded(store):
    synced(store)
    with open(store.history / "log.jsonl", "a", encoding="utf-8") as log:
        log.write('{"event": "version", "version": 2, "parent": 1, "sou')
    commit(store, V2, edits=[EDIT_A])
    assert store.path.read_text(encoding="utf-8") == V2
    assert PromptStore(store.path).current().number == 2
    assert store.applied_edits() == {"e-a": "v2"}


def test_an_interrupted_rollback_is_finished_by_the_next_sync(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    # crash after rollback's pending marker and log event, before it wrote the prompt file
    event = {"event": "rollback", "version": 1, "from": 2, "created_at": "2026-11-23T15:30:00+00:00"}
    (store.history / "pending").write_text(json.dumps({"event": event, "write_prompt": True}))
    with open(store.history / "log.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(event) + "\n")
    assert store.path.read_text(encoding="utf-8") == V2
    synced(store)
    assert store.path.read_text(encoding="utf-8") == store.text_of(1)
    assert store.current().number == 1
    assert "e-a" not in store.applied_edits()
    assert not (store.history / "pending").exists()


def test_commits_leave_no_stray_temporary_files(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    commit(store, V3, edits=[EDIT_B])
    rollback(store)
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["support_agent.md", "support_agent.md.history"]
    history = sorted(p.name for p in store.history.iterdir() if p.name != ".lock")
    assert history == ["log.jsonl", "v1.md", "v2.md", "v3.md"]


def test_the_history_log_says_which_edits_and_evidence_produced_each_version(store):
    synced(store)
    commit(store, V2, edits=[EDIT_A])
    events = [json.loads(line) for line in log_lines(store)]
    assert [(e["event"], e["version"], e["source"]) for e in events] == [("version", 1, "initial"),
                                                                         ("version", 2, "apply")]
    assert events[1]["edits"][0]["evidence"] == ["f1", "f2"]


def test_reading_a_missing_prompt_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="LOOP_PROMPT"):
        PromptStore(tmp_path / "nope.md").read()
