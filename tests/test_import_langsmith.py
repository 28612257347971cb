"""`loop import langsmith` and `loop export langsmith` under the real `langsmith` SDK, against a
LangSmith faked at the wire from its OpenAPI specification (tests/fake_langsmith.py). The agent is
traced the way a LangSmith user traces one: `@traceable` around it and `wrap_openai` around the
real openai client."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import write_workbook
from tests.fake_langsmith import FakeLangSmith
from tests.otlp_helpers import drafts, review_in_sheet, run_agent
from tests.test_store import stored


@pytest.fixture
def langsmith(workspace, monkeypatch):
    monkeypatch.delenv("LOOP_STORE", raising=False)
    monkeypatch.delenv("LOOP_IMPORT_REVIEW_NAMES", raising=False)
    write_workbook(workspace / "loop.xlsx", [])
    with FakeLangSmith() as server:
        monkeypatch.setenv("LANGSMITH_API_KEY", server.api_key)
        monkeypatch.setenv("LANGSMITH_ENDPOINT", server.root)
        monkeypatch.setenv("LANGSMITH_PROJECT", "support")
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        yield server


def trace_agent(model, tickets) -> dict[str, str]:
    """Each (thread id, ticket, earlier turns) answered by a traced agent; each thread's root run id."""
    import openai
    from langsmith import Client, traceable
    from langsmith.run_helpers import get_current_run_tree
    from langsmith.wrappers import wrap_openai

    client = Client(auto_batch_tracing=False)
    traced = wrap_openai(openai.OpenAI(base_url=model.url, api_key="test"))
    roots = {}

    @traceable(run_type="chain", name="support-agent", client=client, project_name="support")
    def agent(ticket, earlier):
        roots[ticket] = str(get_current_run_tree().id)
        return run_agent(traced, ticket, earlier)

    for thread, ticket, earlier in tickets:
        agent(ticket, earlier, langsmith_extra={"metadata": {"thread_id": thread}})
    return {thread: roots[ticket] for thread, ticket, _ in tickets}



def test_import_and_export_with_the_langsmith_sdk(langsmith, workspace, model, cli, monkeypatch):
    runs = trace_agent(model, [("T-1", "Where is the reset link?", []),
                               ("T-2", "It still fails.", [{"role": "user", "content": "I cannot log in."},
                                                           {"role": "assistant", "content": "Reset it."}])])
    langsmith.annotate(runs["T-1"], "correctness", score=0, comment="wrong menu path",
                       correction={"final_reply": "Open Settings, then Security."})
    langsmith.annotate(runs["T-2"], "helpfulness", score=0.9, comment="answers it", source="model")

    said = cli("import", "langsmith").output
    assert "Imported 2 new drafts from langsmith (0 already here), 1 review, 1 judge score." in said, said
    rows = drafts(workspace)
    assert (rows["T-1"]["ticket"], rows["T-1"]["score"], rows["T-1"]["comment"], rows["T-1"]["final_reply"]) == (
        "Where is the reset link?", "👎", "wrong menu path", "Open Settings, then Security.")
    assert rows["T-1"]["kb_sources"] == "kb-reset-password"
    assert rows["T-2"]["thread"] == "Customer: I cannot log in.\nAgent: Reset it."
    assert (rows["T-2"]["score"], rows["T-2"]["judge_score"], rows["T-2"]["judge_comment"]) == (
        None, "👍", "answers it")
    assert "Imported 0 new drafts from langsmith (2 already here), 0 reviews" in cli("import", "langsmith").output
    assert ("POST", "/api/v2/runs/query") in langsmith.requests  # the current query, not the deprecated one
    assert ("POST", "/runs/query") not in langsmith.requests

    # end-user feedback through the SDK's create_feedback counts once its key is named
    from langsmith import Client

    Client(auto_batch_tracing=False).create_feedback(run_id=runs["T-2"], key="user_score", score=1, comment="solved it",
                                                     session_id=langsmith.sessions["support"]["id"])
    monkeypatch.setenv("LOOP_IMPORT_REVIEW_NAMES", "user_score")
    assert "1 review," in cli("import", "langsmith").output
    assert drafts(workspace)["T-2"]["score"] == "👍"

    review_in_sheet(workspace, "T-1", "👍", "fine, the path was renamed")
    assert "Sent 1 review to langsmith; 1 already there." in cli("export", "langsmith").output
    assert "Sent 0 reviews to langsmith; 2 already there." in cli("export", "langsmith").output
    review_in_sheet(workspace, "T-1", "👎", "no, it is still wrong")
    assert "Sent 1 review to langsmith" in cli("export", "langsmith").output
    ours = [f for f in langsmith.feedback.values() if f["key"] == "loop review"]
    assert len(ours) == 1 and uuid.UUID(ours[0]["run_id"]) == uuid.UUID(runs["T-1"])  # updated, not doubled
    assert (ours[0]["score"], ours[0]["comment"]) == (0, "no, it is still wrong")
    assert stored(f"sqlite:///{workspace / 'loop.db'}", "SELECT COUNT(*) FROM drafts") == [(2,)]


def test_a_wrong_langsmith_key_or_project_is_one_line(langsmith, workspace, model, cli, monkeypatch):
    trace_agent(model, [("T-1", "Hello?", [])])
    monkeypatch.setenv("LANGSMITH_PROJECT", "nope")
    assert "LangSmith has no project 'nope'" in cli("import", "langsmith", code=2).output
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_pt_wrong")
    said = cli("import", "langsmith", code=1).output
    assert "LangSmith cannot be reached or refused" in said and "LANGSMITH_API_KEY" in said
