"""Which spans are drafts, and what of each is the ticket, the thread, the draft, the ticket id, the
prompt version and the knowledge-base sources (docs/tracing.md has the whole mapping).

Read as instrumentations write them: the OpenTelemetry GenAI conventions (`gen_ai.input.messages` /
`gen_ai.output.messages` on the span or its `gen_ai.client.inference.operation.details` event, and
the older `gen_ai.user.message` / `gen_ai.choice` events), OpenLLMetry's flattened
`gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*`, and OpenInference's `llm.input_messages.{i}.*`
and `input.value` / `output.value`.

By default an agent span (`gen_ai.operation.name` `invoke_agent`, OpenInference kind AGENT,
OpenLLMetry kind agent) is a draft, its text taken from itself or the model calls under it; in a
trace without one, every model call that answers in text is. `LOOP_OTLP_SPAN` chooses instead: a span name, `attribute=value`, or
an attribute a span must carry.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from loop.collect.spans import Span

# A draft's trace id is derived from its span's ids, so the same span sent twice is one draft.
NAMESPACE = uuid.UUID("6f1c4b0e-2a8d-5c3e-9b7a-0d4e8f2a1c55")
CONTENT_SETTINGS = ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY (OpenTelemetry GenAI), "
                    "TRACELOOP_TRACE_CONTENT=true (OpenLLMetry), OPENINFERENCE_HIDE_INPUTS and "
                    "OPENINFERENCE_HIDE_OUTPUTS unset (OpenInference)")
_MODEL_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
_TOOL_OPERATIONS = {"execute_tool"}
_FLATTENED = re.compile(r"(gen_ai\.prompt|gen_ai\.completion|llm\.input_messages|llm\.output_messages)\.\d+\.")
# How an evaluation's label reads as a thumb; a numeric score in [0, 1] is 👍 from 0.5 up.
UP_LABELS = {"pass", "passed", "good", "correct", "relevant", "yes", "true", "up", "positive", "helpful", "👍"}
DOWN_LABELS = {"fail", "failed", "bad", "incorrect", "irrelevant", "no", "false", "down", "negative", "unhelpful",
               "👎"}


@dataclass
class Message:
    role: str
    text: str
    tool_calls: list[str] = field(default_factory=list)  # "name(arguments)"


@dataclass
class Mapped:
    """What a batch of spans gave: draft rows, the spans refused (with why), and the model calls that
    carried no content."""
    rows: list[dict] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    without_content: int = 0


def choice() -> str:
    """The span to take as a draft, as LOOP_OTLP_SPAN names it ("" for the default)."""
    return os.environ.get("LOOP_OTLP_SPAN", "").strip()


def draft_id(span: Span) -> str:
    return str(uuid.uuid5(NAMESPACE, span.key))


def drafts_of(spans: list[Span], choose: str = "") -> Mapped:
    """The drafts among `spans` (one export request's, so usually whole traces)."""
    mapped = Mapped()
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    for trace in by_trace.values():
        children: dict[str, list[Span]] = {}
        for span in trace:
            children.setdefault(span.parent_id, []).append(span)
        for span in trace:
            if _is_model_call(span) and not _has_content(span):
                mapped.without_content += 1
        for chosen in _chosen(trace, choose):
            row = _draft(chosen, _below(chosen, children))
            if row is None:
                continue
            if isinstance(row, str):
                mapped.refused.append(f"span {chosen.span_id} ({chosen.name}): {row}")
            else:
                mapped.rows.append(row)
    return mapped


def _chosen(trace: list[Span], choose: str) -> list[Span]:
    if choose:
        return [span for span in trace if _matches(span, choose)]
    agents = [span for span in trace if _is_agent(span)]
    if agents:  # the outermost agent spans: a sub-agent's answer is part of its parent's
        ids = {span.span_id for span in agents}
        return [span for span in agents if span.parent_id not in ids]
    return [span for span in trace if _is_model_call(span)]


def _matches(span: Span, choose: str) -> bool:
    if "=" in choose:
        key, value = choose.split("=", 1)
        return str(span.attributes.get(key.strip(), "")) == value.strip()
    return span.name == choose or choose in span.attributes


def _below(span: Span, children: dict[str, list[Span]]) -> list[Span]:
    """Every span under `span`, in start order."""
    found, todo, seen = [], list(children.get(span.span_id, [])), {span.span_id}
    while todo:
        child = todo.pop()
        if child.span_id in seen:  # a cycle of parent ids is a hostile body, not a loop forever
            continue
        seen.add(child.span_id)
        found.append(child)
        todo.extend(children.get(child.span_id, []))
    return sorted(found, key=lambda s: (s.start, s.end))


def _is_agent(span: Span) -> bool:
    attributes = span.attributes
    return (attributes.get("gen_ai.operation.name") == "invoke_agent"
            or str(attributes.get("openinference.span.kind", "")).upper() == "AGENT"
            or attributes.get("traceloop.span.kind") == "agent")


def _is_model_call(span: Span) -> bool:
    attributes = span.attributes
    if str(attributes.get("openinference.span.kind", "")).upper() == "LLM":
        return True
    if attributes.get("gen_ai.operation.name") in _MODEL_OPERATIONS:
        return True
    return any(_FLATTENED.match(key) for key in attributes)


def _is_source(span: Span) -> bool:
    kind = str(span.attributes.get("openinference.span.kind", "")).upper()
    return kind in ("TOOL", "RETRIEVER") or span.attributes.get("gen_ai.operation.name") in _TOOL_OPERATIONS


def _has_content(span: Span) -> bool:
    inputs, output = _conversation(span)
    return bool(inputs or output)


# -- one draft --------------------------------------------------------------------------------------


def _draft(span: Span, below: list[Span]) -> dict | str | None:
    """A draft row for `span`, a reason it cannot be one, or None when it is no draft (no content, or
    a model call that answered only with a tool call)."""
    inputs, output = _conversation(span)
    conversation = inputs  # where the thread and the tools' answers are read
    calls = [s for s in below if _is_model_call(s)]
    if calls:  # an agent span: its model calls hold the whole conversation, and the text it lacks
        answered = [s for s in calls if (_conversation(s)[1] or Message("", "")).text.strip()]
        last = (answered or calls)[-1]
        first_inputs = next((c for c in (_conversation(s)[0] for s in calls) if c), [])
        conversation = _conversation(last)[0] or first_inputs or inputs
        inputs = inputs or conversation
        output = output if output is not None and output.text.strip() else _conversation(last)[1]
    if not inputs and output is None:
        return None
    if output is None or not output.text.strip():
        return None if output is not None and output.tool_calls else "it has no answer text"
    asked = [m for m in inputs if m.role in ("user", "human") and m.text.strip()]
    if not asked:
        return "it has no user message to take as the ticket"
    ticket = asked[-1].text
    turns = [m for m in conversation if m.role in ("user", "assistant", "human", "ai") and m.text.strip()]
    before = [i for i, m in enumerate(turns) if m.role in ("user", "human")]
    thread = "\n".join(_line(m) for m in turns[:before[-1]]) if before else ""
    everything = [span, *below]
    row = {
        "trace_id": draft_id(span),
        "created_at": _moment(span.end or span.start),
        "ticket": ticket,
        "draft": output.text,
        "ticket_id": _first(everything, "loop.ticket_id", "ticket.id", "gen_ai.conversation.id", "session.id",
                            "traceloop.association.properties.ticket_id",
                            "traceloop.association.properties.session_id"),
        "thread": thread,
        "kb_sources": ", ".join(_sources(below, conversation)),
        "prompt_version": _first(everything, "loop.prompt_version", "gen_ai.prompt.version",
                                 "llm.prompt_template.version"),
        "arm": arm if (arm := _first(everything, "loop.prompt_arm")) in ("current", "canary") else "",
        "origin": "otlp",
        "origin_id": span.key,
    }
    row.update(_judged(everything))
    return row


def _line(message: Message) -> str:
    who = {"user": "Customer", "human": "Customer", "assistant": "Agent", "ai": "Agent"}.get(message.role, message.role)
    return f"{who}: {message.text}"


def _first(spans: list[Span], *keys: str) -> str:
    for key in keys:
        for span in spans:
            value = span.attributes.get(key)
            if value not in (None, ""):
                return str(value)
    for key in keys:  # the resource's, last: a service-wide default
        for span in spans:
            value = span.resource.get(key)
            if value not in (None, ""):
                return str(value)
    return ""


def _moment(nanoseconds: int) -> str:
    try:
        moment = datetime.fromtimestamp(nanoseconds / 1e9, timezone.utc) if nanoseconds else datetime.now(timezone.utc)
    except (OverflowError, OSError, ValueError):
        moment = datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _sources(below: list[Span], inputs: list[Message]) -> list[str]:
    """The documents the answer drew on: retriever documents' ids, a tool's result's ids or URLs, else
    the tool and its arguments; with no tool span, the same read from the tool messages and tool calls
    in the model's input."""
    found: list[str] = []
    for span in below:
        if _is_source(span):
            found.extend(_span_sources(span))
    if not found:  # the tools' answers in the model's input name the documents, else the calls do
        found = [s for m in inputs if m.role == "tool" for s in _ids_in(m.text)]
    if not found:
        found = [call for message in inputs for call in message.tool_calls]
    return list(dict.fromkeys(s for s in found if s))


def _span_sources(span: Span) -> list[str]:
    attributes = span.attributes
    documents = _indexed(attributes, "retrieval.documents.")
    if documents:
        return [str(d.get("document.id") or _url_of(d.get("document.metadata")) or "") for d in documents]
    if attributes.get("loop.kb_sources"):
        return [s.strip() for s in str(attributes["loop.kb_sources"]).split(",")]
    result = attributes.get("gen_ai.tool.call.result", attributes.get("output.value"))
    named = _ids_in(result)
    if named:
        return named
    name = attributes.get("gen_ai.tool.name") or attributes.get("tool.name") or span.name
    arguments = attributes.get("gen_ai.tool.call.arguments", attributes.get("input.value", ""))
    return [f"{name}({_compact(arguments)})" if arguments else str(name)]


def _url_of(metadata) -> str:
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return ""
    return str(metadata.get("url") or metadata.get("source") or "") if isinstance(metadata, dict) else ""


def _ids_in(result) -> list[str]:
    """The ids, URLs or sources a tool's JSON result names (a list of documents, or one)."""
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return []
    if isinstance(result, dict):
        result = result.get("documents") or result.get("results") or [result]
    if not isinstance(result, list):
        return []
    named = (next((str(item[key]) for key in _ID_KEYS if item.get(key)), "") for item in result
             if isinstance(item, dict))
    return [name for name in named if name][:20]


_ID_KEYS = ("doc_id", "document_id", "id", "url", "source")


def _call(name, arguments) -> str:
    """A tool call as a reviewer reads it: `name(arguments)`."""
    return f"{name or ''}({_compact('' if arguments is None else arguments)})"


def _function_calls(calls) -> list[str]:
    """OpenAI-shaped tool calls ({"function": {"name", "arguments"}}) as `name(arguments)`."""
    return [_call((c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
            for c in calls or [] if isinstance(c, dict)]


def _compact(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return re.sub(r"\s+", " ", text)[:120]


# -- messages, as each convention writes them ---------------------------------------------------------


def _conversation(span: Span) -> tuple[list[Message], Message | None]:
    """The model call's input messages and its answer (None when the span carries none)."""
    for read in (_genai_attributes, _genai_details_event, _openinference, _openllmetry, _genai_events, _values):
        inputs, output = read(span)
        if inputs or output is not None:
            return inputs, output
    return [], None


def _genai_attributes(span: Span):
    return _genai_messages(span.attributes)


def _genai_details_event(span: Span):
    for event in span.events:
        if event.name == "gen_ai.client.inference.operation.details":
            found = _genai_messages(event.attributes)
            if found[0] or found[1] is not None:
                return found
    return [], None


def _genai_messages(attributes: dict):
    inputs = [_part_message(m) for m in _json_list(attributes.get("gen_ai.input.messages"))]
    outputs = [_part_message(m) for m in _json_list(attributes.get("gen_ai.output.messages"))]
    system = _json_list(attributes.get("gen_ai.system_instructions"))
    if system:
        inputs.insert(0, Message("system", " ".join(str(p.get("content", "")) for p in system if isinstance(p, dict))))
    return [m for m in inputs if m], _last_answer([m for m in outputs if m])


def _part_message(message) -> Message | None:
    if not isinstance(message, dict):
        return None
    texts, calls = [], []
    for part in message.get("parts") or []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            calls.append(_call(part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            texts.append(str(part.get("response", "") if not isinstance(part.get("response"), (dict, list))
                             else json.dumps(part["response"], ensure_ascii=False)))
    if "content" in message and not texts:  # an older shape: {"role", "content"}
        texts.append(_content_text(message["content"]))
    return Message(str(message.get("role", "")), "\n".join(t for t in texts if t), calls)


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _last_answer(outputs: list[Message]) -> Message | None:
    if not outputs:
        return None
    text = "\n".join(m.text for m in outputs if m.text)
    return Message("assistant", text, [c for m in outputs for c in m.tool_calls])


def _flattened(span: Span, given: str, made: str, read):
    """Messages flattened into `given{i}.…` and `made{i}.…` attributes, each read by `read`."""
    inputs = [read(m) for m in _indexed(span.attributes, given)]
    return inputs, _last_answer([read(m) for m in _indexed(span.attributes, made)])


def _openinference(span: Span):
    return _flattened(span, "llm.input_messages.", "llm.output_messages.", _oi_message)


def _oi_message(fields: dict) -> Message:
    texts = [str(fields.get("message.content", ""))]
    texts += [str(c.get("message_content.text", "")) for c in _indexed(fields, "message.contents.")]
    calls = [_call(c.get("tool_call.function.name"), c.get("tool_call.function.arguments"))
             for c in _indexed(fields, "message.tool_calls.")]
    return Message(str(fields.get("message.role", "")), "\n".join(t for t in texts if t), calls)


def _openllmetry(span: Span):
    return _flattened(span, "gen_ai.prompt.", "gen_ai.completion.", _flat_message)


def _flat_message(fields: dict) -> Message:
    calls = [_call(c.get("name"), c.get("arguments")) for c in _indexed(fields, "tool_calls.")]
    return Message(str(fields.get("role", "")), _content_text(fields.get("content", "")), calls)


def _genai_events(span: Span):
    """The older GenAI events: gen_ai.{system,user,assistant,tool}.message and gen_ai.choice."""
    inputs, outputs = [], []
    for event in span.events:
        attributes = event.attributes
        if event.name in ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message",
                          "gen_ai.tool.message"):
            role = event.name.split(".")[1]
            inputs.append(Message(role, _content_text(attributes.get("content", "")),
                                  _function_calls(attributes.get("tool_calls"))))
        elif event.name == "gen_ai.choice":
            message = _json_object(attributes.get("message"))
            outputs.append(Message("assistant", _content_text(message.get("content", "")),
                                   _function_calls(message.get("tool_calls"))))
    return inputs, _last_answer(outputs)


def _values(span: Span):
    """An agent or chain span's own input and output (OpenInference's input.value / output.value,
    OpenLLMetry's traceloop.entity.input / .output): the ticket and the answer."""
    attributes = span.attributes
    if _is_model_call(span) or _is_source(span):
        return [], None
    for given, made in (("input.value", "output.value"), ("traceloop.entity.input", "traceloop.entity.output")):
        if made in attributes:
            asked = _plain(attributes.get(given))
            return ([Message("user", asked)] if asked else []), Message("assistant", _plain(attributes[made]))
    return [], None


_TEXT_KEYS = ("message", "input", "query", "question", "ticket", "output", "answer", "content")


def _plain(value) -> str:
    """A value as text: a JSON string's text, a JSON object's message, input, query… field (or its
    first text argument, as OpenLLMetry records a call's `args`), else the text itself."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, dict):
        for holder in (parsed, parsed.get("kwargs") if isinstance(parsed.get("kwargs"), dict) else {}):
            for key in _TEXT_KEYS:
                if isinstance(holder.get(key), str):
                    return holder[key]
        arguments = parsed.get("args")
        if isinstance(arguments, list) and arguments and isinstance(arguments[0], str):
            return arguments[0]
    return value


def _json_list(value) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


def _json_object(value) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _indexed(attributes: dict, prefix: str) -> list[dict]:
    """Flattened `prefix{i}.rest` attributes as a list of {rest: value}, by i."""
    found: dict[int, dict] = {}
    for key, value in attributes.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix):].partition(".")
            if index.isdigit() and rest and int(index) < 10_000:
                found.setdefault(int(index), {})[rest] = value
    return [found[i] for i in sorted(found)]


# -- scores -----------------------------------------------------------------------------------------


def _judged(spans: list[Span]) -> dict:
    """A `gen_ai.evaluation.result` event on the draft's spans as its judge score (never a person's)."""
    for span in spans:
        for event in span.events:
            if event.name != "gen_ai.evaluation.result":
                continue
            score = thumb(event.attributes.get("gen_ai.evaluation.score.label"),
                          event.attributes.get("gen_ai.evaluation.score.value"))
            if score:
                return {"judge_score": score,
                        "judge_comment": str(event.attributes.get("gen_ai.evaluation.explanation", "")),
                        "judge_version": str(event.attributes.get("gen_ai.evaluation.name", "evaluation"))}
    return {}


def thumb(label, value) -> str:
    """'up', 'down' or '' for a score's label (read first) or value: a boolean, or a number in [0, 1]
    (👍 from 0.5), or -1/1."""
    if isinstance(label, str) and label.strip():
        word = label.strip().casefold()
        if word in UP_LABELS:
            return "up"
        if word in DOWN_LABELS:
            return "down"
    if isinstance(value, bool):
        return "up" if value else "down"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return thumb(value, None) if value != label else ""
    if isinstance(value, (int, float)):
        if value in (-1, 1):
            return "up" if value > 0 else "down"
        if 0 <= value <= 1:
            return "up" if value >= 0.5 else "down"
    return ""
