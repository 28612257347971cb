"""The managed prompt: its file, the working copy people edit, and every version of it in the store.

Every version's exact bytes and what the prompt serves now live in the store (`loop.store.prompts`),
so every host sharing a store agrees; the file is where people edit, diff and commit the prompt.
The store's transaction is the commit point of every change: a version is recorded and made current
(or started as a canary) in one transaction, and only then is the file written. So a command cut
short between the two leaves a file *behind* the store, and the next command that writes the prompt
brings it to the current version. The store keeps what each host's file held when loop last wrote or
recorded it: a file that changed since was edited by hand (even back to an older version's bytes), and
the commands that read the prompt record it as a version of its own (its parent: the version of the
current lineage closest to it), never overwrite it.

The prompt is read as UTF-8 (with or without a byte-order mark). Edits work on its text with `\\n`
line endings; the file keeps its own BOM and line endings, so only the edited passage changes.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from loop import files
from loop.errors import UsageError
from loop.store import machine, prompt_history, url_of
from loop.store.prompts import PROMOTED, ROLLED_BACK, Canary, Records, ServingChanged, Serving
from loop.store.prompts import StoredVersion as Version

BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
               b"\xfe\xff": "UTF-16"}
_ATTEMPTS = 5  # a change that finds another host's change committed first is decided again, this often
log = logging.getLogger("loop.prompt")

__all__ = ["PromptStore", "Version", "TextFormat", "decode", "sha256", "Rollback", "Promotion", "CanaryRunning"]


@dataclass(frozen=True)
class TextFormat:
    """How a prompt file stores its text: a UTF-8 byte-order mark or not, and its line ending."""

    bom: bool = False
    newline: str = "\n"

    def encode(self, text: str) -> bytes:
        if self.newline == "\r\n":
            text = text.replace("\r\n", "\n").replace("\n", "\r\n")
        return (BOM if self.bom else b"") + text.encode("utf-8")


def decode(data: bytes, path: Path | str, setting: str = "LOOP_PROMPT") -> tuple[str, TextFormat]:
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


class CanaryRunning(UsageError):
    """A change that needs the prompt without a canary was asked for while one runs."""


@dataclass(frozen=True)
class Rollback:
    """What `rollback` did: `undone` is None when the prompt was already at its first version; `canary`
    is the canary it ended instead, when one ran (the current version then keeps serving)."""

    undone: Version | None
    current: Version
    canary: Canary | None = None


@dataclass(frozen=True)
class Promotion:
    """What `promote` did: the canary made current for everyone, or its share raised (`share`)."""

    canary: Canary
    previous: Version
    current: Version
    share: float | None = None


class PromptStore:
    """One prompt: its file and its records in the store (named by `name`, else the file's name)."""

    def __init__(self, path: str | Path, setting: str = "LOOP_PROMPT", db=None, name: str | None = None):
        self.path = Path(path)
        self.setting = setting  # the variable that names this file, for error messages
        self.name = name or self.path.name
        self._db = db
        self.notes: list[str] = []  # what this object did to the file that a command should say
        self._checked_history = False
        self._checked_import = False

    @property
    def records(self) -> Records:
        if self._db is None:  # the store the environment configures, as every command opens it
            from loop.config import resolve
            from loop.store.db import connect

            self._db = connect(url_of(resolve()))
        return Records(self._db, self.name)

    # -- the file --------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.path.exists()

    def ensure_writable(self) -> None:
        """Raise UsageError now if the prompt file could not be written."""
        self.read_bytes()
        real = Path(os.path.realpath(self.path))  # a link is written through, in its target's folder
        folder = real.parent if str(real.parent) else Path(".")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"Cannot write in {folder}; fix its permissions and run again. Nothing was changed.")

    def read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"No prompt at {self.path}; set {self.setting} (or --prompt) to the prompt file.") from None

    def format(self) -> TextFormat:
        return decode(self.read_bytes(), self.path, self.setting)[1]

    def read(self) -> str:
        """The text of the current version, with `\\n` line endings: the file's, once `sync` recorded
        it; the store's when the file is behind it or this host has no file."""
        current = self.sync()
        return self.text_of(current.number)

    # -- the records -----------------------------------------------------------------------

    def versions(self) -> dict[int, Version]:
        return self.records.versions()

    def serving(self) -> Serving | None:
        """What the prompt serves now; None before its first version. An earlier release's history
        folder is imported the first time the store is asked and has nothing for the prompt."""
        serving = self.records.serving()
        if serving is None and not self._checked_import:
            self._checked_import = True
            folder = prompt_history.folder_of(self.path)
            history = prompt_history.read(folder) if folder else None
            if history and history.events:
                try:
                    self._import(history)
                except ServingChanged:  # another command imported it, or recorded the file, first
                    pass
                serving = self.records.serving()
        return serving

    def current(self) -> Version | None:
        """The version everyone outside a canary is served."""
        serving = self.serving()
        return None if serving is None else self.versions()[serving.current]

    def canary(self) -> Canary | None:
        serving = self.serving()
        return None if serving is None else serving.canary

    def bytes_of(self, number: int) -> bytes:
        return self.records.body(number)

    def text_of(self, number: int) -> str:
        return decode(self.bytes_of(number), f"{self.name} v{number} in the store", self.setting)[0]

    def periods(self) -> dict[int, list[tuple[str, str | None]]]:
        """version → the (from, until) times it was current, oldest first; until is None while it still is."""
        found: dict[int, list[tuple[str, str | None]]] = {}
        current = None
        for event in self.records.events():
            number = event["current"]
            if number == current:
                continue
            if current is not None:  # the version before ends where this one begins
                found[current][-1] = (found[current][-1][0], event["at"])
            found.setdefault(number, []).append((event["at"], None))
            current = number
        return found

    def lineage(self, with_canary: bool = False) -> list[Version]:
        """The current version and its ancestors, newest first: the versions whose edits are in the
        prompt. `with_canary`: the running canary's version and its ancestors instead, when one runs."""
        serving = self.serving()
        if serving is None:
            return []
        versions, found = self.versions(), []
        number = serving.canary.version if with_canary and serving.canary else serving.current
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

    def hand_edited(self) -> bool:
        """Whether the file holds an edit nobody recorded yet (see `_edited_by_hand`)."""
        serving = self.serving()
        if serving is None or not self.exists():
            return False
        return self._edited_by_hand(sha256(self.read_bytes()), serving)

    @property
    def place(self) -> str:
        """This host's prompt file, as the store tells it from other hosts' files of the same prompt."""
        return f"{machine()}:{os.path.realpath(self.path)}"

    def _edited_by_hand(self, digest: str, serving: Serving) -> bool:
        """A file that is not the current version was edited by hand when it changed since loop last
        wrote or recorded it here (even back to an older version's bytes); when it did not, it is
        behind the store. A file loop never saw here is behind when it holds a recorded version."""
        versions = self.versions()
        if digest == versions[serving.current].sha256:
            return False
        seen = self.records.file_seen(self.place)
        if seen is not None:
            return digest != seen
        return all(v.sha256 != digest for v in versions.values())

    def _write(self, data: bytes) -> None:
        files.write_bytes(self.path, data)
        self.records.saw_file(self.place, sha256(data))

    # -- changes ---------------------------------------------------------------------------

    def sync(self) -> Version:
        """The current version, after recording what the file holds when it is a version nobody
        recorded: the first version (from an earlier release's history folder, imported once, when
        there is one), or a hand edit. A file behind the store is left as it is (see `bring_up`)."""
        for _ in range(_ATTEMPTS):
            serving = self.serving()
            try:
                if serving is None:
                    return self._first(serving)
                self._warn_other_history()
                if not self.exists():
                    return self.versions()[serving.current]
                data = self.read_bytes()
                digest = sha256(data)
                if not self._edited_by_hand(digest, serving):
                    current = self.versions()[serving.current]
                    if digest == current.sha256 and self.records.file_seen(self.place) != digest:
                        self.records.saw_file(self.place, digest)
                    return current
                decode(data, self.path, self.setting)  # refuse a file that is not UTF-8 before recording it
                with self.records.change(serving) as change:
                    version = change.add_version(data, self._base_of(data), "hand edit")
                    change.make_current(version.number, "hand edit", f"{self.path.name} changed by hand")
                self.records.saw_file(self.place, digest)
                return version
            except ServingChanged:
                continue
        raise ServingChanged(f"The prompt {self.name} kept changing under this command; run it again.")

    def _base_of(self, data: bytes) -> int:
        """The version a hand edit was made from: of the current version and its ancestors, the one
        closest to the file, so an edit of a file left behind the store (a command cut short after
        the store's commit) is recorded on what the file held, and the edits it lacks are not
        counted as in the prompt."""
        text = data.decode("utf-8", "replace").splitlines()
        closest = max(self.lineage(), key=lambda v: difflib.SequenceMatcher(
            None, self.bytes_of(v.number).decode("utf-8", "replace").splitlines(), text, autojunk=False).ratio())
        return closest.number

    def _first(self, serving: None) -> Version:
        """The prompt's first version: the file as it is."""
        data = self.read_bytes()
        decode(data, self.path, self.setting)
        with self.records.change(serving) as change:
            version = change.add_version(data, None, "initial")
            change.make_current(version.number, "initial", f"{self.path.name} recorded")
        self.records.saw_file(self.place, version.sha256)
        return version

    def _import(self, history: prompt_history.History) -> None:
        """Every version, its bytes and times, and every rollback of an old history folder, as they
        were: losing nothing and doubling nothing, since it is one transaction that only a store with
        no records for the prompt accepts. The folder is left where it is."""
        with self.records.change(None, who=f"import of {history.folder.name}") as change:
            for event in history.events:
                if event["event"] == "version":
                    number = event["version"]
                    version = change.add_version(history.bodies[number], event.get("parent"), event["source"],
                                                 event.get("edits", []), created_at=event["created_at"])
                    assert version.number == number, "an old history's versions are numbered 1, 2, 3…"
                    change.make_current(number, event["source"], "imported", at=event["created_at"])
                else:
                    change.make_current(event["version"], "rollback", f"from v{event.get('from')} (imported)",
                                        at=event["created_at"])
        self.notes.append(f"Imported {history.folder} into the store: {len(history.bodies)} versions.")

    def _warn_other_history(self) -> None:
        """A host whose own history folder holds versions the store does not: left alone, said once."""
        if self._checked_history:
            return
        self._checked_history = True
        folder = prompt_history.folder_of(self.path)
        if folder is None:
            return
        stored = {v.sha256 for v in self.versions().values()}
        theirs = {sha256(body) for body in prompt_history.read(folder).bodies.values()}
        if theirs - stored:
            log.warning("%s holds versions the store does not; the store's records of %s are used, the folder is "
                        "left alone (delete it once you no longer need it).", folder, self.name)

    def bring_up(self) -> Version:
        """Record a hand edit, then write the current version to a file that is behind the store
        (another host applied, or a command was cut short after the store's commit)."""
        current = self.sync()
        if self.exists() and sha256(self.read_bytes()) != current.sha256:
            self._write(self.bytes_of(current.number))
            self.notes.append(f"{self.path} was behind the store; it now holds {current.label}, the current version.")
        return current

    def commit(self, text: str, source: str, edits: list[dict] | None = None, canary_share: float | None = None,
               expected: Serving | None = None) -> Version:
        """A new version with `text` (in the file's format: BOM, line endings), made current and
        written to the file; or, with `canary_share`, served to that share of units as a canary while
        the file keeps the current version. `expected`: the serving state the caller decided on (its
        change fails with ServingChanged if another host changed it since)."""
        serving = expected or self.serving()
        data = self.format().encode(text)
        with self.records.change(serving) as change:
            if serving.canary is not None:
                raise CanaryRunning(_canary_running(serving.canary))
            version = change.add_version(data, serving.current, source, edits)
            if canary_share is None:
                change.make_current(version.number, source)
            else:
                change.start_canary(version.number, canary_share, f"{source}: {len(edits or [])} edits")
        if canary_share is None:
            self._write(data)
        return version

    def rollback(self) -> Rollback:
        """End a running canary (the current version keeps serving, the file is unchanged); without one,
        make the current version's parent current again and restore its exact bytes."""
        for _ in range(_ATTEMPTS):
            current = self.bring_up()
            serving = self.serving()
            try:
                if serving.canary is not None:
                    with self.records.change(serving) as change:
                        ended = change.end_canary(ROLLED_BACK, "rolled back")
                    return Rollback(self.versions()[ended.version], current, ended)
                if current.parent is None:
                    return Rollback(None, current)
                with self.records.change(serving) as change:
                    change.make_current(current.parent, "rollback", f"from {current.label}")
            except ServingChanged:
                continue
            target = self.versions()[current.parent]
            self._write(self.bytes_of(target.number))
            return Rollback(current, target)
        raise ServingChanged(f"The prompt {self.name} kept changing under this command; run it again.")

    def promote(self, share: float | None = None, who: str | None = None) -> Promotion:
        """Make the running canary current for everyone (the file gets its bytes), or raise its share
        to `share` (only upward). Two hosts promoting at once promote once: the second is told."""
        current = self.bring_up()
        serving = self.serving()
        canary = serving.canary
        if canary is None:
            raise UsageError(f"No canary of {self.name} is running; `loop apply --canary 10%` starts one.")
        if share is not None:
            if share <= canary.share:
                raise UsageError(f"The canary {canary.label} already serves {canary.share:.0%}; --to only raises "
                                 "its share (or run `loop promote` to make it current for everyone).")
            with self.records.change(serving, who) as change:
                change.set_share(share, f"raised from {canary.share:.0%}")
            return Promotion(self.records.canary(canary.id), current, current, share)
        with self.records.change(serving, who) as change:
            change.end_canary(PROMOTED, "promoted")
            change.make_current(canary.version, "promote", f"canary {canary.label} at {canary.share:.0%} since "
                                                          f"{canary.started_at}")
        self._write(self.bytes_of(canary.version))
        return Promotion(self.records.canary(canary.id), current, self.versions()[canary.version])


def _canary_running(canary: Canary) -> str:
    return (f"A canary ({canary.label}, {canary.share:.0%} of units since {canary.started_at}) is running; "
            "finish it first with `loop promote` or `loop rollback`, then apply. Nothing was changed.")
