"""OTLP trace bodies read into plain spans: protobuf (`application/x-protobuf`) and JSON
(`application/json`, hex ids, int64 as strings or numbers, camelCase or snake_case field names), as
the OTLP specification says. A body that does not parse is a `BadBody` naming what is wrong, never
a traceback: the receiver answers it 400.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# How deep an attribute's arrays and key-value lists may nest; protobuf's own parser stops at 100.
MAX_VALUE_DEPTH = 32


class BadBody(ValueError):
    """A request body that is not an OTLP ExportTraceServiceRequest."""


@dataclass
class Event:
    name: str
    time: int
    attributes: dict


@dataclass
class Span:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16
    parent_id: str  # 16, or "" for a root span
    name: str
    start: int  # Unix nanoseconds
    end: int
    attributes: dict
    events: list[Event] = field(default_factory=list)
    resource: dict = field(default_factory=dict)
    flags: int = 0

    @property
    def local_root(self) -> bool:
        """No parent, or a parent in another process (the W3C flags say so): the trace's last span here."""
        return not self.parent_id or self.flags & 0x300 == 0x300

    def dumps(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def loads(cls, text: str) -> "Span":
        data = json.loads(text)
        return cls(**{**data, "events": [Event(**e) for e in data["events"]]})

    @property
    def key(self) -> str:
        return f"{self.trace_id}:{self.span_id}"


def read(body: bytes, content_type: str) -> list[Span]:
    """The spans of a body in `content_type` (its media type, without parameters)."""
    return read_json(body) if content_type == "application/json" else read_protobuf(body)


# -- protobuf ---------------------------------------------------------------------------------------


def read_protobuf(body: bytes) -> list[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError, ValueError) as error:
        raise BadBody(f"the body is not an OTLP ExportTraceServiceRequest in protobuf ({_short(error)})") from None
    spans = []
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(Span(
                    trace_id=_id(span.trace_id.hex(), 32, "traceId"), span_id=_id(span.span_id.hex(), 16, "spanId"),
                    parent_id=_id(span.parent_span_id.hex(), 16, "parentSpanId", empty=True), name=span.name,
                    start=span.start_time_unix_nano, end=span.end_time_unix_nano,
                    attributes=_pb_attributes(span.attributes),
                    events=[Event(e.name, e.time_unix_nano, _pb_attributes(e.attributes)) for e in span.events],
                    resource=resource, flags=span.flags))
    return spans


def _pb_attributes(pairs) -> dict:
    return {pair.key: _pb_value(pair.value, 0) for pair in pairs}


def _pb_value(value, depth: int):
    if depth > MAX_VALUE_DEPTH:
        raise BadBody(f"an attribute nests deeper than {MAX_VALUE_DEPTH} levels")
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_pb_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: _pb_value(pair.value, depth + 1) for pair in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


# -- JSON -------------------------------------------------------------------------------------------


def read_json(body: bytes) -> list[Span]:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BadBody(f"the body is not UTF-8 (byte {error.start})") from None
    except RecursionError:
        raise BadBody("the JSON body nests too deep") from None
    except ValueError as error:
        raise BadBody(f"the body is not JSON ({_short(error)})") from None
    spans = []
    for resource_spans in _items(_object(document, "the body"), "resourceSpans", "resource_spans"):
        resource_spans = _object(resource_spans, "a resourceSpans entry")
        resource = _json_attributes(_object(_get(resource_spans, "resource") or {}, "a resource"))
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(_object(scope_spans, "a scopeSpans entry"), "spans"):
                span = _object(span, "a span")
                spans.append(Span(
                    trace_id=_id(_text(span, "traceId", "trace_id"), 32, "traceId"),
                    span_id=_id(_text(span, "spanId", "span_id"), 16, "spanId"),
                    parent_id=_id(_text(span, "parentSpanId", "parent_span_id"), 16, "parentSpanId", empty=True),
                    name=_text(span, "name"),
                    start=_int(_get(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
                    end=_int(_get(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
                    attributes=_json_attributes(span),
                    events=[_json_event(_object(e, "an event")) for e in _items(span, "events")],
                    resource=resource, flags=_int(_get(span, "flags"), "flags")))
    return spans


def _json_event(event: dict) -> Event:
    return Event(_text(event, "name"), _int(_get(event, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
                 _json_attributes(event))


def _json_attributes(holder: dict) -> dict:
    found = {}
    for pair in _items(holder, "attributes", "values"):
        pair = _object(pair, "an attribute")
        found[_text(pair, "key")] = _json_value(_get(pair, "value"), 0)
    return found


_SCALARS = {"stringValue": str, "string_value": str, "boolValue": bool, "bool_value": bool}


def _json_value(value, depth: int):
    if depth > MAX_VALUE_DEPTH:
        raise BadBody(f"an attribute nests deeper than {MAX_VALUE_DEPTH} levels")
    if value is None:
        return None
    value = _object(value, "an attribute value")
    for name, kind in _SCALARS.items():
        if name in value:
            if not isinstance(value[name], kind):
                raise BadBody(f"an attribute's {name} is not a {kind.__name__}")
            return value[name]
    for name in ("intValue", "int_value"):
        if name in value:
            return _int(value[name], name)
    for name in ("doubleValue", "double_value"):
        if name in value:
            number = value[name]
            if isinstance(number, bool) or not isinstance(number, (int, float, str)):
                raise BadBody(f"an attribute's {name} is not a number")
            try:
                return float(number)
            except ValueError:
                raise BadBody(f"an attribute's {name} is not a number") from None
    for name in ("bytesValue", "bytes_value"):
        if name in value:
            return str(value[name])
    for name in ("arrayValue", "array_value"):
        if name in value:
            return [_json_value(item, depth + 1) for item in _items(_object(value[name], name), "values")]
    for name in ("kvlistValue", "kvlist_value"):
        if name in value:
            return {_text(_object(p, "a key-value"), "key"): _json_value(_get(p, "value"), depth + 1)
                    for p in _items(_object(value[name], name), "values")}
    return None  # an empty AnyValue


def _get(holder: dict, *names):
    for name in names:
        if name in holder:
            return holder[name]
    return None


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise BadBody(f"{what} is not a JSON object")
    return value


def _items(holder: dict, *names) -> list:
    value = _get(holder, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadBody(f"{names[0]} is not a JSON array")
    return value


def _text(holder: dict, *names) -> str:
    value = _get(holder, *names)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadBody(f"{names[0]} is not a string")
    return value


def _int(value, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadBody(f"{what} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise BadBody(f"{what} is not an integer") from None


# -- both -------------------------------------------------------------------------------------------


def _id(text: str, digits: int, what: str, empty: bool = False) -> str:
    """An id as lowercase hex of its exact length (an all-zero trace or span id is invalid)."""
    if not text and empty:
        return ""
    text = text.lower()
    if len(text) != digits or any(c not in "0123456789abcdef" for c in text) or not text.strip("0"):
        raise BadBody(f"a {what} is not {digits // 2} bytes ({digits} hex digits, not all zero)")
    return text


def _short(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
