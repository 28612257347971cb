"""Langfuse, through its own SDK (`langfuse`): observations in from the v2 observations API (the
page-based trace listing is deprecated), scores in from the v3 scores API, reviews out as scores.
Settings are the SDK's own: LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_BASE_URL (or
LANGFUSE_HOST).

An observation is read as a span (its type as OpenInference's kind, its input and output as the
messages or values), so the drafts come out as `loop serve` makes them. A score a person gave in
Langfuse's UI (source ANNOTATION) is a review; one sent by the API is a review only when its name is
in LOOP_IMPORT_REVIEW_NAMES (user feedback), else a judge score, as evaluator scores (EVAL) are."""

from __future__ import annotations

import json
from datetime import datetime

from loop.collect.spans import Span
from loop.collect.tracing_tools import Adapter, Review, Score, need, nanoseconds, review_names, text_of

ANNOTATION = "loop review"
SETTING = "LANGFUSE_BASE_URL (or LANGFUSE_HOST), LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"
_KINDS = {"GENERATION": "LLM", "AGENT": "AGENT", "TOOL": "TOOL", "RETRIEVER": "RETRIEVER", "CHAIN": "CHAIN"}


class Langfuse(Adapter):
    name, title, setting = "langfuse", "Langfuse", SETTING
    origins = ("langfuse",)

    def __init__(self):
        client = self.client_module("langfuse", "langfuse").Langfuse
        need("LANGFUSE_PUBLIC_KEY", "Langfuse", "pk-lf-…")
        need("LANGFUSE_SECRET_KEY", "Langfuse", "sk-lf-…")
        self.api = client(tracing_enabled=False).api

    def drafts(self, since: datetime) -> list[dict]:
        observations, cursor = [], None
        while True:
            page = self.call(self.api.observations.get_many, fields="core,basic,io,prompt", limit=1000,
                              cursor=cursor, from_start_time=since)
            observations.extend(page.data)
            cursor = page.meta.cursor
            if not cursor or not page.data:
                break
        return self.rows([_span(o) for o in observations])

    def scores(self, origin_ids: list[str]) -> list[Score]:
        by_trace: dict[str, list[str]] = {}
        for origin_id in origin_ids:
            by_trace.setdefault(origin_id.partition(":")[0], []).append(origin_id)
        names = review_names()
        traces = sorted(by_trace)
        found: list[Score] = []
        for start in range(0, len(traces), 50):
            cursor = None
            while True:
                page = self.call(self.api.scores.get_many, trace_id=",".join(traces[start:start + 50]),
                                  fields="details,subject,annotation", limit=100, cursor=cursor)
                found.extend(s for item in page.data if (s := _score(item, by_trace, names)) is not None)
                cursor = page.meta.cursor
                if not cursor or not page.data:
                    break
        return found

    def send(self, origin_id: str, review: Review) -> None:
        from langfuse.api import CreateScoreRequest

        trace_id, _, observation_id = origin_id.partition(":")
        request = CreateScoreRequest(
            id=f"loop-{trace_id}-{observation_id}", trace_id=trace_id, observation_id=observation_id or None,
            name=ANNOTATION, value=1 if review.score == "up" else 0, data_type="BOOLEAN", comment=review.comment or None,
            metadata={"from": "loop", "reviewer": review.reviewer, "final_reply": review.final_reply})
        self.call(self.api.scores.create, request=[request])


def _score(item, by_trace: dict[str, list[str]], names) -> Score | None:
    metadata = getattr(item, "metadata", None) or {}
    if isinstance(metadata, dict) and metadata.get("from") == "loop":
        return None  # our own, sent back by `loop export`
    subject = getattr(item, "subject", None)
    kind_of = getattr(subject, "kind", None)
    trace_id = getattr(subject, "trace_id", None) or (getattr(subject, "id", None) if kind_of == "trace" else None)
    drafts = by_trace.get(trace_id or "", [])
    if not drafts:
        return None
    observation = getattr(subject, "id", None) if kind_of == "observation" else None
    origin_id = next((d for d in drafts if observation and d.endswith(":" + observation)), drafts[0])
    kind, value, name = getattr(item, "data_type", None), getattr(item, "value", None), getattr(item, "name", "")
    source = getattr(getattr(item, "source", None), "value", getattr(item, "source", None))
    human = source == "ANNOTATION" or bool(names and name in names)
    label = value if kind in ("CATEGORICAL", "TEXT") else None
    if kind == "BOOLEAN":
        value = bool(value)
    moment = getattr(item, "updated_at", None) or getattr(item, "timestamp", None)
    return Score(origin_id=origin_id, name="correction" if kind == "CORRECTION" else name, human=human,
                 label=label, value=None if kind in ("CATEGORICAL", "TEXT", "CORRECTION") else value,
                 comment=getattr(item, "comment", None) or "", author=getattr(item, "author_user_id", None) or "langfuse",
                 at=moment.isoformat() if moment else "", text=str(value) if kind == "CORRECTION" else "")


def _span(observation) -> Span:
    """A Langfuse observation as a span: its type as OpenInference's kind, its messages flattened."""
    data = {name: getattr(observation, name, None) for name in (
        "id", "trace_id", "parent_observation_id", "type", "name", "start_time", "end_time", "input", "output",
        "session_id", "prompt_version")}
    kind = _KINDS.get(str(data.get("type") or "").upper(), "CHAIN")
    attributes: dict = {"openinference.span.kind": kind}
    inputs, output = _decoded(data.get("input")), _decoded(data.get("output"))
    messages = inputs.get("messages") if isinstance(inputs, dict) else inputs
    if kind == "LLM" and isinstance(messages, list):
        for i, message in enumerate(m for m in messages if isinstance(m, dict)):
            attributes[f"llm.input_messages.{i}.message.role"] = str(message.get("role", ""))
            attributes[f"llm.input_messages.{i}.message.content"] = text_of(message.get("content"))
        answer = output.get("content") if isinstance(output, dict) else output
        if answer is not None:
            attributes["llm.output_messages.0.message.role"] = "assistant"
            attributes["llm.output_messages.0.message.content"] = text_of(answer)
    else:
        if inputs is not None:
            attributes["input.value"] = text_of(inputs)
        if output is not None:
            attributes["output.value"] = text_of(output)
    if data.get("session_id"):
        attributes["session.id"] = data["session_id"]
    if data.get("prompt_version") is not None:
        attributes["llm.prompt_template.version"] = str(data["prompt_version"])
    return Span(trace_id=data.get("trace_id") or "", span_id=data["id"], parent_id=data.get("parent_observation_id") or "",
                name=data.get("name") or "", start=nanoseconds(data.get("start_time")), end=nanoseconds(data.get("end_time")),
                attributes=attributes)


def _decoded(value):
    """Langfuse returns input and output as raw strings of JSON: decoded, or as they are."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
