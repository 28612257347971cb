"""The managed prompt and every version of it.

History lives beside the prompt, in `<name>.history/`: one file per version (`v3.md`) and a log
(`log.jsonl`) of versions and rollbacks, each with its time, its source (initial, hand edit, apply)
and, for applies, the edits and evidence behind it. Every change writes a `pending` marker, then
the log line (the commit point), then the prompt file, then removes the marker; whoever takes the
lock next finishes or discards an interrupted change, so the prompt is never half-written and the
log always tells which edits are in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from .errors import UsageError


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


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then move it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class PromptStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.history = self.path.with_name(self.path.stem + ".history")
        self._log = self.history / "log.jsonl"
        self._pending = self.history / "pending"

    @contextmanager
    def lock(self, timeout: float = 120):
        """Held by every command that changes the prompt, so two applies never interleave."""
        self.history.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.history / ".lock"), timeout=timeout):
            yield

    def read(self) -> str:
        if not self.path.exists():
            raise UsageError(f"No prompt at {self.path}; set LOOP_PROMPT or --prompt to your agent's prompt file.")
        return self.path.read_text(encoding="utf-8")

    def _events(self) -> list[dict]:
        if not self._log.exists():
            return []
        events = []
        for line in self._log.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: its commit never completed
        return events

    def versions(self) -> dict[int, Version]:
        return {
            e["version"]: Version(e["version"], e.get("parent"), e["source"], e["created_at"], e["sha256"], e.get("edits", []))
            for e in self._events()
            if e.get("event") == "version"
        }

    def current(self) -> Version | None:
        """The version the prompt file should hold: the last one committed or rolled back to."""
        events = self._events()
        if not events:
            return None
        return self.versions()[events[-1]["version"]]

    def text_of(self, number: int) -> str:
        return (self.history / f"v{number}.md").read_text(encoding="utf-8")

    def sync(self) -> Version:
        """Finish an interrupted commit, and record the file as a version if someone edited it by hand.

        Call with the lock held."""
        self._recover()
        text = self.read()
        current = self.current()
        if current is None:
            return self._record(text, parent=None, source="initial")
        if _sha(text) != current.sha256:
            return self._record(text, parent=current.number, source="hand edit")
        return current

    def commit(self, text: str, source: str, edits: list[dict] | None = None) -> Version:
        """A new version with `text`, made current and written to the prompt file. Call with the lock held."""
        current = self.current()
        return self._record(text, parent=current.number if current else None, source=source, edits=edits, write_prompt=True)

    def rollback(self) -> tuple[Version, Version]:
        """Make the current version's parent current again; returns (from, to). Call with the lock held."""
        current = self.sync()
        if current.parent is None:
            raise UsageError(f"{self.path} is at its first recorded version ({current.label}); there is nothing to roll back to.")
        target = self.versions()[current.parent]
        self._journal({"event": "rollback", "version": target.number, "from": current.number, "created_at": _now()},
                      self.text_of(target.number))
        return current, target

    def applied_edits(self) -> dict[str, str]:
        """edit_id → version label, for the edits in the current version or its ancestors."""
        versions, found = self.versions(), {}
        number = self.current().number if self.current() else None
        while number is not None:
            version = versions[number]
            for edit in version.edits:
                found.setdefault(edit["edit_id"], version.label)
            number = version.parent
        return found

    def _record(self, text, parent, source, edits=None, write_prompt=False) -> Version:
        number = max(self.versions(), default=0) + 1
        version = Version(number, parent, source, _now(), _sha(text), edits or [])
        write_atomically(self.history / f"v{number}.md", text)
        event = {"event": "version", "version": number, "parent": parent, "source": source,
                 "created_at": version.created_at, "sha256": version.sha256, "edits": version.edits}
        self._journal(event, text if write_prompt else None)
        return version

    def _journal(self, event: dict, prompt_text: str | None) -> None:
        """Log `event` and write the prompt file, with a marker that lets `_recover` finish or undo it."""
        write_atomically(self._pending, json.dumps({"event": event, "write_prompt": prompt_text is not None}))
        self._append(event)
        if prompt_text is not None:
            write_atomically(self.path, prompt_text)
        self._pending.unlink()

    def _recover(self) -> None:
        """Finish a journalled change whose log line was written; forget one whose line was not."""
        if not self._pending.exists():
            return
        pending = json.loads(self._pending.read_text(encoding="utf-8"))
        event = pending["event"]
        events = self._events()
        if events and events[-1] == event:
            if pending["write_prompt"]:
                write_atomically(self.path, self.text_of(event["version"]))
        elif event["event"] == "version":
            (self.history / f"v{event['version']}.md").unlink(missing_ok=True)
        self._pending.unlink()

    def _append(self, event: dict) -> None:
        line = json.dumps(event, ensure_ascii=False) + "\n"
        with open(self._log, "a+b") as stream:
            stream.seek(0, os.SEEK_END)
            if stream.tell():
                stream.seek(-1, os.SEEK_END)
                if stream.read(1) != b"\n":
                    line = "\n" + line  # end a line cut short by a crash, so this event stands alone
            stream.write(line.encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
