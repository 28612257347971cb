"""The file archive of earlier releases (`loop.traces/`, `<key>.traces/`), imported into the store once.

Its `traces.jsonl` holds a line per draft and `delivered.json` the byte offset the sheet had. Drafts
before a readable offset are imported as delivered; every other draft as `sent`, so its delivery
first asks the sheet which it has already. The import is one transaction and skips drafts the
store holds, so a second import, or one killed half-way, neither loses nor doubles a draft; then
the folder is renamed `….imported`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from loop.store import DELIVERED, SENT, WorkbookStore

log = logging.getLogger("loop.store")
_FIELDS = ("trace_id", "created_at", "ticket", "draft", "ticket_id", "thread", "kb_sources", "prompt_version")


def import_folder(outbox: WorkbookStore, folder: Path) -> int:
    """Import `folder` into `outbox`'s workbook; returns how many drafts it held."""
    lines = folder / "traces.jsonl"
    if not lines.is_file():
        return 0
    data = lines.read_bytes()
    offset = _delivered_offset(folder / "delivered.json", len(data))
    records, withdrawn, position = [], set(), 0
    for line in data.splitlines(keepends=True):
        start, position = position, position + len(line)
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if not isinstance(record, dict):
            continue
        withdrawn.update(record.get("withdrawn") or [])
        if isinstance(record.get("trace_id"), str) and record["trace_id"]:
            records.append((start, {key: str(record.get(key) or "") for key in _FIELDS}))
    delivered = [r for start, r in records if r["trace_id"] not in withdrawn and offset is not None and start < offset]
    waiting = [r for start, r in records if r["trace_id"] not in withdrawn and (offset is None or start >= offset)]
    outbox.add_many([(delivered, DELIVERED), (waiting, SENT)], skip_known=True)
    target = folder.with_name(folder.name + ".imported")
    n = 2
    while target.exists():
        target, n = folder.with_name(f"{folder.name}.imported-{n}"), n + 1
    folder.rename(target)
    log.info("Imported %d drafts from %s into the store (%d still to reach the sheet); the folder is now %s.",
             len(delivered) + len(waiting), folder, len(waiting), target.name)
    return len(delivered) + len(waiting)


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
