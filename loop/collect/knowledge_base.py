"""Full-text search over a folder of help-centre articles, for the support agent's KB tool.

The articles stay plain files that people edit in a text editor or review in a pull request; the
index is a derived SQLite file (FTS5, bm25 ranking) that is brought up to date from the files, so
it can always be deleted and rebuilt. Only files whose size or mtime changed are read again, which
keeps the refresh before each agent session cheap even for a large help centre.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import threading
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from loop.errors import UsageError

log = logging.getLogger(__name__)

EXTENSIONS = {".md", ".markdown", ".txt"}
INDEX_NAME = ".kb-index.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0  # a refresh in another process holds the write lock for seconds, not minutes
MAX_QUERY_TERMS = 32  # the query is untrusted: a pasted 50 KB email must not become a 50 KB MATCH
SNIPPET_TOKENS = 20
TITLE_WEIGHT, BODY_WEIGHT = 5.0, 1.0  # a word in the title says more about the article than one in the body

# Words that appear in almost every customer question ("how do I ...") and would otherwise let an
# OR query rank articles by how often they say "you" and "the".
_STOPWORD_TEXT = """
a about after again all also am an and any are as at be been before being but by can cannot could
did do does doing don done for from get got had has have having he her here hers him his how i if
in into is it its just me might more most my no nor not now of on once only or other our ours out
over please same she should so some such than thank thanks that the their them then there these
they this those through to too very was we were what when where which while who whom why will with
would you your yours hi hello
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"\w+")

# files keeps the whole text (for read()) and what refresh() compares; docs.rowid = files.id.
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE,
       size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL)""",
    "CREATE VIRTUAL TABLE IF NOT EXISTS docs USING fts5(title, body, tokenize='porter unicode61')",
]


@dataclass(frozen=True)
class Hit:
    """One search result; doc_id is the path relative to the folder, with "/" separators."""

    doc_id: str
    title: str
    snippet: str
    score: float  # higher is better (the negated bm25 rank)


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str


class KnowledgeBase:
    """A folder of .md / .markdown / .txt files (searched recursively) and its SQLite index.

    Every call opens its own connection, so one instance can serve several agent threads; SQLite's
    locking (WAL mode, a busy timeout) serialises refreshes from several processes.
    """

    def __init__(self, folder: str | Path, index_path: str | Path | None = None):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise UsageError(
                f"Knowledge-base folder {self.folder} does not exist (or is not a folder): "
                "create it, or pass the folder that holds your .md/.txt articles."
            )
        self.index_path = Path(index_path).expanduser() if index_path else self.folder / INDEX_NAME
        self._refresh_lock = threading.Lock()
        self._refreshed = False

    # -- indexing ---------------------------------------------------------------------------

    def refresh(self) -> tuple[int, int, int]:
        """Bring the index up to date with the files; returns (added, updated, removed).

        A file is read again only when its size or mtime_ns differs from what the index recorded.
        The index state is read inside the write transaction (BEGIN IMMEDIATE), so when two
        processes refresh at once the second waits, then finds nothing left to do.
        """
        with self._refresh_lock:
            counts = self._refresh()
            self._refreshed = True
            return counts

    def _ensure_fresh(self) -> None:
        """The automatic refresh: at most once per instance, so a search costs one query, not a folder scan."""
        if self._refreshed:
            return
        with self._refresh_lock:
            if not self._refreshed:
                self._refresh()
                self._refreshed = True

    def _refresh(self) -> tuple[int, int, int]:
        on_disk = self._scan()
        added = updated = removed = 0
        with self._connect() as conn:
            # WAL lets searches keep reading the last committed index while a refresh writes. It is
            # only an optimisation: switching can fail at once (no busy wait) while another process
            # holds the lock, and that process is switching it anyway.
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._ensure_schema(conn)
                indexed = {doc_id: (rowid, size, mtime) for rowid, doc_id, size, mtime
                           in conn.execute("SELECT id, doc_id, size, mtime_ns FROM files")}
                for doc_id, (path, size, mtime) in on_disk.items():
                    known = indexed.get(doc_id)
                    if known and known[1:] == (size, mtime):
                        continue
                    text = _read_inside(self.folder, path)
                    if text is None:  # deleted, or turned into a link, between the scan and now
                        continue
                    title, body = _split_title(text, Path(doc_id))
                    if known:
                        conn.execute("UPDATE files SET size=?, mtime_ns=?, title=?, text=? WHERE id=?",
                                     (size, mtime, title, text, known[0]))
                        conn.execute("DELETE FROM docs WHERE rowid=?", (known[0],))
                        rowid, updated = known[0], updated + 1
                    else:
                        rowid = conn.execute("INSERT INTO files (doc_id, size, mtime_ns, title, text) VALUES (?,?,?,?,?)",
                                             (doc_id, size, mtime, title, text)).lastrowid
                        added += 1
                    conn.execute("INSERT INTO docs (rowid, title, body) VALUES (?,?,?)", (rowid, title, body))
                for doc_id in indexed.keys() - on_disk.keys():
                    conn.execute("DELETE FROM docs WHERE rowid=?", (indexed[doc_id][0],))
                    conn.execute("DELETE FROM files WHERE id=?", (indexed[doc_id][0],))
                    removed += 1
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return added, updated, removed

    def _scan(self) -> dict[str, tuple[str, int, int]]:
        """doc_id -> (path, size, mtime_ns) for every article; hidden files and folders (.git) are skipped.

        Only what lies inside the folder counts: a linked folder is never walked, and a linked file
        is an article only when its target is a regular file inside the folder too (a link to
        /etc/passwd, or one that climbs out with `..`, is skipped).

        Plain os.walk/os.lstat with string paths, and a link resolved only where there is one:
        pathlib objects, or resolving every path, made this scan (which every new instance pays
        before its first search) several times slower on large folders.
        """
        if not self.folder.is_dir():
            raise UsageError(f"Knowledge-base folder {self.folder} has disappeared: restore it or point to another folder.")
        root = os.path.realpath(self.folder)
        found = {}
        for here, dirs, files in os.walk(root):  # followlinks=False: a linked folder is listed, never entered
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # pruned, so .git is never walked
            prefix = os.path.relpath(here, root).replace(os.sep, "/")
            prefix = "" if prefix == "." else prefix + "/"
            for name in files:
                if name.startswith(".") or os.path.splitext(name)[1].lower() not in EXTENSIONS:
                    continue
                path = os.path.join(here, name)  # real already: the walk starts at the real root, enters no link
                try:
                    st = os.lstat(path)
                    if stat.S_ISLNK(st.st_mode):  # an article only when it leads to a file inside the folder
                        path = _inside(root, path)
                        if path is None:
                            continue
                        st = os.stat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found[prefix + name] = (path, st.st_size, st.st_mtime_ns)
        return found

    # -- querying ---------------------------------------------------------------------------

    def search(self, query: str, limit: int = 5) -> list[Hit]:
        """The best `limit` articles for free text; an unsearchable query (only emoji, say) finds nothing."""
        self._ensure_fresh()
        match = fts_query(query)
        if not match or limit < 1:
            return []
        sql = f"""SELECT f.doc_id, f.title, snippet(docs, 1, '', '', '…', {SNIPPET_TOKENS}), f.text,
                         bm25(docs, {TITLE_WEIGHT}, {BODY_WEIGHT}) AS rank
                  FROM docs JOIN files f ON f.id = docs.rowid
                  WHERE docs MATCH ? ORDER BY rank LIMIT ?"""
        with self._connect() as conn:
            rows = conn.execute(sql, (match, limit)).fetchall()
        # Whitespace is collapsed: a snippet is read inline by the agent, not rendered as Markdown.
        return [Hit(doc_id, title, " ".join(snippet.split()) or text[:200], -rank)
                for doc_id, title, snippet, text, rank in rows]

    def read(self, doc_id: str, max_chars: int | None = None) -> Document:
        """The whole article as indexed, or its first max_chars characters (ending in "…") when cut."""
        if max_chars is not None and max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars}")
        self._ensure_fresh()
        with self._connect() as conn:
            row = conn.execute("SELECT title, text FROM files WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            raise KeyError(f"No article {doc_id!r} in the knowledge base at {self.folder}; use a doc_id from search().")
        title, text = row
        if max_chars is not None and len(text) > max_chars:
            text = text[: max_chars - 1] + "…"
        return Document(doc_id, title, text)

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> closing[sqlite3.Connection]:
        """A new connection per call, closed by `with` (sqlite3 connections must not cross threads)."""
        try:
            conn = sqlite3.connect(self.index_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise UsageError(f"Cannot open the knowledge-base index {self.index_path} ({exc}): "
                             "check that its folder exists and is writable.") from None
        return closing(conn)

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection) -> None:
        """Create the tables; an index written by another schema version is rebuilt from scratch."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            conn.execute("DROP TABLE IF EXISTS files")
            conn.execute("DROP TABLE IF EXISTS docs")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _inside(root: str, path: str) -> str | None:
    """The real path of `path` when it lies inside the real folder `root` (links resolved), else None."""
    real = os.path.realpath(path)
    try:
        return real if os.path.commonpath([root, real]) == root and real != root else None
    except ValueError:  # another drive, on Windows
        return None


def _read_inside(folder: Path, path: str) -> str | None:
    """The text of the article at the real path `path`, if it is still a regular file inside `folder`.

    The check is made again at reading time, and the file is opened without following a link in its
    last part, so a file swapped for a link after the scan is not read through."""
    root = os.path.realpath(folder)
    if _inside(root, path) != path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        return stream.read()


def fts_query(text: str) -> str:
    """Free text -> an FTS5 query that cannot be a syntax error: quoted words joined with OR.

    Quoting turns AND, NEAR, *, -, ^ and col: into plain words; punctuation and emoji are dropped.
    Stopwords are left out unless the query has nothing else.
    """
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text or "")))
    words = [w for w in words if w not in STOPWORDS] or words
    return " OR ".join(f'"{w}"' for w in words[:MAX_QUERY_TERMS])


def _split_title(text: str, path: Path) -> tuple[str, str]:
    """The first "# Title" line (else the first non-empty line, else the file name) and the rest."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip():
            title = line.strip().lstrip("#").strip() or path.stem
            return title, "\n".join(lines[i + 1:]).strip()
    return path.stem, ""


def knowledge_base(folder: str | Path, named: bool):
    """The bundled agent's knowledge base, by one rule for every command that drafts with it (`loop
    draft`, `loop draft --replay`, and the replay check of `improve` and `check`): a folder you named
    (`--kb`, LOOP_KB) must exist, or it is a UsageError (exit 2); when you named none and the default
    `kb/` is absent, the agent drafts without a knowledge base and one warning line says so."""
    path = Path(folder).expanduser()
    if named or path.is_dir():
        return KnowledgeBase(path)  # a named folder that is missing: KnowledgeBase says so, exit 2
    log.warning("No knowledge base: there is no %s/ folder here, so the bundled agent drafts from the ticket "
                "alone and its drafts check no menu path or setting; put your articles there, or set LOOP_KB "
                "(--kb) to their folder.", path)
    return None
