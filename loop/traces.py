"""Logging drafts: `log_draft` / `loop log` keep every draft whole in a local trace archive first,
then append it to the Drafts tab.

The archive is a folder beside the workbook (`loop.traces/` for `loop.xlsx`; LOOP_TRACES moves it):
`traces.jsonl` holds one JSON line per draft, whole (a cell holds at most 32,767 characters in Excel,
50,000 in Google Sheets, and the improver restores cut fields from here), and `delivered.json` says
how much of it the sheet has. A draft is durable once it is in the archive. When the sheet cannot
take it yet (open in Excel, locked by another writer, Google unreachable) it waits as pending, and
the next command that writes, or `loop sync`, delivers every pending draft in order, exactly once:
a delivery that may have landed before a crash is checked against the sheet before it is repeated.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from . import files, schema
from .errors import RunFailure, UsageError, WorkbookBusy
from .reviews import Draft
from .sheets import Append, WriteBatch
from .values import TRUNCATION_MARKER, BadValue, lone_surrogate, parse_timestamp

log = logging.getLogger(__name__)

FIELDS = ("ticket", "draft", "ticket_id", "thread", "kb_sources", "prompt_version")
_CUT_SIGN = TRUNCATION_MARKER.split("{")[0]
# How long `loop log` waits for another writer before leaving its drafts pending.
LOG_WAIT_SECONDS = 5.0


@dataclass
class Pending:
    """The drafts not yet in the sheet: archive lines from byte `start` to `end`."""

    rows: list[dict] = field(default_factory=list)
    start: int = 0
    end: int = 0
    recheck: bool = False  # an earlier delivery of these rows may have landed


class TraceArchive:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / "traces.jsonl"
        self._state = self.folder / "delivered.json"

    def exists(self) -> bool:
        return self.path.exists()

    def add(self, rows: list[dict]) -> int:
        """Append drafts to the archive, durably: once this returns, they cannot be lost.
        Returns the archive's offset just past them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / ".lock"), timeout=60):
            if not self._state.exists():
                # an archive from before deliveries were tracked: its drafts were written to the sheet then
                self._mark(self.path.stat().st_size if self.path.exists() else 0)
            return files.append_json_lines(self.path, rows)

    def _mark(self, offset: int, inflight: int | None = None) -> None:
        """Record that the sheet has every draft before `offset`, and maybe those up to `inflight`."""
        files.write_text(self._state, json.dumps({"offset": offset, "inflight": inflight}))

    def _read_state(self) -> dict:
        try:
            return json.loads(self._state.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"offset": self.path.stat().st_size if self.path.exists() else 0, "inflight": None}

    def withdraw(self, trace_ids: list[str]) -> None:
        """Take back drafts that the sheet refused for good (a damaged workbook): they are never delivered."""
        with FileLock(str(self.folder / ".lock"), timeout=60):
            files.append_json_lines(self.path, [{"withdrawn": trace_ids}])

    def pending(self) -> Pending:
        state = self._read_state()
        records, end = files.read_json_lines(self.path, state["offset"])
        withdrawn = {trace_id for record in records for trace_id in record.get("withdrawn", [])}
        rows = [r for r in records if "trace_id" in r and r["trace_id"] not in withdrawn]
        return Pending(rows, state["offset"], end, recheck=state.get("inflight") is not None)

    @contextmanager
    def delivering(self, wait: float | None, done_at: int | None = None):
        """Held while pending drafts are read, written and marked delivered, so two writers never
        deliver one twice. Yields False instead when, while this waited, another writer delivered
        everything up to `done_at`: a writer whose drafts went out with another's write is done."""
        lock = FileLock(str(self.folder / ".deliver.lock"))
        deadline = time.monotonic() + (60 if wait is None else wait)
        while True:
            try:
                lock.acquire(timeout=0)
                break
            except Timeout:
                pass
            if done_at is not None and self._read_state()["offset"] >= done_at:
                yield False
                return
            if time.monotonic() >= deadline:
                raise WorkbookBusy("Another loop command is writing to the sheet; try again in a moment.")
            time.sleep(0.01)
        try:
            yield True
        finally:
            lock.release()

    def deliver(self, workbook, batch: WriteBatch | None = None, wait: float | None = None,
                fresh: frozenset[str] = frozenset(), done_at: int | None = None) -> int:
        """Write `batch` together with every pending draft; returns how many drafts were delivered.

        Drafts in `fresh` were logged by this very call, so they are not reported as having waited;
        with `done_at` (and nothing else to write) the call ends as soon as the sheet has the
        archive up to that offset, whoever wrote it."""
        batch = batch or WriteBatch()
        if not self.exists():
            workbook.write(batch, wait)
            return 0
        with self.delivering(wait, done_at if not batch else None) as holding:
            if not holding:
                return 0
            pending = self.pending()
            if pending.rows:
                appends = [Append(schema.DRAFTS, schema.DRAFT_HEADERS, sheet_row(row), key="trace_id")
                           for row in pending.rows]
                batch = replace(batch, appends=batch.appends + appends, recheck=batch.recheck or pending.recheck)
                self._mark(pending.start, inflight=pending.end)  # a crash from here on: look before repeating
            workbook.write(batch, wait)
            if pending.end > pending.start:
                self._mark(pending.end)
        waited = sum(row["trace_id"] not in fresh for row in pending.rows)
        if waited:
            log.info("Wrote %d pending draft%s to %s.", waited, "" if waited == 1 else "s", workbook.location)
        return len(pending.rows)

    def whole(self, trace_ids: set[str]) -> dict[str, dict]:
        """The archived records of `trace_ids`, as logged."""
        found = {}
        for record in files.read_json_lines(self.path)[0]:
            if record.get("trace_id") in trace_ids:
                found[record["trace_id"]] = record
        return found


def sheet_row(record: dict) -> dict:
    """An archived draft as a Drafts row: `created_at` a real date cell (the archive keeps ISO text)."""
    row = {key: record.get(key, "") for key in ("trace_id", "created_at", *FIELDS)}
    try:
        row["created_at"] = parse_timestamp(row["created_at"])
    except BadValue:
        pass  # an archive line written by hand: the sheet gets it as it is
    return row


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
        clean[key] = text
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
            return "\n".join(_message(item) for item in value)
        return ", ".join(str(item) for item in value)
    return str(value)


def _message(item) -> str:
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


def log_drafts(records: list[dict], settings=None, wait: bool = True) -> list[str]:
    """Log drafts; returns their new trace ids in order. They are in the archive when this returns and
    in the Drafts tab too unless the sheet could not take them now (then they wait as pending, with a
    warning). With `wait=False` the sheet write is left to the next command that writes, or `loop sync`."""
    from .workspace import Workspace

    workspace = Workspace.of(settings)
    records = [normalize(r) for r in records]
    if not records:
        return []
    left = workspace.workbook.rows_left(schema.DRAFTS)  # refusals that will not pass come before the archive
    if left is not None and left < len(records):
        raise UsageError(f"The {schema.DRAFTS} tab of {workspace.settings.sheet} is full; move older rows to another "
                         "workbook and log again. Nothing was logged.")
    version = workspace.prompt_version() if any(not r.get("prompt_version") for r in records) else ""
    created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [{"trace_id": str(uuid.uuid4()), "created_at": created_at, **r,
             "prompt_version": r.get("prompt_version") or version} for r in records]
    ids = [row["trace_id"] for row in rows]
    end = workspace.traces.add(rows)
    if wait:
        try:
            workspace.write(WriteBatch(), wait=LOG_WAIT_SECONDS, fresh=frozenset(ids), done_at=end)
        except (WorkbookBusy, RunFailure) as reason:
            log.warning("%s %s in %s and reach the sheet with the next command that writes, or `loop sync`.",
                        reason, "1 draft waits" if len(ids) == 1 else f"{len(ids)} drafts wait", workspace.traces.folder)
        except UsageError:
            workspace.traces.withdraw(ids)  # a refusal that will not pass by itself: nothing was logged
            raise
    return ids


def log_draft(ticket: str, draft: str, *, ticket_id: str = "", thread="", kb_sources="",
              prompt_version: str = "", settings=None, wait: bool = True) -> str:
    """Log one draft your agent wrote; returns its trace id. Configuration comes from LOOP_* variables."""
    record = {"ticket": ticket, "draft": draft, "ticket_id": ticket_id, "thread": thread,
              "kb_sources": kb_sources, "prompt_version": prompt_version}
    return log_drafts([record], settings, wait=wait)[0]


def restore(drafts: list[Draft], archive: TraceArchive) -> list[Draft]:
    """Drafts whose fields the sheet cut, made whole again from the archive when it has them."""
    cut = {d.trace_id for d in drafts if any(_CUT_SIGN in getattr(d, f) for f in ("ticket", "draft", "thread"))}
    if not cut:
        return drafts
    whole = archive.whole(cut)
    return [
        replace(d, **{f: whole[d.trace_id].get(f, getattr(d, f)) for f in ("ticket", "draft", "thread")})
        if d.trace_id in whole else d
        for d in drafts
    ]
