"""Reviews kept beyond the sheet: each command that reads the Drafts tab to measure or improve
records the reviews it read in the store, and gets back the drafts `loop archive` took out of the
sheet, so history outlives the sheet's rows.

The sheet is where people work: a delivered draft whose row a person deleted is out of the figures.
The store keeps it as `deleted` (`loop sync --restore-deleted` puts it back), and a row that
reappears in the sheet (an undo, a paste) counts again."""

from __future__ import annotations

from loop.cell_values import TRUNCATION_MARKER, BadValue, as_text, parse_timestamp
from loop.reviews import Draft
from loop.store import ARCHIVED, DELETED, DELIVERED, REVIEW_FIELDS, WorkbookStore, utc_text, with_fields


def review_of(draft: Draft) -> dict:
    return {name: getattr(draft, name) for name in REVIEW_FIELDS}


def record_reviews(outbox: WorkbookStore, drafts: list[Draft]) -> dict[str, dict]:
    """Record the sheet's reviews in the store (adopting rows it did not hold); returns what it held before."""
    stored = outbox.reviews()
    changed, adopted = [], []
    for draft in drafts:
        review = review_of(draft)
        held = stored.get(draft.trace_id)
        if held is None:
            adopted.append({"trace_id": draft.trace_id, "created_at": utc_text(draft.created_at), "ticket": draft.ticket,
                            "draft": draft.draft, "ticket_id": draft.ticket_id, "thread": draft.thread,
                            "kb_sources": draft.kb_sources, "prompt_version": draft.prompt_version, **review})
        elif any((held.get(name) or None) != (value or None) for name, value in review.items()):
            changed.append({"trace_id": draft.trace_id, **review})
    outbox.record(changed, adopted)
    return stored


def with_history(outbox: WorkbookStore, drafts: list[Draft], table=None, read_again=None) -> list[Draft]:
    """The sheet's drafts, made whole, followed by the drafts of this workbook only the store still holds
    (archived; not those a person deleted from `table`, the whole Drafts tab they were read from)."""
    stored = record_reviews(outbox, drafts)
    deleted = note_deletions(outbox, table, read_again) if table is not None else set()
    drafts = restore(drafts, outbox)
    shown = {d.trace_id for d in drafts}
    gone = {t for t, held in stored.items()
            if t not in shown and t not in deleted and held["state"] in (DELIVERED, ARCHIVED)}
    if not gone:
        return drafts
    whole = outbox.whole(gone)
    return drafts + sorted((d for d in (_draft(stored[t], whole.get(t, {})) for t in gone) if d is not None),
                           key=lambda d: d.created_at)


def note_deletions(outbox: WorkbookStore, table, read_again=None) -> set[str]:
    """Mark `deleted` the drafts the store holds as delivered whose trace id the whole Drafts tab
    (`table`, every row, readable or not) no longer holds, and mark delivered again the deleted ones it
    holds; returns those newly deleted. A draft pending, sent or archived is never counted deleted.
    Before marking any, the tab is read again (`read_again`): a draft delivered by another process
    while `table` was read is in the sheet by then. Without that second look, or without a trace_id
    column in either read, nothing is marked."""
    if table.column("trace_id") is None:
        return set()
    present = trace_ids(table)
    back = sorted(outbox.in_state(DELETED) & present)
    if back:
        outbox.set_state(back, DELIVERED, only_from=DELETED)
    missing = outbox.in_state(DELIVERED) - present
    if not missing or read_again is None:
        return set()
    again = read_again()
    if again is None or again.column("trace_id") is None:
        return set()
    missing -= trace_ids(again)
    outbox.set_state(sorted(missing), DELETED, only_from=DELIVERED)
    return missing


def trace_ids(table) -> set[str]:
    """Every trace id the tab holds, in rows that can be read as drafts or not."""
    column = table.column("trace_id")
    if column is None:
        return set()
    return {as_text(row[column]) for row in table.rows if column < len(row)} - {""}


def _draft(held: dict, record: dict) -> Draft | None:
    try:
        created_at = parse_timestamp(held["created_at"])
    except BadValue:
        return None
    fields = {name: held.get(name) or "" for name in REVIEW_FIELDS}
    fields["score"], fields["judge_score"] = held.get("score") or None, held.get("judge_score") or None
    draft = Draft(row=0, trace_id=held["trace_id"], created_at=created_at, ticket="", draft="",
                  kb_sources=record.get("kb_sources") or "", prompt_version=record.get("prompt_version") or "",
                  ticket_id=record.get("ticket_id") or "", **fields)
    return with_fields(draft, record)


_CUT_SIGN = TRUNCATION_MARKER.split("{")[0]


def restore(drafts: list[Draft], outbox) -> list[Draft]:
    """Drafts whose fields the sheet cut, made whole again from the store when it has them."""
    cut = {d.trace_id for d in drafts if any(_CUT_SIGN in getattr(d, f) for f in ("ticket", "draft", "thread"))}
    if not cut:
        return drafts
    whole = outbox.whole(cut)
    return [with_fields(d, whole[d.trace_id]) if d.trace_id in whole else d for d in drafts]
