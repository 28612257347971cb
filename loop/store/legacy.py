"""The file archive of earlier releases (`loop.traces/`, `<key>.traces/`, or the folder `LOOP_TRACES`
named), imported into the store once.

Its `traces.jsonl` holds a line per draft and `delivered.json` the byte offset the sheet had. Drafts
before a readable offset are imported as delivered; every other draft as `sent`, so its delivery
first asks the sheet which it has already. The import is one transaction and skips drafts the
store holds, so a second import, or one killed half-way, neither loses nor doubles a draft; then
the folder is renamed `….imported`. Imports run one at a time (a lock beside a SQLite store, an
advisory lock on PostgreSQL), so two commands started together import once and both go on.

A line that cannot be imported (not JSON, not a draft, a field that is not text, text the store
cannot hold: a lone surrogate) is set aside, never lost and never a
traceback: it stays in the archive, is copied to an archive of its own, `set-aside/` in the renamed
folder (which imports like any other once fixed and moved back), and one warning names the lines.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

from loop.cell_values import REPLACEMENT, lone_surrogate
from loop.errors import RunFailure
from loop.store import DELIVERED, SENT, WorkbookStore

log = logging.getLogger("loop.store")
_FIELDS = ("trace_id", "created_at", "ticket", "draft", "ticket_id", "thread", "kb_sources", "prompt_version")
SET_ASIDE = "set-aside"
IMPORT_WAIT = 120.0  # another command importing a large archive: how long to wait for it
_ADVISORY_KEY = 7162535  # one importer at a time on a PostgreSQL store


def import_folder(outbox: WorkbookStore, folder: Path) -> int:
    """Import `folder` into `outbox`'s workbook; returns how many drafts it held."""
    lines = folder / "traces.jsonl"
    if not lines.is_file():
        return 0
    with _one_importer(outbox.db):
        try:
            data = lines.read_bytes()
        except FileNotFoundError:
            return 0  # another command imported it while this one waited
        offset = _delivered_offset(folder / "delivered.json", len(data))
        records, withdrawn, rejected = _parse(data)
        delivered = [r for start, r in records if r["trace_id"] not in withdrawn and offset is not None and start < offset]
        waiting = [r for start, r in records if r["trace_id"] not in withdrawn and (offset is None or start >= offset)]
        outbox.add_many([(delivered, DELIVERED), (waiting, SENT)], skip_known=True)
        kept = Path(SET_ASIDE, lines.name)
        if rejected:
            try:
                _set_aside(folder / SET_ASIDE, [raw for _, raw, _ in rejected])
            except OSError:
                kept = Path(lines.name)  # they are in the archive itself still
        target = _rename(folder)
    log.info("Imported %d drafts from %s into the store (%d still to reach the sheet); the folder is now %s.",
             len(delivered) + len(waiting), folder, len(waiting), target.name)
    if rejected:
        reasons = "; ".join(f"line {number}: {reason}" for number, _, reason in rejected[:3])
        more = f"; and {len(rejected) - 3} more" if len(rejected) > 3 else ""
        log.warning("%d line%s of %s could not be imported (%s%s). They are kept in %s: fix them there and "
                    "move its folder to %s; the next command imports them.", len(rejected),
                    "" if len(rejected) == 1 else "s", lines, reasons, more, target / kept, folder)
    return len(delivered) + len(waiting)


def _parse(data: bytes):
    """(records with their byte offsets, withdrawn trace ids, lines set aside as (number, bytes, why))."""
    records, withdrawn, rejected, position = [], set(), [], 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        start, position = position, position + len(line)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            rejected.append((number, line, "not JSON (cut short by a crash?)"))
            continue
        gone = record.get("withdrawn") if isinstance(record, dict) else None
        # withdrawn drafts were never logged: those a malformed line names stay out too (the line is kept)
        withdrawn.update([gone] if isinstance(gone, str) else [t for t in gone if isinstance(t, str)]
                         if isinstance(gone, list) else [])
        problem = _problem(record)
        if problem:
            rejected.append((number, line, problem))
            continue
        if "trace_id" in record:
            records.append((start, {key: _text(record.get(key)) for key in _FIELDS}))
    return records, withdrawn, rejected


def _problem(record) -> str | None:
    """Why a parsed line cannot be imported, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    gone = record.get("withdrawn")
    if gone is not None and not (isinstance(gone, list) and all(isinstance(t, str) for t in gone)):
        return "withdrawn is not a list of trace ids"
    if "trace_id" not in record:
        return None if "withdrawn" in record else "no trace_id"
    if not isinstance(record["trace_id"], str) or not record["trace_id"].strip():
        return "trace_id is not text"
    for key in _FIELDS:
        value = record.get(key)
        if value is not None and not isinstance(value, (str, int, float)):
            return f"{key} is not text"
        text = _text(value)
        if lone_surrogate(text) is not None:
            return f"{key} holds a lone surrogate, which no file or database can store"
    return None


def _set_aside(where: Path, lines: list[bytes]) -> None:
    """The lines set aside, as an archive of their own that imports once fixed: nothing in it counts
    as delivered, so each draft's delivery asks the sheet first."""
    where.mkdir(exist_ok=True)
    (where / "traces.jsonl").write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
    (where / "delivered.json").write_text(json.dumps({"offset": 0}), encoding="utf-8")


def _text(value) -> str:
    """A field as text; a NUL becomes the mark `loop log` gives it, the same on both stores."""
    return "" if value is None else str(value).replace("\x00", REPLACEMENT)


def _rename(folder: Path) -> Path:
    """Rename the imported folder `….imported` (`….imported-2`, … when that is taken)."""
    n = 2
    target = folder.with_name(folder.name + ".imported")
    while True:
        while target.exists():
            target, n = folder.with_name(f"{folder.name}.imported-{n}"), n + 1
        try:
            folder.rename(target)
            return target
        except FileNotFoundError:
            return target  # renamed by another command meanwhile
        except OSError as error:
            if not folder.exists():
                return target
            if not target.exists():  # a read-only folder: the drafts are in the store, so go on, and say so
                log.warning("%s is imported but cannot be renamed (%s); move it away so that commands stop "
                            "reading it.", folder, error.strerror or error)
                return folder
            # taken meanwhile: try the next name


@contextmanager
def _one_importer(db):
    """Held while one command imports: a lock file beside a SQLite store, an advisory lock on PostgreSQL."""
    deadline = time.monotonic() + IMPORT_WAIT
    if db.postgres:
        while not db.execute("SELECT pg_try_advisory_lock(?)", (_ADVISORY_KEY,))[0][0]:
            if time.monotonic() >= deadline:
                raise RunFailure("Another loop command has been importing an old trace archive for "
                                 f"{IMPORT_WAIT:g} s; run again when it is done.")
            time.sleep(0.05)
        try:
            yield
        finally:
            db.execute("SELECT pg_advisory_unlock(?)", (_ADVISORY_KEY,))
        return
    from filelock import FileLock, Timeout

    lock = FileLock(f"{db.path}.import.lock")
    try:
        lock.acquire(timeout=IMPORT_WAIT)
    except Timeout:
        raise RunFailure("Another loop command has been importing an old trace archive for "
                         f"{IMPORT_WAIT:g} s; run again when it is done.") from None
    try:
        yield
    finally:
        lock.release()


def _delivered_offset(state: Path, size: int) -> int | None:
    """How far the sheet had the archive, or None when that cannot be trusted (then the sheet is asked)."""
    try:
        offset = json.loads(state.read_text(encoding="utf-8"))["offset"]
    except FileNotFoundError:
        return size  # an archive from before deliveries were tracked: the sheet had every line
    except (ValueError, KeyError, TypeError, OSError):
        return None
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= size:
        return None
    return offset
