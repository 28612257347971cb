"""`loop import phoenix` and `loop export phoenix` against a real Phoenix server (arize-phoenix,
SQLite): the real openai client instrumented with OpenInference sends an agent's traces to it,
people annotate some spans there, and the drafts, reviews and judge scores come in; the sheet's
reviews go back as span annotations, once, and again only when they change."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import openai
import pytest
import requests

from tests.conftest import write_workbook
from tests.otlp_helpers import drafts, review_in_sheet, run_agent
from tests.test_store import stored


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def phoenix_server(tmp_path_factory):
    """A Phoenix server of the tests' own, its traces in a SQLite file; its base URL."""
    if shutil.which("phoenix", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("arize-phoenix is not installed: pip install -e '.[test]'")
    folder = tmp_path_factory.mktemp("phoenix")
    port, grpc = _free_port(), _free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(folder), "PHOENIX_PORT": str(port), "PHOENIX_HOST": "127.0.0.1",
           "PHOENIX_GRPC_PORT": str(grpc), "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = open(folder / "phoenix.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "phoenix"), "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        if server.poll() is not None:
            pytest.fail("Phoenix did not start: " + (folder / "phoenix.log").read_text()[-2000:])
        time.sleep(0.5)
    else:
        pytest.fail("Phoenix did not answer within 120 s")
    yield url
    server.terminate()
    server.wait(30)
    log.close()


@pytest.fixture
def phoenix(phoenix_server, workspace, monkeypatch):
    """A project of this test's own on the server, the environment pointing the client at it."""
    from phoenix.client import Client

    project = f"support-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PHOENIX_BASE_URL", phoenix_server)
    monkeypatch.setenv("PHOENIX_PROJECT", project)
    monkeypatch.delenv("LOOP_STORE", raising=False)
    write_workbook(workspace / "loop.xlsx", [])
    return Client(base_url=phoenix_server), project


def send_agent_traces(base_url: str, project: str, model, tickets: list[tuple[str, str, list]]) -> None:
    """Each (conversation id, ticket, earlier turns) drafted by an agent traced with OpenInference."""
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    traces = TracerProvider(resource=Resource.create({"openinference.project.name": project}))
    traces.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=base_url + "/v1/traces")))
    OpenAIInstrumentor().instrument(tracer_provider=traces)
    try:
        client = openai.OpenAI(base_url=model.url, api_key="test")
        for conversation, ticket, earlier in tickets:
            with traces.get_tracer("agent").start_as_current_span("support-agent", attributes={
                    "openinference.span.kind": "AGENT", "session.id": conversation}):
                run_agent(client, ticket, earlier)
    finally:
        OpenAIInstrumentor().uninstrument()
        traces.shutdown()


def agent_spans(client, project: str, count: int) -> dict[str, str]:
    """The agent spans Phoenix holds, by conversation id, once it has them all."""
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            spans = client.spans.get_spans(project_identifier=project, limit=1000)
        except httpx.HTTPStatusError:  # the project is made when its first spans are written, a moment later
            spans = []
        agents = {s["attributes"].get("session.id"): s["context"]["span_id"] for s in spans
                  if s["name"] == "support-agent"}
        if len(agents) == count or time.monotonic() > deadline:
            return agents
        time.sleep(0.3)


def test_import_and_export_with_a_real_phoenix_server(phoenix, phoenix_server, workspace, model, cli):
    client, project = phoenix
    send_agent_traces(phoenix_server, project, model, [
        ("T-1", "Where is the reset link?", []),
        ("T-2", "It still fails after the reset.", [{"role": "user", "content": "I cannot log in."},
                                                    {"role": "assistant", "content": "Try a password reset."}]),
    ])
    spans = agent_spans(client, project, 2)
    assert set(spans) == {"T-1", "T-2"}
    client.spans.add_span_annotation(span_id=spans["T-1"], annotation_name="correctness", annotator_kind="HUMAN",
                                     label="incorrect", explanation="wrong menu path", sync=True)
    client.spans.add_span_annotation(span_id=spans["T-1"], annotation_name="correction", annotator_kind="HUMAN",
                                     explanation="Open Settings, then Security, then Reset password.", sync=True)
    client.spans.add_span_annotation(span_id=spans["T-2"], annotation_name="helpfulness", annotator_kind="LLM",
                                     score=0.9, explanation="answers the question", sync=True)

    said = cli("import", "phoenix").output
    assert "Imported 2 new drafts from phoenix (0 already here), 1 review, 1 judge score." in said, said
    rows = drafts(workspace)
    first, second = rows["T-1"], rows["T-2"]
    assert (first["ticket"], first["score"], first["comment"], first["final_reply"]) == (
        "Where is the reset link?", "👎", "wrong menu path", "Open Settings, then Security, then Reset password.")
    assert first["kb_sources"] == "kb-reset-password"
    assert second["thread"] == "Customer: I cannot log in.\nAgent: Try a password reset."
    assert (second["score"], second["judge_score"], second["judge_comment"]) == (None, "👍", "answers the question")

    assert "Imported 0 new drafts from phoenix (2 already here), 0 reviews" in cli("import", "phoenix").output
    # changed there: the sheet follows, since nobody here has reviewed it
    client.spans.add_span_annotation(span_id=spans["T-1"], annotation_name="correctness", annotator_kind="HUMAN",
                                     label="correct", explanation="fine on a second look", sync=True)
    assert "1 review," in cli("import", "phoenix").output
    assert (drafts(workspace)["T-1"]["score"], drafts(workspace)["T-1"]["comment"]) == ("👍", "fine on a second look")

    # a person here reviews both; the export sends both, once
    review_in_sheet(workspace, "T-1", "👎", "the menu path is wrong after all")
    review_in_sheet(workspace, "T-2", "👎", "too long")
    assert "Sent 2 reviews to phoenix; 0 already there." in cli("export", "phoenix").output
    assert "Sent 0 reviews to phoenix; 2 already there." in cli("export", "phoenix").output
    review_in_sheet(workspace, "T-2", "👎", "too long, and it skips the thread")
    assert "Sent 1 review to phoenix; 1 already there." in cli("export", "phoenix").output
    ours = [a for a in client.spans.get_span_annotations(span_ids=[spans["T-2"]], project_identifier=project)
            if a["name"] == "loop review"]
    assert len(ours) == 1  # updated in place, never a second record
    assert (ours[0]["annotator_kind"], ours[0]["result"]["label"], ours[0]["result"]["explanation"]) == (
        "HUMAN", "down", "too long, and it skips the thread")

    # changed there again after a person here reviewed it: the sheet's review stands
    client.spans.add_span_annotation(span_id=spans["T-1"], annotation_name="correctness", annotator_kind="HUMAN",
                                     label="correct", explanation="third opinion", sync=True)
    said = cli("import", "phoenix").output
    assert "1 review changed there kept as reviewed here" in said, said
    assert drafts(workspace)["T-1"]["comment"] == "the menu path is wrong after all"
    url = f"sqlite:///{workspace / 'loop.db'}"
    assert stored(url, "SELECT COUNT(*) FROM drafts") == [(2,)]
    assert stored(url, "SELECT COUNT(*) FROM trace_sources WHERE source = 'phoenix'") == [(1,)]


def test_phoenix_that_cannot_be_reached_is_one_line_and_changes_nothing(workspace, cli, monkeypatch):
    monkeypatch.setenv("PHOENIX_BASE_URL", f"http://127.0.0.1:{_free_port()}")
    write_workbook(workspace / "loop.xlsx", [])
    said = cli("import", "phoenix", code=1).output
    assert "Phoenix cannot be reached" in said and "PHOENIX_BASE_URL" in said and "Traceback" not in said
