"""`loop serve` under a flood: OTLP/HTTP protobuf requests of 100 spans each into a SQLite store.

Each request carries 25 whole agent traces (an agent span, two model calls and a tool span), so 25
drafts are committed per request. The bodies are encoded by the OpenTelemetry SDK's own encoder
before the clock starts; two client threads keep sending for --seconds. Reported: spans a second
sustained, request latency p50/p99, the receiver's resident memory at the start and the end of the
flood, and, as the floor, the same bodies POSTed to a bare HTTP server that only reads them.
Then a request claiming a body at MAX_BODY + 1 bytes: the time to its 413 and the memory after it.

Usage: .venv/bin/python benchmarks/bench_otlp.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loop.collect.receiver import MAX_BODY  # noqa: E402
from tests.conftest import write_workbook  # noqa: E402
from tests.otlp_helpers import Served, finished_spans, protobuf_body  # noqa: E402

TRACES_PER_REQUEST = 25


def agent_trace(tracer, number: int) -> None:
    with tracer.start_as_current_span("support-agent", attributes={
            "openinference.span.kind": "AGENT", "session.id": f"T-{number}"}):
        for step in range(2):
            answer = "" if step == 0 else f"Thanks for writing in about ticket {number}. " * 6
            with tracer.start_as_current_span("ChatCompletion", attributes={
                    "openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "system",
                    "llm.input_messages.0.message.content": "You are a support agent. " * 40,
                    "llm.input_messages.1.message.role": "user",
                    "llm.input_messages.1.message.content": f"Ticket {number}: I cannot reset my password. " * 5,
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": answer}):
                pass
            if step == 0:
                with tracer.start_as_current_span("search_kb", attributes={
                        "openinference.span.kind": "TOOL", "input.value": json.dumps({"query": "reset password"}),
                        "output.value": json.dumps([{"doc_id": f"kb-{number % 50}"}])}):
                    pass


def bodies(count: int, templates: int = 20) -> list[bytes]:
    """`count` bodies of new traces: a few made by the SDK, then copied with trace ids of their own
    (every request commits 25 new drafts; none is a resend)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    made = []
    for request in range(templates):
        spans = finished_spans(lambda tracer: [agent_trace(tracer, request * TRACES_PER_REQUEST + i)
                                               for i in range(TRACES_PER_REQUEST)])
        assert len(spans) == 100
        made.append(protobuf_body(spans))
    out = []
    for number in range(count):
        request = ExportTraceServiceRequest.FromString(made[number % templates])
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    span.trace_id = number.to_bytes(4, "big") + span.trace_id[4:]
        out.append(request.SerializeToString())
    return out


def flood(url: str, payloads: list[bytes], seconds: float, clients: int = 2) -> tuple[int, list[float]]:
    """Send bodies from `clients` threads (each its own kept-alive connection) for `seconds`."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    latencies: list[float] = []
    sent = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        index = offset
        while time.monotonic() < deadline:
            body = payloads[index % len(payloads)]
            index += clients
            start = time.perf_counter()
            connection.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            answer = connection.getresponse()
            answer.read()
            took = time.perf_counter() - start
            if answer.status != 200:
                raise SystemExit(f"the receiver answered {answer.status}")
            with lock:
                latencies.append(took)
                sent[0] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent[0], latencies


class _Reader(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    options = parser.parse_args()
    payloads = bodies(int(options.seconds * 400) + 500)  # more than the receiver can take: none sent twice
    print(f"{len(payloads)} bodies of 100 spans, {statistics.mean(map(len, payloads)) / 1024:.0f} KiB each")

    floor = ThreadingHTTPServer(("127.0.0.1", 0), _Reader)
    threading.Thread(target=floor.serve_forever, daemon=True).start()
    sent, latencies = flood(f"http://127.0.0.1:{floor.server_address[1]}/v1/traces", payloads, 5.0)
    floor.shutdown()
    floor_rate = sent * 100 / 5.0
    print(f"floor (a bare server that only reads the body): {floor_rate:,.0f} spans/s, "
          f"p99 {percentile(latencies, 0.99):.1f} ms")

    with tempfile.TemporaryDirectory() as folder:
        write_workbook(Path(folder) / "loop.xlsx", [])
        os.environ.pop("LOOP_STORE", None)
        served = Served(Path(folder))
        pid = served.process.pid
        try:
            warm, payloads = payloads[:20], payloads[20:]
            flood(served.url, warm, 1.0)  # warm: the store migrated, the first drafts delivered
            before = rss_mib(pid)
            samples = []
            sampler_done = threading.Event()

            def sample():
                while not sampler_done.wait(1.0):
                    samples.append(rss_mib(pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            sent, latencies = flood(served.url, payloads, options.seconds)
            sampler_done.set()
            sampler.join()
            rate = sent * 100 / options.seconds
            print(f"loop serve: {rate:,.0f} spans/s sustained over {options.seconds:g} s ({sent} requests, "
                  f"{sent * TRACES_PER_REQUEST:,} drafts), {rate / floor_rate:.1%} of the floor; "
                  f"latency p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms "
                  f"(targets: >= 2,000 spans/s, p99 <= 100 ms)")
            middle = samples[len(samples) // 2] if samples else before
            print(f"receiver memory: {before:.0f} MiB before the flood, {middle:.0f} MiB half way, "
                  f"{samples[-1] if samples else before:.0f} MiB at the end")

            host, port = served.url.split("//")[1].split("/")[0].split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            start = time.perf_counter()
            connection.putrequest("POST", "/v1/traces")
            connection.putheader("Content-Type", "application/x-protobuf")
            connection.putheader("Content-Length", str(MAX_BODY + 1))
            connection.endheaders()
            connection.send(b"\x0a" * 65536)
            status = connection.getresponse().status
            took = (time.perf_counter() - start) * 1000
            print(f"a body claiming {MAX_BODY + 1:,} bytes: {status} after {took:.1f} ms, 64 KiB of it sent; "
                  f"memory after it {rss_mib(pid):.0f} MiB")
        finally:
            served.stop()


if __name__ == "__main__":
    main()
