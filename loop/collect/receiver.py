"""`loop serve`: an OTLP/HTTP trace receiver (CONTRACT §7b). An agent already instrumented with
OpenTelemetry, OpenInference or OpenLLMetry points its exporter here, and its answers become drafts.

Spans become drafts through the commit point of `loop log` (`traces.log_traced`): a request is
answered 200 only once its drafts are committed to the store; a store that cannot commit is
answered 503 with Retry-After, which every OTLP exporter retries, so a span is committed or sent
again, never dropped. A span's draft id is derived from its trace and span ids, so a span sent
twice is one draft. Delivery to the sheet is a `loop sync --watch` of its own, started and stopped
with the receiver.

Answers follow the OTLP specification: an `ExportTraceServiceResponse` in the request's content
type (with `partial_success` naming the spans refused and why), 400 for a body that does not
parse, 413 past MAX_BODY (refused from its Content-Length, before reading it), 415 for another
content type, 401 without the token, 429 when MAX_IN_FLIGHT requests are already being taken.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loop.collect import span_drafts, spans, traces
from loop.errors import LoopError, UsageError
from loop.collect.span_buffer import SpanBuffer

log = logging.getLogger("loop.serve")

DEFAULT_LISTEN = "127.0.0.1:4318"
MAX_BODY = 16 * 2**20  # bytes, after gzip is undone; the OpenTelemetry Collector's default is 20 MiB
MAX_IN_FLIGHT = 8  # requests taken at once; more are told to come back (429), so memory stays flat
RETRY_AFTER = 1  # seconds: within an exporter's default 10 s deadline, and soon enough for a restart
DELIVER_EVERY = 2.0  # seconds between deliveries while drafts arrive
QUIET_SECONDS = 30.0  # a trace whose root span has not come this long after its last span is taken as it is
SHOW_REFUSED = 5
WITHOUT_CONTENT = "otlp_spans_without_content"
MEDIA_TYPES = ("application/x-protobuf", "application/json")


def parse_listen(listen: str, token: str | None) -> tuple[str, int]:
    """HOST:PORT to bind; beyond loopback only with a token, so no one else on the network can write drafts."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise UsageError(f"--listen {listen!r} is not HOST:PORT; use for instance {DEFAULT_LISTEN}.")
    if not token and not _loopback(host):
        raise UsageError(f"--listen {listen} reaches beyond this machine; set LOOP_OTLP_TOKEN to a secret the "
                         "exporters send (Authorization: Bearer …), or listen on 127.0.0.1.")
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


class Receiver:
    """What the HTTP handler calls: one request's body in, one answer out. Thread-safe."""

    def __init__(self, settings, token: str | None = None, choose: str = "", max_body: int = MAX_BODY):
        from loop.workspace import Workspace

        self.settings, self.token, self.choose, self.max_body = settings, token, choose, max_body
        self.workspace = Workspace(settings)
        self._commit = threading.Lock()  # one commit at a time on this process's connection
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._said_content = False
        self._store_trouble = ""

    def check(self) -> None:
        """Refuse to start on a store or sheet setting that no request could ever get past."""
        traces.check_deliverable(self.workspace)
        self.workspace.traces.id  # opens the store, migrating it; StoreUnusable and the like say why here

    def allowed(self, authorization: str) -> bool:
        if not self.token:
            return True
        given = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def take(self) -> bool:
        return self._slots.acquire(blocking=False)

    def give_back(self) -> None:
        self._slots.release()

    def export(self, body: bytes, content_type: str, encoding: str) -> Answer:
        """Answer one export request whose body (as sent) is `body`."""
        media = content_type.split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            return error_answer(415, f"Content-Type {content_type!r} is not OTLP; send application/x-protobuf or "
                                     "application/json.", "application/json")
        try:
            body = self._inflate(body, encoding.strip().lower())
            found = spans.read(body, media)
        except _TooLarge:
            return error_answer(413, f"The body is larger than {self.max_body} bytes once uncompressed; send smaller "
                                     "batches (the exporter's max export batch size).", media)
        except spans.BadBody as error:
            return error_answer(400, f"Bad OTLP body: {error}.", media)
        try:
            with self._commit:
                mapped, refused = self._take(found)
        except (LoopError, OSError) as error:
            self._trouble(str(error))
            return error_answer(503, f"The store cannot commit the spans now ({error}); send again.", media,
                                retry=True)
        self._recovered()
        if mapped.without_content and not self._said_content:
            self._said_content = True
            log.warning("%d model call span(s) carried no message content, so no draft could be made of them; the "
                        "instrumentation records none by default. Turn it on: %s.", mapped.without_content,
                        span_drafts.CONTENT_SETTINGS)
        message = "; ".join(refused)[:2000]
        if not message and mapped.without_content:
            message = (f"{mapped.without_content} model call span(s) carried no message content; turn it on: "
                       f"{span_drafts.CONTENT_SETTINGS}")
        return success_answer(len(refused), message, media)

    def _take(self, found: list) -> tuple[span_drafts.Mapped, list[str]]:
        """Commit what a request brought: the drafts of every trace it completes (its root span came,
        so the spans kept for it are read back), and the spans of the others, kept until theirs does.
        Each step is idempotent, so a request sent again after a failure part way doubles nothing."""
        buffer = SpanBuffer(self.workspace.store.db)
        by_trace: dict[str, dict[str, spans.Span]] = {}
        for span in found:
            by_trace.setdefault(span.trace_id, {})[span.span_id] = span
        whole = {trace for trace, kept in by_trace.items() if any(s.local_root for s in kept.values())}
        earlier = buffer.waiting(whole)
        buffer.keep([s for trace, kept in by_trace.items() if trace not in whole for s in kept.values()])
        mapped, refused = self._commit_traces(
            [s for trace in whole for s in {**{e.span_id: e for e in earlier.get(trace, [])}, **by_trace[trace]}.values()])
        buffer.done(earlier)
        return mapped, mapped.refused + refused

    def _commit_traces(self, whole: list) -> tuple[span_drafts.Mapped, list[str]]:
        mapped = span_drafts.drafts_of(whole, self.choose)
        _, refused = traces.log_traced(mapped.rows, self.workspace)
        if mapped.without_content:
            self.workspace.store.count(WITHOUT_CONTENT, mapped.without_content)
        return mapped, refused

    def sweep(self) -> None:
        """Take the traces that went quiet without their root span as they are."""
        with self._commit:
            buffer = SpanBuffer(self.workspace.store.db)
            quiet = buffer.quiet(QUIET_SECONDS)
            if not quiet:
                return
            kept = buffer.waiting(quiet)
            mapped, refused = self._commit_traces([s for trace in quiet for s in kept.get(trace, [])])
            buffer.done(quiet)
        for reason in (mapped.refused + refused)[:SHOW_REFUSED]:
            log.warning("Not a draft: %s", reason)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        if encoding in ("", "identity"):
            if len(body) > self.max_body:
                raise _TooLarge
            return body
        if encoding not in ("gzip", "deflate"):
            raise spans.BadBody(f"Content-Encoding {encoding!r} is not supported; send gzip or none")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            out = inflater.decompress(body, self.max_body + 1)
        except zlib.error as error:
            raise spans.BadBody(f"the {encoding} body does not inflate ({error})") from None
        if len(out) > self.max_body or inflater.unconsumed_tail:
            raise _TooLarge
        if not inflater.eof:
            raise spans.BadBody(f"the {encoding} body is cut short")
        return out

    def _trouble(self, reason: str) -> None:
        if reason != self._store_trouble:
            self._store_trouble = reason
            log.warning("%s Exporters are told to send again (503) until the store commits.", reason)

    def _recovered(self) -> None:
        if self._store_trouble:
            self._store_trouble = ""
            log.warning("The store commits again; taking spans.")

    def sweep_forever(self, stop: threading.Event) -> None:
        """Every DELIVER_EVERY seconds, take the traces that went quiet."""
        said = ""
        while not stop.wait(DELIVER_EVERY):
            try:
                self.sweep()
                said = ""
            except (LoopError, OSError) as error:
                if str(error) != said:
                    said = str(error)
                    log.warning("%s The waiting traces are taken once the store answers.", error)


def delivery_command(settings) -> list[str]:
    """`loop sync --watch`, for the same sheet and store: delivery runs in a process of its own, so
    writing a large workbook never holds up the requests (nor their memory)."""
    import sys

    words = [sys.executable, "-m", "loop", "sync", "--watch", f"{DELIVER_EVERY:g}", "--sheet", settings.sheet,
             "--prompt", str(settings.prompt)]
    if settings.store:
        words += ["--store", settings.store]
    if settings.credentials:
        words += ["--credentials", settings.credentials]
    return words


class _TooLarge(Exception):
    pass


# -- answers ----------------------------------------------------------------------------------------


def success_answer(rejected: int, message: str, media: str) -> Answer:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    if media == "application/json":
        partial = {"rejectedSpans": str(rejected), "errorMessage": message} if rejected or message else None
        return Answer(200, json.dumps({"partialSuccess": partial} if partial else {}).encode(), media)
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return Answer(200, response.SerializeToString(), media)


def error_answer(status: int, message: str, media: str, retry: bool = False) -> Answer:
    """A `google.rpc.Status` in the request's content type, as OTLP answers failures."""
    headers = (("Retry-After", str(RETRY_AFTER)),) if retry else ()
    code = {400: 3, 401: 16, 413: 3, 415: 3, 429: 8, 503: 14}.get(status, 2)  # gRPC codes
    if media == "application/json":
        return Answer(status, json.dumps({"code": code, "message": message}).encode(), media, headers)
    text = message.encode()
    return Answer(status, b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text,
                  "application/x-protobuf", headers)


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


# -- HTTP -------------------------------------------------------------------------------------------


def handler_for(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # exporters keep their connection
        server_version = "loop-otlp"
        timeout = 30  # a client that stops sending mid-body does not hold a thread

        def do_POST(self):  # noqa: N802 -- http.server's name
            media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            media = media if media in MEDIA_TYPES else "application/json"
            if self.path.split("?")[0] != "/v1/traces":
                return self._send(error_answer(404, "Only /v1/traces is served here.", media), close=True)
            if not receiver.allowed(self.headers.get("Authorization") or ""):
                return self._send(error_answer(401, "Send the token in LOOP_OTLP_TOKEN as Authorization: Bearer "
                                                    "<token> (OTEL_EXPORTER_OTLP_HEADERS).", media), close=True)
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._send(error_answer(411, "Send a Content-Length.", media), close=True)
            if int(length) > receiver.max_body:
                return self._send(error_answer(413, f"The body is larger than {receiver.max_body} bytes; send "
                                                    "smaller batches.", media), close=True)
            if not receiver.take():
                return self._send(error_answer(429, "Too many requests at once; send again.", media, retry=True),
                                  close=True)
            try:
                body = self.rfile.read(int(length))
                if len(body) < int(length):
                    return self._send(error_answer(400, "The body ended before its Content-Length.", media),
                                      close=True)
                answer = receiver.export(body, self.headers.get("Content-Type") or "",
                                         self.headers.get("Content-Encoding") or "")
            finally:
                receiver.give_back()
            self._send(answer)

        def do_GET(self):  # noqa: N802
            self._send(error_answer(405, "POST OTLP traces to /v1/traces.", "application/json"), close=True)

        def _send(self, answer: Answer, close: bool = False) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers:
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format, *args):  # noqa: A002 -- quiet: one line per request is noise
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # a client gone mid-answer is no traceback
        log.debug("connection from %s ended early", client_address, exc_info=True)


def serve(settings, listen: str = DEFAULT_LISTEN, ready=None) -> None:
    """Receive until SIGTERM or Ctrl-C; `ready(address)` is called once the port is bound."""
    import signal
    import subprocess

    token = os.environ.get("LOOP_OTLP_TOKEN", "").strip() or None
    host, port = parse_listen(listen, token)
    receiver = Receiver(settings, token, span_drafts.choice())
    receiver.check()
    try:
        server = Server((host, port), handler_for(receiver))
    except OSError as error:
        raise UsageError(f"Cannot listen on {listen} ({error.strerror}); choose another --listen.") from None
    stop = threading.Event()
    sweeper = threading.Thread(target=receiver.sweep_forever, args=(stop,), name="loop-sweep", daemon=True)
    sweeper.start()
    delivery = None

    def end(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, end)
    try:
        if ready:
            ready(server.server_address)
        delivery = subprocess.Popen(delivery_command(settings))
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        stop.set()
        sweeper.join(10)
        if delivery is not None:
            delivery.terminate()
            try:
                delivery.wait(30)
            except subprocess.TimeoutExpired:
                delivery.kill()
        try:  # what arrived last goes out before the process ends
            from loop.store.outbox import sync

            sync(receiver.workspace)
        except (LoopError, OSError) as error:
            log.warning("%s The drafts wait in the store for `loop sync`.", error)

