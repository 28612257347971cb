"""The managed prompt and every version of it, kept byte for byte.

History lives beside the prompt, in `<name>.history/`: one file per version holding the prompt
file's exact bytes (`v3.md`) and a log (`log.jsonl`) of versions and rollbacks, each with its time,
its source (initial, hand edit, apply) and, for applies, the edits and evidence behind it.

Every change writes a `pending` marker, then the log line (the commit point), then the prompt file,
then removes the marker. Whoever takes the lock next finishes an interrupted change or discards it;
if the prompt file was edited by hand meanwhile, that edit is recorded as a version of its own
rather than overwritten. So the prompt is never half-written, no change is lost, and the log
always tells which edits are in it.

The prompt is read as UTF-8 (with or without a byte-order mark). Edits work on its text with `\\n`
line endings; the file keeps its own BOM and line endings, so only the edited passage changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from . import files
from .errors import UsageError

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
        self.history = self.path.with_name(self.path.stem + ".history")
        self._log = self.history / "log.jsonl"
        self._pending = self.history / "pending"

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
        folder = self.path.parent if str(self.path.parent) else Path(".")
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
        return files.read_json_lines(self._log)[0]

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
        self._journal({"event": "rollback", "version": target.number, "from": current.number, "created_at": _now()},
                      self.bytes_of(target.number))
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
                 "created_at": version.created_at, "sha256": version.sha256, "edits": version.edits}
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
