"""`loop import langfuse` and `loop export langfuse` under the real `langfuse` SDK, against a Langfuse
faked at the wire from its OpenAPI specification (tests/fake_langfuse.py). The agent is traced the
way a Langfuse user traces one: the SDK's own OpenAI integration around the real openai client, under
an agent observation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import write_workbook
from tests.fake_langfuse import FakeLangfuse
from tests.otlp_helpers import drafts, review_in_sheet, run_agent
from tests.test_store import stored


@pytest.fixture
def langfuse(workspace, monkeypatch):
    monkeypatch.delenv("LOOP_STORE", raising=False)
    monkeypatch.delenv("LOOP_IMPORT_REVIEW_NAMES", raising=False)
    write_workbook(workspace / "loop.xlsx", [])
    with FakeLangfuse() as server:
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", server.public_key)
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", server.secret_key)
        monkeypatch.setenv("LANGFUSE_BASE_URL", server.root)
        yield server


def trace_agent(model, tickets) -> dict[str, str]:
    """Each (session id, ticket, earlier turns) answered by an agent traced with the Langfuse SDK;
    returns each session's trace id."""
    from langfuse import Langfuse, propagate_attributes
    from langfuse.openai import openai

    client = Langfuse()
    traced = openai.OpenAI(base_url=model.url, api_key="test")
    traces = {}
    for session, ticket, earlier in tickets:
        with client.start_as_current_observation(as_type="agent", name="support-agent",
                                                 input={"ticket": ticket}) as agent:
            with propagate_attributes(session_id=session):
                agent.update(output=run_agent(traced, ticket, earlier))
            traces[session] = agent.trace_id
    client.flush()
    return traces



def test_import_and_export_with_the_langfuse_sdk(langfuse, workspace, model, cli, monkeypatch):
    traces = trace_agent(model, [("T-1", "Where is the reset link?", []),
                                 ("T-2", "It still fails.", [{"role": "user", "content": "I cannot log in."},
                                                             {"role": "assistant", "content": "Reset it."}])])
    assert {o["type"] for o in langfuse.observations} == {"AGENT", "GENERATION"}
    langfuse.annotate(traces["T-1"], "quality", "bad", "CATEGORICAL", comment="wrong menu path")
    langfuse.annotate(traces["T-1"], "correction", "Open Settings, then Security.", "CORRECTION")
    langfuse.annotate(traces["T-2"], "helpfulness", 0.8, "NUMERIC", comment="answers it", source="EVAL")

    said = cli("import", "langfuse").output
    assert "Imported 2 new drafts from langfuse (0 already here), 1 review, 1 judge score." in said, said
    rows = drafts(workspace)
    assert (rows["T-1"]["ticket"], rows["T-1"]["score"], rows["T-1"]["comment"], rows["T-1"]["final_reply"]) == (
        "Where is the reset link?", "👎", "wrong menu path", "Open Settings, then Security.")
    assert rows["T-1"]["kb_sources"] == "kb-reset-password"
    assert rows["T-2"]["thread"] == "Customer: I cannot log in.\nAgent: Reset it."
    assert (rows["T-2"]["score"], rows["T-2"]["judge_score"]) == (None, "👍")
    assert ("GET", "/api/public/v2/observations") in langfuse.requests  # the current API, not /api/public/traces
    assert not any(path == "/api/public/traces" for _, path in langfuse.requests)

    assert "Imported 0 new drafts from langfuse (2 already here), 0 reviews" in cli("import", "langfuse").output
    # the second import resumed from the cursor (10 minutes before the newest draft), not 14 days back
    first, second = [datetime.fromisoformat(q["fromStartTime"].replace("Z", "+00:00"))
                     for path, q in langfuse.queries if path == "/api/public/v2/observations"][:2]
    assert second - first > timedelta(days=13) and datetime.now(timezone.utc) - second < timedelta(minutes=11)
    # end-user feedback sent with the SDK's create_score counts once its name is named
    from langfuse import Langfuse

    Langfuse().create_score(name="user_feedback", value=1, data_type="BOOLEAN", trace_id=traces["T-2"],
                            comment="solved my problem")
    Langfuse().flush()
    assert "0 reviews" in cli("import", "langfuse").output  # an API score is a judge's unless named
    monkeypatch.setenv("LOOP_IMPORT_REVIEW_NAMES", "user_feedback")
    assert "1 review," in cli("import", "langfuse").output
    assert (drafts(workspace)["T-2"]["score"], drafts(workspace)["T-2"]["comment"]) == ("👍", "solved my problem")

    review_in_sheet(workspace, "T-1", "👍", "fine, the path was renamed")
    assert "Sent 1 review to langfuse; 1 already there." in cli("export", "langfuse").output
    assert "Sent 0 reviews to langfuse; 2 already there." in cli("export", "langfuse").output
    review_in_sheet(workspace, "T-1", "👎", "no, it is still wrong")
    assert "Sent 1 review to langfuse" in cli("export", "langfuse").output
    ours = [s for s in langfuse.scores.values() if s["name"] == "loop review"]
    assert len(ours) == 1 and ours[0]["traceId"] == traces["T-1"]  # upserted by its id
    assert (ours[0]["value"], ours[0]["comment"], ours[0]["dataType"]) == (0.0, "no, it is still wrong", "BOOLEAN")
    assert stored(f"sqlite:///{workspace / 'loop.db'}", "SELECT COUNT(*) FROM drafts") == [(2,)]


def test_wrong_langfuse_keys_are_one_line_and_change_nothing(langfuse, workspace, cli, monkeypatch):
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-wrong")
    said = cli("import", "langfuse", code=1).output
    assert "Langfuse cannot be reached or refused" in said and "LANGFUSE_SECRET_KEY" in said
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY")
    assert "needs LANGFUSE_PUBLIC_KEY" in cli("import", "langfuse", code=2).output
