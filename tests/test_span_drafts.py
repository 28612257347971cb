"""Which span is a draft and what of it is what, for each convention's shapes, built with the real
OpenTelemetry SDK and read back from its protobuf encoding as the receiver reads it."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from loop.collect import span_drafts
from loop.collect.spans import Span, read_protobuf
from tests.otlp_helpers import finished_spans, protobuf_body


def drafts(build, choose: str = "") -> list[dict]:
    return span_drafts.drafts_of(read_protobuf(protobuf_body(finished_spans(build))), choose).rows


def messages(*pairs) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in pairs])


def test_the_genai_details_event_carries_the_conversation():
    def build(tracer):
        with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}) as span:
            span.add_event("gen_ai.client.inference.operation.details", {
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
                "gen_ai.input.messages": messages(("user", "Hi, I was billed twice."), ("assistant", "Sorry!"),
                                                  ("user", "Can you refund one?")),
                "gen_ai.output.messages": messages(("assistant", "Yes, refunded."))})

    [row] = drafts(build)
    assert (row["ticket"], row["thread"], row["draft"]) == (
        "Can you refund one?", "Customer: Hi, I was billed twice.\nAgent: Sorry!", "Yes, refunded.")


def test_the_older_genai_events_are_read():
    def build(tracer):
        with tracer.start_as_current_span("chat gpt", attributes={"gen_ai.operation.name": "chat"}) as span:
            span.add_event("gen_ai.system.message", {"content": "Be brief."})
            span.add_event("gen_ai.user.message", {"content": "Where are invoices?"})
            span.add_event("gen_ai.choice", {"message": json.dumps({"role": "assistant",
                                                                    "content": "Under Billing."})})

    [row] = drafts(build)
    assert (row["ticket"], row["draft"], row["thread"]) == ("Where are invoices?", "Under Billing.", "")


def test_retriever_and_tool_spans_under_the_agent_give_the_sources():
    def build(tracer):
        with tracer.start_as_current_span("invoke_agent", attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "C-9"}):
            with tracer.start_as_current_span("retrieve", attributes={
                    "openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.id": "kb/billing.md",
                    "retrieval.documents.1.document.metadata": json.dumps({"url": "https://help/x"})}):
                pass
            with tracer.start_as_current_span("execute_tool lookup", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
                    "gen_ai.tool.call.arguments": json.dumps({"order": "A-1"})}):
                pass
            with tracer.start_as_current_span("chat", attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.input.messages": messages(("user", "Where is order A-1?")),
                    "gen_ai.output.messages": messages(("assistant", "It ships today."))}):
                pass

    [row] = drafts(build)
    assert row["kb_sources"] == 'kb/billing.md, https://help/x, lookup_order({"order": "A-1"})'
    assert (row["ticket_id"], row["draft"]) == ("C-9", "It ships today.")


def test_a_model_call_that_only_calls_a_tool_is_no_draft_and_a_chosen_span_is():
    def build(tracer):
        with tracer.start_as_current_span("step", attributes={"app.step": "reply",
                                                              "input.value": "Is SSO on the basic plan?",
                                                              "output.value": "No, on Business."}):
            with tracer.start_as_current_span("chat", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.input.messages": messages(("user", "x")),
                    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                        {"type": "tool_call", "name": "search", "arguments": {}}]}])}):
                pass

    assert drafts(build) == []  # no agent span, and the one model call answered with a tool call only
    [row] = drafts(build, choose="app.step=reply")
    assert (row["ticket"], row["draft"]) == ("Is SSO on the basic plan?", "No, on Business.")


def test_parent_ids_in_a_cycle_end():
    spans = [Span("a" * 32, "1" * 16, "2" * 16, "agent", 0, 1, {"openinference.span.kind": "AGENT"}),
             Span("a" * 32, "2" * 16, "1" * 16, "agent", 0, 1, {"openinference.span.kind": "AGENT"})]
    assert span_drafts.drafts_of(spans).rows == []


@given(label=st.one_of(st.none(), st.text(max_size=12)),
       value=st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.integers(), st.text(max_size=8)))
def test_a_score_reads_as_up_down_or_nothing(label, value):
    assert span_drafts.thumb(label, value) in ("up", "down", "")


def test_scores_read_as_documented():
    thumb = span_drafts.thumb
    assert [thumb("Pass", None), thumb("incorrect", 1.0), thumb(None, 0.5), thumb(None, 0.49), thumb(None, True),
            thumb(None, -1), thumb(None, 7), thumb("meh", None)] == ["up", "down", "up", "down", "up", "down", "", ""]
