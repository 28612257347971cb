"""A LangSmith server at the wire, for the real `langsmith` SDK: the endpoints its Client calls for
tracing without a background queue and for `loop import / export langsmith`, as LangSmith's OpenAPI
specification (https://api.smith.langchain.com/openapi.json) describes them.

- `GET /info`: the server's capabilities (no batch ingest: runs come as POST /runs, PATCH /runs/{id}).
- `POST /runs`, `PATCH /runs/{run_id}`, `POST /runs/batch` (`post` and `patch` lists): runs, with
  `session_name` making its tracer session (project) on first use.
- `GET /sessions?name=`: the tracer sessions (projects) by name, as a list.
- `POST /runs/query`: `session` (ids), `start_time`, `is_root`, `run_type`, `trace`, `limit`,
  `cursor`: `{"runs": [...], "cursors": {"next": …}}` (the SDK's `list_runs`, deprecated).
- `POST /api/v2/runs/query`: `project_ids`, `min_start_time`, `page_size`, `selects`, `cursor`, as
  the SDK's `client.runs` calls it: `{"items": [...], "next_cursor": …}`.
- `GET /feedback`: `run` (repeated), `key`, `limit`, `offset`: a list of feedback records.
- `POST /feedback`, `PATCH /feedback/{feedback_id}`: create (its `id` may be given) and update.

Every request needs the `x-api-key` header (401 otherwise). A person scoring in LangSmith's UI is
`annotate(...)`: feedback whose `feedback_source.type` is `app`.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

from tests.local_server import LocalServer, moment, send_json


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class FakeLangSmith(LocalServer):
    def __init__(self):
        super().__init__()
        self.api_key = f"lsv2_pt_{uuid.uuid4().hex}"
        self.sessions: dict[str, dict] = {}  # by name
        self.runs: dict[str, dict] = {}
        self.feedback: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def annotate(self, run_id: str, key: str, score=None, value=None, comment: str = "", correction=None,
                 source: str = "app", user_id: str = "reviewer-1") -> str:
        feedback_id = str(uuid.uuid4())
        with self._lock:
            self.feedback[feedback_id] = {
                "id": feedback_id, "run_id": run_id, "trace_id": self.runs.get(run_id, {}).get("trace_id"),
                "key": key, "score": score, "value": value, "comment": comment or None, "correction": correction,
                "feedback_source": {"type": source, "metadata": {}, "user_id": user_id if source == "app" else None},
                "created_at": _now(), "modified_at": _now(), "session_id": self.runs.get(run_id, {}).get("session_id")}
        return feedback_id

    def handle(self, handler) -> None:
        url = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests.append((handler.command, url.path))
        if handler.headers.get("x-api-key") != self.api_key:
            return send_json(handler, 401, {"detail": "Invalid token"})
        query = parse_qs(url.query)
        path, method = url.path, handler.command
        if (method, path) == ("GET", "/info"):
            return send_json(handler, 200, {"version": "0.16.2", "license_expiration_time": None,
                                             "batch_ingest_config": {"use_multipart_endpoint": False,
                                                                     "scale_up_qsize_trigger": 1000},
                                             "instance_flags": {}})
        if (method, path) == ("POST", "/runs"):
            self._post_run(json.loads(body))
            return send_json(handler, 202, {"message": "Run created"})
        if method == "PATCH" and path.startswith("/runs/"):
            self._patch_run(path.rsplit("/", 1)[1], json.loads(body))
            return send_json(handler, 202, {"message": "Run updated"})
        if (method, path) == ("POST", "/runs/batch"):
            batch = json.loads(body)
            for run in batch.get("post") or []:
                self._post_run(run)
            for run in batch.get("patch") or []:
                self._patch_run(run["id"], run)
            return send_json(handler, 202, {"message": "Runs batch ingested"})
        if (method, path) == ("GET", "/sessions"):
            name = (query.get("name") or [None])[-1]
            with self._lock:
                found = [s for s in self.sessions.values() if name is None or s["name"] == name]
            return send_json(handler, 200, found)
        if (method, path) == ("POST", "/runs/query"):
            return send_json(handler, 200, self._query(json.loads(body or b"{}")))
        if (method, path) == ("POST", "/api/v2/runs/query"):
            return self._query_v2(handler, json.loads(body or b"{}"))
        if (method, path) == ("GET", "/feedback"):
            return send_json(handler, 200, self._list_feedback(query))
        if (method, path) == ("POST", "/feedback"):
            return send_json(handler, 200, self._create_feedback(json.loads(body)))
        if method == "PATCH" and path.startswith("/feedback/"):
            found = self._update_feedback(path.rsplit("/", 1)[1], json.loads(body))
            return send_json(handler, 200 if found else 404, found or {"detail": "Feedback not found"})
        send_json(handler, 404, {"detail": f"Not Found: {method} {path}"})

    def _post_run(self, run: dict) -> None:
        with self._lock:
            name = run.get("session_name") or "default"
            session = self.sessions.setdefault(name, {"id": str(uuid.uuid4()), "name": name, "tenant_id": str(uuid.UUID(int=1)),
                                                      "start_time": _now(), "reference_dataset_id": None})
            self.runs[str(run["id"])] = {
                "id": str(run["id"]), "name": run.get("name"), "run_type": run.get("run_type"),
                "start_time": run.get("start_time"), "end_time": run.get("end_time"),
                "inputs": run.get("inputs") or {}, "outputs": run.get("outputs"), "error": run.get("error"),
                "extra": run.get("extra") or {}, "trace_id": str(run.get("trace_id") or run["id"]),
                "dotted_order": run.get("dotted_order"), "parent_run_id": run.get("parent_run_id"),
                "session_id": session["id"], "tags": run.get("tags") or [], "status": "pending"}

    def _patch_run(self, run_id: str, update: dict) -> None:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                return
            for key in ("outputs", "end_time", "error", "inputs", "events"):
                if update.get(key) is not None:
                    run[key] = update[key]
            if update.get("extra"):
                run["extra"] = {**run["extra"], **update["extra"]}
            run["status"] = "error" if run.get("error") else "success"

    def _query(self, body: dict) -> dict:
        sessions = set(body.get("session") or [])
        with self._lock:
            found = [r for r in self.runs.values()
                     if (not sessions or r["session_id"] in sessions)
                     and (not body.get("start_time") or moment(r["start_time"]) >= moment(body["start_time"]))
                     and (body.get("is_root") is None or (r["parent_run_id"] is None) == body["is_root"])
                     and (not body.get("run_type") or r["run_type"] == body["run_type"])
                     and (not body.get("trace") or r["trace_id"] == str(body["trace"]))]
        found.sort(key=lambda r: (r["start_time"], r["id"]))
        start = int(body.get("cursor") or 0)
        limit = min(int(body.get("limit") or 100), 100)
        page = found[start:start + limit]
        more = start + limit < len(found)
        return {"runs": page, "cursors": {"next": str(start + limit) if more else None}}

    def _query_v2(self, handler, body: dict) -> None:
        """The v2 query: `project_ids` (required), `min_start_time` (default a day ago), `page_size`
        (1 to 1000), `selects` (only `id` without them), `cursor`; `{"items", "next_cursor"}`."""
        if not body.get("project_ids"):
            return send_json(handler, 400, {"detail": "project_ids or reference_dataset_id is required"})
        size = int(body.get("page_size") or 100)
        if not 1 <= size <= 1000:
            return send_json(handler, 400, {"detail": "page_size must be between 1 and 1000"})
        since = moment(body["min_start_time"]) if body.get("min_start_time") else datetime.now(timezone.utc) - timedelta(days=1)
        projects = set(body["project_ids"])
        with self._lock:
            found = [self._v2(r) for r in self.runs.values() if r["session_id"] in projects
                     and moment(r["start_time"]) >= since
                     and (body.get("is_root") is None or (r["parent_run_id"] is None) == body["is_root"])
                     and (not body.get("run_type") or r["run_type"] == body["run_type"])
                     and (not body.get("trace_id") or r["trace_id"] == body["trace_id"])]
        found.sort(key=lambda r: (r["start_time"], r["id"]))
        start = int(body.get("cursor") or 0)
        selects = [name.lower() for name in body.get("selects") or ["ID"]]
        page = [{k: v for k, v in r.items() if k in selects} for r in found[start:start + size]]
        more = start + size < len(found)
        send_json(handler, 200, {"items": page, "next_cursor": str(start + size) if more else None})

    def _v2(self, run: dict) -> dict:
        """A run in the v2 shape: its ancestors as `parent_run_ids`, its metadata on its own."""
        ancestors, parent = [], run["parent_run_id"]
        while parent:
            ancestors.insert(0, str(parent))
            parent = self.runs.get(str(parent), {}).get("parent_run_id")
        metadata = (run["extra"] or {}).get("metadata") or {}
        return {"id": run["id"], "name": run["name"], "run_type": run["run_type"], "status": run["status"].upper(),
                "start_time": run["start_time"], "end_time": run["end_time"], "inputs": run["inputs"],
                "outputs": run["outputs"], "extra": run["extra"], "metadata": metadata, "error": run["error"],
                "parent_run_ids": ancestors, "trace_id": run["trace_id"], "project_id": run["session_id"],
                "thread_id": metadata.get("thread_id"), "is_root": run["parent_run_id"] is None,
                "dotted_order": run["dotted_order"], "tags": run["tags"]}

    def _list_feedback(self, query: dict) -> list:
        runs = set(query.get("run") or [])
        keys = set(query.get("key") or [])
        offset, limit = int((query.get("offset") or [0])[-1]), int((query.get("limit") or [100])[-1])
        with self._lock:
            found = sorted((f for f in self.feedback.values() if (not runs or f["run_id"] in runs)
                            and (not keys or f["key"] in keys)), key=lambda f: (f["created_at"], f["id"]))
        return found[offset:offset + limit]

    def _create_feedback(self, body: dict) -> dict:
        feedback_id = str(body.get("id") or uuid.uuid4())
        source = body.get("feedback_source") or {"type": "api", "metadata": {}}
        with self._lock:
            self.feedback[feedback_id] = {
                "id": feedback_id, "run_id": str(body.get("run_id")), "trace_id": body.get("trace_id"),
                "key": body["key"], "score": body.get("score"), "value": body.get("value"),
                "comment": body.get("comment"), "correction": body.get("correction"), "feedback_source": source,
                "created_at": _now(), "modified_at": _now(), "session_id": None}
            return dict(self.feedback[feedback_id])

    def _update_feedback(self, feedback_id: str, body: dict) -> dict | None:
        with self._lock:
            found = self.feedback.get(feedback_id)
            if found is None:
                return None
            for key in ("score", "value", "comment", "correction"):
                if key in body:
                    found[key] = body[key]
            found["modified_at"] = _now()
            return dict(found)
