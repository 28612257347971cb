"""Phoenix, through its own client (`arize-phoenix-client`): spans of a project in, span annotations
in and out. The spans are read as `loop serve` reads OTLP (span_drafts), so a trace both received
and imported is one draft. Settings are the client's own: PHOENIX_BASE_URL (or
PHOENIX_COLLECTOR_ENDPOINT), PHOENIX_API_KEY, PHOENIX_PROJECT (or PHOENIX_PROJECT_NAME)."""

from __future__ import annotations

import os
from datetime import datetime

from loop.collect.spans import Event, Span
from loop.collect.tracing_tools import Adapter, Review, Score, nanoseconds

PAGE = 1000
ANNOTATION = "loop review"  # the name reviews from the sheet go back under
SETTING = "PHOENIX_BASE_URL (and PHOENIX_API_KEY)"


class Phoenix(Adapter):
    name, title, setting = "phoenix", "Phoenix", SETTING
    origins = ("otlp", "phoenix")  # a draft `loop serve` received may be in Phoenix too

    def __init__(self):
        self.client = self.client_module("phoenix.client", "arize-phoenix-client").Client()
        self.project = (os.environ.get("PHOENIX_PROJECT") or os.environ.get("PHOENIX_PROJECT_NAME") or "default").strip()

    def missing(self, error: Exception) -> str | None:
        if getattr(getattr(error, "response", None), "status_code", None) == 404:
            return (f"Phoenix has no project {self.project!r}; set PHOENIX_PROJECT to the project your agent's "
                    "traces go to (its openinference.project.name). Nothing was changed.")
        return None

    def drafts(self, since: datetime) -> list[dict]:
        found = self.call(self.client.spans.get_spans, project_identifier=self.project, start_time=since,
                          limit=1_000_000)
        return self.rows([_span(item) for item in found])

    def scores(self, origin_ids: list[str]) -> list[Score]:
        by_span = {origin_id.rpartition(":")[2]: origin_id for origin_id in origin_ids}
        if not by_span:
            return []
        found = self.call(self.client.spans.get_span_annotations, span_ids=list(by_span),
                           project_identifier=self.project)
        scores = []
        for item in found:
            if item.get("name") == ANNOTATION and item.get("metadata", {}).get("from") == "loop":
                continue  # our own, sent back by `loop export`
            result = item.get("result") or {}
            scores.append(Score(
                origin_id=by_span.get(item.get("span_id", ""), ""), name=item.get("name", ""),
                human=item.get("annotator_kind") == "HUMAN", label=result.get("label"), value=result.get("score"),
                comment=result.get("explanation") or "", author=str(item.get("user_id") or "phoenix"),
                at=str(item.get("updated_at") or "")))
        return [s for s in scores if s.origin_id]

    def send(self, origin_id: str, review: Review) -> None:
        self.call(self.client.spans.add_span_annotation, span_id=origin_id.rpartition(":")[2],
                   annotation_name=ANNOTATION, annotator_kind="HUMAN", label=review.score,
                   score=1.0 if review.score == "up" else 0.0, explanation=review.comment or None,
                   metadata={"from": "loop", "reviewer": review.reviewer, "final_reply": review.final_reply},
                   identifier="loop", sync=True)


def _span(item: dict) -> Span:
    """A Phoenix span (v1 REST shape) as the receiver's: its kind goes back among the attributes."""
    attributes = dict(item.get("attributes") or {})
    if item.get("span_kind"):
        attributes.setdefault("openinference.span.kind", item["span_kind"])
    context = item.get("context") or {}
    return Span(trace_id=context.get("trace_id", ""), span_id=context.get("span_id", ""),
                parent_id=item.get("parent_id") or "", name=item.get("name", ""),
                start=nanoseconds(item.get("start_time")), end=nanoseconds(item.get("end_time")),
                attributes=attributes,
                events=[Event(e.get("name", ""), nanoseconds(e.get("timestamp")), e.get("attributes") or {})
                        for e in item.get("events") or []])
