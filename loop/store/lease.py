"""The delivery lease: which process may write a workbook's waiting drafts right now.

It is kept in the store itself (columns of `workbooks`), so it holds the same way on SQLite and
PostgreSQL, across hosts, and whatever becomes of the holder's connection: a session that ends
(a terminated backend, an idle-in-transaction timeout) or a file deleted beside the store releases
nothing. A lease has a holder (host, process, a token of its own), a fencing number that every new
holder raises, and an expiry on the database's clock. It is taken by one conditional UPDATE (when it
is free, expired, or held by a process of this host that is gone), renewed by a thread while its
holder delivers, and renewed once more just before every write: a deliverer that lost its lease
writes nothing.

Drafts marked `sent` carry the fencing number of the lease that sent them. A lease that ends with
such drafts (its holder vanished, or a write's answer was lost) sets `settle_until`: the moment its
write can no longer land (its last renewal plus the longest a write may take). Until then no holder
writes those drafts or any after them; afterwards the delivery asks the sheet which it has.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager

from loop.errors import LeaseLost, LoopError, WorkbookBusy

# A lease lasts TTL seconds unless renewed; its holder renews it every RENEW_EVERY seconds meanwhile.
TTL = 30.0
RENEW_EVERY = 5.0
POLL = 0.05
_PENDING, _SENT, _DELIVERED = "pending", "sent", "delivered"
# (process, store, workbook) -> the fencing number of this process's last lease there
_LAST: dict[tuple[int, str, int], int] = {}


def clock(db) -> str:
    """The database's clock in seconds, as SQL: one clock for every host that shares the store."""
    if db.postgres:
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def _gone(holder: str) -> bool:
    """Whether a holder is a process of this host that has ended (it can write nothing any more)."""
    host, pid, _ = (holder.split(" ", 2) + ["", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"  # ended, not yet reaped
    except (OSError, IndexError):
        return False


def _shown(holder: str) -> str:
    host, pid, _ = (holder.split(" ", 2) + ["", ""])[:3]
    return f"process {pid} on {host}" if pid else "another process"


class Lease:
    """A lease held by this process on one workbook."""

    def __init__(self, db, workbook_id: int, holder: str, fence: int, continuous: bool, landing: float):
        self.db, self.workbook_id, self.holder, self.fence = db, workbook_id, holder, fence
        # the lease before this one was this process's own: no one else delivered since, and the store
        # was not put back to an older copy (its fencing number would be older)
        self.continuous = continuous
        self.landing = landing  # the longest a write may still land after the check that let it start
        self.unconfirmed = False  # a write under this lease may have landed unseen

    def renew(self) -> None:
        """Extend the lease, or raise LeaseLost if another deliverer took it: called just before every write."""
        now = clock(self.db)
        if not self.db.execute(f"UPDATE workbooks SET lease_until = {now} + ? WHERE id = ? AND lease_holder = ? "
                               "RETURNING lease_fence", (TTL, self.workbook_id, self.holder)):
            raise LeaseLost("Another loop command took over the delivery to this sheet; it delivers these drafts.")

    def in_flight(self) -> float:
        """Seconds until drafts an earlier lease left `sent` can no longer land (0: none may)."""
        rows = self.db.execute(
            f"SELECT settle_until - {clock(self.db)} FROM workbooks WHERE id = ? AND EXISTS (SELECT 1 FROM drafts "
            "WHERE workbook_id = ? AND state = ? AND sent_fence IS NOT NULL AND sent_fence <> ?)",
            (self.workbook_id, self.workbook_id, _SENT, self.fence))
        return max(0.0, float(rows[0][0])) if rows else 0.0

    def mark_sent(self, rows: list[dict]) -> None:
        """Mark drafts as carried by a write of this lease, in the transaction that renews it."""
        with self.db.transaction() as db:
            self.renew()
            db.executemany("UPDATE drafts SET state = ?, sent_fence = ? WHERE seq = ? AND state IN (?, ?)",
                           [(_SENT, self.fence, row["seq"], _PENDING, _SENT) for row in rows])

    def mark_delivered(self, rows: list[dict]) -> None:
        """The sheet has them: true whoever holds the lease now."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.db.transaction() as db:
            db.executemany("UPDATE drafts SET state = ?, delivered_at = ? WHERE seq = ? AND state IN (?, ?)",
                           [(_DELIVERED, stamp, row["seq"], _PENDING, _SENT) for row in rows])

    def unsend(self, rows: list[dict]) -> None:
        """A write that surely did not land: drafts this lease marked, that were pending, wait as pending again."""
        with self.db.transaction() as db:
            db.executemany("UPDATE drafts SET state = ?, sent_fence = NULL WHERE seq = ? AND state = ? "
                           "AND sent_fence = ?", [(_PENDING, row["seq"], _SENT, self.fence) for row in rows])

    def release(self) -> None:
        now = clock(self.db)
        with self.db.transaction() as db:
            if self.unconfirmed:  # its drafts wait until that write can no longer land
                db.execute(f"UPDATE workbooks SET settle_until = {now} + ? WHERE id = ? AND lease_holder = ? "
                           f"AND settle_until < {now} + ?", (self.landing, self.workbook_id, self.holder,
                                                              self.landing))
            db.execute("UPDATE workbooks SET lease_holder = NULL, lease_until = 0 WHERE id = ? AND lease_holder = ?",
                       (self.workbook_id, self.holder))


def _take(db, workbook_id: int, holder: str, landing: float) -> tuple[Lease | None, str | None]:
    """The lease if it is free, expired, or its holder is gone (one conditional UPDATE, which fails if
    anyone renewed, released or took it since it was read); else (None, who holds it)."""
    now = clock(db)
    current, fence, until, settle, moment, left_sent = db.execute(
        f"SELECT lease_holder, lease_fence, lease_until, settle_until, {now}, EXISTS (SELECT 1 FROM drafts d "
        "WHERE d.workbook_id = workbooks.id AND d.state = ? AND d.sent_fence = workbooks.lease_fence) "
        "FROM workbooks WHERE id = ?", (_SENT, workbook_id))[0]
    if current is not None and until >= moment and not _gone(current):
        return None, current
    if current is not None and left_sent:  # it ended mid-delivery: its write may still land
        settle = max(settle, min(until, moment) + landing)
    taken = db.execute(f"UPDATE workbooks SET lease_holder = ?, lease_fence = ?, lease_until = {now} + ?, "
                       "settle_until = ? WHERE id = ? AND lease_fence = ? AND lease_until = ? RETURNING lease_fence",
                       (holder, fence + 1, TTL, settle, workbook_id, fence, until))
    if not taken:
        return None, current
    key = (os.getpid(), db.url, workbook_id)
    continuous = _LAST.get(key) == fence
    _LAST[key] = fence + 1
    return Lease(db, workbook_id, holder, fence + 1, continuous, landing), None


class _Renewer(threading.Thread):
    """Renews a lease while its holder delivers; a failed renewal is left to the check before the write."""

    def __init__(self, lease: Lease):
        super().__init__(daemon=True, name="loop-lease")
        self.lease, self.stopped = lease, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(RENEW_EVERY):
            try:
                self.lease.renew()
            except LeaseLost:
                return
            except (LoopError, OSError):
                continue


@contextmanager
def delivery_lease(db, workbook_id: int, deadline: float, done=lambda: False, landing: float = 0.0):
    """Hold the workbook's delivery lease, waiting for it until `deadline` (time.monotonic()); yields
    the Lease, or None when `done()` turns true while this waits (another deliverer carried what the
    caller was waiting for). `landing`: how long a write to this workbook may still land after the
    check that let it start."""
    holder = f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex}"
    while True:
        lease, other = _take(db, workbook_id, holder, landing)
        if lease is not None:
            break
        if done():
            yield None
            return
        if time.monotonic() >= deadline:
            raise WorkbookBusy(f"Another loop command ({_shown(other or '')}) is delivering to the sheet; try again "
                               "in a moment.")
        time.sleep(POLL)
    renewer = _Renewer(lease)
    renewer.start()
    try:
        yield lease
    finally:
        renewer.stopped.set()
        renewer.join()
        try:
            lease.release()
        except LoopError:  # the store is out of reach: the lease expires by itself
            pass
