"""What an improve run writes for reviewers: the Edits tab, its Replay tab and the Runs row.

The Edits tab is made to decide from without opening every cell: proposed edits first (rejected
ones after them, greyed, with no checkbox), the change as a readable diff (removed text struck
through in red, added text in green; `find` and `replace` stay as they are, for machines), each
cited trace id linked to its Drafts row with an excerpt of what the reviewer said, and the pattern
with its description and size.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime

from . import schema
from .config import Settings
from .edits import PROPOSED, Edit
from .replay import ReplayReport
from .sheets import Append, CellUpdate, NewTab, RichText, Run, WriteBatch

REMOVED, ADDED = "C00000", "00B050"  # red and green
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
COMMENT_CHARS = 120


def run_batch(report, settings: Settings, now: datetime) -> WriteBatch:
    """The Edits tab, the Replay tab (when edits were replayed), the Runs row and each failure's pattern
    on its Drafts row, written together."""
    tabs = [edits_tab(report)]
    if report.replay and report.replay.outcomes:
        tabs.append(replay_tab(report))
    return WriteBatch(new_tabs=tabs, appends=[Append(schema.RUNS, schema.RUN_HEADERS, runs_row(report, settings, now),
                                                     key="run_id")],
                      updates=pattern_marks(report))


def pattern_marks(report) -> list[CellUpdate]:
    """Each failure's pattern on its Drafts row (the `pattern` column, which only loop writes): how the
    next run knows which failures are new, and the report what share of failures each pattern is."""
    by_id = {d.trace_id: d for d in report.window.failures}
    return [CellUpdate(schema.DRAFTS, by_id[t].row, "pattern", pattern.name, key=("trace_id", t))
            for pattern in report.patterns for t in pattern.trace_ids
            if t in by_id and by_id[t].row and by_id[t].pattern != pattern.name]  # row 0: archived, not in the sheet


def edits_tab(report) -> NewTab:
    window = report.window
    rows_of = {d.trace_id: d.row for d in window.drafts}
    comments = {d.trace_id: d.comment for d in window.failures}
    patterns = {p.name.casefold(): p for p in report.patterns}
    ordered = sorted(report.edits, key=lambda e: e.status != PROPOSED)  # proposed first, in their order
    rows = []
    for edit in ordered:
        rationale = edit.rationale
        if edit.evidence and all(t in window.judge_only for t in edit.evidence):
            rationale = f"[evidence is judge-only] {rationale}"
        figures = report.replay.figures(edit.edit_id) if report.replay else None
        cells = figures.cells() if figures else {}
        rows.append([
            False if edit.status == PROPOSED else None, edit.edit_id, edit.pattern, edit.find, edit.replace, rationale,
            evidence(edit.evidence, rows_of), edit.status, edit.check, "",
            cells.get("fixed_cited", ""), cells.get("fixed_held_out", ""), cells.get("regressed", ""),
            diff(edit.find, edit.replace), about_pattern(edit, patterns.get(edit.pattern.casefold())),
            cited_comments(edit, comments),
        ])
    return NewTab(report.edits_tab, schema.EDIT_HEADERS, rows, checkbox_column="approve",
                  column_widths={name: width for name, width, _ in schema.EDIT_COLUMNS},
                  wrap=set(schema.EDIT_WRAPPED),
                  muted_rows={i for i, edit in enumerate(ordered) if edit.status != PROPOSED})


def evidence(trace_ids: list[str], rows_of: dict[str, int]) -> RichText:
    """The cited trace ids, comma-separated, each linked to its row in Drafts."""
    runs = []
    for index, trace_id in enumerate(trace_ids):
        if index:
            runs.append(Run(", "))
        row = rows_of.get(trace_id)
        runs.append(Run(trace_id, link=(schema.DRAFTS, row) if row else None))
    return RichText(tuple(runs))


def diff(find: str, replace: str) -> RichText:
    """`find` turned into `replace`, word by word: removed text struck through in red, added in green."""
    before, after = _TOKEN.findall(find), _TOKEN.findall(replace)
    runs = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal":
            runs.append(Run("".join(before[i1:i2])))
            continue
        if i2 > i1:
            runs.append(Run("".join(before[i1:i2]), strike=True, color=REMOVED))
        if j2 > j1:
            runs.append(Run("".join(after[j1:j2]), color=ADDED))
    return RichText(tuple(runs))


def about_pattern(edit: Edit, pattern) -> str:
    """"Too long: 10 failures; this edit cites 4. Drafts run long." """
    if pattern is None:
        return ""
    cited = len([t for t in edit.evidence if t in set(pattern.trace_ids)])
    size = f"{pattern.count} failure{'s' if pattern.count != 1 else ''}"
    text = f"{pattern.name}: {size}; this edit cites {cited}."
    return f"{text} {pattern.description}".strip()


def cited_comments(edit: Edit, comments: dict[str, str]) -> str:
    """What the reviewers said of the cited failures, an excerpt a line."""
    lines = []
    for trace_id in edit.evidence[:5]:
        comment = " ".join(comments.get(trace_id, "").split())
        if comment:
            lines.append(f"• {excerpt(comment, COMMENT_CHARS)}")
    more = len(edit.evidence) - 5
    return "\n".join(lines + ([f"… and {more} more"] if more > 0 else []))


def replay_tab(report) -> NewTab:
    replayed: ReplayReport = report.replay
    rows_of = {d.trace_id: d.row for d in report.window.drafts}
    rows = [[o.label, evidence([o.case.draft.trace_id], rows_of), o.case.kind,
             excerpt(o.case.draft.ticket, schema.EXCERPT_CHARS), o.case.draft.draft, o.control, o.candidate,
             o.case.draft.comment, o.verdict, o.reason] for o in replayed.outcomes]
    return NewTab(replay_title(report.edits_tab), schema.REPLAY_HEADERS, rows,
                  column_widths={name: width for name, width, _ in schema.REPLAY_COLUMNS},
                  wrap=set(schema.REPLAY_WRAPPED))


def replay_title(edits_tab: str) -> str:
    """`Replay 2026-11-23 1530` beside `Edits 2026-11-23 1530`."""
    return schema.REPLAY_PREFIX + edits_tab[len(schema.EDITS_PREFIX):]


def runs_row(report, settings: Settings, now: datetime) -> dict:
    window = report.window
    row = {
        "run_id": report.run_id,
        "started_at": now.strftime("%Y-%m-%d %H:%M:%S"),
        "since": window.since.strftime("%Y-%m-%d %H:%M:%S"),
        "drafts": len(window.drafts),
        "failures": len(window.failures),
        "successes": len(window.successes),
        "patterns": len(report.patterns),
        "proposed": len(report.proposed),
        "rejected": len(report.rejected),
        "model": settings.model,
        "llm_calls": report.usage.calls,
        "input_tokens": report.usage.input_tokens,
        "output_tokens": report.usage.output_tokens,
        "edits_tab": report.edits_tab,
        "prompt_version": report.prompt_version,
    }
    replayed = report.replay
    if replayed:
        row.update(replay=replay_summary(replayed), replay_llm_calls=replayed.usage.calls,
                   replay_input_tokens=replayed.usage.input_tokens, replay_output_tokens=replayed.usage.output_tokens)
    return row


def replay_summary(replayed: ReplayReport) -> str:
    if replayed.not_replayed:
        return replayed.not_replayed
    edits = len({o.label for o in replayed.outcomes})
    text = f"{edits} edit{'s' if edits != 1 else ''}, {len(replayed.outcomes)} cases, {replayed.agent}"
    return text + (f"; {replayed.dropped} cases left out (--check-budget)" if replayed.dropped else "")


def excerpt(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
