"""`loop archive --older-than 90d`: a Drafts tab kept small. Reviewed drafts created before the
cut-off leave the sheet in one write, once the store holds each with the review the sheet shows;
`loop report` and `loop improve --since` go on counting them from the store. Unreviewed drafts
are never archived."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loop import schema
from loop.cell_values import window_start
from loop.reviews import read_drafts
from loop.sheets import DeleteRows, WriteBatch
from loop.store import ARCHIVED, DELIVERED
from loop.store.history import record_reviews, review_of


@dataclass
class ArchiveReport:
    cutoff: datetime
    archived: int = 0
    left: int = 0
    unreviewed: int = 0
    in_store: int = 0
    mismatched: list[str] = field(default_factory=list)


def archive(workspace, older_than: str, now: datetime | None = None) -> ArchiveReport:
    cutoff = window_start(older_than, now)
    workbook = workspace.workbook
    workbook.ensure_writable()
    table = workbook.read([schema.DRAFTS]).get(schema.DRAFTS)
    drafts, _ = read_drafts(table)
    outbox = workspace.traces
    record_reviews(outbox, drafts)
    held = outbox.reviews()
    old = [d for d in drafts if d.created_at < cutoff]
    report = ArchiveReport(cutoff, unreviewed=sum(d.score is None for d in old))
    repeated = _repeated_ids(table)  # a row copied by hand: its copies are not all known to the store
    chosen = []
    for draft in (d for d in old if d.score is not None):
        stored = held.get(draft.trace_id)
        if stored and draft.trace_id not in repeated and all((stored.get(k) or None) == (v or None) for k, v in review_of(draft).items()):
            chosen.append(draft.trace_id)
        else:
            report.mismatched.append(draft.trace_id)
    if chosen:
        outbox.set_state(chosen, ARCHIVED)  # first, so a crash after the write still counts them archived
        try:
            workspace.write(WriteBatch(deletions=[DeleteRows(schema.DRAFTS, "trace_id", frozenset(chosen))]))
        except BaseException:
            outbox.set_state(chosen, DELIVERED, only_from=ARCHIVED)
            raise
    report.archived = len(chosen)
    report.left = len(drafts) - len(chosen)
    report.in_store = next((c.archived for c in workspace.store.counts() if c.identity == outbox.identity), 0)
    return report


def _repeated_ids(table) -> set[str]:
    column = table.column("trace_id")
    seen, repeated = set(), set()
    for row in table.rows:
        value = str(row[column]).strip() if column < len(row) and row[column] not in (None, "") else ""
        if value in seen:
            repeated.add(value)
        seen.add(value)
    return repeated
