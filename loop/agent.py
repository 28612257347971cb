"""The reference support agent (`loop draft`): reads a ticket and its whole thread, checks the
knowledge base through tools, and drafts a reply with the managed prompt.

`draft_reply` takes the prompt text as an argument, so the same ticket can be drafted again with a
candidate prompt (`replay`): the way a proposed edit can be tried on the failures it cites, and on
past successes, before a reviewer sees it.
"""

from __future__ import annotations

import csv
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import schema, traces
from .config import Settings
from .errors import UsageError
from .kb import KnowledgeBase
from .model import ModelClient
from .reviews import read_drafts
from .templates import render
from .values import valid_unicode
from .workspace import Workspace

MAX_TOOL_ROUNDS = 6
THREAD_CHARS = 12_000
DOC_CHARS = 6_000
_MESSAGE_START = re.compile(r"^(?=\S[^\n:]{0,60}\([^)\n]{1,40}\):)", re.M)

TOOLS = [
    {"type": "function", "function": {
        "name": "search_kb",
        "description": "Search the help-centre knowledge base. Returns the best matching articles with a snippet.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "Keywords"}},
                       "required": ["query"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "read_doc",
        "description": "Read a whole knowledge-base article by the doc_id that search_kb returned.",
        "parameters": {"type": "object", "properties": {"doc_id": {"type": "string"}},
                       "required": ["doc_id"], "additionalProperties": False}}},
]


@dataclass(frozen=True)
class Ticket:
    ticket: str
    ticket_id: str = ""
    thread: str = ""


@dataclass
class Reply:
    ticket: Ticket
    draft: str
    sources: list[str] = field(default_factory=list)
    tool_calls: int = 0


def load_tickets(path: str | Path) -> list[Ticket]:
    """Tickets from a JSONL file (one object a line) or a CSV file with a header row."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"No tickets file at {path}; pass --tickets with a .jsonl or .csv file.")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as stream:
            records = list(csv.DictReader(stream))
    else:
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise UsageError(f"{path} line {number} is not JSON ({error.msg}); one ticket object per line.") from None
    tickets = []
    for number, record in enumerate(records, start=1):
        text = str(record.get("ticket") or "").strip()
        if not text:
            raise UsageError(f"{path}: ticket {number} has no `ticket` text.")
        tickets.append(Ticket(text, str(record.get("ticket_id") or ""), str(record.get("thread") or "")))
    return tickets


def find_tickets(where: Settings | Workspace, path: str | Path | None = None) -> list[Ticket]:
    """Tickets from a file when one is given, else from the workbook's Tickets tab."""
    if path:
        return load_tickets(path)
    table = Workspace.of(where).workbook.read([schema.TICKETS]).get(schema.TICKETS)
    if table is None:
        raise UsageError(f"Pass --tickets FILE (.jsonl or .csv), add a {schema.TICKETS} tab, or use --replay TRACE_ID.")
    return tickets_from_table(table)


def tickets_from_table(table) -> list[Ticket]:
    """Tickets from a Tickets tab with `ticket` (and optionally `ticket_id`, `thread`) columns."""
    if table.column("ticket") is None:
        raise UsageError(f"The {table.title} tab has no ticket column; add one to row 1.")
    return [Ticket(str(r.get("ticket") or "").strip(), str(r.get("ticketid") or ""), str(r.get("thread") or ""))
            for _, r in table.records() if str(r.get("ticket") or "").strip()]


def fit_thread(thread: str, limit: int = THREAD_CHARS) -> str:
    """The thread within `limit` characters: the newest messages stay whole, the oldest are dropped,
    and a note says how many were left out and how the conversation began."""
    if len(thread) <= limit:
        return thread
    messages = [m for m in _MESSAGE_START.split(thread) if m.strip()] or thread.splitlines(keepends=True)
    kept: list[str] = []
    used = 0
    for message in reversed(messages):
        if used + len(message) > limit * 0.85 and kept:
            break
        kept.insert(0, message[-int(limit * 0.85):] if not kept else message)
        used += len(message)
    dropped = len(messages) - len(kept)
    opening = " ".join(messages[0].split())[:300]
    note = f"[{dropped} earlier message(s) left out. The conversation began: {opening}]\n"
    return note + "".join(kept)


def draft_reply(model: ModelClient, kb: KnowledgeBase | None, prompt: str, ticket: Ticket) -> Reply:
    """One ticket through the tool-calling loop: search and read the docs, then answer."""
    messages: list[dict] = [
        {"role": "system", "content": prompt},
        {"role": "user", "content": render("agent_ticket.j2", ticket=ticket.ticket, ticket_id=ticket.ticket_id,
                                           thread=fit_thread(ticket.thread))},
    ]
    reply = Reply(ticket, "")
    for round_number in range(MAX_TOOL_ROUNDS + 1):
        options = {"tools": TOOLS} if kb else {}
        if kb and round_number == MAX_TOOL_ROUNDS:
            options["tool_choice"] = "none"  # enough research: answer now
        message = model.chat(messages, **options)
        calls = list(getattr(message, "tool_calls", None) or [])
        if not calls:
            reply.draft = valid_unicode((message.content or "").strip())
            return reply
        messages.append({"role": "assistant", "content": message.content or "",
                         "tool_calls": [{"id": c.id, "type": "function",
                                         "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                        for c in calls]})
        for call in calls:
            reply.tool_calls += 1
            messages.append({"role": "tool", "tool_call_id": call.id, "content": _run_tool(kb, call, reply)})
    raise UsageError("The model kept calling tools without answering; try another LOOP_MODEL.")


def _run_tool(kb: KnowledgeBase, call, reply: Reply) -> str:
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        return json.dumps({"error": "arguments were not valid JSON"})
    if call.function.name == "search_kb":
        hits = kb.search(str(arguments.get("query", "")), limit=5)
        return json.dumps([{"doc_id": h.doc_id, "title": h.title, "snippet": h.snippet} for h in hits], ensure_ascii=False)
    if call.function.name == "read_doc":
        doc_id = str(arguments.get("doc_id", ""))
        try:
            document = kb.read(doc_id, max_chars=DOC_CHARS)
        except KeyError:
            return json.dumps({"error": f"no document {doc_id!r}; use a doc_id from search_kb"})
        if doc_id not in reply.sources:
            reply.sources.append(doc_id)
        return json.dumps({"doc_id": document.doc_id, "title": document.title, "text": document.text}, ensure_ascii=False)
    return json.dumps({"error": f"unknown tool {call.function.name}"})


def draft_all(model: ModelClient, kb: KnowledgeBase | None, prompt: str, tickets: list[Ticket],
              concurrency: int = 4, on_done: Callable[[], None] = lambda: None) -> list[Reply]:
    """Draft every ticket with at most `concurrency` requests in flight; replies keep the tickets' order."""
    if kb:
        kb.refresh()

    def one(ticket: Ticket) -> Reply:
        try:
            return draft_reply(model, kb, prompt, ticket)
        finally:
            on_done()

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, tickets))


def replay(where: Settings | Workspace, trace_id: str, prompt: str, kb: KnowledgeBase | None) -> Reply:
    """Draft a logged trace's ticket again, with `prompt` (e.g. a candidate with proposed edits applied)."""
    workspace = Workspace.of(where)
    drafts, _ = read_drafts(workspace.workbook.read([schema.DRAFTS]).get(schema.DRAFTS))
    drafts = traces.restore(drafts, workspace.traces)
    found = next((d for d in drafts if d.trace_id == trace_id), None)
    if found is None:
        raise UsageError(f"No draft with trace_id {trace_id} in {workspace.settings.sheet}; copy it from the Drafts tab.")
    ticket = Ticket(found.ticket, thread=found.thread)
    return draft_reply(workspace.model, kb, prompt, ticket)


def draft_tickets(where: Settings | Workspace, tickets: str | Path | None = None, kb_folder: str | Path = "kb",
                  concurrency: int = 4, limit: int | None = None,
                  on_start: Callable[[int], None] = lambda total: None,
                  on_done: Callable[[], None] = lambda: None) -> list[str]:
    """`loop draft`: answer tickets (a file, or the Tickets tab) with the managed prompt and log the
    drafts with the documents they used; returns the trace ids."""
    workspace = Workspace.of(where)
    knowledge = KnowledgeBase(kb_folder)
    prompt = workspace.prompt.read()
    batch = find_tickets(workspace, tickets)[:limit]
    on_start(len(batch))
    replies = draft_all(workspace.model, knowledge, prompt, batch, concurrency, on_done=on_done)
    return traces.log_drafts([{"ticket": r.ticket.ticket, "ticket_id": r.ticket.ticket_id, "thread": r.ticket.thread,
                               "draft": r.draft, "kb_sources": r.sources} for r in replies], workspace)
