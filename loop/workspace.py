"""One handle per command: the workbook, the prompt, the judge's rubric, the model and the store,
each opened once, lazily, from Settings. Every command writes through `Workspace.write`, which also
delivers the drafts waiting in the store for this workbook."""

from __future__ import annotations

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
        return PromptStore(self.settings.prompt, setting="LOOP_PROMPT")

    @cached_property
    def rubric(self) -> PromptStore:
        return PromptStore(self.settings.judge_prompt, setting="LOOP_JUDGE_PROMPT")

    @cached_property
    def model(self) -> ModelClient:
        from loop.model import ModelClient

        return ModelClient(self.settings)

    @cached_property
    def store(self) -> Store:
        from loop.sheets.base import is_google
        from loop.store import Store, default_url

        return Store(self.settings.store or default_url(self.settings.sheet, is_google(self.settings.sheet)))

    @cached_property
    def traces(self) -> WorkbookStore:
        """This workbook's drafts in the store; an archive folder of an earlier release is imported first."""
        from loop.store import identity_of
        from loop.store.legacy import import_folder

        key = self.google_key
        outbox = self.store.workbook(identity_of(self.settings.sheet, key, self.store.url), self.settings.sheet)
        sheet = Path(self.settings.sheet)
        folder = Path(f"{key}.traces") if key else sheet.with_name(sheet.stem + ".traces")
        import_folder(outbox, folder)
        return outbox

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
        with self.prompt.lock():
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
