"""LangSmith, through its own SDK (`langsmith`): a project's runs in (the v2 runs query,
`client.runs.query_v2`), feedback in (`list_feedback`) and out (`create_feedback` on the project,
then `update_feedback`). Settings are the SDK's own:
LANGSMITH_API_KEY, LANGSMITH_ENDPOINT, LANGSMITH_PROJECT (default `default`).

A run is read as a span: a root chain run is the agent's (its inputs the ticket, its outputs the
answer), an llm run a model call with its messages, a tool or retriever run a source. Feedback a
person left in LangSmith (source `app`) is a review, with its `correction` as the final reply; API
feedback counts as a review only when its key is in LOOP_IMPORT_REVIEW_NAMES; model feedback is a
judge score."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import datetime

from loop.collect.spans import Span
from loop.collect.tracing_tools import Adapter, Review, Score, need, nanoseconds, review_names, text_of, unreachable

FEEDBACK_KEY = "loop review"
SELECTS = ("ID", "NAME", "RUN_TYPE", "START_TIME", "END_TIME", "INPUTS", "OUTPUTS", "METADATA", "EXTRA",
           "PARENT_RUN_IDS", "TRACE_ID", "THREAD_ID")
SETTING = "LANGSMITH_ENDPOINT and LANGSMITH_API_KEY (and LANGSMITH_PROJECT)"
NAMESPACE = uuid.UUID("b3f0c1d2-7a4e-5b6c-8d9e-0f1a2b3c4d5e")  # our feedback's ids, one per run


class LangSmith(Adapter):
    name, title, setting = "langsmith", "LangSmith", SETTING
    origins = ("langsmith",)

    def __init__(self):
        client = self.client_module("langsmith", "langsmith").Client
        need("LANGSMITH_API_KEY", "LangSmith", "lsv2_pt_…")
        self.client = client(auto_batch_tracing=False)
        self.project = (os.environ.get("LANGSMITH_PROJECT") or os.environ.get("LANGCHAIN_PROJECT") or "default").strip()
        self._project: str | None = None

    def missing(self, error: Exception) -> str | None:
        if type(error).__name__ == "LangSmithNotFoundError":
            return (f"LangSmith has no project {self.project!r}; set LANGSMITH_PROJECT to the project your agent "
                    "traces to. Nothing was changed.")
        return None

    def drafts(self, since: datetime) -> list[dict]:
        """The project's runs through the v2 runs query (`client.runs.query_v2`; `list_runs` is deprecated)."""
        project = self._project_id()
        async def every_page():  # the Client's `runs` resource is the SDK's async one
            pages = self.client.runs.query_v2(project_ids=[project], min_start_time=since, page_size=1000,
                                              selects=list(SELECTS))
            return [run async for run in pages]

        runs = self.call(lambda: asyncio.run(every_page()))
        return self.rows([_span(run) for run in runs])

    def _project_id(self) -> str:
        if self._project is None:
            self._project = str(self.call(self.client.read_project, project_name=self.project).id)
        return self._project

    def scores(self, origin_ids: list[str]) -> list[Score]:
        by_run = {str(uuid.UUID(origin_id.partition(":")[2])): origin_id for origin_id in origin_ids}
        names = review_names()
        found: list[Score] = []
        ids = sorted(by_run)
        for start in range(0, len(ids), 100):
            for item in self.call(self.client.list_feedback, run_ids=ids[start:start + 100]):
                score = _score(item, by_run, names)
                if score is not None:
                    found.append(score)
        return found

    def send(self, origin_id: str, review: Review) -> None:
        run_id = str(uuid.UUID(origin_id.partition(":")[2]))
        feedback_id = uuid.uuid5(NAMESPACE, run_id)
        score = 1 if review.score == "up" else 0
        try:
            self.client.update_feedback(feedback_id, score=score, comment=review.comment or None,
                                        correction={"final_reply": review.final_reply} if review.final_reply else None)
            return
        except Exception as error:  # not there yet: create it
            if type(error).__name__ != "LangSmithNotFoundError":
                raise unreachable("LangSmith", SETTING, error) from None
        self.call(self.client.create_feedback, run_id=run_id, session_id=self._project_id(), key=FEEDBACK_KEY,
                   score=score,
                   comment=review.comment or None, feedback_id=feedback_id,
                   correction={"final_reply": review.final_reply} if review.final_reply else None,
                   source_info={"from": "loop", "reviewer": review.reviewer})


def _score(item, by_run: dict[str, str], names) -> Score | None:
    origin_id = by_run.get(str(getattr(item, "run_id", "")).lower())
    if origin_id is None or getattr(item, "key", "") == FEEDBACK_KEY:
        return None  # not ours to read, or our own sent back by `loop export`
    source = getattr(item, "feedback_source", None)
    kind = (source.get("type") if isinstance(source, dict) else getattr(source, "type", None)) or "api"
    key = getattr(item, "key", "")
    correction = getattr(item, "correction", None)
    if isinstance(correction, dict):
        correction = correction.get("final_reply") or correction.get("output") or json.dumps(correction)
    value = getattr(item, "value", None)
    moment = getattr(item, "modified_at", None) or getattr(item, "created_at", None)
    user = (source.get("user_id") if isinstance(source, dict) else getattr(source, "user_id", None)) or "langsmith"
    return Score(origin_id=origin_id, name=key,
                 human=kind == "app" or bool(names and key in names),
                 label=value if isinstance(value, str) else None, value=getattr(item, "score", None),
                 comment=getattr(item, "comment", None) or "", author=str(user),
                 at=moment.isoformat() if hasattr(moment, "isoformat") else str(moment or ""),
                 text=str(correction or ""))


def _span(run) -> Span:
    """A LangSmith run as a span: a root chain is the agent's, an llm run a model call."""
    run_type = getattr(run, "run_type", None) or "chain"
    ancestors = getattr(run, "parent_run_ids", None) or []
    parent = ancestors[-1] if ancestors else getattr(run, "parent_run_id", None)
    root = parent is None
    kind = {"llm": "LLM", "tool": "TOOL", "retriever": "RETRIEVER"}.get(run_type, "AGENT" if root else "CHAIN")
    attributes: dict = {"openinference.span.kind": kind}
    inputs, outputs = getattr(run, "inputs", None) or {}, getattr(run, "outputs", None) or {}
    if kind == "LLM":
        for i, message in enumerate(m for m in inputs.get("messages") or [] if isinstance(m, dict)):
            attributes[f"llm.input_messages.{i}.message.role"] = str(message.get("role", ""))
            attributes[f"llm.input_messages.{i}.message.content"] = text_of(message.get("content"))
        choices = outputs.get("choices") or []
        answer = (choices[0].get("message") or {}) if choices and isinstance(choices[0], dict) else outputs
        if answer.get("content") is not None or answer.get("tool_calls"):
            attributes["llm.output_messages.0.message.role"] = "assistant"
            attributes["llm.output_messages.0.message.content"] = text_of(answer.get("content"))
    else:
        attributes["input.value"] = json.dumps(inputs, ensure_ascii=False, default=str)
        shown = outputs.get("output") if isinstance(outputs, dict) and set(outputs) == {"output"} else outputs
        attributes["output.value"] = shown if isinstance(shown, str) else json.dumps(shown, ensure_ascii=False,
                                                                                     default=str)
    metadata = getattr(run, "metadata", None) or (getattr(run, "extra", None) or {}).get("metadata") or {}
    if getattr(run, "thread_id", None):
        metadata = {"thread_id": run.thread_id, **metadata}
    for key in ("session_id", "thread_id", "conversation_id"):
        if metadata.get(key):
            attributes["session.id"] = str(metadata[key])
            break
    if metadata.get("prompt_version"):
        attributes["loop.prompt_version"] = str(metadata["prompt_version"])
    return Span(trace_id=uuid.UUID(str(run.trace_id)).hex, span_id=uuid.UUID(str(run.id)).hex,
                parent_id=uuid.UUID(str(parent)).hex if not root else "", name=getattr(run, "name", "") or "",
                start=nanoseconds(getattr(run, "start_time", None)), end=nanoseconds(getattr(run, "end_time", None)),
                attributes=attributes)
