"""`loop status`: what is pending, read in one pass over the workbook."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import schema
from .config import Settings
from .edits import PROPOSED
from .errors import UsageError
from .prompt_store import PromptStore, Version
from .reviews import Draft, SkippedRow, read_drafts
from .sheets import open_workbook
from .values import BadValue, as_text, is_ticked, parse_since

APPROVED = "approved, not yet applied"


@dataclass
class Status:
    since: datetime
    drafts: list[Draft]
    recent: list[Draft]
    skipped: list[SkippedRow]
    edit_tabs: list[str]
    edits: Counter = field(default_factory=Counter)
    version: Version | None = None
    hand_edited: bool = False
    prompt_exists: bool = True


def status(settings: Settings, since: str = "14d", now: datetime | None = None) -> Status:
    try:
        start = parse_since(since, now or datetime.now(timezone.utc))
    except BadValue as problem:
        raise UsageError(str(problem)) from None
    workbook = open_workbook(settings.sheet, credentials=settings.credentials)
    edit_tabs = [t for t in workbook.titles() if t.startswith(schema.EDITS_PREFIX)]
    tables = workbook.read([schema.DRAFTS, *edit_tabs])
    drafts, skipped = read_drafts(tables.get(schema.DRAFTS))
    result = Status(start, drafts, [d for d in drafts if d.created_at >= start], skipped, edit_tabs)
    for title in edit_tabs:
        for _, record in tables[title].records():
            state = as_text(record.get("status")).lower() or "?"
            if state == PROPOSED and is_ticked(record.get("approve")):
                state = APPROVED
            result.edits[state] += 1
    store = PromptStore(settings.prompt)
    result.prompt_exists = settings.prompt.exists()
    result.version = store.current()
    if result.prompt_exists and result.version:
        result.hand_edited = store.read() != store.text_of(result.version.number)
    return result
