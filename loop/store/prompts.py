"""Prompts in the store (CONTRACT §5b): every version's exact bytes, what each prompt serves now, its
canaries, and every change of these with who made it and why, so every host sharing a store serves the
same thing.

A prompt is named by its file name (`support_agent.md`), or by LOOP_PROMPT_NAME: hosts that keep the
file at different paths agree on it. Its serving state is one row: the current version, the running
canary (if any), and a revision number that every change raises. A change is one transaction that
first raises the revision it read (`Records.change`): two hosts promoting or rolling back at once
never both win, the second is told what the first did, and nothing is ever half changed.

A canary serves a new version to a share of units (tickets, or conversations): a unit is in the canary
when a salted hash of it falls below the share, so one ticket gets one version on every host for the
canary's life, and raising the share only adds units. Each canary has its own salt.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import secrets
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field

from loop.errors import LoopError
from loop.store import now_text

CURRENT, CANARY = "current", "canary"
# changes this process committed: a process serves its own change at once, not one cache period later
changes = 0
RUNNING, PROMOTED, STOPPED, ROLLED_BACK = "running", "promoted", "stopped", "rolled back"
_VERSION_COLUMNS = "number, parent, source, created_at, sha256, edits, made_by"
_CANARY_COLUMNS = "id, version, base, share, salt, started_at, ended_at, outcome, reason"


class ServingChanged(LoopError):
    """Another command changed the prompt's serving state since this one read it: nothing was changed
    here; read it again and decide again."""

    exit_code = 1


def actor() -> str:
    """Who makes a change from this process, as the event log records it: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def in_canary(salt: str, unit: str, share: float) -> bool:
    """Whether `unit` falls in a canary of `share` (0..1): its salted hash, as a fraction of 2**64,
    is below the share. The same salt and unit give the same answer on every host, and a larger
    share keeps every unit a smaller one had."""
    digest = hashlib.blake2b(f"{salt}\x1f{unit}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2 ** 64


@dataclass(frozen=True)
class StoredVersion:
    number: int
    parent: int | None
    source: str  # initial, hand edit, apply, or what an imported history called it
    created_at: str
    sha256: str
    edits: list[dict] = field(default_factory=list)
    made_by: str = ""

    @property
    def label(self) -> str:
        return f"v{self.number}"


@dataclass(frozen=True)
class Canary:
    id: int
    version: int  # the version it serves
    base: int  # the current version when it started
    share: float  # 0..1 (0 once it ended)
    salt: str
    started_at: str
    ended_at: str | None
    outcome: str  # running, promoted, stopped, rolled back
    reason: str = ""

    @property
    def label(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class Serving:
    prompt: str
    current: int
    since: str  # when the current version became current
    revision: int
    canary: Canary | None  # the running canary

    def arm_of(self, unit: str | None) -> str:
        """The arm `unit` is served from: `canary` when a canary runs and the unit falls in its share;
        without a unit, always `current` (a canary needs a unit to be sticky)."""
        canary = self.canary
        if canary is None or unit is None or canary.share <= 0:
            return CURRENT
        return CANARY if in_canary(canary.salt, str(unit), canary.share) else CURRENT


class Records:
    """One prompt's records in the store."""

    def __init__(self, db, name: str):
        self.db, self.name = db, name

    # -- reading ---------------------------------------------------------------------------

    def versions(self) -> dict[int, StoredVersion]:
        rows = self.db.execute(f"SELECT {_VERSION_COLUMNS} FROM prompt_versions WHERE prompt = ? ORDER BY number",
                               (self.name,))
        return {row[0]: _version(row) for row in rows}

    def body(self, number: int) -> bytes:
        rows = self.db.execute("SELECT body FROM prompt_versions WHERE prompt = ? AND number = ?", (self.name, number))
        if not rows:
            raise KeyError(number)
        return bytes(rows[0][0])

    def serving(self) -> Serving | None:
        rows = self.db.execute("SELECT current, since, revision, canary_id FROM prompt_serving WHERE prompt = ?",
                               (self.name,))
        if not rows:
            return None
        current, since, revision, canary_id = rows[0]
        canary = self.canary(canary_id) if canary_id is not None else None
        return Serving(self.name, int(current), since, int(revision), canary)

    def snapshot(self) -> tuple[Serving, dict[int, bytes]] | None:
        """What serving needs: the state and the bytes of the versions it serves. Plain reads, never a
        writer's lock (versions never change once recorded, so the bytes always match the state)."""
        serving = self.serving()
        if serving is None:
            return None
        numbers = {serving.current} | ({serving.canary.version} if serving.canary else set())
        return serving, {n: self.body(n) for n in numbers}

    def canary(self, canary_id: int) -> Canary:
        rows = self.db.execute(f"SELECT {_CANARY_COLUMNS} FROM prompt_canaries WHERE id = ?", (canary_id,))
        return _canary(rows[0])

    def canaries(self) -> list[Canary]:
        """Every canary of the prompt, oldest first."""
        rows = self.db.execute(f"SELECT {_CANARY_COLUMNS} FROM prompt_canaries WHERE prompt = ? ORDER BY id",
                               (self.name,))
        return [_canary(row) for row in rows]

    def events(self) -> list[dict]:
        """Every change of the serving state, oldest first: at, kind, current, canary, share, actor, reason."""
        rows = self.db.execute("SELECT at, kind, current, canary, share, actor, reason FROM prompt_events "
                               "WHERE prompt = ? ORDER BY seq", (self.name,))
        keys = ("at", "kind", "current", "canary", "share", "actor", "reason")
        return [dict(zip(keys, row)) for row in rows]

    def file_seen(self, place: str) -> str | None:
        """The sha256 of what the prompt file at `place` held when loop last wrote or recorded it."""
        rows = self.db.execute("SELECT sha256 FROM prompt_files WHERE prompt = ? AND place = ?", (self.name, place))
        return rows[0][0] if rows else None

    def saw_file(self, place: str, digest: str) -> None:
        with self.db.transaction() as db:
            db.execute("DELETE FROM prompt_files WHERE prompt = ? AND place = ?", (self.name, place))
            db.execute("INSERT INTO prompt_files (prompt, place, sha256, at) VALUES (?, ?, ?, ?)",
                       (self.name, place, digest, now_text()))

    # -- changing --------------------------------------------------------------------------

    @contextmanager
    def change(self, expected: Serving | None, who: str | None = None):
        """One change of the prompt's records, as one transaction that commits only if nobody changed
        the serving state since `expected` was read (None: the prompt has no records yet). Raises
        ServingChanged otherwise, with nothing written."""
        with self.db.transaction() as db:
            if db.postgres:  # one change of a prompt at a time across hosts, its first version included
                key = int.from_bytes(hashlib.blake2b(self.name.encode(), digest_size=8).digest(), "big") >> 1
                db.execute("SELECT pg_advisory_xact_lock(?)", (key,))
            if expected is None:
                taken = db.execute("SELECT 1 FROM prompt_serving WHERE prompt = ?", (self.name,))
            else:  # taking the row first: a second changer waits here, then finds the revision moved
                taken = db.execute("UPDATE prompt_serving SET revision = revision + 1 WHERE prompt = ? AND "
                                   "revision = ? RETURNING revision", (self.name, expected.revision))
            if bool(taken) == (expected is None):
                raise ServingChanged(f"The prompt {self.name} was changed by another command meanwhile "
                                     f"({self._last_change()}); nothing was changed here; run again.")
            yield Change(self, db, expected, who or actor())
        global changes
        changes += 1

    def stop_canary(self, reason: str, who: str | None = None, outcome: str = STOPPED) -> Canary | None:
        """End the running canary (share 0, `reason` recorded); the current version keeps serving.
        Returns the canary ended, None when none runs. Two hosts stopping at once end it once."""
        serving = self.serving()
        if serving is None or serving.canary is None:
            return None
        try:
            with self.change(serving, who) as change:
                return change.end_canary(outcome, reason)
        except ServingChanged:
            return None if (self.serving() or serving).canary is None else self.stop_canary(reason, who, outcome)

    def _last_change(self) -> str:
        events = self.events()
        if not events:
            return "its first version was recorded"
        last = events[-1]
        return f"{last['kind']} by {last['actor']} at {last['at']}"


class Change:
    """What one `Records.change` transaction does; every step is also an event with who and why."""

    def __init__(self, records: Records, db, expected: Serving | None, who: str):
        self.records, self.db, self.who = records, db, who
        self.name = records.name
        self.serving = expected  # as it will be once this change commits

    def add_version(self, data: bytes, parent: int | None, source: str, edits: list[dict] | None = None,
                    created_at: str | None = None) -> StoredVersion:
        rows = self.db.execute("SELECT MAX(number) FROM prompt_versions WHERE prompt = ?", (self.name,))
        number = int(rows[0][0] or 0) + 1
        version = StoredVersion(number, parent, source, created_at or now_text(), hashlib.sha256(data).hexdigest(),
                                edits or [], self.who)
        self.db.execute(f"INSERT INTO prompt_versions (prompt, {_VERSION_COLUMNS}, body) VALUES (?, ?, ?, ?, ?, ?, "
                        "?, ?, ?)", (self.name, number, parent, source, version.created_at, version.sha256,
                                     json.dumps(version.edits, ensure_ascii=False), self.who, data))
        return version

    def make_current(self, number: int, kind: str, reason: str = "", at: str | None = None) -> None:
        """Serve `number` to everyone not in the running canary (kind: initial, hand edit, apply, rollback, promote)."""
        at = at or now_text()
        if self.serving is None:
            self.db.execute("INSERT INTO prompt_serving (prompt, current, since, canary_id, revision) "
                            "VALUES (?, ?, ?, NULL, 1)", (self.name, number, at))
        else:
            self.db.execute("UPDATE prompt_serving SET current = ?, since = ? WHERE prompt = ?", (number, at, self.name))
        self._reload()
        self._event(kind, reason, at)

    def start_canary(self, number: int, share: float, reason: str = "") -> Canary:
        at = now_text()
        rows = self.db.execute("INSERT INTO prompt_canaries (prompt, version, base, share, salt, started_at, outcome) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                               (self.name, number, self.serving.current, share, secrets.token_hex(8), at, RUNNING))
        self.db.execute("UPDATE prompt_serving SET canary_id = ? WHERE prompt = ?", (rows[0][0], self.name))
        self._reload()
        self._event("canary", reason, at)
        return self.serving.canary

    def set_share(self, share: float, reason: str = "") -> None:
        self.db.execute("UPDATE prompt_canaries SET share = ? WHERE id = ?", (share, self.serving.canary.id))
        self._reload()
        self._event("share", reason)

    def end_canary(self, outcome: str, reason: str = "") -> Canary:
        """End the running canary (promoted, stopped or rolled back): its share goes to 0."""
        canary = self.serving.canary
        at = now_text()
        self.db.execute("UPDATE prompt_canaries SET share = 0, ended_at = ?, outcome = ?, reason = ? WHERE id = ?",
                        (at, outcome, reason, canary.id))
        self.db.execute("UPDATE prompt_serving SET canary_id = NULL WHERE prompt = ?", (self.name,))
        ended = self.records.canary(canary.id)
        self._reload()
        if outcome == PROMOTED:  # `make_current(…, "promote")` records it, with the new current version
            return ended
        self._event({STOPPED: "stop", ROLLED_BACK: "rollback"}.get(outcome, outcome), reason, at,
                    canary=ended)
        return ended

    def _reload(self) -> None:
        self.serving = self.records.serving()

    def _event(self, kind: str, reason: str, at: str | None = None, canary: Canary | None = None) -> None:
        canary = canary or self.serving.canary
        self.db.execute("INSERT INTO prompt_events (prompt, at, kind, current, canary, share, actor, reason) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (self.name, at or now_text(), kind, self.serving.current,
                         canary.version if canary else None, canary.share if canary else None, self.who, reason))


def _version(row) -> StoredVersion:
    number, parent, source, created_at, digest, edits, made_by = row
    return StoredVersion(int(number), None if parent is None else int(parent), source, created_at, digest,
                         json.loads(edits or "[]"), made_by or "")


def _canary(row) -> Canary:
    canary_id, version, base, share, salt, started_at, ended_at, outcome, reason = row
    return Canary(int(canary_id), int(version), int(base), float(share), salt, started_at, ended_at, outcome,
                  reason or "")
