"""A local OpenAI-compatible Chat Completions server for tests and benchmarks.

The real openai client talks to it over HTTP. Scripted replies (faults, malformed answers, fixed
JSON) are served first, in order; after that a small deterministic "model" answers each schema
from the request's own data, so whole runs can be exercised end to end.

For the replay check, the "agent" ends each draft with a `[guarded: …]` tag for every
"- Guard against …" line of its system prompt (the lines the fake's edits add), and the pairwise
judge decides from those tags: on a failure the guarded draft wins; on a success a ticket that says
"fragile" is hurt by a guard and "steady" ones tie; a ticket that says "biased" gets a judge that
always picks draft A (position bias, which the two orders turn into a tie). A ticket that says
"never stop" gets an agent that calls a tool on every turn, even when told to answer.
"""

from __future__ import annotations

import json
import re
import threading
import time

from tests.local_server import LocalServer

KEYWORDS = [
    ("Too verbose", ("long", "verbose", "shorter", "sentences", "wordy", "padding")),
    ("Wrong menu paths", ("menu", "path", "doesn't exist", "does not exist", "settings →", "settings ->")),
    ("Missed thread context", ("thread", "already tried", "earlier", "read the")),
    ("Unrelated workarounds", ("workaround", "unrelated", "upgrade", "doesn't apply", "paid")),
]


def data_block(text: str, kind: str):
    match = re.search(rf'<data kind="{kind}">\n(.*?)\n</data>', text, re.S)
    return json.loads(match.group(1)) if match else []


def classify(record: dict) -> str:
    comment = (record.get("comment", "") + " " + record.get("final_reply", "")).lower()
    for name, words in KEYWORDS:
        if any(word in comment for word in words):
            return name
    return "Tone"


def smart_answer(name: str, schema: dict, user: str) -> dict:
    if name == "failure_patterns" and "merged_from" in json.dumps(schema):
        groups: dict[str, list[str]] = {}
        for item in data_block(user, "patterns"):
            groups.setdefault(item["name"], []).append(item["id"])
        return {"patterns": [{"name": n, "description": f"{n}.", "trace_ids": [], "merged_from": ids}
                             for n, ids in groups.items()]}
    if name == "failure_patterns":
        known = data_block(user, "known_patterns")  # earlier weeks' names: reused where one fits

        def named(kind: str) -> str:
            words = dict(KEYWORDS).get(kind, ())
            return next((k for k in known if any(w in k.lower() for w in words)), kind)

        groups = {}
        for record in data_block(user, "failures"):
            groups.setdefault(named(classify(record)), []).append(record["trace_id"])
        return {"patterns": [{"name": n, "description": f"Drafts show: {n.lower()}.", "trace_ids": ids}
                             for n, ids in groups.items()]}
    if name == "prompt_edits":
        prompt = re.search(r"<prompt>\n(.*?)\n</prompt>", user, re.S).group(1)
        lines = [line for line in prompt.splitlines() if len(line.strip()) > 20 and prompt.count(line) == 1]
        edits = []
        for index, pattern in enumerate(data_block(user, "patterns")[:3]):
            line = lines[index % len(lines)] if lines else prompt
            edits.append({
                "pattern": pattern["pattern"],
                "find": line,
                "replace": f"{line}\n- Guard against {pattern['pattern'].lower()}: check before sending.",
                "rationale": f"{pattern['count']} failures show {pattern['pattern'].lower()}.",
                "evidence": pattern["trace_ids"][:3],
            })
        return {"edits": edits}
    if name == "pairwise_verdict":
        case = data_block(user, "case")
        a, b = (data_block(user, kind).get("reply", "") for kind in ("draft_a", "draft_b"))
        ticket = case.get("ticket", "")
        if "biased" in ticket:
            return {"winner": "A", "reason": "The first draft reads better."}
        guarded_a, guarded_b = "[guarded" in a, "[guarded" in b
        if guarded_a == guarded_b:
            return {"winner": "tie", "reason": "Both drafts handle it the same way."}
        if "approved_reply" in case:  # a success: a guard hurts a fragile case, changes nothing else
            if "fragile" not in ticket:
                return {"winner": "tie", "reason": "Both are as good as the approved reply."}
            return {"winner": "B" if guarded_a else "A", "reason": "The guard made the reply worse."}
        return {"winner": "A" if guarded_a else "B", "reason": "This draft avoids what the reviewer flagged."}
    if name == "judge_verdict":
        draft = data_block(user, "draft").get("draft", "")
        if len(draft) > 600:
            return {"score": "down", "comment": "Too long: two or three sentences would do."}
        return {"score": "up", "comment": "Short and to the point."}
    raise ValueError(f"unknown schema {name}")


def guards(messages: list[dict]) -> str:
    """A tag for each "- Guard against …" line of the system prompt: what a candidate prompt changes."""
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    found = re.findall(r"^- Guard against ([^:\n]+):", system, re.M)
    return "".join(f" [guarded: {g}]" for g in found)


def tool_error(content: str) -> bool:
    """A tool result that reports an error (a malformed call): the fake's agent carries on as if it were not there."""
    try:
        return isinstance(json.loads(content), dict) and "error" in json.loads(content)
    except ValueError:
        return False


def agent_turn(messages: list[dict], tools_offered: bool = True) -> tuple[str | None, list | None]:
    """The support agent's tool loop: search the docs, read the best hit, then answer from it."""
    tools = [m for m in messages if m.get("role") == "tool" and not tool_error(m["content"])]
    user = next(m["content"] for m in messages if m["role"] == "user")
    question = (data_block(user, "ticket") or {}).get("ticket", "")

    def call(name, arguments):
        return [{"id": f"call_{len(messages)}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(arguments)}}]

    if "never stop" in question:  # a model stuck in its tool loop, even when told to answer
        return None, call("search_kb", {"query": "again"})
    if not tools_offered:
        return f"Thanks for reaching out about: {' '.join(question.split()[:12])}.{guards(messages)}", None
    if not tools:
        return None, call("search_kb", {"query": " ".join(question.split()[:12])})
    last = json.loads(tools[-1]["content"])
    if isinstance(last, list):
        if last:
            return None, call("read_doc", {"doc_id": last[0]["doc_id"]})
        return ("Thanks for reaching out. I could not find this in our help centre, so I have asked a specialist."
                + guards(messages)), None
    first_sentence = re.split(r"(?<=[.!?])\s", " ".join(last.get("text", "").split()[2:60]))[0]
    return f"Thanks for reaching out. {first_sentence} (See: {last.get('title', '')}.){guards(messages)}", None


class FakeOpenAI(LocalServer):
    """Start with `with FakeOpenAI() as server:`; point OPENAI_BASE_URL at `server.url`."""

    def __init__(self, latency: float = 0.0):
        super().__init__()
        self.script: list[dict] = []
        self.requests: list[dict] = []
        self.latency = latency
        self._lock = threading.Lock()
        self.url = self.root + "/v1"

    def handle(self, handler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))) or b"{}")
        with self._lock:
            self.requests.append(body)
            action = self.script.pop(0) if self.script else {}
        self._respond(handler, body, action)

    def queue(self, *actions: dict) -> None:
        """Actions: {"status": 429, "headers": {...}}, {"delay": s}, {"content": "raw"}, {"json": {...}},
        {"tool_calls": [...]} (sent as they are, whatever their arguments hold)."""
        with self._lock:
            self.script.extend(actions)

    def _respond(self, handler, body: dict, action: dict) -> None:
        if self.latency or action.get("delay"):
            time.sleep(action.get("delay", self.latency))
        if "status" in action:
            payload = json.dumps({"error": {"message": "scripted fault", "type": "server_error"}}).encode()
            return self._send(handler, action["status"], payload, action.get("headers", {}))
        response_format = body.get("response_format", {}).get("json_schema", {})
        messages = body.get("messages", [])
        user = messages[-1]["content"] if messages else ""
        tool_calls = None
        if "tool_calls" in action:  # tool calls exactly as scripted, malformed ones and all
            content, tool_calls = action.get("content"), action["tool_calls"]
        elif "content" in action:
            content = action["content"]
        elif not response_format:  # the support agent, with its knowledge-base tools or without
            content, tool_calls = agent_turn(messages, bool(body.get("tools")) and body.get("tool_choice") != "none")
        elif "json" in action:
            content = json.dumps(action["json"])
        else:
            content = json.dumps(smart_answer(response_format.get("name", ""), response_format.get("schema", {}), user))
        prompt_tokens = sum(len(m.get("content") or "") for m in messages) // 4
        content = content or ""
        payload = json.dumps({
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": tool_calls},
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_tokens + len(content) // 4},
        }).encode()
        self._send(handler, 200, payload, {})

    @staticmethod
    def _send(handler, status: int, payload: bytes, headers: dict) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def schema_names(self) -> list[str]:
        return [r.get("response_format", {}).get("json_schema", {}).get("name") for r in self.requests]
