"""`loop status`: what is pending, read in one pass over the workbook (a second only to confirm that
rows a person deleted are gone), and what the store holds beside the sheet."""

from __future__ import annotations

import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from loop import schema
from loop.cell_values import window_start
from loop.config import DEFAULT_SHEET, Settings
from loop.improver.edits import APPLIED, PROPOSED, ROLLED_BACK
from loop.improver.edits import edit_rows, edit_titles
from loop.measure import side_by_side
from loop.measure.side_by_side import CanaryFigures
from loop.prompt_store import Version
from loop.reviews import Draft, SkippedRow, read_drafts
from loop.store.history import note_deletions
from loop.workspace import Workspace

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
    pending_drafts: int = 0  # logged, waiting in the store for the sheet
    archived_drafts: int = 0  # taken out of the sheet by `loop archive`, kept in the store
    deleted_drafts: int = 0  # their rows deleted from the sheet by a person, kept in the store
    store: str = ""  # its URL, password masked
    elsewhere: list = field(default_factory=list)  # other workbooks of the store with drafts waiting: Waiting
    canary: CanaryFigures | None = None  # the running canary (or the last one stopped), side by side
    sync_command: str = "loop sync"  # what delivers this workbook's pending drafts, run where status runs
    without_content: tuple[int, str] = (0, "")  # model call spans `loop serve` took without content, and when


@dataclass(frozen=True)
class Waiting:
    """Drafts the store holds for another workbook, and the command that delivers them."""

    where: str  # the workbook, as a person finds it from here
    pending: int
    command: str
    elsewhere: bool = False  # on another machine: the command is run there


def status(where: Settings | Workspace, since: str = "14d", now: datetime | None = None) -> Status:
    workspace = Workspace.of(where)
    start = window_start(since, now)
    workbook = workspace.workbook
    edit_tabs = edit_titles(workbook)
    tables = workbook.read([schema.DRAFTS, *edit_tabs])
    drafts, skipped = read_drafts(tables.get(schema.DRAFTS))
    result = Status(start, drafts, [d for d in drafts if d.created_at >= start], skipped, edit_tabs)
    store = workspace.prompt
    in_prompt = {v.label for v in store.lineage(with_canary=True)}
    for row in edit_rows({title: tables[title] for title in edit_tabs}):
        state = row.edit.status or "?"
        if state in (PROPOSED, ROLLED_BACK) and row.ticked:
            state = APPROVED
        elif state == APPLIED and row.edit.applied_version not in in_prompt:
            state = ROLLED_BACK  # its version was rolled back; the next apply or rollback marks the row
        result.edits[state] += 1
    result.prompt_exists = store.exists()
    result.version = store.current()
    result.hand_edited = store.hand_edited()
    shown = side_by_side.canary_of(store.records.canaries(), result.version.number if result.version else None)
    if shown is not None:
        result.canary = side_by_side.figures(shown, workspace.drafts(tables.get(schema.DRAFTS))[0])
    outbox = workspace.traces
    note_deletions(outbox, tables[schema.DRAFTS], workspace.read_drafts_tab)
    result.store = workspace.store.shown
    result.sync_command = sync_command(workspace)
    from loop.collect.receiver import WITHOUT_CONTENT

    result.without_content = workspace.store.counted(WITHOUT_CONTENT)
    for count in workspace.store.counts():
        if count.identity == outbox.identity:
            result.pending_drafts, result.archived_drafts = count.pending, count.archived
            result.deleted_drafts = count.deleted
        elif count.pending:
            place = workspace.place_of(workspace.store.stored(count.number))
            result.elsewhere.append(Waiting(_shown_path(place) if place else count.location, count.pending,
                                            sync_command(workspace, count.number), place is None))
    return result


def sync_command(workspace: Workspace, number: int | None = None) -> str:
    """The `loop sync` that delivers the drafts waiting for this workbook (or for the store's workbook
    `number`), run in this folder with this environment: it names the sheet and the store where they
    do not come from the environment, and another workbook by its number in the store, so it reaches
    the drafts whatever folder, link or host name they were logged with."""
    settings = workspace.settings
    env_sheet = os.environ.get("LOOP_SHEET") or DEFAULT_SHEET
    words = ["loop", "sync"]
    if number is not None:
        words += ["--workbook", str(number)]
    elif settings.sheet != env_sheet:
        words += ["--sheet", settings.sheet]
    env_store = os.environ.get("LOOP_STORE") or None
    if settings.store != env_store or (settings.store is None and number is not None and settings.sheet != env_sheet):
        database = workspace.store.db
        words += ["--store", str(database.path.absolute()) if database.path is not None else database.shown]
    return " ".join(shlex.quote(word) for word in words)


def _shown_path(place: str) -> str:
    """A path relative to the current folder when it is inside it, else as it is."""
    if not os.path.isabs(place):
        return place
    relative = os.path.relpath(place)
    return place if relative.startswith("..") else relative
