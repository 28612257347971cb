"""The prompt history folders of earlier releases, read once to import them into the store.

Earlier releases kept a prompt's versions beside it, in `<file name>.history/` (`support_agent.md.history/`):
one file per version with the prompt file's exact bytes (`v3.md`) and a log (`log.jsonl`) of versions
and rollbacks, each with its time, its source and, for applies, the edits and evidence behind it.
Older still, the folder was named after the file's stem (`support_agent.history/`): such a folder
belongs to the file its log names, or, for a log that names none, the file whose bytes are the newest
of its versions (or the only file of that stem); when that cannot be told, the command stops and says
how to rename it. A log line that is JSON but not a record stops the command with the file and line to
repair; a line a crash cut short is skipped, as is a change the crash left unlogged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from loop import files
from loop.errors import UsageError


@dataclass(frozen=True)
class History:
    """An old history folder's records, oldest first, with each version's bytes."""

    folder: Path
    events: list[dict]
    bodies: dict[int, bytes]


def folder_of(path: Path) -> Path | None:
    """The history folder an earlier release kept for the prompt file `path`, or None."""
    new = path.with_name(path.name + ".history")
    legacy = path.with_name(path.stem + ".history")
    if new.is_dir():
        return new
    if legacy == new or not legacy.is_dir():
        return None
    events = [e for e in files.read_json_lines(legacy / "log.jsonl")[0] if isinstance(e, dict)]
    named = [e["prompt"] for e in events if isinstance(e.get("prompt"), str)]
    if named:
        return legacy if named[-1] == path.name else None
    return legacy if _legacy_owner(legacy, events, path) == path.name else None


def read(folder: Path) -> History:
    """The folder's records, each checked, and the bytes of every version they record."""
    log = folder / "log.jsonl"
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        return History(folder, [], {})
    events, known = [], set()
    for number, line in enumerate(data[:data.rfind(b"\n") + 1].splitlines(), start=1):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        problem = _problem(event, known)
        if problem:
            raise UsageError(f"{log}, line {number}, is not a prompt history record ({problem}); restore "
                             "the file from version control or a backup, or delete that line, and run again.")
        if event["event"] == "version":
            known.add(event["version"])
        events.append(event)
    bodies = {}
    for number in known:
        try:
            bodies[number] = (folder / f"v{number}.md").read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{folder} records v{number} but has no v{number}.md; restore it from version control "
                             "or a backup and run again.") from None
    return History(folder, events, bodies)


def _whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _problem(event, known: set[int]) -> str:
    """Why a log line is not a record this module wrote, given the versions recorded before it; "" if it is one."""
    if not isinstance(event, dict):
        return f"a JSON {type(event).__name__}, not an object"
    kind = event.get("event")
    if kind not in ("version", "rollback"):
        return f"event {kind!r} is neither 'version' nor 'rollback'"
    number = event.get("version")
    if not _whole_number(number):
        return f"version {number!r} is not a version number"
    if not isinstance(event.get("created_at"), str):
        return "it has no created_at time"
    if kind == "rollback":
        return "" if number in known else f"it rolls back to v{number}, which no earlier line records"
    if number in known:
        return f"v{number} is recorded twice"
    parent = event.get("parent")
    if parent is not None and parent not in known:
        return f"its parent {parent!r} is not a version recorded before it"
    for key in ("source", "sha256"):
        if not isinstance(event.get(key), str):
            return f"it has no {key}"
    edits = event.get("edits", [])
    if not isinstance(edits, list) or not all(isinstance(e, dict) and isinstance(e.get("edit_id"), str) for e in edits):
        return "its edits are not a list of edits with an edit_id"
    return ""


def _legacy_owner(folder: Path, events: list[dict], path: Path) -> str | None:
    """The name of the file an older `<stem>.history/` folder, whose log names no file, belongs to:
    the only file of that stem, or the one whose bytes are the newest recorded version; None when
    its log records no version. Two files that fit equally well are a usage error."""
    digests = {e.get("version"): e.get("sha256") for e in events if e.get("event") == "version"}
    if not digests:
        return None
    candidates = {}
    for entry in sorted(path.parent.iterdir()):
        if (entry.stem == path.stem and entry.is_file() and not entry.name.endswith(".history")
                and not entry.with_name(entry.name + ".history").exists()):
            candidates[entry.name] = hashlib.sha256(entry.read_bytes()).hexdigest()
    if len(candidates) <= 1:
        return next(iter(candidates), None)
    for event in reversed(events):  # the newest version either file still holds decides
        holders = [name for name, digest in candidates.items() if digest == digests.get(event.get("version"))]
        if len(holders) == 1:
            return holders[0]
        if holders:
            break
    names = " or ".join(sorted(candidates))
    raise UsageError(f"{folder} (the history layout of an earlier release) may belong to {names}; rename it to "
                     f"<file name>.history for the file it belongs to (e.g. {path.name}.history) and run again.")

