"""`loop serve`: real OpenTelemetry emitters (the SDK's OTLP/HTTP exporters, the OpenInference and
OpenTelemetry GenAI instrumentations of the real openai client, against the fake model server) send
an agent's traces; its answers become drafts in the store and the sheet, once each."""

from __future__ import annotations

import gzip
import json
import socket

import openai
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                        ExportTraceServiceResponse)

from tests.conftest import read_tab, write_workbook
from tests.otlp_helpers import Served, finished_spans, protobuf_body, provider, run_agent
from tests.test_store import stored
from tests.test_store_faults import wait_for

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def served(workspace, monkeypatch):
    """A receiver for the workspace's loop.xlsx; stopped at the end, cleanly and without a traceback."""
    monkeypatch.delenv("LOOP_STORE", raising=False)
    write_workbook(workspace / "loop.xlsx", [])
    started = []

    def start(*args, **env):
        started.append(Served(workspace, *args, **env))
        return started[-1]

    yield start
    for receiver in started:
        assert receiver.stop() == 0, receiver.stderr
        assert "Traceback" not in receiver.stderr, receiver.stderr


def drafts(workspace) -> list[dict]:
    return read_tab(workspace / "loop.xlsx", "Drafts")


def store_rows(workspace, columns="trace_id, ticket, draft, thread, ticket_id, kb_sources, origin"):
    return stored(f"sqlite:///{workspace / 'loop.db'}", f"SELECT {columns} FROM drafts ORDER BY seq")


def agent_span(tracer, conversation: str, **attributes):
    return tracer.start_as_current_span("support-agent", attributes={
        "openinference.span.kind": "AGENT", "session.id": conversation, **attributes})


EARLIER = [{"role": "user", "content": "I cannot log in since yesterday."},
           {"role": "assistant", "content": "Sorry to hear that. Did you try resetting your password?"}]


def test_an_openinference_agent_with_tool_calls_and_a_thread_becomes_one_draft(served, workspace, model):
    from openinference.instrumentation.openai import OpenAIInstrumentor

    receiver = served()
    traces = provider(receiver.url)
    OpenAIInstrumentor().instrument(tracer_provider=traces)
    try:
        client = openai.OpenAI(base_url=model.url, api_key="test")
        with agent_span(traces.get_tracer("agent"), "T-1001"):
            answer = run_agent(client, "Where is the reset link? I have looked everywhere.", EARLIER)
    finally:
        OpenAIInstrumentor().uninstrument()
        traces.shutdown()
    assert len(model.requests) == 3  # search, read, answer: three model calls, one agent span
    assert wait_for(lambda: len(drafts(workspace)) == 1), receiver.stderr
    [row] = drafts(workspace)
    assert row["draft"] == answer
    assert row["ticket"] == "Where is the reset link? I have looked everywhere."
    assert row["thread"] == ("Customer: I cannot log in since yesterday.\n"
                             "Agent: Sorry to hear that. Did you try resetting your password?")
    assert row["ticket_id"] == "T-1001"
    assert row["kb_sources"] == "kb-reset-password"
    assert row["score"] is None and row["judge_score"] is None
    assert store_rows(workspace, "origin")[0] == ("otlp",)


def test_the_genai_instrumentation_with_content_on_spans_over_json(served, workspace, model, monkeypatch):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    receiver = served()
    traces = provider(receiver.url, "json")
    OpenAIInstrumentor().instrument(tracer_provider=traces)
    try:
        client = openai.OpenAI(base_url=model.url, api_key="test")
        tracer = traces.get_tracer("agent")
        with tracer.start_as_current_span("invoke_agent support", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "T-2002",
                "gen_ai.prompt.name": "support_agent", "gen_ai.prompt.version": "v7"}):
            answer = run_agent(client, "The reset email never arrives.", EARLIER)
    finally:
        OpenAIInstrumentor().uninstrument()
        traces.shutdown()
    assert wait_for(lambda: len(drafts(workspace)) == 1), receiver.stderr
    [row] = drafts(workspace)
    assert (row["ticket"], row["draft"], row["ticket_id"], row["prompt_version"]) == (
        "The reset email never arrives.", answer, "T-2002", "v7")
    assert row["thread"].startswith("Customer: I cannot log in") and row["kb_sources"] == "kb-reset-password"
    assert "warning" not in receiver.stderr


def test_spans_without_content_are_counted_said_once_and_shown_by_status(served, workspace, model, monkeypatch, cli):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    receiver = served()
    traces = provider(receiver.url)
    OpenAIInstrumentor().instrument(tracer_provider=traces)
    try:
        client = openai.OpenAI(base_url=model.url, api_key="test")
        for ticket in ("first ticket", "second ticket"):
            run_agent(client, ticket)
    finally:
        OpenAIInstrumentor().uninstrument()
        traces.shutdown()
    assert wait_for(lambda: "carried no message content" in receiver.stderr)
    assert drafts(workspace) == []
    assert receiver.stderr.count("carried no message content") == 1, receiver.stderr
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY" in receiver.stderr
    status = cli("status").output
    assert "6 model call spans received without content" in status, status


def test_a_span_sent_twice_is_one_draft_and_gzip_is_read(served, workspace):
    receiver = served()

    def build(tracer):
        with tracer.start_as_current_span("chat", attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi?"}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "text", "content": "=HYPERLINK(\"http://x\")"}]}])}):
            pass

    body = protobuf_body(finished_spans(build))
    for sent in (body, body, gzip.compress(body)):
        headers = {**PROTOBUF, **({"Content-Encoding": "gzip"} if sent is not body else {})}
        answer = requests.post(receiver.url, data=sent, headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/x-protobuf"
        assert not ExportTraceServiceResponse.FromString(answer.content).HasField("partial_success")
    assert wait_for(lambda: len(drafts(workspace)) == 1)
    assert len(store_rows(workspace)) == 1
    assert drafts(workspace)[0]["draft"] == '=HYPERLINK("http://x")'  # text in the sheet, never a formula


def test_evaluation_results_are_judge_scores_and_choosing_a_span_by_name(served, workspace):
    receiver = served(LOOP_OTLP_SPAN="answer_ticket")

    def build(tracer):
        with tracer.start_as_current_span("answer_ticket", attributes={
                "input.value": json.dumps({"ticket": "Can I pay by invoice?"}), "output.value": "Yes, on yearly plans.",
                "loop.ticket_id": "T-3"}) as span:
            span.add_event("gen_ai.evaluation.result", {
                "gen_ai.evaluation.name": "helpfulness", "gen_ai.evaluation.score.value": 0.2,
                "gen_ai.evaluation.explanation": "does not say how"})
            with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}):
                pass  # a model call without content under it: not a draft of its own
        with tracer.start_as_current_span("other"):
            pass

    answer = requests.post(receiver.url, data=protobuf_body(finished_spans(build)), headers=PROTOBUF, timeout=10)
    assert answer.status_code == 200
    assert wait_for(lambda: len(drafts(workspace)) == 1)
    [row] = drafts(workspace)
    assert (row["ticket"], row["draft"], row["ticket_id"]) == ("Can I pay by invoice?", "Yes, on yearly plans.", "T-3")
    assert (row["score"], row["judge_score"], row["judge_comment"], row["judge_version"]) == (
        None, "👎", "does not say how", "helpfulness")


def test_a_span_that_cannot_be_a_draft_is_named_in_partial_success_and_the_rest_are_kept(served, workspace):
    receiver = served()
    good = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "chat",
            "endTimeUnixNano": "1796658399000000000",
            "attributes": [{"key": "llm.input_messages.0.message.role", "value": {"stringValue": "user"}},
                           {"key": "llm.input_messages.0.message.content", "value": {"stringValue": "Help"}},
                           {"key": "llm.output_messages.0.message.content", "value": {"stringValue": "Sure."}}]}
    bad = json.loads(json.dumps(good))
    bad["spanId"] = "b7ad6b7169203332"
    bad["attributes"][1]["value"]["stringValue"] = "\ud800 broken"
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good, bad]}]}]}).encode()
    answer = requests.post(receiver.url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "lone surrogate" in partial["errorMessage"]
    assert "b7ad6b7169203332" in partial["errorMessage"]
    assert wait_for(lambda: [r["draft"] for r in drafts(workspace)] == ["Sure."])


# -- hostile bodies ---------------------------------------------------------------------------------


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _request_with_span(span: bytes) -> bytes:
    return _field(1, _field(2, _field(2, span)))  # resource_spans → scope_spans → spans


def _nested_value(depth: int) -> bytes:
    value = _field(1, b"x")  # AnyValue.string_value
    for _ in range(depth):
        value = _field(5, _field(1, value))  # AnyValue.array_value → ArrayValue.values
    return value


HOSTILE = {
    "truncated protobuf": (PROTOBUF, lambda body: body[:-7]),
    "invalid UTF-8 in a name": (PROTOBUF, lambda body: _request_with_span(
        _field(1, b"\x01" * 16) + _field(2, b"\x02" * 8) + _field(5, b"\xff\xfe bad"))),
    "a trace id of 5 bytes": (PROTOBUF, lambda body: _request_with_span(_field(1, b"\x01" * 5) + _field(2, b"\x02" * 8))),
    "a span id of 9 bytes": (PROTOBUF, lambda body: _request_with_span(_field(1, b"\x01" * 16) + _field(2, b"\x02" * 9))),
    "nesting 10,000 deep": (PROTOBUF, lambda body: _request_with_span(
        _field(1, b"\x01" * 16) + _field(2, b"\x02" * 8) + _field(9, _field(1, b"k") + _field(2, _nested_value(10_000))))),
    "JSON nested 100,000 deep": ({"Content-Type": "application/json"}, lambda body: b"[" * 100_000 + b"]" * 100_000),
    "JSON not UTF-8": ({"Content-Type": "application/json"}, lambda body: b'{"resourceSpans": "\xff"}'),
    "JSON hex id of 10 digits": ({"Content-Type": "application/json"}, lambda body: json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0af7651916", "spanId": "b7ad6b7169203331"}]}]}]}
    ).encode()),
    "JSON wrong types": ({"Content-Type": "application/json"}, lambda body: b'{"resourceSpans": [{"scopeSpans": 7}]}'),
    "gzip cut short": ({**PROTOBUF, "Content-Encoding": "gzip"}, lambda body: gzip.compress(body)[:-12]),
}


def test_hostile_bodies_are_answered_400_without_a_traceback(served, workspace):
    receiver = served()
    body = protobuf_body(finished_spans(lambda tracer: tracer.start_span("x").end()))
    for name, (headers, make) in HOSTILE.items():
        answer = requests.post(receiver.url, data=make(body), headers=headers, timeout=30)
        assert answer.status_code == 400, (name, answer.status_code, answer.content[:200])
        if headers["Content-Type"] == "application/json":
            assert answer.json()["code"] == 3 and answer.json()["message"].startswith("Bad OTLP body"), name
        else:
            assert b"Bad OTLP body" in answer.content, name
    assert requests.post(receiver.url, data=body, headers=PROTOBUF, timeout=10).status_code == 200  # still serving
    assert "Traceback" not in receiver.stderr


def test_a_body_past_the_limit_is_refused_from_its_length_without_being_read(served, workspace):
    receiver = served()
    host, port = receiver.url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                           b"Content-Length: 2147483648\r\n\r\n" + b"\x0a" * 1000)
        head = connection.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head
    bomb = gzip.compress(b"\x00" * (17 * 2**20))  # 17 MiB of nothing, 17 KiB on the wire
    answer = requests.post(receiver.url, data=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"}, timeout=30)
    assert answer.status_code == 413
    other = requests.post(receiver.url, data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert other.status_code == 415


def test_beyond_loopback_a_token_is_required_and_checked(workspace, served, cli, monkeypatch):
    monkeypatch.delenv("LOOP_OTLP_TOKEN", raising=False)
    refused = cli("serve", "--listen", "0.0.0.0:0", code=2).output
    assert "LOOP_OTLP_TOKEN" in refused
    receiver = served(LOOP_OTLP_TOKEN="s3cret")
    body = protobuf_body(finished_spans(lambda tracer: tracer.start_span("x").end()))
    assert requests.post(receiver.url, data=body, headers=PROTOBUF, timeout=10).status_code == 401
    wrong = {**PROTOBUF, "Authorization": "Bearer guess"}
    assert requests.post(receiver.url, data=body, headers=wrong, timeout=10).status_code == 401
    traces = provider(receiver.url, headers={"Authorization": "Bearer s3cret"})
    with traces.get_tracer("t").start_as_current_span("chat", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Refund?",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Within 30 days."}):
        pass
    traces.shutdown()
    assert wait_for(lambda: [(r["ticket"], r["draft"]) for r in drafts(workspace)] == [("Refund?", "Within 30 days.")])


def test_an_agent_instrumented_with_openllmetry_in_its_own_environment(served, workspace, model):
    """traceloop-sdk pins instrumentations of its own, so it runs in a virtualenv of its own
    (`make test` builds .venv-traceloop), with traceloop's own exporter."""
    import os
    import subprocess
    from pathlib import Path

    python = os.environ.get("LOOP_TEST_TRACELOOP")
    if python and not Path(python).is_absolute():  # named from the repository's root, as `make test` runs
        python = str(Path(__file__).resolve().parents[1] / python)
    if not python or not Path(python).exists():
        if os.environ.get("CI"):
            pytest.fail("LOOP_TEST_TRACELOOP names no python with traceloop-sdk; `make test` builds one")
        pytest.skip("no traceloop-sdk environment: `make test` builds .venv-traceloop")
    receiver = served()
    base = receiver.url.rsplit("/v1/traces", 1)[0]
    done = subprocess.run([python, str(Path(__file__).parent / "traceloop_agent.py"), base, model.url, "T-77",
                           "Where is the reset link?"], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "TRACELOOP_METRICS_ENABLED": "false", "TRACELOOP_LOGGING_ENABLED": "false",
                               "TRACELOOP_TRACE_CONTENT": "true"})
    assert done.returncode == 0, done.stderr[-2000:]
    answer = done.stdout.strip().splitlines()[-1]
    assert wait_for(lambda: len(drafts(workspace)) == 1), receiver.stderr
    [row] = drafts(workspace)
    assert (row["ticket"], row["draft"], row["ticket_id"], row["kb_sources"]) == (
        "Where is the reset link?", answer, "T-77", "kb-reset-password")
