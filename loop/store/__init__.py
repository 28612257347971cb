"""The store: the system of record behind the sheet (CONTRACT §7a).

Every logged draft is kept whole here (no cell limit), with the workbook it belongs to, whether that
workbook has it yet, and its review as last read from the sheet. The sheet is where people work;
the store is what outlives its rows. SQLite by default, PostgreSQL when a fleet shares one loop;
the SQL in `db.py` is the same for both.

A draft moves through states: `pending` (committed, not yet in its sheet), `sent` (a write that
carries it has started, so it may have landed: the next delivery looks before repeating it),
`delivered`, and `archived` (taken out of the sheet by `loop archive`, kept here). A delivered
draft whose row a person deleted from the sheet is `deleted`: out of the figures, kept here, and
put back by `loop sync --restore-deleted`.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from loop.store.db import Database, connect, sqlite_path

PENDING, SENT, DELIVERED, ARCHIVED = "pending", "sent", "delivered", "archived"
DELETED = "deleted"  # delivered, then its row deleted from the sheet by a person
FIELDS = ("ticket", "draft", "ticket_id", "thread", "kb_sources", "prompt_version")
REVIEW_FIELDS = ("score", "comment", "final_reply", "reviewer", "judge_score", "judge_comment", "judge_version",
                 "pattern")
# The most drafts one delivery writes; `loop sync` goes on until none wait.
DELIVERY_BATCH = 2000

__all__ = ["ARCHIVED", "DELETED", "DELIVERED", "PENDING", "SENT", "Store", "WorkbookStore", "default_url", "identity_of",
           "sqlite_path"]


def default_url(sheet: str, google: bool) -> str:
    """`loop.db` beside a local workbook (beside the file itself when the path is a symbolic link to
    it, so the link and the file share one store); in the current folder for a Google Sheet."""
    if google:
        return "loop.db"
    path = Path(sheet)
    real = Path(os.path.realpath(path))
    if real.name != path.name or real.parent != Path(os.path.realpath(path.parent)):
        return str(real.parent / "loop.db")  # a link to the file: its store is the file's own
    return str(path.parent / "loop.db")


def url_of(settings) -> str:
    """The store `settings` name: LOOP_STORE (or --store), else the default beside the workbook."""
    from loop.sheets.base import is_google

    return settings.store or default_url(settings.sheet, is_google(settings.sheet))


@functools.cache
def machine() -> str:
    """This machine, as a name that survives a change of host name: LOOP_MACHINE when set (a container
    without a machine id of its own), else /etc/machine-id (systemd and dbus keep it), else the host name."""
    named = os.environ.get("LOOP_MACHINE", "").strip()
    if named:
        return named.replace("/", "_")
    for name in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(name).read_text(encoding="ascii").strip()
        except (OSError, ValueError):
            continue
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
            return text
    return socket.gethostname()


def identity_of(sheet: str, google_key: str | None, store_url: str) -> str:
    """How the store names a workbook, so a draft reaches only the workbook it was logged for.

    A Google Sheet: its spreadsheet key. A local workbook with a SQLite store: its real path relative
    to the store's folder, so a folder moved or copied whole keeps its drafts with its own workbook,
    and two workbooks in one folder never share them. With PostgreSQL: the machine (`machine()`) and
    real path, so two hosts' `loop.xlsx` never share drafts and a renamed host keeps its own."""
    if google_key:
        return f"google:{google_key}"
    real = os.path.realpath(sheet)
    path = sqlite_path(store_url)
    if path is not None:
        try:
            return "file:" + Path(os.path.relpath(real, os.path.realpath(path.parent))).as_posix()
        except ValueError:  # another drive than the store's
            return "file:" + Path(real).as_posix()
    return f"file://{machine()}{Path(real).as_posix()}"


def former_identities(sheet: str, google_key: str | None, store_url: str) -> list[str]:
    """What earlier releases named the same workbook: the host name instead of the machine id."""
    if google_key or sqlite_path(store_url) is not None:
        return []
    former = f"file://{socket.gethostname()}{Path(os.path.realpath(sheet)).as_posix()}"
    return [former] if former != identity_of(sheet, google_key, store_url) else []


def location_of(sheet: str, google: bool, postgres: bool) -> str:
    """Where a workbook is, as `loop status` shows it whatever folder it runs in: a Google Sheet as
    named, a local one by its absolute path (with the host name on a store that hosts share)."""
    if google:
        return sheet
    where = Path(os.path.abspath(sheet)).as_posix()
    return f"{socket.gethostname()}:{where}" if postgres else where


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
    number: int = 0  # the store's own number for the workbook: `loop sync --workbook NUMBER`
    deleted: int = 0


class Store:
    """A store opened from its URL (`sqlite:///path`, a file path, or `postgresql://…`)."""

    def __init__(self, url: str):
        self.db: Database = connect(url)
        self.url = url
        self.shown = self.db.shown

    def workbook(self, identity: str, location: str, former: list[str] = ()) -> WorkbookStore:
        """The store's drafts of one workbook, registering it the first time (once per connection). A
        workbook the store knows under a `former` identity (what an earlier release named it) takes the
        new one, drafts and all, unless the new one is registered already."""
        if former and identity not in self.db.workbook_ids:
            marks = ", ".join("?" * len(former))
            if self.db.execute(f"SELECT 1 FROM workbooks WHERE identity IN ({marks})", tuple(former)):
                with self.db.transaction() as db:
                    for old in former:
                        db.execute("UPDATE workbooks SET identity = ? WHERE identity = ? AND NOT EXISTS "
                                   "(SELECT 1 FROM workbooks WHERE identity = ?)", (identity, old, identity))
        self.db.workbook_id(identity, location)
        return WorkbookStore(self, identity, location)

    def count(self, counter: str, by: int) -> None:
        """Add `by` to a running count the store keeps (the receiver's spans without content)."""
        with self.db.transaction() as db:
            db.execute("INSERT INTO trace_counts (counter, count, at) VALUES (?, ?, ?) ON CONFLICT (counter) DO UPDATE "
                       "SET count = trace_counts.count + excluded.count, at = excluded.at", (counter, by, now_text()))

    def counted(self, counter: str) -> tuple[int, str]:
        """A running count and when it last grew; (0, "") before it ever did."""
        rows = self.db.execute("SELECT count, at FROM trace_counts WHERE counter = ?", (counter,))
        return (int(rows[0][0]), rows[0][1]) if rows else (0, "")

    def stored(self, number: int) -> WorkbookStore | None:
        """Workbook `number` as the store holds it (`loop status` names it), wherever this command runs."""
        rows = self.db.execute("SELECT id, identity, location FROM workbooks WHERE id = ?", (number,))
        return WorkbookStore(self, rows[0][1], rows[0][2]) if rows else None

    def known_workbooks(self) -> list[tuple[str, str]]:
        """(identity, location) of every workbook with drafts waiting for it."""
        return [(identity, location) for identity, location in self.db.execute(
            "SELECT identity, location FROM workbooks w WHERE EXISTS (SELECT 1 FROM drafts d WHERE "
            "d.workbook_id = w.id AND d.state IN (?, ?)) ORDER BY id", (PENDING, SENT))]

    def counts(self) -> list[WorkbookCount]:
        """Per workbook: drafts waiting for it, in it, archived out of it, and deleted from it by a person."""
        rows = self.db.execute(
            "SELECT w.identity, w.location, "
            "SUM(CASE WHEN d.state IN (?, ?) THEN 1 ELSE 0 END), SUM(CASE WHEN d.state = ? THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN d.state = ? THEN 1 ELSE 0 END), w.id, SUM(CASE WHEN d.state = ? THEN 1 ELSE 0 END) "
            "FROM workbooks w JOIN drafts d ON d.workbook_id = w.id GROUP BY w.id, w.identity, w.location ORDER BY w.id",
            (PENDING, SENT, DELIVERED, ARCHIVED, DELETED))
        return [WorkbookCount(i, loc, int(p or 0), int(d or 0), int(a or 0), int(n), int(x or 0))
                for i, loc, p, d, a, n, x in rows]

    def place(self, identity: str) -> str | None:
        """Where a workbook the store knows is, from this machine: a Google Sheet's key, a local
        workbook's path (a SQLite store's relative to the store's folder); None for a workbook on
        another machine."""
        if identity.startswith("google:"):
            return identity[len("google:"):]
        if identity.startswith("file://"):
            where, _, path = identity[len("file://"):].partition("/")
            return "/" + path if where in (machine(), socket.gethostname()) else None
        path = identity[len("file:"):]
        if self.db.path is None or os.path.isabs(path):
            return path
        return os.path.normpath(os.path.join(os.path.realpath(self.db.path.parent), path))


_COLUMNS = ("trace_id", "created_at", *FIELDS)
# how the draft's prompt version is known (`given` by the caller, `served` by loop.prompt now) and its
# arm, and the tracing tool it came from: the store keeps them, the sheet never shows them, so
# reviewers score blind to the arm
PROMPT_FIELDS = ("prompt_arm", "prompt_given", "origin", "origin_id")
_NULLABLE = ("score", "judge_score")  # no review is NULL, not ""
JUDGE_FIELDS = ("judge_score", "judge_comment", "judge_version")
IMPORTED_FIELDS = ("score", "comment", "final_reply", "reviewer", *JUDGE_FIELDS)  # a traced draft may come reviewed


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
        columns = (*_COLUMNS, *PROMPT_FIELDS, *IMPORTED_FIELDS)
        sql = (f"INSERT INTO drafts (workbook_id, {', '.join(columns)}, state, delivered_at) "
               f"VALUES ({', '.join('?' * (len(columns) + 3))}){conflict}")
        stamp = now_text()
        with self.db.transaction() as db:
            for rows, state in groups:
                db.executemany(sql, [(self.id, *(row.get(c) if c in _NULLABLE else row.get(c) or "" for c in columns),
                                      state, stamp if state == DELIVERED else None) for row in rows])

    # -- delivering ------------------------------------------------------------------------

    def workbook_id_for(self, workbook) -> str | None:
        """The id a local workbook must carry to take this workbook's drafts (`loop.sheets.workbook_id`):
        the one recorded on the first delivery, which records the workbook's own or a new one. A workbook
        that carries another is refused (another project's store moved beside it, or another workbook at
        its path), before anything is marked or written. None for a Google Sheet: its key is its identity."""
        read = getattr(workbook, "workbook_id", None)
        if read is None:
            return None
        found = self.check_workbook_id(workbook, read())
        if self.recorded_workbook_id() is None:
            with self.db.transaction() as db:
                db.execute("INSERT INTO workbook_ids (workbook_id, stamp) VALUES (?, ?) ON CONFLICT (workbook_id) "
                           "DO NOTHING", (self.id, found or uuid.uuid4().hex))
            self.check_workbook_id(workbook, found)  # another command may have recorded another meanwhile
        return self.recorded_workbook_id()

    def recorded_workbook_id(self) -> str | None:
        """The id of the workbook this store delivered to, None before the first delivery."""
        rows = self.db.execute("SELECT stamp FROM workbook_ids WHERE workbook_id = ?", (self.id,))
        return rows[0][0] if rows else None

    def check_workbook_id(self, workbook, found: str | None = None) -> str | None:
        """Raise WrongWorkbook if `workbook` carries another id than the one recorded; returns the one it
        carries (read when not given). A command that logs calls it before its commit."""
        if found is None:
            read = getattr(workbook, "workbook_id", None)
            found = read() if read else None
        expected = self.recorded_workbook_id() if found else None
        if expected is not None and found != expected:
            from loop.errors import WrongWorkbook

            raise WrongWorkbook(workbook.location, found, expected, self.store.shown)
        return found

    def pending(self, limit: int | None = DELIVERY_BATCH) -> list[dict]:
        """The drafts waiting for this workbook, oldest first, with whether a write may have carried them."""
        columns = (*_COLUMNS, *REVIEW_FIELDS)  # a restored draft goes back with its review
        rows = self.db.execute(
            f"SELECT seq, state, {', '.join(columns)} FROM drafts WHERE workbook_id = ? AND state IN (?, ?) "
            "ORDER BY seq" + (f" LIMIT {int(limit)}" if limit else ""), (self.id, PENDING, SENT))
        return [{"seq": seq, "state": state, **dict(zip(columns, values))} for seq, state, *values in rows]

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

    def record_text(self, changed: list[dict]) -> None:
        """Keep the text the sheet shows where a person edited it (a ticket redacted in the sheet): the
        fields each row names, in one transaction."""
        with self.db.transaction() as db:
            for row in changed:
                names = [name for name in FIELDS if name in row]
                if names:
                    db.execute(f"UPDATE drafts SET {', '.join(f'{n} = ?' for n in names)} WHERE workbook_id = ? "
                               "AND trace_id = ?", (*(row[n] for n in names), self.id, row["trace_id"]))

    def in_state(self, state: str) -> set[str]:
        """The trace ids of this workbook's drafts in `state`."""
        return {row[0] for row in self.db.execute("SELECT trace_id FROM drafts WHERE workbook_id = ? AND state = ?",
                                                  (self.id, state))}

    def restore_deleted(self, trace_ids: list[str] | None = None) -> list[str]:
        """Drafts whose rows a person deleted (all, or those named), made to wait for the sheet again:
        as `sent`, so the delivery first looks whether the sheet holds them (put back by hand) and
        writes only the rest. Returns those it restored."""
        with self.db.transaction() as db:
            held = [row[0] for row in db.execute(
                "SELECT trace_id FROM drafts WHERE workbook_id = ? AND state = ? ORDER BY seq", (self.id, DELETED))]
            chosen = [t for t in held if trace_ids is None or t in set(trace_ids)]
            db.executemany("UPDATE drafts SET state = ? WHERE workbook_id = ? AND trace_id = ? AND state = ?",
                           [(SENT, self.id, t, DELETED) for t in chosen])
        return chosen

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
