"""Delivery: the drafts waiting in the store reach their workbook once and in the order they were
logged, with whatever else a command writes, in one write.

Only the holder of the workbook's delivery lease writes its drafts (`lease.py`). Before the write the
drafts it carries are marked `sent` with the lease's fencing number, committed; the lease is checked
once more just before the write; after it, they are `delivered`. A write that surely did not land puts
them back to `pending`. A crash, a lost lease or a lost answer leaves them `sent`: no one writes them
(or any draft after them) until that write can no longer land, and then the delivery asks the sheet
which of them it already has (by trace id) before writing the rest, so nothing is doubled or lost.
The sheet is asked the same whenever the store may be behind it (unless every draft was logged by
this very call, or this process's own lease was the last one), so a store put back to an older copy
never writes a draft twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from loop import schema
from loop.cell_values import SCORE_MARKS, BadValue, parse_timestamp
from loop.errors import DeliveryHeld, LeaseLost, LoopError, UnconfirmedWrite
from loop.sheets import Append, WriteBatch
from loop.store import DELIVERY_BATCH, PENDING, REVIEW_FIELDS, SENT, WorkbookStore
from loop.store.lease import delivery_lease

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
    row.update({key: SCORE_MARKS.get(value, value) if key in ("score", "judge_score") else value
                for key in REVIEW_FIELDS for value in [record.get(key)] if value})  # a restored draft's review
    return row


def deliver(outbox: WorkbookStore, workbook, batch: WriteBatch | None = None, wait: float | None = None,
            fresh: frozenset[str] = frozenset(), mine: frozenset[str] = frozenset()) -> int:
    """Write `batch` together with the drafts waiting for `workbook`; returns how many were delivered.

    With `wait` the whole delivery ends within that many seconds: the wait for the lease and the
    workbook's lock, and every request to a Google Sheet. Drafts in `fresh` were logged by this very
    call, so they are not reported as having waited, and cannot be in the sheet yet. With `mine` (and
    nothing else to write) the call ends as soon as those drafts are delivered, whoever delivered them,
    and goes on, batch after batch, until they are or its time is up."""
    batch = batch or WriteBatch()
    deadline = time.monotonic() + (DEFAULT_WAIT if wait is None else wait)
    done = (lambda: outbox.all_delivered(mine)) if mine and not batch else (lambda: False)
    delivered = waited = 0
    with delivery_lease(outbox.db, outbox.id, deadline, done, workbook.landing_seconds) as lease:
        if lease is None:
            return 0
        while True:
            held = _settled(lease, deadline)
            if held and not batch:
                raise DeliveryHeld(_held_message(held))
            pending = [] if held else outbox.pending()
            if not pending and not batch:
                break
            step = batch
            if pending:
                appends = [Append(schema.DRAFTS, schema.DRAFT_HEADERS, sheet_row(row), key="trace_id",
                                  lines=schema.draft_lines(sheet_row(row))) for row in pending]
                step = replace(batch, appends=batch.appends + appends,
                               recheck=batch.recheck or _may_be_there(lease, pending, fresh),
                               workbook_id=outbox.workbook_id_for(workbook))  # refuses another project's workbook
                lease.mark_sent(pending)
            try:
                workbook.write(step, None if wait is None else max(0.0, deadline - time.monotonic()),
                               fence=lease.renew)
            except UnconfirmedWrite:  # they stay `sent`: the next delivery asks the sheet, once it can tell
                lease.unconfirmed = True
                raise
            except LeaseLost:  # they stay `sent`, for the lease's new holder
                raise
            except (LoopError, OSError):  # refused before anything was written: they wait as they did
                lease.unsend([row for row in pending if row["state"] == PENDING])
                raise
            except BaseException:  # stopped mid-write (Ctrl-C, SIGTERM in a watcher): it may still land
                lease.unconfirmed = True
                raise
            lease.mark_delivered(pending)
            delivered += len(pending)
            waited += sum(row["trace_id"] not in fresh for row in pending)
            if held:  # the command's own write went out; the drafts wait
                log.warning("%s", _held_message(held))
            batch = WriteBatch()
            if not mine or len(pending) < DELIVERY_BATCH or done() or time.monotonic() >= deadline:
                break
    if waited:
        log.info("Wrote %d pending draft%s to %s.", waited, "" if waited == 1 else "s", workbook.location)
    return delivered


def _settled(lease, deadline: float) -> float:
    """Wait, if the time allows, until drafts an earlier lease left `sent` can no longer land; returns
    the seconds they must still wait (0: the drafts can be written now)."""
    left = lease.in_flight()
    if left and time.monotonic() + left < deadline:
        time.sleep(left + 0.05)
        left = lease.in_flight()
    return left


def _may_be_there(lease, pending: list[dict], fresh: frozenset[str]) -> bool:
    """Whether the sheet may already hold some of these drafts, so the write must look first: a write
    may have carried them, or the store may be behind the sheet (another copy of it, put back) and they
    were not logged by this very call (a new trace id cannot be in any sheet)."""
    if any(row["state"] == SENT for row in pending):
        return True
    return not lease.continuous and any(row["trace_id"] not in fresh for row in pending)


def _held_message(seconds: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return (f"Drafts of an earlier write to the sheet that was not confirmed may still land there; from "
            f"{when:%H:%M:%S} UTC the next delivery asks the sheet which did, then writes the rest and the "
            "drafts after them (`loop sync`).")


def sync(workspace) -> int:
    """Deliver every draft waiting for the workspace's workbook, a batch at a time; returns how many."""
    total = 0
    while True:
        delivered = workspace.write()
        total += delivered
        if delivered < DELIVERY_BATCH:
            return total


def watch(workspace, seconds: float, rounds: int | None = None, also=None, also_every: float = 30.0) -> None:
    """Deliver every `seconds` until stopped (Ctrl-C or SIGTERM end it quietly); `also(workspace)` runs
    after a round's delivery at most every `also_every` seconds (the sheet is read then, so not every
    round of a fast watch spends a read of the Sheets API's quota). A round that fails for
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
    last_problem, last_also = None, None
    try:
        while rounds is None or rounds > 0:
            started = time.monotonic()
            try:
                sync(workspace)
                if also is not None and (last_also is None or started - last_also >= also_every):
                    last_also = started
                    also(workspace)
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
