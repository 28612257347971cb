"""`loop improve`: reviews in, failure patterns and validated edit proposals out, to a new Edits tab.

A pipeline of plain functions: read the window, find patterns, propose edits, validate them, then
write the Edits tab and the Runs row in one batch. Nothing is written until every model call has
succeeded, so a failure leaves the workbook and the prompt exactly as they were.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from loop import schema
from loop.cell_values import window_start
from loop.config import Settings
from loop.errors import TitleTaken, UsageError
from loop.improver import replay, review_tabs
from loop.improver.edits import PROPOSED, REJECTED, Edit, validate
from loop.improver.patterns import Pattern, find_patterns, known_patterns
from loop.improver.proposals import propose_edits
from loop.improver.replay import ReplayReport
from loop.model import ModelClient, Usage
from loop.reviews import Draft, SkippedRow, Window, select_window
from loop.workspace import Workspace

log = logging.getLogger(__name__)
# Tries at a free Edits tab title when other runs keep taking the one chosen.
TITLE_ATTEMPTS = 5



@dataclass
class RunReport:
    run_id: str
    window: Window
    skipped: list[SkippedRow]
    drafts: list[Draft] = field(default_factory=list)  # every draft read, inside the window or not
    patterns: list[Pattern] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    edits_tab: str = ""
    prompt_version: str = ""
    replay: ReplayReport | None = None
    nothing_new: bool = False  # every failure in the window was already placed by an earlier run

    @property
    def proposed(self) -> list[Edit]:
        return [e for e in self.edits if e.status == PROPOSED]

    @property
    def rejected(self) -> list[Edit]:
        return [e for e in self.edits if e.status == REJECTED]



def new_run_id(now: datetime) -> str:
    """The run's time and a random part: unique across runs and machines, even within one second."""
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def improve(
    where: Settings | Workspace,
    since: str = "14d",
    include_judge: bool = False,
    now: datetime | None = None,
    model: ModelClient | None = None,
    check: bool = True,
    concurrency: int = 4,
    force: bool = False,
    on_start: Callable[[int], None] = lambda total: None,
    on_done: Callable[[], None] = lambda: None,
) -> RunReport:
    """Find failure patterns, propose edits, validate them and (with `check`) replay them, then write
    the Edits tab, its Replay tab and the Runs row in one batch. Nothing is written before every
    model call has succeeded."""
    workspace = Workspace.of(where)
    if model is not None:
        workspace.model = model
    settings = workspace.settings
    now = now or datetime.now(timezone.utc)
    start = window_start(since, now)
    workbook = workspace.workbook
    workbook.ensure_writable()  # before any model call, so a refusal costs nothing
    prompt = workspace.prompt.read()
    tables = workbook.read([schema.DRAFTS, schema.RUNS])  # Runs too: its header row places the new row
    drafts, skipped = workspace.drafts(tables.get(schema.DRAFTS))
    window = select_window(drafts, start, include_judge)
    report = RunReport(run_id=new_run_id(now), window=window, skipped=skipped, drafts=drafts)
    if not window.failures:
        return report
    if not force and all(d.pattern for d in window.failures):
        report.nothing_new = True  # no failure reviewed since the last run placed them: nothing new to learn
        return report

    model = workspace.model
    report.usage = model.usage
    log.info("%d failures and %d successes since %s.", len(window.failures), len(window.successes),
             f"{start:%Y-%m-%d %H:%M}")
    report.patterns = find_patterns(model, window.failures, known_patterns(drafts))
    proposals = propose_edits(
        model, prompt, report.patterns, window.failures, window.successes, settings.max_edit_chars, report.run_id
    )
    failure_ids = {d.trace_id for d in window.failures}
    report.edits = validate(proposals, prompt, failure_ids, settings.max_edit_chars, settings.max_edit_share)
    if not check:
        report.replay = ReplayReport(not_replayed="not replayed (--no-check)")
    elif report.proposed:
        report.replay = replay.replay_edits(workspace, prompt, report.proposed, window, report.patterns,
                                            concurrency, on_start, on_done)
        for edit in report.proposed:
            figures = report.replay.figures(edit.edit_id)
            if figures and figures.flag():
                edit.check = figures.flag()

    report.prompt_version = workspace.prompt_version()
    title, taken = f"{schema.EDITS_PREFIX}{now:%Y-%m-%d %H%M}", workbook.titles()
    for attempt in range(TITLE_ATTEMPTS):
        report.edits_tab = free_title(title, taken)
        try:
            workspace.write(review_tabs.run_batch(report, settings, now))
            return report
        except TitleTaken:  # another run took it meanwhile: pick again from what is there now
            taken = [*workbook.titles(), report.edits_tab]
    raise UsageError(f"Could not find a free tab title like {title!r}; rename some Edits tabs and run again.")


def free_title(title: str, taken: list[str]) -> str:
    """`title`, or `title (2)`, `(3)`…: the first that no tab has (titles match regardless of case)."""
    used = {t.casefold() for t in taken}
    candidate, n = title, 2
    while candidate.casefold() in used:
        candidate, n = f"{title} ({n})", n + 1
    return candidate
