"""The store's database: one SQL code path over SQLite (the standard library's sqlite3) and
PostgreSQL (psycopg 3), and a numbered schema migrated forward on open.

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

from datetime import timezone

from loop.errors import RunFailure, StoreUnusable, UsageError
from loop.redact import KEYWORD_FORM, mask_url, scrub, secrets_of

# The default bound of every wait on the store (LOOP_STORE_TIMEOUT): a lock another session holds,
# SQLite's busy timeout, a connection being made.
DEFAULT_TIMEOUT = 10.0
MIGRATION_LOCK = 7162534  # the advisory lock one migrating process holds on PostgreSQL
NUL_REFUSED = ("The text holds a NUL character (\\x00), which the store cannot keep (PostgreSQL text cannot hold "
               "one); take it out and run again. Nothing was written.")

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
    # a table of its own, so recording it never waits on the `workbooks` row a delivery's lease updates
    """
    CREATE TABLE workbook_ids (
        workbook_id BIGINT PRIMARY KEY REFERENCES workbooks (id),
        stamp TEXT NOT NULL
    );
    """,
    # the delivery lease (loop/store/lease.py): its holder, fencing number and expiry, until when a write
    # it left unconfirmed may still land, and which lease marked a draft `sent`
    """
    ALTER TABLE workbooks ADD COLUMN lease_holder TEXT;
    ALTER TABLE workbooks ADD COLUMN lease_fence BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE workbooks ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE workbooks ADD COLUMN settle_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE drafts ADD COLUMN sent_fence BIGINT;
    """,
    # prompts served from the store (loop/store/prompts.py): every version's exact bytes, what each
    # prompt serves now (its current version and running canary), every canary, and every change of
    # these with who made it and why; and, per draft, the arm it was written in and whether its version
    # was given by the caller or recorded as the one served; and what each host's prompt file held when
    # loop last wrote or recorded it, which tells a file behind the store from one edited by hand
    """
    CREATE TABLE prompt_versions (
        prompt TEXT NOT NULL,
        number BIGINT NOT NULL,
        parent BIGINT,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        body {blob} NOT NULL,
        edits TEXT NOT NULL DEFAULT '[]',
        made_by TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (prompt, number)
    );
    CREATE TABLE prompt_canaries (
        id {serial} PRIMARY KEY,
        prompt TEXT NOT NULL,
        version BIGINT NOT NULL,
        base BIGINT NOT NULL,
        share DOUBLE PRECISION NOT NULL,
        salt TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE prompt_serving (
        prompt TEXT PRIMARY KEY,
        current BIGINT NOT NULL,
        since TEXT NOT NULL,
        canary_id BIGINT REFERENCES prompt_canaries (id),
        revision BIGINT NOT NULL
    );
    CREATE TABLE prompt_events (
        seq {serial} PRIMARY KEY,
        prompt TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        current BIGINT NOT NULL,
        canary BIGINT,
        share DOUBLE PRECISION,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX prompt_events_by_prompt ON prompt_events (prompt, seq);
    CREATE TABLE prompt_files (
        prompt TEXT NOT NULL,
        place TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (prompt, place)
    );
    ALTER TABLE drafts ADD COLUMN prompt_arm TEXT NOT NULL DEFAULT '';
    ALTER TABLE drafts ADD COLUMN prompt_given TEXT NOT NULL DEFAULT '';
    """,
    # drafts that came from a tracing tool: where (`otlp`, `phoenix`, ...) and that tool's own id for the
    # span, so the reviews go back to it; what the receiver counted; the spans of traces it has not seen
    # whole yet; each import's cursor, and the review last imported from and exported to each tool
    """
    ALTER TABLE drafts ADD COLUMN origin TEXT NOT NULL DEFAULT '';
    ALTER TABLE drafts ADD COLUMN origin_id TEXT NOT NULL DEFAULT '';
    CREATE TABLE trace_counts (
        counter TEXT PRIMARY KEY,
        count BIGINT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE trace_spans (
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        span TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (trace_id, span_id)
    );
    CREATE INDEX trace_spans_by_time ON trace_spans (at);
    CREATE TABLE trace_reviews (
        trace_id TEXT NOT NULL,
        source TEXT NOT NULL,
        imported TEXT NOT NULL DEFAULT '',
        exported TEXT NOT NULL DEFAULT '',
        at TEXT NOT NULL,
        PRIMARY KEY (trace_id, source)
    );
    CREATE TABLE trace_sources (
        source TEXT PRIMARY KEY,
        cursor TEXT NOT NULL,
        at TEXT NOT NULL
    );
    """,
]


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store URL (`sqlite:///path` or a plain path), None for PostgreSQL (a
    `postgresql://` URL, or a keyword connection string such as `host=db dbname=loop`)."""
    if url.startswith(("postgresql://", "postgres://")):
        _check_postgres_url(url)
        return None
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])  # sqlite:////abs/path keeps its leading slash
    if url.startswith("sqlite://"):
        raise UsageError(f"{url!r} is not a SQLite URL; write sqlite:///relative/path.db or sqlite:////absolute/path.db.")
    if "://" in url:
        raise UsageError(f"LOOP_STORE {mask_url(url)!r} is neither sqlite:/// nor postgresql://; set one of them.")
    if KEYWORD_FORM.match(url):
        _check_keywords(url)
        return None
    return Path(url)


def _check_postgres_url(url: str) -> None:
    """A URL libpq would read wrongly (a password with an unencoded `/` or space is taken for a host,
    a port or a database, and echoed in its error) is refused before it is used."""
    head = url.partition("://")[2].split("?", 1)[0]
    userinfo = head[:head.rfind("@")] if "@" in head else ""
    if any(c.isspace() for c in url) or "@" in userinfo or ("/" in userinfo and ":" in userinfo.split("/")[0]):
        raise StoreUnusable(f"LOOP_STORE {mask_url(url)} holds a character a URL must percent-encode (a /, a "
                            "space, an @ in the password); write it percent-encoded (%2F, %20, %40) or use the "
                            "keyword form host=… user=… password=… dbname=….")


def _check_keywords(url: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 -- its message may quote the password
        raise StoreUnusable(f"LOOP_STORE {mask_url(url)!r} reads as a keyword connection string (key=value …) that "
                            "psycopg cannot parse; quote a value holding spaces (password='a b'), or write "
                            "sqlite:///NAME for a SQLite file of that name.") from None


def store_timeout() -> float:
    """How long any wait on the store may last (LOOP_STORE_TIMEOUT seconds): a lock another session
    holds, a connection being made."""
    raw = os.environ.get("LOOP_STORE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if not 0.1 <= value <= 3600:
        raise UsageError(f"LOOP_STORE_TIMEOUT={raw!r} is not a number of seconds between 0.1 and 3600; fix it.")
    return value


class Database:
    """One connection to the store, shared by a process's threads one statement at a time.

    Every use first makes sure the connection is still the store's: a PostgreSQL connection the
    server hung up on (a restart, a terminated backend) is replaced, and so is a SQLite connection
    whose file was replaced or deleted. Only what was never sent is run on the new one: a statement
    that failed on the way is reported, never run twice."""

    def __init__(self, url: str):
        self.url = url
        self.shown = mask_url(url)
        self.secrets = (url, *secrets_of(url))
        self.path = sqlite_path(url)
        self.postgres = self.path is None
        self.timeout = store_timeout()
        self._lock = threading.RLock()
        self.workbook_ids: dict[str, int] = {}  # identity -> id in the store now open
        self._conn = None
        self._in_transaction = False
        self.inode = None
        with self._lock:
            self._open()

    # -- connecting ------------------------------------------------------------------------

    def _open(self) -> None:
        self.workbook_ids.clear()
        self._conn = self._connect_postgres() if self.postgres else self._connect_sqlite()
        try:
            self._migrate()
        except BaseException:
            self._drop()
            raise

    def _connect_sqlite(self):
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise UsageError(f"The store's folder {folder} does not exist; create it or set LOOP_STORE.")
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            self.inode = _inode(self.path)
            # A rollback journal, not WAL: there is no -wal or -shm file that deleting could split from
            # the database, and the store is one file between transactions. EXTRA syncs the folder once
            # the journal is deleted, so a printed trace id survives a power cut.
            try:
                conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError:  # a process of an earlier release keeps it in WAL mode for now
                pass
            conn.execute("PRAGMA synchronous=EXTRA")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as error:
            raise self.failure(error) from None
        return conn

    def _connect_postgres(self):
        try:
            import psycopg
        except ImportError:  # pragma: no cover -- a dependency of the package
            raise UsageError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'.") from None
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(2, round(self.timeout)))
            conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")
        except psycopg.Error as error:
            raise self.failure(error) from None
        return conn

    def _usable(self):
        """The connection, replaced first when it is known not to be the store's any more; inside a
        transaction it is never switched."""
        if self._in_transaction:
            return self._conn
        if self._conn is None or (self._hung_up() if self.postgres else _inode(self.path) != self.inode):
            self._drop()
            self._open()
        return self._conn

    def _hung_up(self) -> bool:
        """The server closed this idle connection (a restart, pg_terminate_backend): it said so, or
        hung up, before anything was sent, so the socket reads. Nothing is in flight then."""
        import select

        conn = self._conn
        if conn.closed or conn.broken:
            return True
        try:
            return bool(select.select([conn.fileno()], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 -- a connection already lost
                pass

    # -- errors ----------------------------------------------------------------------------

    def failure(self, error: Exception, committing: bool = False):
        """A database error as one line that says what the server said and what to do, with the
        URL's password masked: StoreUnusable when waiting will not help, UsageError (exit 2) when the
        user must fix it, RunFailure (exit 1) when it may pass."""
        reason = scrub(" ".join(str(error).split()), self.secrets)[:300] or error.__class__.__name__
        if self.postgres:
            return self._postgres_failure(error, reason, committing)
        return self._sqlite_failure(error, reason)

    def _postgres_failure(self, error: Exception, reason: str, committing: bool):
        import psycopg

        state = getattr(error, "sqlstate", None) or _connect_state(reason)
        where = f"The store at {self.shown}"
        said = f"the server said: {reason}"
        if isinstance(error, psycopg.DataError) and "NUL" in reason:
            return UsageError(NUL_REFUSED)
        if isinstance(error, psycopg.ProgrammingError) and state is None:
            return StoreUnusable(f"{where} cannot be used ({reason}); fix LOOP_STORE.")
        if state is None or state[:2] in ("08", "57") and state != "57014":
            if committing:
                return RunFailure(f"{where} was lost while committing ({said}): what was being written may or may "
                                  "not be kept; `loop status` shows what the store holds. Run again once it answers.")
            if state in ("57P01", "57P02", "57P03"):
                return RunFailure(f"{where} ended the connection ({said}); run again in a moment.")
            return RunFailure(f"{where} cannot be reached ({said}); start the server or fix the host and port in "
                              "LOOP_STORE, and run again.")
        if state.startswith("28"):
            return StoreUnusable(f"{where} refused the credentials ({said}); fix the user and password in "
                                 "LOOP_STORE, or the server's pg_hba.conf.")
        if state in _REFUSALS:
            kind, what, fix = _REFUSALS[state]
            return kind(f"{where} {what} ({said}){fix}")
        if state == "55P03":
            return RunFailure(self._lock_holder_message())
        if state.startswith("53"):
            return RunFailure(f"{where} is out of resources ({said}); free disk or memory on the server, or raise "
                              "max_connections, and run again.")
        if state in ("40001", "40P01"):
            return RunFailure(f"{where} ended a transaction to resolve a conflict ({said}); run again.")
        if state.startswith("XX"):
            return StoreUnusable(f"{where} reports damaged data ({said}); restore it from a backup.")
        return RunFailure(f"{where} failed ({said}); check the server's log, and run again.")

    def _lock_holder_message(self) -> str:
        """Who holds the lock this connection waited for: the oldest other transaction holding a lock
        on the store's tables, or the migration lock, looked up from a connection of its own."""
        waited = f"The store at {self.shown} waited {self.timeout:g} s for a lock another session holds"
        try:
            import psycopg

            with psycopg.connect(self.url, autocommit=True, connect_timeout=max(2, round(self.timeout))) as look:
                row = look.execute(
                    "SELECT a.pid, a.application_name, a.usename, a.state, a.xact_start, "
                    "CASE WHEN l.locktype = 'advisory' THEN 'the migration lock' ELSE c.relname END "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "LEFT JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.granted AND l.pid <> pg_backend_pid() AND a.datname = current_database() "
                    "AND ((l.locktype = 'relation' AND c.relname IN ('drafts', 'workbooks', 'migrations', 'prompt_serving', 'prompt_versions')) "
                    f"OR (l.locktype = 'advisory' AND l.objid = {MIGRATION_LOCK})) "
                    "ORDER BY a.xact_start NULLS LAST, a.pid LIMIT 1").fetchone()
        except Exception:  # noqa: BLE001 -- the lookup is a courtesy
            row = None
        if row is None:
            return (f"{waited}; find it in pg_stat_activity (state 'idle in transaction'), end it, and run again.")
        pid, application, user, state, since, what = row
        held = [f"application {application!r}" if application else "no application name"]
        if user:
            held.append(f"user {user}")
        if state:
            held.append(state + (f" since {since.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC" if since else ""))
        held.append(f"holding {what}")
        return (f"{waited}: pid {pid} ({', '.join(held)}). End that transaction, or the session with SELECT "
                f"pg_terminate_backend({pid}); then run again.")

    def _sqlite_failure(self, error: Exception, reason: str):
        lowered = reason.lower()
        if self._conn is not None and _inode(self.path) != self.inode:
            return RunFailure(f"The store {self.path} was replaced or deleted while this wrote to it ({reason}); "
                              "nothing was kept there; run again.")
        if "locked" in lowered or "busy" in lowered:
            return RunFailure(f"The store {self.path} stayed locked for {self.timeout:g} s by "
                              f"{_sqlite_lock_holder(self.path)}; wait for it or end it, and run again.")
        if "readonly" in lowered or "read-only" in lowered or "permission" in lowered or "unable to open" in lowered:
            return StoreUnusable(f"The store {self.path} cannot be written ({reason}); make it and its folder "
                                 "writable, or set LOOP_STORE.")
        if "full" in lowered:
            return UsageError(f"The disk holding the store {self.path} is full; free some space and run again.")
        return StoreUnusable(f"The store {self.path} is damaged ({reason}); restore it from a backup or set LOOP_STORE.")

    def close(self) -> None:
        with self._lock:
            self._drop()

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
        _refuse_nul(params)
        with self._lock, self._errors():
            cursor = self._usable().execute(self._sql(sql), params)
            return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows) -> None:
        rows = list(rows)
        if not rows:
            return
        for row in rows:
            _refuse_nul(row)
        with self._lock, self._errors():
            conn = self._usable()
            if self.postgres:
                with conn.cursor() as cursor:
                    cursor.executemany(self._sql(sql), rows)
            else:
                conn.executemany(sql, rows)

    @contextmanager
    def transaction(self):
        """One transaction: everything inside commits together, or nothing does (a transaction begun
        inside one is part of it). SQLite takes its writer lock at the start (BEGIN IMMEDIATE), so two
        writers never interleave. A connection lost during the COMMIT is reported as such: the
        change may have been kept, so it is never sent again."""
        with self._lock:
            if self._in_transaction:
                yield self
                return
            with self._errors():
                conn = self._usable()
                conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
            self._in_transaction = True
            try:
                yield self
            except BaseException:
                self._in_transaction = False
                self._rollback(conn)
                raise
            self._in_transaction = False
            try:
                conn.execute("COMMIT")
            except Exception as error:
                self._rollback(conn)  # SQLite keeps a transaction whose COMMIT was refused open
                raise self.failure(error, committing=True) from None

    def _rollback(self, conn) -> None:
        try:
            conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 -- a lost connection has nothing to roll back
            pass

    def workbook_id(self, identity: str, location: str) -> int:
        """The id the store now open gives a workbook, registering it the first time (a store reopened
        after its file was replaced may know it under another id, or not at all)."""
        with self._lock:
            self._usable()
            known = self.workbook_ids.get(identity)
            if known is None:
                found = self.execute("SELECT id FROM workbooks WHERE identity = ?", (identity,))
                known = found[0][0] if found else None
            if known is None:
                with self.transaction() as db:
                    db.execute("INSERT INTO workbooks (identity, location) VALUES (?, ?) ON CONFLICT (identity) "
                               "DO NOTHING", (identity, location))
                    known = db.execute("SELECT id FROM workbooks WHERE identity = ?", (identity,))[0][0]
                self.workbook_ids[identity] = known
            return known

    # -- schema ----------------------------------------------------------------------------

    def _versions(self) -> set[int] | None:
        """The schema steps applied, None before the first; read without a lock or a write, so a
        read-only store can still be read."""
        exists = ("SELECT to_regclass('migrations') IS NOT NULL" if self.postgres else
                  "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'migrations'")
        if not self.execute(exists)[0][0]:
            return None
        return {row[0] for row in self.execute("SELECT version FROM migrations")}

    def _check_version(self, done: set[int]) -> None:
        if done and max(done) > len(MIGRATIONS):
            raise StoreUnusable(f"The store {self.shown} was written by a newer release of loop (schema "
                                f"v{max(done)}); upgrade loop (pip install -U loop-prompt-improver).")

    def _migrate(self) -> None:
        done = self._versions()
        if done is not None:
            self._check_version(done)
            if len(done) >= len(MIGRATIONS):
                return
        serial = "BIGSERIAL" if self.postgres else "INTEGER"
        blob = "BYTEA" if self.postgres else "BLOB"
        with self.transaction():
            if self.postgres:  # one migrator at a time across hosts
                self.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            self.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {row[0] for row in self.execute("SELECT version FROM migrations")}
            self._check_version(done)
            for version, step in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in step.format(serial=serial, blob=blob).split(";"):
                    if statement.strip():
                        self.execute(statement)
                self.execute("INSERT INTO migrations (version, applied_at) VALUES (?, ?)",
                             (version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

    @property
    def schema_version(self) -> int:
        return max(row[0] for row in self.execute("SELECT version FROM migrations"))


_OPEN: dict[tuple[int, str], Database] = {}
_OPEN_LOCK = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Close this process's connections at exit."""
    for (pid, _), database in list(_OPEN.items()):
        if pid == os.getpid():
            try:
                database.close()
            except Exception:  # noqa: BLE001 -- exiting anyway
                pass


def connect(url: str) -> Database:
    """The process's connection to `url`, opened (and migrated) once: logging a draft is then one
    transaction, not a connection's handshake. A forked child opens its own; the Database itself
    reopens a SQLite file that was deleted or replaced, and a PostgreSQL connection that was lost."""
    path = sqlite_path(url)
    if path is not None:
        url = "sqlite:///" + os.path.abspath(path)
    key = (os.getpid(), url)
    with _OPEN_LOCK:
        held = _OPEN.get(key)
        if held is None:
            held = _OPEN[key] = Database(url)
        return held


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


# SQLSTATEs that waiting will not mend: (error, what the store did, the fix after the server's words).
_REFUSALS = {
    "3D000": (StoreUnusable, "has no such database", "; create it (createdb) or fix the database name in LOOP_STORE."),
    "25006": (StoreUnusable, "is read-only", ": it is a standby, or the database has default_transaction_read_only "
              "on; point LOOP_STORE at the primary, or run ALTER DATABASE … SET default_transaction_read_only = off."),
    "42501": (StoreUnusable, "does not let this user in",
              "; grant it the store's tables or use the store's owner in LOOP_STORE."),
    "57014": (UsageError, "cancelled a statement", ": its statement_timeout is too short for loop; raise it for "
              "loop's role (ALTER ROLE … SET statement_timeout = '60s'), or ask whoever cancels it, and run again."),
}


def _refuse_nul(params) -> None:
    """A NUL character is refused on both databases alike, before anything is sent: PostgreSQL's text
    cannot hold one, so SQLite is not let to keep what PostgreSQL would refuse."""
    if isinstance(params, dict):
        params = params.values()
    if any(isinstance(value, str) and "\x00" in value for value in params):
        raise UsageError(NUL_REFUSED)


def _connect_state(reason: str) -> str | None:
    """The SQLSTATE of a failed connection, which libpq reports as text only."""
    lowered = reason.lower()
    for words, state in (("password authentication failed", "28P01"), ("no pg_hba.conf entry", "28000"),
                         ("authentication failed", "28000"), ("role", "28000"), ("not permitted to log in", "28000"),
                         ("does not exist", "3D000"), ("permission denied for database", "42501"),
                         ("too many clients", "53300"), ("remaining connection slots", "53300"),
                         ("starting up", "57P03"), ("shutting down", "57P03"), ("in recovery mode", "57P03")):
        if words in lowered and (words != "role" or "does not exist" in lowered):
            return state
    return None


def _sqlite_lock_holder(path: Path) -> str:
    """`another process (pid 1234: python -m loop sync)`: who holds a POSIX lock on the file, read
    from /proc/locks where there is one."""
    try:
        stat = os.stat(path)
        with open("/proc/locks", encoding="ascii") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return "another process"
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in lines:
        fields = line.split()
        if "POSIX" in fields and device in fields:
            pid = fields[fields.index(device) - 1]
            if pid.isdigit() and int(pid) != os.getpid():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        command = " ".join(cmdline.read().replace(b"\0", b" ").decode(errors="replace").split())[:80]
                except OSError:
                    command = ""
                return f"another process (pid {pid}{': ' + command if command else ''})"
    return "another process"
