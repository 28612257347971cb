"""One handle per command: the workbook, the prompt, the judge's rubric, the model and the trace
archive, each opened once, lazily, from Settings. Every command writes through `Workspace.write`,
which also delivers the drafts waiting in the trace archive."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Settings, resolve
from .prompt_store import PromptStore

if TYPE_CHECKING:
    from .model import ModelClient
    from .sheets import Workbook, WriteBatch
    from .traces import TraceArchive


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
        from .sheets import open_workbook

        return open_workbook(self.settings.sheet, credentials=self.settings.credentials)

    @cached_property
    def prompt(self) -> PromptStore:
        return PromptStore(self.settings.prompt, setting="LOOP_PROMPT")

    @cached_property
    def rubric(self) -> PromptStore:
        return PromptStore(self.settings.judge_prompt, setting="LOOP_JUDGE_PROMPT")

    @cached_property
    def model(self) -> ModelClient:
        from .model import ModelClient

        return ModelClient(self.settings)

    @cached_property
    def traces(self) -> TraceArchive:
        from .sheets import is_google
        from .traces import TraceArchive

        if self.settings.traces:
            return TraceArchive(self.settings.traces)
        if is_google(self.settings.sheet):  # one archive per spreadsheet, so pending drafts go to their own
            from .sheets.google import spreadsheet_key

            return TraceArchive(Path(f"{spreadsheet_key(self.settings.sheet)}.traces"))
        sheet = Path(self.settings.sheet)
        return TraceArchive(sheet.with_name(sheet.stem + ".traces"))

    def prompt_version(self) -> str:
        """The managed prompt's version label, recording a hand edit first if there is one ("" without a prompt)."""
        if not self.prompt.exists():
            return ""
        with self.prompt.lock():
            return self.prompt.sync().label

    def write(self, batch: WriteBatch | None = None, wait: float | None = None,
              fresh: frozenset[str] = frozenset(), done_at: int | None = None) -> int:
        """Write `batch`, and every draft waiting in the trace archive, at once; returns the drafts delivered."""
        return self.traces.deliver(self.workbook, batch, wait, fresh, done_at)
