"""One handle per command: the workbook, the prompt, the judge's rubric, the model and the store,
each opened once, lazily, from Settings. Every command writes through `Workspace.write`, which also
delivers the drafts waiting in the store for this workbook."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from loop.config import Settings, resolve
from loop.prompt_store import PromptStore

if TYPE_CHECKING:
    from loop.model import ModelClient
    from loop.reviews import Draft, SkippedRow
    from loop.sheets import Workbook, WriteBatch
    from loop.store import Store, WorkbookStore


class Workspace:
    def __init__(self, settings: Settings | None = None, model: ModelClient | None = None):
        self.settings = settings or resolve()
        if model is not None:
            self.model = model

    @classmethod
    def of(cls, where: Settings | Workspace | None) -> Workspace:
        """The library's entry points take either Settings or a Workspace."""
        return where if isinstance(where, Workspace) else cls(where)

    @cached_property
    def workbook(self) -> Workbook:
        from loop.sheets import open_workbook

        return open_workbook(self.settings.sheet, credentials=self.settings.credentials)

    @cached_property
    def prompt(self) -> PromptStore:
        return PromptStore(self.settings.prompt, setting="LOOP_PROMPT", db=self.store.db,
                           name=self.settings.prompt_name)

    @cached_property
    def rubric(self) -> PromptStore:
        return PromptStore(self.settings.judge_prompt, setting="LOOP_JUDGE_PROMPT", db=self.store.db)

    @cached_property
    def model(self) -> ModelClient:
        from loop.model import ModelClient

        return ModelClient(self.settings)

    @cached_property
    def store(self) -> Store:
        from loop.store import Store, url_of

        return Store(url_of(self.settings))

    @cached_property
    def traces(self) -> WorkbookStore:
        """This workbook's drafts in the store; an archive folder of an earlier release (beside the
        workbook, or where LOOP_TRACES named it) is imported first."""
        from loop.store import former_identities, identity_of, location_of
        from loop.store.legacy import import_folder

        key, sheet, url = self.google_key, self.settings.sheet, self.store.url
        outbox = self.store.workbook(identity_of(sheet, key, url), location_of(sheet, bool(key), self.store.db.postgres),
                                     former_identities(sheet, key, url))
        path = Path(sheet)
        folders = [Path(f"{key}.traces") if key else path.with_name(path.stem + ".traces")]
        if self.settings.legacy_traces and self.settings.legacy_traces.resolve() != folders[0].resolve():
            folders.append(self.settings.legacy_traces)
        for folder in folders:
            import_folder(outbox, folder)
        if not key and self.settings.store is None and path.is_symlink():
            self._store_beside_the_link(path)
        return outbox

    def _store_beside_the_link(self, link: Path) -> None:
        """Say once if a `loop.db` beside a link to the workbook holds drafts waiting: an earlier release
        kept the store there, where this one keeps it beside the file the link points to."""
        import logging

        from loop.errors import LoopError
        from loop.store import PENDING, SENT
        from loop.store.db import connect

        beside = link.parent / "loop.db"
        if not beside.is_file() or os.path.realpath(beside) == os.path.realpath(self.store.db.path):
            return
        try:
            waiting = connect(str(beside)).execute("SELECT COUNT(*) FROM drafts WHERE state IN (?, ?)",
                                                   (PENDING, SENT))
        except LoopError:
            return  # not a store loop can read: nothing of it to deliver
        if waiting[0][0]:
            logging.getLogger("loop.store").warning(
                "%s, beside the link %s, holds %d drafts waiting (the store is now beside the file it points to); "
                "`loop sync --sheet %s --store %s` writes them.", beside, link, waiting[0][0], link, beside)

    def stored_workbook(self, number: int, sheet: str | None = None) -> Workspace:
        """A workspace that delivers the drafts the store holds for its workbook `number` (as `loop status`
        names it): to where that workbook is, whatever folder or host name this runs with, or to `sheet`."""
        from dataclasses import replace

        from loop.errors import UsageError

        outbox = self.store.stored(number)
        if outbox is None:
            raise UsageError(f"The store {self.store.shown} has no workbook {number}; `loop status` lists the "
                             "workbooks with drafts waiting, each with its number.")
        target = sheet or self.place_of(outbox)
        if target is None:
            raise UsageError(f"Workbook {number} of the store is {outbox.location}, on another machine; run this "
                             "there, or name its file here with --sheet.")
        other = Workspace(replace(self.settings, sheet=target, store=self.store.url))
        other.store, other.traces = self.store, outbox
        return other

    def place_of(self, outbox: WorkbookStore) -> str | None:
        """Where a workbook of the store is, from here (`Store.place`); a local workbook named by another
        machine (a host renamed where there is no machine id) is here too when the file at its path
        carries the id the store recorded for it."""
        place = self.store.place(outbox.identity)
        if place is not None or not outbox.identity.startswith("file://"):
            return place
        path = "/" + outbox.identity[len("file://"):].partition("/")[2]
        recorded = outbox.recorded_workbook_id()
        if not recorded or not os.path.isfile(path):
            return None
        from loop.errors import LoopError
        from loop.sheets.xlsx import XlsxWorkbook

        try:
            return path if XlsxWorkbook(path).workbook_id() == recorded else None
        except (LoopError, OSError):
            return None

    @cached_property
    def google_key(self) -> str | None:
        from loop.sheets.base import is_google

        if not is_google(self.settings.sheet):
            return None
        from loop.sheets.google import spreadsheet_key

        return spreadsheet_key(self.settings.sheet)

    def prompt_version(self) -> str:
        """The managed prompt's version label, recording a hand edit first if there is one ("" without a prompt)."""
        if not self.prompt.exists():
            return ""
        return self.prompt.sync().label

    def write(self, batch: WriteBatch | None = None, wait: float | None = None,
              fresh: frozenset[str] = frozenset(), mine: frozenset[str] = frozenset()) -> int:
        """Write `batch`, and every draft waiting in the store for this workbook, at once; returns the
        drafts delivered."""
        from loop.store.outbox import deliver

        return deliver(self.traces, self.workbook, batch, wait, fresh, mine)

    def drafts(self, table) -> tuple[list[Draft], list[SkippedRow]]:
        """The Drafts tab's reviews, recorded in the store, with the drafts only the store still holds
        (archived; not rows a person deleted), every cut field made whole."""
        from loop.reviews import read_drafts
        from loop.store.history import with_history

        drafts, skipped = read_drafts(table)
        return with_history(self.traces, drafts, table, self.read_drafts_tab), skipped

    def read_drafts_tab(self):
        """The Drafts tab as the workbook holds it now (None when it has none)."""
        from loop import schema

        return self.workbook.read([schema.DRAFTS]).get(schema.DRAFTS)
