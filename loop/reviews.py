"""Drafts rows as reviews: who failed, who succeeded, and which rows could not be read; and the
review window (`select_window`) that `improve` and `check` both count the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loop.cell_values import DOWN, UP, BadValue, as_text, parse_score, parse_timestamp
from loop.errors import UsageError
from loop.schema import DRAFTS, REQUIRED_DRAFT_COLUMNS
from loop.sheets import Table


@dataclass(frozen=True)
class Draft:
    row: int
    trace_id: str
    created_at: datetime
    ticket: str
    draft: str
    score: str | None
    comment: str = ""
    thread: str = ""
    final_reply: str = ""
    kb_sources: str = ""
    prompt_version: str = ""
    judge_score: str | None = None
    judge_comment: str = ""
    ticket_id: str = ""
    judge_version: str = ""
    pattern: str = ""  # the failure pattern an improve run placed it in
    reviewer: str = ""

    @property
    def is_failure(self) -> bool:
        return self.score == DOWN

    @property
    def is_success(self) -> bool:
        return self.score == UP


@dataclass(frozen=True)
class SkippedRow:
    row: int
    reason: str

    def __str__(self) -> str:
        return f"{DRAFTS} row {self.row}: {self.reason}"


def check_columns(table: Table) -> None:
    missing = [name for name in REQUIRED_DRAFT_COLUMNS if table.column(name) is None]
    if missing:
        raise UsageError(
            f"The {table.title} tab has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}; "
            f"add {'them' if len(missing) > 1 else 'it'} to row 1 (see sheets_template.xlsx)."
        )


_TEXT_FIELDS = ("ticket", "draft", "comment", "thread", "final_reply", "kb_sources", "prompt_version", "judge_comment",
                "ticket_id", "judge_version", "pattern", "reviewer")


def read_drafts(table: Table | None) -> tuple[list[Draft], list[SkippedRow]]:
    """Every readable Drafts row; rows with an unreadable score, date or a repeated trace id are skipped."""
    if table is None:
        raise UsageError(f"The workbook has no {DRAFTS} tab; run `loop init` or add one (see sheets_template.xlsx).")
    check_columns(table)
    columns = {name: table.column(name) for name in ("trace_id", "created_at", "score", "judge_score", *_TEXT_FIELDS)}
    width = len(table.headers)

    def getter(name: str):
        index = columns[name]
        if index is None:
            return lambda values: None
        return lambda values: values[index] if index < len(values) else None

    trace_of, created_of, score_of, judge_of = (getter(n) for n in ("trace_id", "created_at", "score", "judge_score"))
    texts = [getter(name) for name in _TEXT_FIELDS]
    drafts, skipped, seen = [], [], set()
    for offset, values in enumerate(table.rows):
        if len(values) > width:
            values = values[:width]
        if not any(v is not None and v != "" for v in values):
            continue
        row = table.first_row + offset
        trace_id = _text(trace_of(values))
        if not trace_id:
            skipped.append(SkippedRow(row, "no trace_id"))
            continue
        if trace_id in seen:
            skipped.append(SkippedRow(row, f"trace_id {trace_id!r} repeats an earlier row"))
            continue
        try:
            score = parse_score(score_of(values))
            created_at = parse_timestamp(created_of(values))
        except BadValue as problem:
            skipped.append(SkippedRow(row, str(problem)))
            continue
        try:
            judge_score = parse_score(judge_of(values))
        except BadValue:
            judge_score = None
        seen.add(trace_id)
        (ticket, draft, comment, thread, final_reply, kb_sources, prompt_version, judge_comment, ticket_id,
         judge_version, pattern, reviewer) = (_text(text(values)) for text in texts)
        drafts.append(Draft(row, trace_id, created_at, ticket, draft, score, comment, thread, final_reply, kb_sources,
                            prompt_version, judge_score, judge_comment, ticket_id, judge_version, pattern, reviewer))
    return drafts, skipped


def _text(value) -> str:
    """as_text, with the common cases first: this runs for every field of every row."""
    if value is None or value == "":
        return ""
    if type(value) is str:
        return value.strip()
    return as_text(value)


@dataclass
class Window:
    since: datetime
    drafts: list[Draft]
    failures: list[Draft]
    successes: list[Draft]
    judge_only: set[str] = field(default_factory=set)


def select_window(drafts: list[Draft], since: datetime, include_judge: bool = False) -> Window:
    """Drafts created since `since`; a person's score wins, the judge's counts only when asked."""
    in_window = [d for d in drafts if d.created_at >= since]
    failures, successes, judge_only = [], [], set()
    for draft in in_window:
        score = draft.score
        if score is None and include_judge and draft.judge_score:
            score = draft.judge_score
            judge_only.add(draft.trace_id)
        if score == DOWN:
            failures.append(draft)
        elif score == UP:
            successes.append(draft)
    return Window(since, in_window, failures, successes, judge_only)
