"""A Langfuse server at the wire, for the real `langfuse` SDK: the endpoints the SDK and `loop import /
export langfuse` call, as Langfuse's public OpenAPI specification (web/public/generated/api/openapi.yml,
rendered in the SDK's generated `langfuse.api` types) describes them.

- `POST /api/public/otel/v1/traces`: OTLP/HTTP protobuf, as the SDK's span processor exports. Each span
  becomes an observation the way Langfuse maps them: `langfuse.observation.type` (default span),
  `.input`, `.output`, `.prompt.name`, `.prompt.version`, `session.id`, `user.id`.
- `GET /api/public/v2/observations`: cursor pages (`limit` ≤ 1000, `cursor`), `fromStartTime`,
  `toStartTime`, `traceId`, `type`, and `fields` groups: only core and basic unless `io`, `metadata`,
  `prompt` are asked for.
- `GET /api/public/v3/scores`: `traceId` (comma-separated), cursor pages, `fields` groups `details`
  (comment, metadata), `subject`, `annotation` (authorUserId).
- `POST /api/public/scores`: a batch of CreateScoreRequest; a score's `id` upserts it; 202 Accepted.
- `GET /api/public/traces`: 410, as Langfuse answers the deprecated page-based listing for new projects.

Every request needs HTTP basic auth with the project's public and secret key (401 otherwise). A
person scoring in Langfuse's UI is `annotate(...)`: a score with source ANNOTATION.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

from tests.local_server import LocalServer, moment, send_json

PUBLIC, SECRET = "pk-lf-test", "sk-lf-test"
PROJECT = "project-support"


def _iso(nanoseconds: int) -> str:
    return datetime.fromtimestamp(nanoseconds / 1e9, timezone.utc).isoformat().replace("+00:00", "Z")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


class FakeLangfuse(LocalServer):
    def __init__(self):
        super().__init__()
        # a key of its own: the SDK keeps one client per public key for the life of the process
        self.public_key, self.secret_key = f"{PUBLIC}-{uuid.uuid4().hex[:8]}", SECRET
        self.observations: list[dict] = []
        self.scores: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.queries: list[tuple[str, dict]] = []  # each GET's path and query, as sent
        self._lock = threading.Lock()

    # -- what a person does in Langfuse's UI ---------------------------------------------------------

    def annotate(self, trace_id: str, name: str, value, data_type: str, comment: str = "", author: str = "user-1",
                 observation_id: str | None = None, source: str = "ANNOTATION", score_id: str | None = None) -> str:
        score_id = score_id or str(uuid.uuid4())
        with self._lock:
            created = self.scores.get(score_id, {}).get("createdAt", _now())
            self.scores[score_id] = {
                "id": score_id, "projectId": PROJECT, "name": name, "source": source, "timestamp": _now(),
                "environment": "default", "createdAt": created, "updatedAt": _now(), "comment": comment or None,
                "metadata": {}, "authorUserId": author if source == "ANNOTATION" else None, "configId": None,
                "queueId": None, "dataType": data_type, "value": value, "traceId": trace_id,
                "observationId": observation_id}
        return score_id

    # -- the wire -----------------------------------------------------------------------------------

    def handle(self, handler) -> None:
        url = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests.append((handler.command, url.path))
        expected = "Basic " + base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        if handler.headers.get("Authorization") != expected:
            return send_json(handler, 401, {"message": "Invalid credentials. Confirm that you've configured the "
                                                        "correct host."})
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        with self._lock:
            self.queries.append((url.path, query))
        route = (handler.command, url.path)
        if route == ("POST", "/api/public/otel/v1/traces"):
            if handler.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return self._otlp(handler, body)
        if route == ("GET", "/api/public/v2/observations"):
            return send_json(handler, 200, self._observations(query))
        if route == ("GET", "/api/public/v3/scores"):
            return send_json(handler, 200, self._scores(query))
        if route == ("POST", "/api/public/scores"):
            return self._create_scores(handler, json.loads(body or b"[]"))
        if route == ("GET", "/api/public/traces"):  # the page-based listing, gone for new projects
            return send_json(handler, 410, {"message": "GET /api/public/traces is deprecated; use "
                                                        "GET /api/public/v2/observations."})
        if route == ("GET", "/api/public/projects"):
            return send_json(handler, 200, {"data": [{"id": PROJECT, "name": "support", "metadata": {}}]})
        send_json(handler, 404, {"message": f"no route {handler.command} {url.path}"})

    def _otlp(self, handler, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                                ExportTraceServiceResponse)

        request = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {kv.key: _value(kv.value) for kv in span.attributes}
                        version = attributes.get("langfuse.observation.prompt.version")
                        self.observations.append({
                            "id": span.span_id.hex(), "traceId": span.trace_id.hex(),
                            "startTime": _iso(span.start_time_unix_nano), "endTime": _iso(span.end_time_unix_nano),
                            "projectId": PROJECT, "parentObservationId": span.parent_span_id.hex() or None,
                            "type": str(attributes.get("langfuse.observation.type", "span")).upper(),
                            "isRootObservation": not span.parent_span_id, "name": span.name, "level": "DEFAULT",
                            "statusMessage": None, "version": None, "environment": "default", "bookmarked": False,
                            "public": False, "userId": attributes.get("user.id"),
                            "sessionId": attributes.get("session.id"),
                            "input": attributes.get("langfuse.observation.input"),
                            "output": attributes.get("langfuse.observation.output"),
                            "metadata": {}, "promptName": attributes.get("langfuse.observation.prompt.name"),
                            "promptVersion": int(version) if version is not None else None,
                            "createdAt": _now(), "updatedAt": _now()})
        payload = ExportTraceServiceResponse().SerializeToString()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _observations(self, query: dict) -> dict:
        groups = {"core", "basic", *filter(None, (query.get("fields") or "").split(","))}
        fields = {"core": ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"),
                  "basic": ("name", "level", "statusMessage", "version", "environment", "bookmarked", "public",
                            "userId", "sessionId", "isRootObservation"),
                  "time": ("createdAt", "updatedAt"), "io": ("input", "output"), "metadata": ("metadata",),
                  "prompt": ("promptName", "promptVersion")}
        keep = [name for group in groups for name in fields.get(group, ())]
        with self._lock:
            found = [o for o in self.observations
                     if (not query.get("fromStartTime") or moment(o["startTime"]) >= moment(query["fromStartTime"]))
                     and (not query.get("toStartTime") or moment(o["startTime"]) < moment(query["toStartTime"]))
                     and (not query.get("traceId") or o["traceId"] == query["traceId"])
                     and (not query.get("type") or o["type"] == query["type"])]
        found.sort(key=lambda o: (o["startTime"], o["id"]))
        page, cursor = _page(found, query)
        return {"data": [{k: o[k] for k in keep} for o in page], "meta": {"cursor": cursor}}

    def _scores(self, query: dict) -> dict:
        groups = set(filter(None, (query.get("fields") or "").split(",")))
        traces = set(filter(None, (query.get("traceId") or "").split(",")))
        with self._lock:
            found = sorted((s for s in self.scores.values() if not traces or s["traceId"] in traces),
                           key=lambda s: (s["createdAt"], s["id"]))
        page, cursor = _page(found, query, 50)
        out = []
        for score in page:
            shown = {k: score[k] for k in ("id", "projectId", "name", "source", "timestamp", "environment",
                                           "createdAt", "updatedAt", "dataType", "value")}
            if "details" in groups:
                shown.update(comment=score["comment"], metadata=score["metadata"], configId=score["configId"])
            if "annotation" in groups:
                shown.update(authorUserId=score["authorUserId"], queueId=score["queueId"])
            if "subject" in groups:
                shown["subject"] = ({"kind": "observation", "id": score["observationId"], "traceId": score["traceId"]}
                                    if score["observationId"] else {"kind": "trace", "id": score["traceId"]})
            out.append(shown)
        return {"data": out, "meta": {"cursor": cursor, "limit": int(query.get("limit") or 50)}}

    def _create_scores(self, handler, batch) -> None:
        if not isinstance(batch, list):
            return send_json(handler, 400, {"message": "Expected an array of scores"})
        for item in batch:
            if "name" not in item or "value" not in item:
                return send_json(handler, 400, {"message": "name and value are required"})
            data_type = item.get("dataType") or "NUMERIC"
            value = item["value"]
            if data_type == "BOOLEAN":
                value = float(value)
            score_id = self.annotate(item.get("traceId"), item["name"], value, data_type, item.get("comment") or "",
                                     observation_id=item.get("observationId"), source=item.get("source") or "API",
                                     score_id=item.get("id"))
            with self._lock:
                self.scores[score_id]["metadata"] = item.get("metadata") or {}
        send_json(handler, 202, {"message": "Accepted"})




def _page(items: list, query: dict, default: int = 50) -> tuple[list, str | None]:
    limit = min(int(query.get("limit") or default), 1000)
    start = int(base64.b64decode(query["cursor"]).decode()) if query.get("cursor") else 0
    page = items[start:start + limit]
    more = start + limit < len(items)
    return page, base64.b64encode(str(start + limit).encode()).decode() if more else None
