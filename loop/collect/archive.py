"""`loop archive --older-than 90d`: a Drafts tab kept small. Reviewed drafts created before the
cut-off leave the sheet in one write, once the store holds each with the review and the text the
sheet shows; `loop report` and `loop improve --since` go on counting them from the store.
Unreviewed drafts are never archived.

A reviewer may change a row between archive's read and its write (a 👍 turned 👎, a comment added,
a ticket redacted). So the deletion carries what archive read of each row, and the backend deletes
a row only if it still shows that at the moment of the write; a row that changed stays, is read
again with its new review and text, and is tried once more (else the next run takes it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loop import schema
from loop.cell_values import as_text, cell_text, window_start
from loop.reviews import Draft, read_drafts
from loop.sheets import DeleteRows, WriteBatch
from loop.store import ARCHIVED, DELIVERED, FIELDS, REVIEW_FIELDS
from loop.store.history import record_reviews, review_of, trace_ids

# The cells of a row the store keeps: what the delete checks the row still shows.
KEPT = (*FIELDS, *REVIEW_FIELDS)
ATTEMPTS = 2  # a row changed during the write is read again and tried once more


@dataclass
class ArchiveReport:
    cutoff: datetime
    archived: int = 0
    left: int = 0
    unreviewed: int = 0
    in_store: int = 0
    mismatched: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # changed in the sheet during the write: kept there


@dataclass
class _Plan:
    chosen: set[str] = field(default_factory=set)
    expected: dict[str, dict[str, str]] = field(default_factory=dict)  # trace id → its cells, as read
    unreviewed: int = 0
    mismatched: list[str] = field(default_factory=list)


def archive(workspace, older_than: str, now: datetime | None = None) -> ArchiveReport:
    cutoff = window_start(older_than, now)
    workbook = workspace.workbook
    workbook.ensure_writable()
    outbox = workspace.traces
    report = ArchiveReport(cutoff)
    table = _drafts_tab(workbook)
    for _ in range(ATTEMPTS):
        plan = _plan(outbox, table, cutoff, workbook.cell_limit)
        report.unreviewed, report.mismatched, report.changed = plan.unreviewed, plan.mismatched, []
        if not plan.chosen:
            break
        chosen = sorted(plan.chosen)
        outbox.set_state(chosen, ARCHIVED)  # first, so a crash after the write still counts them archived
        try:
            workspace.write(WriteBatch(deletions=[DeleteRows(schema.DRAFTS, "trace_id", frozenset(chosen),
                                                             plan.expected, table.version)]))
        except BaseException:
            outbox.set_state(chosen, DELIVERED, only_from=ARCHIVED)
            raise
        table = _drafts_tab(workbook)
        report.changed = sorted(plan.chosen & trace_ids(table))  # a person changed them since the read
        outbox.set_state(report.changed, DELIVERED, only_from=ARCHIVED)
        report.archived += len(chosen) - len(report.changed)
        if not report.changed:
            break
    if report.changed:  # changed again during the second write: their newest review and text are kept
        _plan(outbox, table, cutoff, workbook.cell_limit)
    report.left = len(read_drafts(table)[0])
    report.in_store = next((c.archived for c in workspace.store.counts() if c.identity == outbox.identity), 0)
    return report


def _drafts_tab(workbook):
    return workbook.read([schema.DRAFTS]).get(schema.DRAFTS)


def _plan(outbox, table, cutoff: datetime, limit: int) -> _Plan:
    """Record the sheet's reviews and edited text in the store, then choose the old reviewed drafts the
    store holds exactly as the sheet shows them, each with the cells the delete must still find."""
    drafts, _ = read_drafts(table)
    record_reviews(outbox, drafts)
    old = [d for d in drafts if d.created_at < cutoff]
    plan = _Plan(unreviewed=sum(d.score is None for d in old))
    reviewed = [d for d in old if d.score is not None]
    present = [name for name in FIELDS if table.column(name) is not None]
    ids = {d.trace_id for d in reviewed}
    whole = outbox.whole(ids)
    edited = [edit for d in reviewed if (edit := _edited_text(d, whole.get(d.trace_id), present, limit))]
    if edited:
        outbox.record_text(edited)
        whole = outbox.whole(ids)
    held = outbox.reviews()
    repeated = _repeated_ids(table)  # a row copied by hand: its copies are not all known to the store
    rows = _rows_by_id(table)
    columns = {name: index for name in KEPT for index in [table.column(name)] if index is not None}
    for draft in reviewed:
        stored, record = held.get(draft.trace_id), whole.get(draft.trace_id, {})
        same_review = stored and all((stored.get(k) or None) == (v or None) for k, v in review_of(draft).items())
        same_text = all(_same(getattr(draft, name), record.get(name), limit) for name in present)
        if same_review and same_text and draft.trace_id not in repeated:
            plan.chosen.add(draft.trace_id)
            plan.expected[draft.trace_id] = _cells(columns, rows[draft.trace_id])
        else:
            plan.mismatched.append(draft.trace_id)
    return plan


def _edited_text(draft: Draft, record: dict | None, present: list[str], limit: int) -> dict | None:
    """The fields of `draft` whose text in the sheet is not the store's (as the sheet would show it):
    a person edited them there (a redacted ticket), and the sheet's text is what is kept."""
    if record is None:
        return None
    edited = {name: getattr(draft, name) for name in present if not _same(getattr(draft, name), record.get(name), limit)}
    return {"trace_id": draft.trace_id, **edited} if edited else None


def _same(shown: str, stored: str | None, limit: int) -> bool:
    """Whether the sheet's text is the stored text as a cell of `limit` characters shows it (cut, and
    with what XML cannot hold replaced)."""
    if shown == stored:
        return True
    stored = (stored or "").replace("\r\n", "\n")
    shown = shown.replace("\r\n", "\n")
    return shown in (as_text(stored), as_text(cell_text(stored, limit)))


def _cells(columns: dict[str, int], row: list) -> dict[str, str]:
    """The cells the store keeps of a row (`columns`: field → its index), as text; a date or time cell is
    left unchecked (the two ways a workbook is read give it in different forms)."""
    cells = {}
    for name, index in columns.items():
        value = row[index] if index < len(row) else None
        if value is None or isinstance(value, (str, bool, int, float)):
            cells[name] = as_text(value)
    return cells


def _rows_by_id(table) -> dict[str, list]:
    column = table.column("trace_id")
    return {as_text(row[column]): row for row in table.rows if column < len(row)}


def _repeated_ids(table) -> set[str]:
    column = table.column("trace_id")
    seen, repeated = set(), set()
    for row in table.rows:
        value = str(row[column]).strip() if column < len(row) and row[column] not in (None, "") else ""
        if value in seen:
            repeated.add(value)
        seen.add(value)
    return repeated
