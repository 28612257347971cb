"""`loop serve` run as a real process for tests and benchmarks, real OpenTelemetry emitters pointed
at it (the SDK with its OTLP/HTTP exporters, protobuf and JSON), the agent they trace, and the sheet
as the tracing tests read it and a person reviews in it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH_TOOL = {"type": "function", "function": {"name": "search_kb", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}}}}}


class Served:
    """`loop serve --listen 127.0.0.1:0` in `folder`; `url` is where to POST, `stderr` what it said."""

    def __init__(self, folder: Path, *args: str, **env: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "loop", "serve", "--listen", "127.0.0.1:0", *args], cwd=folder,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env}, stderr=subprocess.PIPE, text=True)
        first = self.process.stderr.readline()
        if " on http://" not in first:
            self.process.kill()
            raise RuntimeError(first + self.process.stderr.read())
        self.url = first.split(" on ", 1)[1].split()[0]
        self.lines = [first]
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._reader.join(5)
        return code


def provider(url: str, kind: str = "protobuf", **exporter):
    """A TracerProvider exporting each span as it ends to `url`, with the SDK's own OTLP/HTTP exporter."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    if kind == "json":
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    made = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
    made.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url, **exporter)))
    return made


def protobuf_body(spans) -> bytes:
    """Finished SDK spans as the protobuf exporter sends them."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return encode_spans(spans).SerializeToString()


def finished_spans(build) -> list:
    """The spans `build(tracer)` makes, kept in memory."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(memory))
    build(made.get_tracer("test"))
    made.shutdown()
    return list(memory.get_finished_spans())


def run_agent(client, ticket: str, earlier: list[dict] = (), model: str = "support") -> str:
    """A support agent's tool loop with the real openai client: the model searches, reads, answers."""
    messages = [{"role": "system", "content": "You are a support agent."}, *earlier, {"role": "user", "content": ticket}]
    tools = [SEARCH_TOOL, {"type": "function", "function": {"name": "read_doc", "parameters": {
        "type": "object", "properties": {"doc_id": {"type": "string"}}}}}]
    for _ in range(4):
        answer = client.chat.completions.create(model=model, messages=messages, tools=tools).choices[0].message
        if not answer.tool_calls:
            return answer.content
        messages.append(answer.model_dump(exclude_none=True))
        for call in answer.tool_calls:
            arguments = json.loads(call.function.arguments)
            if call.function.name == "search_kb":
                result = [{"doc_id": "kb-reset-password", "title": "Reset your password"}]
            else:
                result = {"doc_id": arguments.get("doc_id", ""), "title": "Reset your password",
                          "text": "Reset your password. Open Settings, then Security, then Reset password."}
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    raise AssertionError("the agent never answered")


def drafts(workspace) -> dict[str, dict]:
    """The Drafts rows of the workspace's loop.xlsx, by ticket id."""
    from tests.conftest import read_tab

    return {row["ticket_id"]: row for row in read_tab(workspace / "loop.xlsx", "Drafts")}


def review_in_sheet(workspace, ticket_id: str, score: str, comment: str) -> None:
    """A person reviews a row in the sheet."""
    import openpyxl

    path = workspace / "loop.xlsx"
    book = openpyxl.load_workbook(path)
    sheet = book["Drafts"]
    headers = [cell.value for cell in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[headers.index("ticket_id")].value == ticket_id:
            row[headers.index("score")].value = score
            row[headers.index("comment")].value = comment
            row[headers.index("reviewer")].value = "dana"
    book.save(path)
