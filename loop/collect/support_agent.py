"""The reference support agent (`loop draft`): reads a ticket and its whole thread, checks the
knowledge base through tools, and drafts a reply with the managed prompt.

`draft_reply` takes the prompt text as an argument, so the same ticket can be drafted again with a
candidate prompt (`replay`): the way a proposed edit can be tried on the failures it cites, and on
past successes, before a reviewer sees it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from loop import schema
from loop.cell_values import normalize_header, valid_unicode
from loop.collect import traces
from loop.collect.knowledge_base import KnowledgeBase, knowledge_base
from loop.config import Settings
from loop.errors import RunFailure, UsageError
from loop.model import ModelClient
from loop.prompt_templates import render
from loop.reviews import read_drafts
from loop import serving
from loop.store.history import restore
from loop.workspace import Workspace

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


class DraftFailed(Exception):
    """This one ticket could not be drafted (the model never stopped calling tools, or answered with
    no text); the other tickets go on."""


@dataclass
class Drafted:
    """What `loop draft` did: the trace ids it logged, and the tickets that failed (and why)."""

    trace_ids: list[str] = field(default_factory=list)
    failed: list[tuple[Ticket, str]] = field(default_factory=list)

    def failure_text(self) -> str:
        """One line naming the tickets that were not drafted and why."""
        named = [f"ticket {t.ticket_id}" if t.ticket_id else f"the ticket {' '.join(t.ticket.split())[:40]!r}"
                 for t, _ in self.failed]
        listed = "; ".join(f"{name} ({reason})" for name, (_, reason) in zip(named[:5], self.failed))
        more = f"; and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
        return (f"{len(self.failed)} of the tickets failed and {'was' if len(self.failed) == 1 else 'were'} not "
                f"logged: {listed}{more}. Draft {'it' if len(self.failed) == 1 else 'them'} again, or try another "
                "LOOP_MODEL.")


def load_tickets(path: str | Path) -> list[Ticket]:
    """Tickets from a JSONL file (one object a line) or a CSV file with a header row, in UTF-8.

    A file in another encoding, a line that is not a ticket object or a ticket without text is a
    UsageError naming the file and the line (and, for the encoding, the one it most likely is)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"No tickets file at {path}; pass --tickets with a .jsonl or .csv file.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UsageError(f"{path} line {line} is not UTF-8 (byte 0x{data[error.start]:02X}); it looks like "
                         f"{likely_encoding(data)}. Save it as UTF-8 (Excel: CSV UTF-8) and run again.") from None
    if path.suffix.lower() == ".csv":
        records = _csv_records(path, text)
    else:
        records = _jsonl_records(path, text)
    tickets = []
    for line, record in records:
        fields = {}
        for name in ("ticket", "ticket_id", "thread"):
            value = record.get(name)
            if name == "thread" and isinstance(value, list):  # the thread as its messages, oldest first
                value = "\n".join(traces.message_line(m) for m in value)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
                raise UsageError(f"{path} line {line}: `{name}` is {type(value).__name__}, not text; "
                                 "give it as a string.")
            fields[name] = valid_unicode("" if value is None else str(value))
        if not fields["ticket"].strip():
            raise UsageError(f"{path} line {line}: the ticket has no `ticket` text.")
        tickets.append(Ticket(fields["ticket"].strip(), fields["ticket_id"], fields["thread"]))
    return tickets


def _csv_records(path: Path, text: str) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records = []
    try:
        for record in reader:
            cells = {normalize_header(k): v for k, v in record.items() if isinstance(k, str)}
            records.append((reader.line_num, {"ticket": cells.get("ticket"), "ticket_id": cells.get("ticketid"),
                                              "thread": cells.get("thread")}))
    except csv.Error as error:
        raise UsageError(f"{path} line {reader.line_num} is not CSV ({error}); fix that line and run again.") from None
    if reader.fieldnames is None or "ticket" not in {normalize_header(f) for f in reader.fieldnames}:
        raise UsageError(f"{path} line 1 has no `ticket` column; its header row names the columns.")
    return records


def _jsonl_records(path: Path, text: str) -> list[tuple[int, dict]]:
    records = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path} line {line} is not JSON ({error.msg}); one ticket object per line.") from None
        if not isinstance(record, dict):
            kind = "null" if record is None else type(record).__name__
            raise UsageError(f"{path} line {line} is a JSON {kind}, not a ticket object; one object a line, "
                             'like {"ticket": "…"}.')
        records.append((line, record))
    return records


# Which encoding a file that is not UTF-8 is in, when charset_normalizer's best matches allow it:
# the ones tickets exported from help desks and spreadsheets are usually in, most common first.
_USUAL_ENCODINGS = ["cp1252", "cp1251", "cp932", "shift_jis", "gb18030", "big5", "euc_kr", "cp1250", "latin_1"]


def likely_encoding(data: bytes) -> str:
    """The likely encoding of bytes that are not UTF-8, named for a person ("cp1252 (Windows Western)")."""
    try:
        from charset_normalizer import from_bytes

        matches = [m for m in from_bytes(data[:200_000]) if b"\x00" in data or not m.encoding.startswith("utf")]
    except Exception:  # noqa: BLE001 -- only a hint: any trouble guessing means no guess
        matches = []
    if not matches:
        return "a legacy encoding (not UTF-8)"
    best = min(m.chaos for m in matches)
    candidates = [name for m in matches if m.chaos <= best + 0.01 for name in [m.encoding, *m.could_be_from_charset]]
    name = next((n for n in _USUAL_ENCODINGS if n in candidates), candidates[0])
    if name in ("cp1252", "latin_1"):
        # cp1252 and Latin-1 differ only in 0x80-0x9F: without those bytes either reads the file
        return "cp1252 (Windows Western)" if any(0x80 <= b <= 0x9F for b in data) else "Latin-1 (ISO-8859-1) or cp1252"
    return name


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
    """One ticket through the tool-calling loop: search and read the docs, then answer.

    A malformed tool call gets an error back as its result, and the loop goes on; a model that is
    still calling tools after it was told to answer raises DraftFailed."""
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
        sent = getattr(message, "tool_calls", None) or []
        calls = [_ToolCall.of(c, index) for index, c in enumerate(sent if isinstance(sent, list) else [sent])]
        if not calls:
            reply.draft = valid_unicode((message.content if isinstance(message.content, str) else "").strip())
            if not reply.draft:
                raise DraftFailed("the model answered with no text")
            return reply
        messages.append({"role": "assistant", "content": message.content if isinstance(message.content, str) else "",
                         "tool_calls": [{"id": c.id, "type": "function",
                                         "function": {"name": c.name, "arguments": c.arguments}} for c in calls]})
        for call in calls:
            reply.tool_calls += 1
            messages.append({"role": "tool", "tool_call_id": call.id, "content": _run_tool(kb, call, reply)})
    raise DraftFailed(f"the model kept calling tools after {MAX_TOOL_ROUNDS} rounds without answering")


@dataclass(frozen=True)
class _ToolCall:
    """A tool call as the model sent it, made safe to send back: a text id, name and arguments."""

    id: str
    name: str
    arguments: str

    @classmethod
    def of(cls, call, index: int) -> _ToolCall:
        function = getattr(call, "function", None)
        name, arguments = getattr(function, "name", None), getattr(function, "arguments", None)
        if not isinstance(arguments, str):  # a server that sends the arguments as JSON, not as text
            arguments = json.dumps(arguments, ensure_ascii=False)
        return cls(str(getattr(call, "id", None) or f"call_{index}"), name if isinstance(name, str) else "",
                   valid_unicode(arguments))


def _tool_error(text: str) -> str:
    return json.dumps({"error": text}, ensure_ascii=False)


def _run_tool(kb: KnowledgeBase | None, call: _ToolCall, reply: Reply) -> str:
    """The tool's result for the model, or an error it can act on: never an exception."""
    if kb is None:
        return _tool_error("there is no knowledge base to search: answer from the ticket")
    if call.name not in ("search_kb", "read_doc"):
        return _tool_error(f"unknown tool {call.name[:80]!r}; the tools are search_kb and read_doc")
    field_name = "query" if call.name == "search_kb" else "doc_id"
    try:
        arguments = json.loads(call.arguments or "{}")
    except (json.JSONDecodeError, RecursionError):
        arguments = None
    value = arguments.get(field_name) if isinstance(arguments, dict) else None
    if not isinstance(value, str):
        return _tool_error(f'{call.name} takes a JSON object like {{"{field_name}": "…"}}; the arguments were '
                           f"{call.arguments[:200]!r}")
    value = valid_unicode(value)  # "\ud800" in JSON is a lone surrogate, which SQLite cannot take
    if call.name == "search_kb":
        hits = kb.search(value, limit=5)
        return json.dumps([{"doc_id": h.doc_id, "title": h.title, "snippet": h.snippet} for h in hits], ensure_ascii=False)
    try:
        document = kb.read(value, max_chars=DOC_CHARS)
    except KeyError:
        return _tool_error(f"no document {value[:200]!r}; use a doc_id from search_kb")
    if value not in reply.sources:
        reply.sources.append(value)
    return json.dumps({"doc_id": document.doc_id, "title": document.title, "text": document.text}, ensure_ascii=False)


def draft_all(model: ModelClient, kb: KnowledgeBase | None, prompt: str | Callable[[Ticket], str],
              tickets: list[Ticket], concurrency: int = 4,
              on_done: Callable[[], None] = lambda: None) -> list[Reply | DraftFailed]:
    """Draft every ticket with at most `concurrency` requests in flight, in the tickets' order: a
    Reply for each, or the DraftFailed that says why that ticket has none. `prompt` is one text, or
    the text for each ticket (a canary serves some tickets another version). A model that stays
    unreachable (RunFailure) or refuses the requests (UsageError) still ends the run."""
    if kb:
        kb.refresh()

    def one(ticket: Ticket) -> Reply | DraftFailed:
        try:
            return draft_reply(model, kb, prompt(ticket) if callable(prompt) else prompt, ticket)
        except DraftFailed as failure:
            return failure
        finally:
            on_done()

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, tickets))


def replay(where: Settings | Workspace, trace_id: str, prompt: str, kb: KnowledgeBase | None) -> Reply:
    """Draft a logged trace's ticket again, with `prompt` (e.g. a candidate with proposed edits applied)."""
    workspace = Workspace.of(where)
    drafts, _ = read_drafts(workspace.workbook.read([schema.DRAFTS]).get(schema.DRAFTS))
    drafts = restore(drafts, workspace.traces)
    found = next((d for d in drafts if d.trace_id == trace_id), None)
    if found is None:
        raise UsageError(f"No draft with trace_id {trace_id} in {workspace.settings.sheet}; copy it from the Drafts tab.")
    ticket = Ticket(found.ticket, found.ticket_id, found.thread)
    try:
        return draft_reply(workspace.model, kb, prompt, ticket)
    except DraftFailed as failure:
        raise RunFailure(f"{trace_id} was not drafted: {failure}; try again or another LOOP_MODEL.") from None


def bundled_kb(settings: Settings, kb_folder: str | Path | None = None) -> KnowledgeBase | None:
    """The knowledge base a command drafts with: `kb_folder` when given (`--kb`: it must exist), else
    LOOP_KB or `kb/`, by the one rule of `knowledge_base.knowledge_base`."""
    if kb_folder is not None:
        return knowledge_base(kb_folder, named=True)
    return knowledge_base(settings.kb, settings.kb_named)


def draft_tickets(where: Settings | Workspace, tickets: str | Path | None = None, kb_folder: str | Path | None = None,
                  concurrency: int = 4, limit: int | None = None,
                  on_start: Callable[[int], None] = lambda total: None,
                  on_done: Callable[[], None] = lambda: None) -> Drafted:
    """`loop draft`: answer tickets (a file, or the Tickets tab) with the managed prompt and log the
    drafts with the documents they used. A ticket that fails is left out and named; the others are
    logged all the same. The knowledge base is `kb_folder` (which must exist), else LOOP_KB or `kb/`
    by `knowledge_base.knowledge_base`'s rule."""
    workspace = Workspace.of(where)
    knowledge = bundled_kb(workspace.settings, kb_folder)
    if workspace.prompt.exists():
        workspace.prompt.sync()  # a hand edit of the file is recorded before anything is served
    batch = find_tickets(workspace, tickets)[:limit]
    served = [serving.prompt(ticket.ticket_id or None, workspace.settings) for ticket in batch]
    texts = {id(ticket): p.text for ticket, p in zip(batch, served)}
    on_start(len(batch))
    results = draft_all(workspace.model, knowledge, lambda ticket: texts[id(ticket)], batch, concurrency,
                        on_done=on_done)
    done = [(r, p) for r, p in zip(results, served) if isinstance(r, Reply)]
    drafted = Drafted(failed=[(ticket, str(r)) for ticket, r in zip(batch, results) if isinstance(r, DraftFailed)])
    drafted.trace_ids = traces.log_drafts([{"ticket": r.ticket.ticket, "ticket_id": r.ticket.ticket_id,
                                            "thread": r.ticket.thread, "draft": r.draft, "kb_sources": r.sources,
                                            "prompt_version": p.version, "arm": p.arm}
                                           for r, p in done], workspace)
    return drafted
