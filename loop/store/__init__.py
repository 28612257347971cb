"""The store: the system of record behind the sheet (CONTRACT §7a).

Every logged draft is kept whole here (no cell limit), with the workbook it belongs to, whether that
workbook has it yet, and its review as last read from the sheet. The sheet is where people work;
the store is what outlives its rows. SQLite by default, PostgreSQL when a fleet shares one loop;
the SQL in `db.py` is the same for both.

A draft moves through states: `pending` (committed, not yet in its sheet), `sent` (a write that
carries it has started, so it may have landed: the next delivery looks before repeating it),
`delivered`, and `archived` (taken out of the sheet by `loop archive`, kept here).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from loop.store.db import Database, connect, sqlite_path

PENDING, SENT, DELIVERED, ARCHIVED = "pending", "sent", "delivered", "archived"
FIELDS = ("ticket", "draft", "ticket_id", "thread", "kb_sources", "prompt_version")
REVIEW_FIELDS = ("score", "comment", "final_reply", "reviewer", "judge_score", "judge_comment", "judge_version",
                 "pattern")
# The most drafts one delivery writes; `loop sync` goes on until none wait.
DELIVERY_BATCH = 2000

__all__ = ["ARCHIVED", "DELIVERED", "PENDING", "SENT", "Store", "WorkbookStore", "default_url", "identity_of",
           "sqlite_path"]


def default_url(sheet: str, google: bool) -> str:
    """`loop.db` beside a local workbook; in the current folder for a Google Sheet."""
    if google:
        return "loop.db"
    return str(Path(sheet).parent / "loop.db")


def identity_of(sheet: str, google_key: str | None, store_url: str) -> str:
    """How the store names a workbook, so a draft reaches only the workbook it was logged for.

    A Google Sheet: its spreadsheet key. A local workbook with a SQLite store: its real path relative
    to the store's folder, so a folder moved or copied whole keeps its drafts with its own workbook,
    and two workbooks in one folder never share them. With PostgreSQL: host name and real path."""
    if google_key:
        return f"google:{google_key}"
    real = os.path.realpath(sheet)
    path = sqlite_path(store_url)
    if path is not None:
        try:
            return "file:" + Path(os.path.relpath(real, os.path.realpath(path.parent))).as_posix()
        except ValueError:  # another drive than the store's
            return "file:" + Path(real).as_posix()
    return f"file://{socket.gethostname()}{Path(real).as_posix()}"


def utc_text(moment: datetime) -> str:
    """A moment as the store keeps it: ISO-8601 UTC to the second, which sorts as text."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_text() -> str:
    return utc_text(datetime.now(timezone.utc))


@dataclass(frozen=True)
class WorkbookCount:
    identity: str
    location: str
    pending: int
    delivered: int
    archived: int


class Store:
    """A store opened from its URL (`sqlite:///path`, a file path, or `postgresql://…`)."""

    def __init__(self, url: str):
        self.db: Database = connect(url)
        self.url = url
        self.shown = self.db.shown

    def workbook(self, identity: str, location: str) -> WorkbookStore:
        """The store's drafts of one workbook, registering it the first time (once per connection)."""
        self.db.workbook_id(identity, location)
        return WorkbookStore(self, identity, location)

    def known_workbooks(self) -> list[tuple[str, str]]:
        """(identity, location) of every workbook with drafts waiting for it."""
        return [(identity, location) for identity, location in self.db.execute(
            "SELECT identity, location FROM workbooks w WHERE EXISTS (SELECT 1 FROM drafts d WHERE "
            "d.workbook_id = w.id AND d.state IN (?, ?)) ORDER BY id", (PENDING, SENT))]

    def counts(self) -> list[WorkbookCount]:
        """Per workbook: drafts waiting for it, in it, and archived out of it."""
        rows = self.db.execute(
            "SELECT w.identity, w.location, "
            "SUM(CASE WHEN d.state IN (?, ?) THEN 1 ELSE 0 END), SUM(CASE WHEN d.state = ? THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN d.state = ? THEN 1 ELSE 0 END) "
            "FROM workbooks w JOIN drafts d ON d.workbook_id = w.id GROUP BY w.id, w.identity, w.location ORDER BY w.id",
            (PENDING, SENT, DELIVERED, ARCHIVED))
        return [WorkbookCount(i, loc, int(p or 0), int(d or 0), int(a or 0)) for i, loc, p, d, a in rows]


_COLUMNS = ("trace_id", "created_at", *FIELDS)
_NULLABLE = ("score", "judge_score")  # no review is NULL, not ""


class WorkbookStore:
    """The store's drafts of one workbook: its outbox, its history and its cut fields."""

    def __init__(self, store: Store, identity: str, location: str):
        self.store, self.db = store, store.db
        self.identity, self.location = identity, location

    @property
    def id(self) -> int:
        """The workbook's id in the store as it is now (looked up again once the store was reopened)."""
        return self.db.workbook_id(self.identity, self.location)

    # -- logging ---------------------------------------------------------------------------

    def add(self, rows: list[dict]) -> None:
        """Commit drafts in one transaction, in order: once this returns they are durable."""
        self.add_many([(rows, PENDING)])

    def add_many(self, groups: list[tuple[list[dict], str]], skip_known: bool = False) -> None:
        """Commit groups of drafts, each in its state, in one transaction; with `skip_known`, drafts the
        store already holds for this workbook are left as they are."""
        conflict = " ON CONFLICT (workbook_id, trace_id) DO NOTHING" if skip_known else ""
        sql = (f"INSERT INTO drafts (workbook_id, {', '.join(_COLUMNS)}, state, delivered_at) "
               f"VALUES ({', '.join('?' * (len(_COLUMNS) + 3))}){conflict}")
        stamp = now_text()
        with self.db.transaction() as db:
            for rows, state in groups:
                db.executemany(sql, [(self.id, *(row.get(c) or "" for c in _COLUMNS), state,
                                      stamp if state == DELIVERED else None) for row in rows])

    # -- delivering ------------------------------------------------------------------------

    def pending(self, limit: int | None = DELIVERY_BATCH) -> list[dict]:
        """The drafts waiting for this workbook, oldest first, with whether a write may have carried them."""
        rows = self.db.execute(
            f"SELECT seq, state, {', '.join(_COLUMNS)} FROM drafts WHERE workbook_id = ? AND state IN (?, ?) "
            "ORDER BY seq" + (f" LIMIT {int(limit)}" if limit else ""), (self.id, PENDING, SENT))
        return [{"seq": seq, "state": state, **dict(zip(_COLUMNS, values))} for seq, state, *values in rows]

    def waiting(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM drafts WHERE workbook_id = ? AND state IN (?, ?)",
                               (self.id, PENDING, SENT))[0][0]

    def all_delivered(self, trace_ids) -> bool:
        ids = list(trace_ids)
        if not ids:
            return False
        marks = ", ".join("?" * len(ids))
        left = self.db.execute(f"SELECT COUNT(*) FROM drafts WHERE workbook_id = ? AND trace_id IN ({marks}) "
                               "AND state IN (?, ?)", (self.id, *ids, PENDING, SENT))
        return left[0][0] == 0

    def mark(self, rows: list[dict], state: str) -> None:
        stamp = now_text() if state == DELIVERED else None
        with self.db.transaction() as db:
            db.executemany("UPDATE drafts SET state = ?, delivered_at = COALESCE(?, delivered_at) WHERE seq = ?",
                           [(state, stamp, row["seq"]) for row in rows])

    # -- reading back ----------------------------------------------------------------------

    def whole(self, trace_ids: set[str]) -> dict[str, dict]:
        """The drafts `trace_ids` as logged, whole: this workbook's first, then any workbook's copy."""
        found: dict[str, dict] = {}
        ids = sorted(trace_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for workbook_id, *values in self.db.execute(
                    f"SELECT workbook_id, {', '.join(_COLUMNS)} FROM drafts WHERE trace_id IN ({marks}) "
                    "ORDER BY CASE WHEN workbook_id = ? THEN 0 ELSE 1 END, seq", (*chunk, self.id)):
                found.setdefault(values[0], dict(zip(_COLUMNS, values)))
        return found

    def reviews(self) -> dict[str, dict]:
        """Every draft of this workbook the store holds, by trace id: its state, date and last-read review
        (not its text, which `whole` fetches for the few that need it)."""
        columns = ("trace_id", "created_at", "state", *REVIEW_FIELDS)
        rows = self.db.execute(f"SELECT {', '.join(columns)} FROM drafts WHERE workbook_id = ? ORDER BY seq",
                               (self.id,))
        return {values[0]: dict(zip(columns, values)) for values in rows}

    def record(self, changed: list[dict], adopted: list[dict]) -> None:
        """Keep the reviews as read from the sheet, and the sheet's drafts the store did not hold yet
        (typed by hand, or from before the store), in one transaction."""
        if not changed and not adopted:
            return
        assignments = ", ".join(f"{name} = ?" for name in REVIEW_FIELDS)
        columns = (*_COLUMNS, *REVIEW_FIELDS)
        stamp = now_text()
        with self.db.transaction() as db:
            db.executemany(f"UPDATE drafts SET {assignments} WHERE workbook_id = ? AND trace_id = ?",
                           [(*(r.get(f) for f in REVIEW_FIELDS), self.id, r["trace_id"]) for r in changed])
            db.executemany(
                f"INSERT INTO drafts (workbook_id, state, delivered_at, {', '.join(columns)}) "
                f"VALUES ({', '.join('?' * (len(columns) + 3))}) ON CONFLICT (workbook_id, trace_id) DO NOTHING",
                [(self.id, DELIVERED, stamp, *(r.get(c) if c in _NULLABLE else r.get(c) or "" for c in columns))
                 for r in adopted])

    def set_state(self, trace_ids: list[str], state: str, only_from: str | None = None) -> None:
        stamp = now_text() if state == ARCHIVED else None
        condition = " AND state = ?" if only_from else ""
        with self.db.transaction() as db:
            db.executemany(f"UPDATE drafts SET state = ?, archived_at = ? WHERE workbook_id = ? AND trace_id = ?"
                           f"{condition}",
                           [(state, stamp, self.id, t, *((only_from,) if only_from else ())) for t in trace_ids])


def with_fields(draft, record: dict):
    """A Draft made whole from a stored record's ticket, draft and thread."""
    return replace(draft, **{f: record.get(f) or getattr(draft, f) for f in ("ticket", "draft", "thread")})
