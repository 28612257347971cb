"""Logging drafts: `log_draft` / `loop log` append Drafts rows, and keep every trace whole in a
local archive, since a spreadsheet cell holds at most 32,767 (Excel) or 50,000 (Google) characters.

The archive is a folder beside the workbook (`loop.traces/` for `loop.xlsx`; set LOOP_TRACES to
move it) holding `traces.jsonl`, one JSON line per trace. The improver reads it, when present, to
restore fields the sheet had to cut.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from . import schema
from .config import Settings, resolve
from .errors import UsageError
from .prompt_store import PromptStore
from .reviews import Draft
from .sheets import Append, WriteBatch, is_google, open_workbook
from .values import TRUNCATION_MARKER

FIELDS = ("ticket", "draft", "ticket_id", "thread", "kb_sources", "prompt_version")
_CUT_SIGN = TRUNCATION_MARKER.split("{")[0]


def traces_dir(settings: Settings) -> Path:
    configured = os.environ.get("LOOP_TRACES")
    if configured:
        return Path(configured)
    if is_google(settings.sheet):
        return Path("loop.traces")
    sheet = Path(settings.sheet)
    return sheet.with_name(sheet.stem + ".traces")


def current_version(settings: Settings) -> str:
    """The managed prompt's version label, recording a hand edit first if there is one."""
    store = PromptStore(settings.prompt)
    if not settings.prompt.exists():
        return ""
    with store.lock():
        return store.sync().label


def normalize(record: dict, line: int | None = None) -> dict:
    """A draft record with text fields, or a UsageError naming what is wrong and where."""
    where = f"line {line}: " if line else ""
    if not isinstance(record, dict):
        raise UsageError(f"{where}expected a JSON object with ticket and draft.")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise UsageError(f"{where}unknown field(s) {', '.join(unknown)}; use {', '.join(FIELDS)}.")
    for required in ("ticket", "draft"):
        if not str(record.get(required) or "").strip():
            raise UsageError(f"{where}{required} is missing or empty; every draft needs a ticket and a draft.")
    clean = {}
    for key, value in record.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        clean[key] = "" if value is None else str(value)
    return clean


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


def log_drafts(records: list[dict], settings: Settings | None = None) -> list[str]:
    """Append one Drafts row per record, in one write; returns the new trace ids in order."""
    settings = settings or resolve()
    records = [normalize(r) for r in records]
    if not records:
        return []
    workbook = open_workbook(settings.sheet, credentials=settings.credentials)
    workbook.ensure_writable()
    version = current_version(settings) if any(not r.get("prompt_version") for r in records) else ""
    created_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [{"trace_id": str(uuid.uuid4()), "created_at": created_at, **r,
             "prompt_version": r.get("prompt_version") or version} for r in records]
    archive(rows, traces_dir(settings))
    workbook.write(WriteBatch(appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, row) for row in rows]))
    return [row["trace_id"] for row in rows]


def log_draft(ticket: str, draft: str, *, ticket_id: str = "", thread: str = "", kb_sources="",
              prompt_version: str = "", settings: Settings | None = None) -> str:
    """Log one draft your agent wrote; returns its trace id. Configuration comes from LOOP_* variables."""
    record = {"ticket": ticket, "draft": draft, "ticket_id": ticket_id, "thread": thread,
              "kb_sources": kb_sources, "prompt_version": prompt_version}
    return log_drafts([record], settings)[0]


def archive(rows: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    with FileLock(str(folder / ".lock"), timeout=60):
        with open(folder / "traces.jsonl", "a", encoding="utf-8") as stream:
            stream.write(lines)
            stream.flush()
            os.fsync(stream.fileno())


def restore(drafts: list[Draft], folder: Path) -> list[Draft]:
    """Drafts whose fields the sheet cut, made whole again from the archive when it has them."""
    cut = {d.trace_id for d in drafts if any(_CUT_SIGN in getattr(d, f) for f in ("ticket", "draft", "thread"))}
    path = folder / "traces.jsonl"
    if not cut or not path.exists():
        return drafts
    whole = {}
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("trace_id") in cut:
                whole[record["trace_id"]] = record
    return [
        replace(d, **{f: whole[d.trace_id].get(f, getattr(d, f)) for f in ("ticket", "draft", "thread")})
        if d.trace_id in whole else d
        for d in drafts
    ]
