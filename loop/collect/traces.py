"""Logging drafts: `log_draft` / `loop log` commit every draft whole to the store (CONTRACT §7a),
then deliver it to the Drafts tab.

A draft is logged when its row is committed, in one transaction with the rest of its call's drafts:
the trace id is returned (printed) if and only if that commit happened. Every check that can refuse
(bad input, a Drafts tab that cannot be found or written, a store that cannot be written) comes
before it, so a refusal keeps nothing. After it nothing fails: a sheet that cannot take the drafts
now (open in Excel, locked, unreachable) leaves them pending, with one warning, and the next
command that writes, `loop sync` or a running `loop sync --watch` delivers them, once and in order.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path

from loop import schema
from loop.cell_values import REPLACEMENT, lone_surrogate
from loop.errors import LoopError, RunFailure, UsageError, WorkbookBusy

log = logging.getLogger(__name__)

FIELDS = ("ticket", "draft", "ticket_id", "thread", "kb_sources", "prompt_version", "arm")
# How long `loop log` may take to deliver its drafts, every wait and request included, before leaving
# them pending.
LOG_WAIT_SECONDS = 5.0


def normalize(record: dict, line: int | None = None) -> dict:
    """A draft record with text fields, or a UsageError naming what is wrong and where."""
    where = f"line {line}: " if line else ""
    if not isinstance(record, dict):
        raise UsageError(f"{where}expected a JSON object with ticket and draft.")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise UsageError(f"{where}unknown field(s) {', '.join(unknown)}; use {', '.join(FIELDS)}.")
    clean = {}
    for key, value in record.items():
        text = _as_field(key, value)
        position = lone_surrogate(text)
        if position is not None:
            raise UsageError(f"{where}{key} holds a lone surrogate (\\u{ord(text[position]):04x}) at character "
                             f"{position}, which no file can store; send valid UTF-8 text.")
        # PostgreSQL's text cannot hold a NUL: on both stores it becomes the mark the sheet shows for it
        clean[key] = text.replace("\x00", REPLACEMENT)
    if clean.get("arm", "") not in ("", "current", "canary"):
        raise UsageError(f"{where}arm {clean['arm']!r} is neither current nor canary; send what loop.prompt gave.")
    for required in ("ticket", "draft"):
        if not clean.get(required, "").strip():
            raise UsageError(f"{where}{required} is missing or empty; every draft needs a ticket and a draft.")
    return clean


def _as_field(key: str, value) -> str:
    """A field as text: a thread given as a list is one message a line, other lists are comma-separated."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        if key == "thread":
            return "\n".join(message_line(item) for item in value)
        return ", ".join(str(item) for item in value)
    return str(value)


def message_line(item) -> str:
    """One message of a thread given as a list: `Customer: text` from {"role", "content"}, or the text."""
    if isinstance(item, dict):
        who = item.get("role") or item.get("author") or item.get("from") or ""
        text = item.get("content") or item.get("text") or item.get("body") or ""
        return f"{str(who).capitalize()}: {text}" if who else str(text)
    return str(item)


def read_json_lines(lines) -> list[dict]:
    """Draft records from JSON objects, one a line; every line is checked before anything is written."""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(normalize(json.loads(line), number))
        except json.JSONDecodeError as error:
            raise UsageError(f"line {number} is not JSON ({error.msg}); send one object per line.") from None
    return records


def log_drafts(records: list[dict], settings=None, wait: bool = True, on_commit=None) -> list[str]:
    """Log drafts; returns their new trace ids in order. They are committed to the store when this
    returns, and in the Drafts tab too unless the sheet could not take them within LOG_WAIT_SECONDS
    (then they wait as pending, with a warning). With `wait=False` the sheet is not touched: the next
    command that writes, `loop sync` or `loop sync --watch` delivers them.

    `on_commit(ids)` is called the moment the commit returns (`loop log` prints the ids there); run in
    the main thread, the commit and that call are one step that SIGTERM, SIGINT or SIGHUP cannot split."""
    from loop.workspace import Workspace

    started = time.monotonic()
    workspace = Workspace.of(settings)
    records = [normalize(r) for r in records]
    if not records:
        return []
    check_deliverable(workspace)
    if wait:
        _check_sheet(workspace, len(records), started + LOG_WAIT_SECONDS)
    created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [{"trace_id": str(uuid.uuid4()), "created_at": created_at, **r, **_prompt_of(r, workspace.settings)}
            for r in records]
    ids = [row["trace_id"] for row in rows]
    outbox = workspace.traces
    with _uninterrupted():
        outbox.add(rows)  # the commit point: from here on the drafts are logged, whatever happens
        if on_commit is not None:
            on_commit(ids)
    if wait:
        left = max(0.0, started + LOG_WAIT_SECONDS - time.monotonic())
        try:
            workspace.write(wait=left, fresh=frozenset(ids), mine=frozenset(ids))
            if not outbox.all_delivered(ids):
                raise WorkbookBusy(f"The sheet could not take the drafts within {LOG_WAIT_SECONDS:g} s.")
        except (LoopError, OSError) as reason:
            waits = "1 draft waits" if len(ids) == 1 else f"{len(ids)} drafts wait"
            log.warning("%s %s in the store (%s) and reach%s the sheet with the next command that writes, or "
                        "`loop sync`.", _reason(reason), waits, workspace.store.shown, "es" if len(ids) == 1 else "")
    return ids


def log_traced(rows: list[dict], settings=None) -> tuple[list[str], list[str]]:
    """Commit drafts that came from a tracing tool, each with its own trace id (derived from its span)
    and time: one the store already holds is left as it is, so a span sent or imported twice is one
    draft. Returns the trace ids kept and, for each row refused, why. Delivery is left to the caller."""
    from loop.store import PENDING
    from loop.workspace import Workspace

    workspace = Workspace.of(settings)
    check_deliverable(workspace)
    kept, refused = [], []
    for row in rows:
        try:
            fields = normalize({key: row[key] for key in FIELDS if row.get(key)})
        except UsageError as error:
            refused.append(f"{row.get('origin_id') or row['trace_id']}: {error}")
            continue
        kept.append({**row, **fields, **_prompt_of(fields, workspace.settings)})
    if kept:
        workspace.traces.add_many([(kept, PENDING)], skip_known=True)
    return [row["trace_id"] for row in kept], refused


def _prompt_of(record: dict, settings) -> dict:
    """The version a draft is credited to: the one its caller says it was written with (`given`), else
    the one `loop.prompt` serves its ticket now (`served`); never the prompt file, and never its lock."""
    if record.get("prompt_version"):
        return {"prompt_version": record["prompt_version"], "prompt_arm": record.get("arm", ""),
                "prompt_given": "given"}
    from loop.serving import prompt

    try:
        served = prompt(record.get("ticket_id") or None, settings)
    except UsageError:  # nothing can be served: no version is known anywhere
        return {"prompt_version": "", "prompt_arm": "", "prompt_given": ""}
    return {"prompt_version": served.version, "prompt_arm": served.arm, "prompt_given": "served"}


@contextmanager
def _uninterrupted():
    """Hold back SIGTERM, SIGINT and SIGHUP (in this thread) until the block ends: a process told to stop
    either committed nothing, or committed the drafts and gave out their ids."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def check_deliverable(workspace) -> None:
    """Refuse, before anything is committed, a sheet no delivery could ever reach: one that is neither a
    Google Sheet nor an .xlsx or .xlsm path, or a path in a folder that does not exist. Only the name
    and its folder are looked at: `log_draft(wait=False)` never opens the workbook."""
    sheet = workspace.settings.sheet
    setting = f"LOOP_SHEET (or --sheet) {sheet!r}"
    if workspace.google_key:  # a URL that is not a Google Sheet's is refused there
        return
    path = Path(sheet)
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        raise UsageError(f"{setting} is neither an .xlsx or .xlsm workbook nor a Google Sheets URL or key; fix it "
                         "(e.g. loop.xlsx). Nothing was logged.")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{setting} is in a folder that does not exist ({folder}); create it or fix the setting. "
                         "Nothing was logged.")
    if path.is_dir():
        raise UsageError(f"{setting} is a folder, not a workbook; point it at an .xlsx file. Nothing was logged.")


def _reason(error: Exception) -> str:
    text = str(error) if isinstance(error, LoopError) else f"{error.strerror or error} ({error.filename or 'a file'})."
    return text if text.endswith((".", "!", "?")) else text + "."


def _check_sheet(workspace, count: int, deadline: float) -> None:
    """Refusals that will not pass by themselves, before anything is committed: a workbook that is
    missing or damaged, a Drafts tab under another capitalisation, a full tab. A sheet that cannot be
    reached now (by `deadline`, time.monotonic()) is no refusal: the drafts wait for it."""
    try:
        workbook = workspace.workbook
        limit = getattr(workbook, "time_limit", None)  # a Google Sheet: its requests end by the deadline
        with limit(max(0.0, deadline - time.monotonic())) if limit else nullcontext():
            titles = workbook.titles()
    except (WorkbookBusy, RunFailure):
        return
    if schema.DRAFTS not in titles:
        near = [t for t in titles if t.strip().casefold() == schema.DRAFTS.casefold()]
        if near:
            raise UsageError(f"The workbook's drafts tab is named {near[0]!r}; rename it {schema.DRAFTS!r} and log "
                             "again. Nothing was logged.")
    if hasattr(workbook, "ensure_readable"):  # a local workbook: the write's own checks of its Drafts part
        workbook.ensure_readable(schema.DRAFTS, schema.DRAFT_HEADERS)
    workspace.traces.check_workbook_id(workbook)  # another project's workbook: its drafts could never arrive
    left = workbook.rows_left(schema.DRAFTS)
    if left is not None and left < count:
        raise UsageError(f"The {schema.DRAFTS} tab of {workspace.settings.sheet} is full; take older drafts out with "
                         "`loop archive --older-than 90d` and log again. Nothing was logged.")


def log_draft(ticket: str, draft: str, *, ticket_id: str = "", thread="", kb_sources="",
              prompt_version: str = "", prompt=None, settings=None, wait: bool = True) -> str:
    """Log one draft your agent wrote; returns its trace id. Configuration comes from LOOP_* variables.

    `prompt`: what `loop.prompt` gave the agent for this draft; its version and arm are recorded."""
    record = {"ticket": ticket, "draft": draft, "ticket_id": ticket_id, "thread": thread,
              "kb_sources": kb_sources, "prompt_version": prompt_version}
    if prompt is not None:
        record.update(prompt_version=prompt.version, arm=prompt.arm)
    return log_drafts([record], settings, wait=wait)[0]


