"""The store's database: one SQL code path over SQLite (the standard library's sqlite3) and
PostgreSQL (psycopg 3), a numbered schema migrated forward on open, and the one lock that
differs between them (who may deliver to a workbook right now).

SQL is written once with `?` placeholders; PostgreSQL gets `%s`. Each connection runs in autocommit
mode and `transaction()` makes the explicit transactions, so a commit point is always visible.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from loop.errors import RunFailure, UsageError
from loop.redact import mask_url, scrub

# Each step is run once, in order, and recorded in `migrations`; a later release appends steps.
# `{serial}` is the dialect's auto-numbered key: the order drafts were logged in.
MIGRATIONS = [
    """
    CREATE TABLE workbooks (
        id {serial} PRIMARY KEY,
        identity TEXT NOT NULL UNIQUE,
        location TEXT NOT NULL
    );
    CREATE TABLE drafts (
        seq {serial} PRIMARY KEY,
        workbook_id BIGINT NOT NULL REFERENCES workbooks (id),
        trace_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        ticket TEXT NOT NULL,
        draft TEXT NOT NULL,
        ticket_id TEXT NOT NULL DEFAULT '',
        thread TEXT NOT NULL DEFAULT '',
        kb_sources TEXT NOT NULL DEFAULT '',
        prompt_version TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        delivered_at TEXT,
        archived_at TEXT,
        score TEXT,
        comment TEXT NOT NULL DEFAULT '',
        final_reply TEXT NOT NULL DEFAULT '',
        reviewer TEXT NOT NULL DEFAULT '',
        judge_score TEXT,
        judge_comment TEXT NOT NULL DEFAULT '',
        judge_version TEXT NOT NULL DEFAULT '',
        pattern TEXT NOT NULL DEFAULT '',
        UNIQUE (workbook_id, trace_id)
    );
    CREATE INDEX drafts_outbox ON drafts (workbook_id, state, seq);
    CREATE INDEX drafts_trace ON drafts (trace_id);
    """,
    # the id a local workbook carries (its loop.workbook property), recorded on the first delivery to it;
    # a table of its own, so recording it never waits for the row lock a deliverer holds on `workbooks`
    """
    CREATE TABLE workbook_ids (
        workbook_id BIGINT PRIMARY KEY REFERENCES workbooks (id),
        stamp TEXT NOT NULL
    );
    """,
]


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store URL (`sqlite:///path` or a plain path), None for PostgreSQL."""
    if url.startswith(("postgresql://", "postgres://")):
        return None
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])  # sqlite:////abs/path keeps its leading slash
    if url.startswith("sqlite://"):
        raise UsageError(f"{url!r} is not a SQLite URL; write sqlite:///relative/path.db or sqlite:////absolute/path.db.")
    if "://" in url:
        raise UsageError(f"LOOP_STORE {mask_url(url)!r} is neither sqlite:/// nor postgresql://; set one of them.")
    return Path(url)


class Database:
    """One connection to the store, shared by a process's threads one statement at a time."""

    def __init__(self, url: str):
        self.url = url
        self.shown = mask_url(url)
        self.path = sqlite_path(url)
        self.postgres = self.path is None
        self._lock = threading.RLock()
        self.workbook_ids: dict[str, int] = {}  # identity -> id, as registered through this connection
        self._conn = self._connect()
        self._migrate()

    # -- connecting ------------------------------------------------------------------------

    def _connect(self):
        if self.postgres:
            return self._connect_postgres()
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise UsageError(f"The store's folder {folder} does not exist; create it or set LOOP_STORE.")
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a printed trace id survives a power cut too
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as error:
            raise self.failure(error) from None
        return conn

    def _connect_postgres(self):
        try:
            import psycopg
        except ImportError:  # pragma: no cover -- a dependency of the package
            raise UsageError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'.") from None
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as error:
            raise self.failure(error) from None

    def failure(self, error: Exception):
        """A database error as one line, with the URL's password masked: exit 2 when the user must
        fix it (a read-only or full disk, a file that is not a database), 1 when it may pass."""
        reason = scrub(" ".join(str(error).split()), (self.url,))[:200] or error.__class__.__name__
        if self.postgres:
            lowered = reason.lower()
            if "authentication" in lowered or "does not exist" in lowered or "permission denied" in lowered:
                return UsageError(f"The store at {self.shown} refused the connection ({reason}); fix LOOP_STORE.")
            return RunFailure(f"The store at {self.shown} cannot be reached ({reason}); start the server or "
                              "check LOOP_STORE, and run again.")
        lowered = reason.lower()
        if "locked" in lowered or "busy" in lowered:
            return RunFailure(f"The store {self.path} stayed locked by another loop command ({reason}); run again.")
        if "readonly" in lowered or "read-only" in lowered or "permission" in lowered or "unable to open" in lowered:
            return UsageError(f"The store {self.path} cannot be written ({reason}); make it and its folder "
                              "writable, or set LOOP_STORE.")
        if "full" in lowered:
            return UsageError(f"The disk holding the store {self.path} is full; free some space and run again.")
        return UsageError(f"The store {self.path} is damaged ({reason}); restore it from a backup or set LOOP_STORE.")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- running SQL -----------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    @contextmanager
    def _errors(self):
        try:
            yield
        except (sqlite3.Error, OSError) as error:
            raise self.failure(error) from None
        except Exception as error:
            if self.postgres and error.__class__.__module__.startswith("psycopg"):
                raise self.failure(error) from None
            raise

    def execute(self, sql: str, params=()) -> list[tuple]:
        with self._lock, self._errors():
            cursor = self._conn.execute(self._sql(sql), params)
            return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows) -> None:
        rows = list(rows)
        if not rows:
            return
        with self._lock, self._errors():
            if self.postgres:
                with self._conn.cursor() as cursor:
                    cursor.executemany(self._sql(sql), rows)
            else:
                self._conn.executemany(sql, rows)

    @contextmanager
    def transaction(self):
        """One transaction: everything inside commits together, or nothing does. SQLite takes its
        writer lock at the start (BEGIN IMMEDIATE), so two writers never interleave."""
        with self._lock, self._errors():
            if self.postgres:
                with self._conn.transaction():
                    yield self
            else:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

    # -- schema ----------------------------------------------------------------------------

    def _migrate(self) -> None:
        serial = "BIGSERIAL" if self.postgres else "INTEGER"
        with self.transaction():
            if self.postgres:  # one migrator at a time across hosts
                self.execute("SELECT pg_advisory_xact_lock(7162534)")
            self.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {row[0] for row in self.execute("SELECT version FROM migrations")}
            if len(done) > len(MIGRATIONS):
                raise UsageError(f"The store {self.shown} was written by a newer release of loop (schema "
                                 f"v{max(done)}); upgrade loop (pip install -U loop-prompt-improver).")
            for version, step in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in step.format(serial=serial).split(";"):
                    if statement.strip():
                        self.execute(statement)
                self.execute("INSERT INTO migrations (version, applied_at) VALUES (?, ?)",
                             (version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

    @property
    def schema_version(self) -> int:
        return max(row[0] for row in self.execute("SELECT version FROM migrations"))

    # -- who delivers ----------------------------------------------------------------------

    @contextmanager
    def delivery_lock(self, workbook_id: int, wait: float, done=lambda: False):
        """Held while one process delivers a workbook's pending drafts, so each reaches the sheet once
        and in order. PostgreSQL: a row lock on the workbook (`FOR UPDATE SKIP LOCKED`), released if the
        holder dies; SQLite: a lock file beside the database. Yields False instead when `done()`
        turns true while this waits (another deliverer carried what the caller was waiting for)."""
        if self.postgres:
            acquire, release = self._row_lock(workbook_id)
        else:
            from filelock import FileLock, Timeout

            lock = FileLock(f"{self.path}.deliver-{workbook_id}.lock")

            def acquire() -> bool:
                try:
                    lock.acquire(timeout=0)
                    return True
                except Timeout:
                    return False

            release = lock.release
        deadline = time.monotonic() + wait
        try:
            while not acquire():
                if done():
                    yield False
                    return
                if time.monotonic() >= deadline:
                    from loop.errors import WorkbookBusy

                    raise WorkbookBusy("Another loop command is writing to the sheet; try again in a moment.")
                time.sleep(0.02)
            yield True
        finally:
            release()


    def _row_lock(self, workbook_id: int):
        """(acquire, release) for the workbook's row lock, held by a connection of its own so the
        marks this process commits meanwhile are not part of its transaction."""
        import psycopg

        try:
            holder = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as error:
            raise self.failure(error) from None

        def acquire() -> bool:
            with self._errors():
                holder.execute("BEGIN")
                if holder.execute("SELECT id FROM workbooks WHERE id = %s FOR NO KEY UPDATE SKIP LOCKED",
                                  (workbook_id,)).fetchone():
                    return True
                holder.execute("ROLLBACK")
                return False

        return acquire, holder.close


_OPEN: dict[tuple[int, str], Database] = {}
_OPEN_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Close this process's connections at exit: SQLite then folds its -wal file back into the
    database and removes it, so the store is one file again between commands."""
    for (pid, _), database in list(_OPEN.items()):
        if pid == os.getpid():
            try:
                database.close()
            except Exception:  # noqa: BLE001 -- exiting anyway
                pass


def connect(url: str) -> Database:
    """The process's connection to `url`, opened (and migrated) once: logging a draft is then one
    transaction, not a connection's handshake. A forked child opens its own, and a SQLite file that
    was deleted or replaced since is opened anew, never written as a ghost."""
    path = sqlite_path(url)
    if path is not None:
        url = "sqlite:///" + os.path.abspath(path)
    key = (os.getpid(), url)
    with _OPEN_LOCK:
        held = _OPEN.get(key)
        if held is not None and path is not None and held.inode != _inode(held.path):
            held.close()
            held = None
        if held is None:
            held = _OPEN[key] = Database(url)
            held.inode = _inode(held.path) if path is not None else None
        return held


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
