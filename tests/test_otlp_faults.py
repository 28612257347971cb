"""The receiver under faults and hostile text: a store that is down while the real exporter
retries (nothing lost, nothing doubled), traces whose root never comes, and any bytes or text."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from loop import config
from loop.cell_values import REPLACEMENT
from loop.collect import receiver as receiver_module
from loop.collect.receiver import Receiver
from tests.conftest import read_tab, write_workbook
from tests.otlp_helpers import Served, finished_spans, protobuf_body
from tests.test_store import stored
from tests.test_store_faults import wait_for


def answer_span(tracer, ticket: str, answer: str, **attributes):
    """One model call with its content, as OpenInference writes it."""
    with tracer.start_as_current_span("ChatCompletion", attributes={
            "openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": ticket, "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer, **attributes}):
        pass


def test_the_exporter_retries_while_postgresql_is_down_and_every_span_lands_once(private_postgres, workspace,
                                                                                 monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    url = private_postgres.database()
    monkeypatch.setenv("LOOP_STORE", url)
    write_workbook(workspace / "loop.xlsx", [])
    served = Served(workspace, LOOP_STORE_TIMEOUT="2")
    try:
        exporter = OTLPSpanExporter(endpoint=served.url, timeout=60)
        first = finished_spans(lambda tracer: answer_span(tracer, "before", "answered before"))
        assert exporter.export(first) == SpanExportResult.SUCCESS
        private_postgres.stop()
        later = finished_spans(lambda tracer: [answer_span(tracer, f"while down {i}", f"answer {i}") for i in range(3)])
        results = []
        sending = threading.Thread(target=lambda: results.append(exporter.export(later)))
        sending.start()
        assert wait_for(lambda: "send again (503)" in served.stderr, 30), served.stderr
        private_postgres.start()
        sending.join(90)
        assert results == [SpanExportResult.SUCCESS], served.stderr
        assert exporter.export(later) == SpanExportResult.SUCCESS  # sent again: nothing doubles
        tickets = lambda: sorted(row["ticket"] for row in read_tab(workspace / "loop.xlsx", "Drafts"))  # noqa: E731
        assert wait_for(lambda: tickets() == ["before", "while down 0", "while down 1", "while down 2"], 30), \
            served.stderr
    finally:
        private_postgres.start()
        code = served.stop()
    assert code == 0 and "Traceback" not in served.stderr, served.stderr
    assert "The store commits again" in served.stderr
    assert stored(url, "SELECT COUNT(*), COUNT(DISTINCT trace_id) FROM drafts") == [(4, 4)]


@pytest.fixture
def receiver(workspace, monkeypatch):
    monkeypatch.delenv("LOOP_STORE", raising=False)
    write_workbook(workspace / "loop.xlsx", [])
    made = Receiver(config.resolve())
    made.check()
    return made


def store_drafts(workspace, columns="ticket, draft"):
    return stored(f"sqlite:///{workspace / 'loop.db'}", f"SELECT {columns} FROM drafts ORDER BY seq")


def test_a_trace_whose_root_never_comes_is_taken_once_it_goes_quiet(receiver, workspace, monkeypatch):
    def build(tracer):
        with tracer.start_as_current_span("handler") as root:
            answer_span(tracer, "Is there an API?", "Yes: see the developer docs.")
        return root

    spans = finished_spans(build)
    children = [s for s in spans if s.name == "ChatCompletion"]
    answer = receiver.export(protobuf_body(children), "application/x-protobuf", "")
    assert answer.status == 200
    assert store_drafts(workspace) == []  # its root may still come
    receiver.sweep()
    assert store_drafts(workspace) == []  # not quiet yet
    monkeypatch.setattr(receiver_module, "QUIET_SECONDS", 0.0)
    time.sleep(1.1)  # the store keeps seconds
    receiver.sweep()
    assert store_drafts(workspace) == [("Is there an API?", "Yes: see the developer docs.")]
    assert stored(f"sqlite:///{workspace / 'loop.db'}", "SELECT COUNT(*) FROM trace_spans") == [(0,)]
    receiver.export(protobuf_body(children), "application/x-protobuf", "")  # sent again, late: one draft
    receiver.sweep()
    assert len(store_drafts(workspace)) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=400), media=st.sampled_from(["application/x-protobuf", "application/json"]),
       encoding=st.sampled_from(["", "gzip"]))
def test_any_bytes_are_answered_200_or_400_never_a_traceback(receiver, body, media, encoding):
    answer = receiver.export(body, media, encoding)
    assert answer.status in (200, 400), answer


NUMBERS = itertools.count(1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ticket=st.text(min_size=1, max_size=200).filter(str.strip),
       answer=st.text(min_size=1, max_size=200).filter(str.strip))
def test_any_text_in_a_span_is_kept_as_text_and_reaches_the_sheet_as_it_is(receiver, workspace, ticket, answer):
    from loop.store.outbox import sync

    spans = finished_spans(lambda tracer: answer_span(tracer, ticket, answer))
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        # ids of its own: hypothesis seeds `random` alike for every example, and so the SDK's ids
        "traceId": format(next(NUMBERS), "032x"), "spanId": format(next(NUMBERS), "016x"),
        "name": "chat", "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in spans[0].attributes.items()]}]}]}]})
    result = receiver.export(body.encode("utf-8", "surrogatepass"), "application/json", "")
    assert result.status == 200
    sync(receiver.workspace)
    kept = store_drafts(workspace)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in ticket + answer):  # no file can store a lone surrogate
        assert "lone surrogate" in result.body.decode()
    else:
        assert (ticket.replace("\x00", REPLACEMENT), answer.replace("\x00", REPLACEMENT)) in kept
    rows = read_tab(workspace / "loop.xlsx", "Drafts")  # the workbook opens, whatever the text held
    assert len(rows) == len(kept)
