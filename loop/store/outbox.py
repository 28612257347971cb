"""Delivery: the drafts waiting in the store reach their workbook once and in the order they were
logged, with whatever else a command writes, in one write.

Only one process delivers to a workbook at a time (`Database.delivery_lock`). Before the write the
drafts it carries are marked `sent`, committed; after it, `delivered`. A crash in between leaves
them `sent`, and the next delivery asks the sheet which of them it already has (by trace id)
before writing the rest, so nothing is doubled or lost.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from loop import schema
from loop.cell_values import BadValue, parse_timestamp
from loop.errors import WorkbookBusy
from loop.sheets import Append, WriteBatch
from loop.store import DELIVERED, PENDING, REVIEW_FIELDS, SENT, WorkbookStore

log = logging.getLogger("loop.store")
DEFAULT_WAIT = 60.0


def sheet_row(record: dict) -> dict:
    """A stored draft as a Drafts row: `created_at` a real date cell (the store keeps ISO text)."""
    row = {key: record.get(key) or "" for key in ("trace_id", "created_at", "ticket_id", "ticket", "thread", "draft",
                                                   "kb_sources", "prompt_version")}
    try:
        row["created_at"] = parse_timestamp(row["created_at"])
    except BadValue:
        pass  # imported from an old archive as it was: the sheet gets it as it is
    marks = {"up": "👍", "down": "👎"}
    row.update({key: marks.get(value, value) if key in ("score", "judge_score") else value
                for key in REVIEW_FIELDS for value in [record.get(key)] if value})  # a restored draft's review
    return row


def deliver(outbox: WorkbookStore, workbook, batch: WriteBatch | None = None, wait: float | None = None,
            fresh: frozenset[str] = frozenset(), mine: frozenset[str] = frozenset()) -> int:
    """Write `batch` together with the drafts waiting for `workbook`; returns how many were delivered.

    Drafts in `fresh` were logged by this very call, so they are not reported as having waited. With
    `mine` (and nothing else to write) the call ends as soon as those drafts are delivered, whoever
    delivered them: a logger whose drafts went out with another's write is done."""
    batch = batch or WriteBatch()
    wait = DEFAULT_WAIT if wait is None else wait
    done = (lambda: outbox.all_delivered(mine)) if mine and not batch else (lambda: False)
    with outbox.db.delivery_lock(outbox.id, wait, done) as holding:
        if not holding:
            return 0
        pending = outbox.pending()
        if pending:
            appends = [Append(schema.DRAFTS, schema.DRAFT_HEADERS, sheet_row(row), key="trace_id",
                              lines=schema.draft_lines(sheet_row(row))) for row in pending]
            batch = replace(batch, appends=batch.appends + appends,
                            recheck=batch.recheck or any(row["state"] == SENT for row in pending),
                            workbook_id=outbox.workbook_id_for(workbook))  # refuses another project's workbook
            outbox.mark(pending, SENT)
        try:
            workbook.write(batch, wait)
        except WorkbookBusy:  # refused before anything was written: they wait as they did
            outbox.mark([row for row in pending if row["state"] == PENDING], PENDING)
            raise
        if pending:
            outbox.mark(pending, DELIVERED)
    waited = sum(row["trace_id"] not in fresh for row in pending)
    if waited:
        log.info("Wrote %d pending draft%s to %s.", waited, "" if waited == 1 else "s", workbook.location)
    return len(pending)


def sync(workspace) -> int:
    """Deliver every draft waiting for the workspace's workbook, a batch at a time; returns how many."""
    from loop.store import DELIVERY_BATCH

    total = 0
    while True:
        delivered = workspace.write()
        total += delivered
        if delivered < DELIVERY_BATCH:
            return total


def watch(workspace, seconds: float, rounds: int | None = None) -> None:
    """Deliver every `seconds` until stopped (Ctrl-C or SIGTERM end it quietly). A round that fails for
    a reason that may pass (a server restarting, a lock held, a sheet open in Excel) is a warning,
    said once until it changes, and the next round tries again on a fresh connection where the old
    one was lost. A store that refuses to work (StoreUnusable: credentials, a newer schema, read-only)
    ends the watch with its error, so a service manager's Restart=on-failure takes over."""
    import signal
    import time

    from loop.errors import LoopError, StoreUnusable

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    last_problem = None
    try:
        while rounds is None or rounds > 0:
            started = time.monotonic()
            try:
                sync(workspace)
                if last_problem is not None:
                    log.info("Delivering again: the store and the sheet answer.")
                last_problem = None
            except StoreUnusable:
                raise
            except (LoopError, OSError) as problem:
                if str(problem) != last_problem:
                    log.warning("%s Trying again every %g s.", problem, seconds)
                last_problem = str(problem)
            if rounds is not None:
                rounds -= 1
                if not rounds:
                    break
            time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
