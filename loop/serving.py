"""`loop.prompt(unit=…)`: what an agent drafts with, served from the store (CONTRACT §5b).

Each process keeps what the store serves (the current version, a running canary and its share, and
their texts) in memory, so a call costs a time check and, with a canary, one hash. After
LOOP_PROMPT_TTL seconds one background thread asks the store again while callers keep getting what
was cached, so a change made anywhere reaches every process within one TTL. When the store cannot
be reached the process keeps serving what it had; a process that starts then serves the last state
this machine saw, kept on disk (under LOOP_PROMPT_CACHE, or the user's cache folder). Once any
version was seen, nothing here raises in the agent's path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loop import files
from loop.errors import UsageError
from loop.store import prompts, url_of
from loop.store.prompts import CANARY, Canary, Records, Serving

log = logging.getLogger("loop.prompt")


@dataclass(frozen=True)
class Prompt:
    """What to draft with: pass it to `log_draft(..., prompt=p)` so the draft is credited to it."""

    text: str
    version: str  # "v4"
    arm: str  # "current" or "canary"
    unit: str | None
    name: str

    def __str__(self) -> str:
        return self.text


def prompt(unit=None, settings=None) -> Prompt:
    """The prompt to draft `unit` (a ticket id, or a conversation id) with. The arm is sticky: one unit
    gets one version on every host and every call for a canary's life. Without a unit: the current
    version."""
    source = _source(settings)
    if source._pid != os.getpid():
        source._forked()
    if source._seen != prompts.changes:  # this process changed a prompt: serve the change now
        source._catch_up()
    elif time.monotonic() >= source._fresh_until:
        source._refresh_later()
    state = source._state or source._first_state()
    serving, texts = state
    unit = None if unit is None else str(unit)
    arm = serving.arm_of(unit)
    number = serving.canary.version if arm == CANARY else serving.current
    return Prompt(texts[number], f"v{number}", arm, unit, serving.prompt)


def forget() -> None:
    """Drop every process cache (the disk copies stay): the next call asks the store."""
    with _sources_lock:
        _sources.clear()
        _by_environment.clear()


# -- where a prompt is served from --------------------------------------------------------------

_sources: dict[tuple, _Source] = {}
_by_environment: dict[tuple, _Source] = {}
_sources_lock = threading.Lock()
_ENVIRONMENT = ("LOOP_STORE", "LOOP_SHEET", "LOOP_PROMPT", "LOOP_PROMPT_NAME", "LOOP_PROMPT_TTL", "LOOP_PROMPT_CACHE")


def _source(settings) -> _Source:
    if settings is None:  # the common case, kept to a few dict lookups
        environ = os.environ
        key = (os.getcwd(), *(environ.get(name) for name in _ENVIRONMENT))  # relative paths mean this folder
        found = _by_environment.get(key)
        if found is not None:
            return found
        from loop.config import resolve

        settings = resolve()
    else:
        key = None
    url, name = url_of(settings), settings.prompt_name or settings.prompt.name
    with _sources_lock:
        place = (os.getcwd(), url, name)
        source = _sources.get(place)
        if source is None:
            source = _sources[place] = _Source(url, name, settings)
        if key is not None:
            _by_environment[key] = source
    return source


def cache_folder() -> Path:
    named = os.environ.get("LOOP_PROMPT_CACHE", "").strip()
    if named:
        return Path(named)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "loop"


class _Source:
    """One prompt of one store, as this process serves it."""

    def __init__(self, url: str, name: str, settings):
        self.url, self.name, self.settings = url, name, settings
        self.ttl = settings.prompt_ttl
        self._state: tuple[Serving, dict[int, str]] | None = None
        self._fresh_until = 0.0
        self._refreshing = False
        self._lock = threading.Lock()
        self._db = None
        self._pid = os.getpid()
        self._seen = prompts.changes
        self._down = False  # the store could not be reached on the last try (warned once per outage)
        digest = hashlib.sha256("\x1f".join((url, name)).encode("utf-8", "surrogatepass")).hexdigest()
        self.disk = cache_folder() / f"prompt-{digest[:24]}.json"

    # -- the hot path's slow branches --------------------------------------------------------

    def _forked(self) -> None:
        """A forked child keeps what its parent served but never its connection or refresh thread."""
        with self._lock:
            self._db, self._refreshing, self._pid = None, False, os.getpid()
            self._lock = threading.Lock()

    def _refresh_later(self) -> None:
        with self._lock:
            if self._refreshing or self._state is None:
                return
            self._refreshing = True
            self._fresh_until = time.monotonic() + self.ttl  # one refresh a TTL, even while the store is down
        threading.Thread(target=self._refresh, name=f"loop.prompt refresh {self.name}", daemon=True).start()

    def _refresh(self) -> None:
        try:
            self._fetch()
        finally:
            self._refreshing = False

    def _catch_up(self) -> None:
        with self._lock:
            self._seen = prompts.changes
            self._fetch(first=self._state is None)

    def _first_state(self) -> tuple[Serving, dict[int, str]]:
        """The first call in this process waits for the store; with the store down, the disk copy."""
        with self._lock:
            if self._state is None:
                self._seen = prompts.changes
                self._fetch(first=True)
            return self._state

    # -- reading the store -------------------------------------------------------------------

    def _fetch(self, first: bool = False) -> None:
        try:
            snapshot = self._read_store(first)
        except Exception as error:  # whatever the store's fault, the agent keeps drafting
            if self._state is None:
                self._state = self._read_disk(error)
            elif not self._down:
                log.warning("The store %s cannot be reached (%s); serving %s as cached until it can.",
                            self._shown(), _one_line(error), self.name)
            self._down = True
            self._fresh_until = time.monotonic() + self.ttl
            return
        if self._down:
            log.warning("The store %s answers again; serving %s from it.", self._shown(), self.name)
        self._down = False
        self._state = snapshot
        self._fresh_until = time.monotonic() + self.ttl
        self._write_disk(snapshot)

    def _read_store(self, first: bool):
        from loop.store.db import connect

        if self._db is None:
            self._db = connect(self.url)
        records = Records(self._db, self.name)
        found = records.snapshot()
        if found is None and first:
            found = self._record_the_file(records)
        if found is None:
            raise NoVersion(f"the store has no version of {self.name}")
        serving, bodies = found
        from loop.prompt_store import decode

        return serving, {n: decode(data, f"{self.name} v{n}")[0] for n, data in bodies.items()}

    def _record_the_file(self, records: Records):
        """A store that has nothing for the prompt, on a machine that has its file: the file is v1,
        as any command that reads the prompt would record it."""
        from loop.prompt_store import PromptStore

        path = Path(self.settings.prompt)
        if not path.is_file():
            return None
        PromptStore(path, db=self._db, name=self.name).sync()
        return records.snapshot()

    # -- the copy on disk --------------------------------------------------------------------

    def _write_disk(self, state) -> None:
        serving, texts = state
        document = {"store": self._shown(), "prompt": self.name, "serving": asdict(serving),
                    "texts": {str(n): text for n, text in texts.items()}}
        try:
            if self.disk.exists() and json.loads(self.disk.read_text(encoding="utf-8")) == document:
                return
            self.disk.parent.mkdir(parents=True, exist_ok=True)
            files.write_text(self.disk, json.dumps(document, ensure_ascii=False))
        except (OSError, ValueError) as error:
            log.warning("Could not keep %s's served version on disk at %s (%s); a process started while the store "
                        "is down will have none.", self.name, self.disk, _one_line(error))

    def _read_disk(self, error: Exception):
        try:
            document = json.loads(self.disk.read_text(encoding="utf-8"))
            raw = document["serving"]
            canary = Canary(**raw["canary"]) if raw.get("canary") else None
            serving = Serving(**{**raw, "canary": canary})
            texts = {int(n): text for n, text in document["texts"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            if isinstance(error, NoVersion):
                raise UsageError(
                    f"The store {self._shown()} has no version of the prompt {self.name}; run `loop prompt` (or "
                    "`loop apply`) where the prompt file is, or point LOOP_STORE at the store your team shares."
                ) from None
            raise UsageError(
                f"The store {self._shown()} cannot be reached ({_one_line(error)}) and this machine has never served "
                f"{self.name}; start the store or point LOOP_STORE at one that answers."
            ) from None
        log.warning("The store %s cannot be reached (%s); serving %s v%s as this machine last saw it (%s).",
                    self._shown(), _one_line(error), self.name, serving.current, self.disk)
        self._down = True
        return serving, texts

    def _shown(self) -> str:
        from loop.redact import mask_url

        return mask_url(self.url)


class NoVersion(Exception):
    """The store answered, and holds no version of the prompt."""


def _one_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
