"""`loop judge`: an LLM pre-scores drafts nobody has reviewed, into `judge_score` and
`judge_comment`, following the rubric in `prompts/judge.md` (a managed, versioned prompt).

A person's `score` and `comment` are never read for judging nor written: the judge only fills its
own columns, and `loop improve` counts its scores only with `--include-judge`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict

from loop import review_records, schema
from loop.cell_values import SCORE_MARKS
from loop.config import Settings
from loop.errors import LoopError, UsageError
from loop.model import ModelClient, Usage, dumps_data
from loop.prompt_templates import data_room, messages
from loop.reviews import Draft, read_drafts
from loop.sheets import CellUpdate, WriteBatch
from loop.workspace import Workspace

# The least room a draft needs in a judge request, in characters.
MIN_DRAFT_ROOM = 1_000


class JudgeVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: Literal["up", "down"]
    comment: str


@dataclass
class JudgeReport:
    waiting: int = 0
    verdicts: dict[str, JudgeVerdict] = field(default_factory=dict)
    rubric_version: str = ""
    usage: Usage = field(default_factory=Usage)


def needs_judging(drafts: list[Draft]) -> list[Draft]:
    """Drafts no person has scored and the judge has not scored yet, oldest first."""
    return sorted((d for d in drafts if d.score is None and d.judge_score is None), key=lambda d: d.created_at)


def judge(
    where: Settings | Workspace,
    limit: int | None = None,
    concurrency: int = 4,
    model: ModelClient | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_done: Callable[[], None] = lambda: None,
) -> JudgeReport:
    workspace = Workspace.of(where)
    settings = workspace.settings
    store = workspace.rubric
    rubric = store.read()
    room = data_room("judge.j2", settings.max_input_tokens, rubric=rubric, draft="")
    if room < MIN_DRAFT_ROOM:
        raise UsageError(f"The judge's rubric {store.path} leaves no room for a draft within "
                         f"LOOP_MAX_INPUT_TOKENS={settings.max_input_tokens}; raise it or shorten the rubric.")
    workbook = workspace.workbook
    workbook.ensure_writable()
    drafts, _ = read_drafts(workbook.read([schema.DRAFTS]).get(schema.DRAFTS))
    waiting = needs_judging(drafts)
    report = JudgeReport(waiting=len(waiting))
    chosen = waiting[:limit] if limit else waiting
    if not chosen:
        return report
    report.rubric_version = store.sync().label
    model = model or workspace.model
    report.usage = model.usage
    on_start(len(chosen))

    def verdict(draft: Draft) -> JudgeVerdict:
        # the judge scores the draft itself, not what a reviewer may have said of it
        record = {k: v for k, v in review_records.record(draft, room).items() if k not in ("comment", "final_reply")}
        return model.ask("judge_verdict", JudgeVerdict, messages("judge.j2", rubric=rubric, draft=dumps_data(record)))

    failure: LoopError | None = None
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(verdict, d): d for d in chosen}
        for future in as_completed(futures):
            try:
                report.verdicts[futures[future].trace_id] = future.result()
            except LoopError as error:
                failure = failure or error
                for other in futures:
                    other.cancel()
            on_done()
    # Rows may have moved (a sort) and people may have scored meanwhile: each verdict names its draft
    # by trace id and lands only while nobody has scored it; the backend checks that as it writes.
    rows = {d.trace_id: d.row for d in chosen}
    updates = []
    for trace_id, result in report.verdicts.items():
        for column, value in (("judge_score", SCORE_MARKS[result.score]), ("judge_comment", result.comment.strip()),
                              ("judge_version", report.rubric_version)):
            updates.append(CellUpdate(schema.DRAFTS, rows[trace_id], column, value,
                                      key=("trace_id", trace_id), unless="score"))
    workspace.write(WriteBatch(updates=updates))  # verdicts already made are kept even if a later one failed
    if failure:
        raise failure
    return report
