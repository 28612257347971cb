"""The managed prompt and every version of it, kept byte for byte.

History lives beside the prompt, in `<file name>.history/` (`support_agent.md.history/`): one file
per version holding the prompt file's exact bytes (`v3.md`) and a log (`log.jsonl`) of versions and
rollbacks, each with its time, its source (initial, hand edit, apply), the prompt file's name and,
for applies, the edits and evidence behind it. Each prompt file has its own history, so
`agent.md` and `agent.txt` in one folder never share one.

Earlier releases named the folder after the file's stem (`support_agent.history/`). Such a folder
is still read and written, for the one file it belongs to, while no `<file name>.history/` exists:
the file its log names (every line written by this release names it), or, for a log that names
none, the file whose bytes are the newest of its versions (or the only file of that stem). Any
other file of that stem starts its own `<file name>.history/`; when it cannot be told which file
the folder belongs to, the command stops and says how to rename it.

Every change writes a `pending` marker, then the log line (the commit point), then the prompt file,
then removes the marker. Whoever takes the lock next finishes an interrupted change or discards it;
if the prompt file was edited by hand meanwhile, that edit is recorded as a version of its own
rather than overwritten. So the prompt is never half-written, no change is lost, and the log
always tells which edits are in it.

The prompt is read as UTF-8 (with or without a byte-order mark). Edits work on its text with `\\n`
line endings; the file keeps its own BOM and line endings, so only the edited passage changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from loop import files
from loop.errors import UsageError

BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
               b"\xfe\xff": "UTF-16"}


@dataclass(frozen=True)
class Version:
    number: int
    parent: int | None
    source: str
    created_at: str
    sha256: str
    edits: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"v{self.number}"


@dataclass(frozen=True)
class TextFormat:
    """How a prompt file stores its text: a UTF-8 byte-order mark or not, and its line ending."""

    bom: bool = False
    newline: str = "\n"

    def encode(self, text: str) -> bytes:
        if self.newline == "\r\n":
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        return (BOM if self.bom else b"") + text.encode("utf-8")


def decode(data: bytes, path: Path, setting: str = "LOOP_PROMPT") -> tuple[str, TextFormat]:
    """The prompt's text with `\\n` line endings, and the format to write it back in.

    Line endings are translated only when every one of them is CRLF, so a file with mixed endings
    is edited as it is and written back unchanged outside the edit."""
    for mark, name in _OTHER_BOMS.items():
        if data.startswith(mark):
            raise UsageError(f"{path} is {name}-encoded; save it as UTF-8 and run again (or point {setting} elsewhere).")
    bom = data.startswith(BOM)
    try:
        text = data[len(BOM) if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{path} is not UTF-8 (byte {error.start}{_guess_encoding(data)}); save it as UTF-8 and run again."
        ) from None
    crlf = text.count("\r\n")
    if crlf and crlf == text.count("\n") == text.count("\r"):
        return text.replace("\r\n", "\n"), TextFormat(bom, "\r\n")
    return text, TextFormat(bom, "\n")


def _guess_encoding(data: bytes) -> str:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # a dependency of requests, so normally present
        return ""
    best = from_bytes(data[:65536]).best()
    return f"; it looks like {best.encoding}" if best and best.encoding else ""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Rollback:
    """What `rollback` did: `undone` is None when the prompt was already at its first version."""

    undone: Version | None
    current: Version


class PromptStore:
    def __init__(self, path: str | Path, setting: str = "LOOP_PROMPT"):
        self.path = Path(path)
        self.setting = setting  # the variable that names this file, for error messages

    @functools.cached_property
    def history(self) -> Path:
        """This file's history folder (see the module's docstring for how an older one is found)."""
        new = self.path.with_name(self.path.name + ".history")
        legacy = self.path.with_name(self.path.stem + ".history")
        if new.exists() or legacy == new or not legacy.is_dir():
            return new
        events = [e for e in files.read_json_lines(legacy / "log.jsonl")[0] if isinstance(e, dict)]
        named = [e["prompt"] for e in events if isinstance(e.get("prompt"), str)]
        if named:
            return legacy if named[-1] == self.path.name else new
        return legacy if _legacy_owner(legacy, events, self.path) == self.path.name else new

    @property
    def _log(self) -> Path:
        return self.history / "log.jsonl"

    @property
    def _pending(self) -> Path:
        return self.history / "pending"

    @contextmanager
    def lock(self, timeout: float = 120):
        """Held by every command that changes the prompt, so two applies never interleave."""
        self.history.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.history / ".lock"), timeout=timeout):
            yield

    def exists(self) -> bool:
        return self.path.exists()

    def ensure_writable(self) -> None:
        """Raise UsageError now if the prompt or its history could not be written."""
        self.read_bytes()
        real = Path(os.path.realpath(self.path))  # a link is written through, in its target's folder
        folder = real.parent if str(real.parent) else Path(".")
        for place in (folder, self.history if self.history.exists() else folder):
            if not os.access(place, os.W_OK | os.X_OK):
                raise UsageError(f"Cannot write in {place}; fix its permissions and run again. Nothing was changed.")

    def read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"No prompt at {self.path}; set {self.setting} (or --prompt) to the prompt file.") from None

    def read(self) -> str:
        """The prompt's text, with `\\n` line endings."""
        return decode(self.read_bytes(), self.path, self.setting)[0]

    def format(self) -> TextFormat:
        return decode(self.read_bytes(), self.path, self.setting)[1]

    def _events(self) -> list[dict]:
        """The log's records, oldest first, each checked: a line that is JSON but not a record loop
        wrote stops the command with one line naming the file, the line and the fix. (A line a crash
        cut short is not JSON, and is skipped as `files.read_json_lines` does.)"""
        try:
            data = self._log.read_bytes()
        except FileNotFoundError:
            return []
        events, known = [], set()
        for number, line in enumerate(data[:data.rfind(b"\n") + 1].splitlines(), start=1):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            problem = _problem(event, known)
            if problem:
                raise UsageError(f"{self._log}, line {number}, is not a prompt history record ({problem}); restore "
                                 "the file from version control or a backup, or delete that line, and run again.")
            if event["event"] == "version":
                known.add(event["version"])
            events.append(event)
        return events

    def versions(self) -> dict[int, Version]:
        return {
            e["version"]: Version(e["version"], e.get("parent"), e["source"], e["created_at"], e["sha256"], e.get("edits", []))
            for e in self._events()
            if e.get("event") == "version"
        }

    def periods(self) -> dict[int, list[tuple[str, str | None]]]:
        """version → the (from, until) times it was current, oldest first; until is None while it still is."""
        found: dict[int, list[tuple[str, str | None]]] = {}
        current = None
        for event in self._events():
            if event["version"] == current:
                continue
            if current is not None:  # the version before ends where this one begins
                found[current][-1] = (found[current][-1][0], event["created_at"])
            found.setdefault(event["version"], []).append((event["created_at"], None))
            current = event["version"]
        return found

    def current(self) -> Version | None:
        """The version the prompt file should hold: the last one committed or rolled back to."""
        events = self._events()
        if not events:
            return None
        return self.versions()[events[-1]["version"]]

    def bytes_of(self, number: int) -> bytes:
        return (self.history / f"v{number}.md").read_bytes()

    def text_of(self, number: int) -> str:
        return decode(self.bytes_of(number), self.history / f"v{number}.md", self.setting)[0]

    def hand_edited(self) -> bool:
        """Whether the file differs from the version the history says it holds."""
        current = self.current()
        return current is not None and self.exists() and sha256(self.read_bytes()) != current.sha256

    def sync(self) -> Version:
        """Finish an interrupted change, and record the file as a version if someone edited it by hand.

        Call with the lock held."""
        self._recover()
        data = self.read_bytes()
        decode(data, self.path, self.setting)  # refuse a file that is not UTF-8 before recording it
        current = self.current()
        if current is None:
            return self._record(data, parent=None, source="initial")
        if sha256(data) != current.sha256:
            return self._record(data, parent=current.number, source="hand edit")
        return current

    def commit(self, text: str, source: str, edits: list[dict] | None = None) -> Version:
        """A new version with `text`, made current and written to the prompt file in the file's own
        format (BOM, line endings). Call with the lock held, after `sync`."""
        current = self.current()
        data = self.format().encode(text)
        return self._record(data, parent=current.number if current else None, source=source, edits=edits,
                            write_prompt=True)

    def rollback(self) -> Rollback:
        """Make the current version's parent current again, restoring its exact bytes. Call with the lock held."""
        current = self.sync()
        if current.parent is None:
            return Rollback(None, current)
        target = self.versions()[current.parent]
        self._journal({"event": "rollback", "version": target.number, "from": current.number, "created_at": _now(),
                       "prompt": self.path.name}, self.bytes_of(target.number))
        return Rollback(current, target)

    def lineage(self) -> list[Version]:
        """The current version and its ancestors, newest first: the versions whose edits are in the prompt."""
        versions, found = self.versions(), []
        current = self.current()
        number = current.number if current else None
        while number is not None:
            found.append(versions[number])
            number = versions[number].parent
        return found

    def applied_edits(self) -> dict[str, str]:
        """edit_id → version label, for the edits in the current version or its ancestors."""
        found: dict[str, str] = {}
        for version in self.lineage():
            for edit in version.edits:
                found.setdefault(edit["edit_id"], version.label)
        return found

    def _record(self, data: bytes, parent, source, edits=None, write_prompt=False) -> Version:
        number = max(self.versions(), default=0) + 1
        version = Version(number, parent, source, _now(), sha256(data), edits or [])
        files.write_bytes(self.history / f"v{number}.md", data)
        event = {"event": "version", "version": number, "parent": parent, "source": source,
                 "created_at": version.created_at, "sha256": version.sha256, "edits": version.edits,
                 "prompt": self.path.name}
        self._journal(event, data if write_prompt else None)
        return version

    def _journal(self, event: dict, prompt_data: bytes | None) -> None:
        """Log `event` and write the prompt file, with a marker that lets `_recover` finish or undo it."""
        files.write_text(self._pending, json.dumps({"event": event, "write_prompt": prompt_data is not None}))
        files.append_json_lines(self._log, [event])
        if prompt_data is not None:
            files.write_bytes(self.path, prompt_data)
        self._pending.unlink()

    def _recover(self) -> None:
        """Finish a journalled change whose log line was written; forget one whose line was not.

        A prompt file that holds neither the text before the change nor after it was edited by hand
        since: it is kept, and recorded as a version, never overwritten."""
        if not self._pending.exists():
            return
        try:
            pending = json.loads(self._pending.read_text(encoding="utf-8"))
        except ValueError:  # the marker itself was cut short: nothing after it happened
            self._pending.unlink()
            return
        event = pending["event"]
        events = self._events()
        if events and events[-1] == event:
            if pending["write_prompt"]:
                self._finish(event)
        elif event["event"] == "version":
            (self.history / f"v{event['version']}.md").unlink(missing_ok=True)
        self._pending.unlink(missing_ok=True)  # recording a hand edit replaced and removed it already

    def _finish(self, event: dict) -> None:
        target = self.bytes_of(event["version"])
        before = event.get("parent") if event["event"] == "version" else event.get("from")
        try:
            now = self.path.read_bytes()
        except FileNotFoundError:
            now = None
        if now == target:
            return
        versions = self.versions()
        if now is None or (before in versions and sha256(now) == versions[before].sha256):
            files.write_bytes(self.path, target)
        else:
            self._record(now, parent=before, source="hand edit")


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
            candidates[entry.name] = sha256(entry.read_bytes())
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
