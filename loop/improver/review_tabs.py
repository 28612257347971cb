"""What an improve run writes for reviewers: the Edits tab, its Replay tab and the Runs row.

The Edits tab is laid out in the order a reviewer decides, left to right: the tick, the pattern and
how many failures it holds, the change, the replay's figures, the cases behind the edit, the
rationale, what to look out for (`check`) and the status; `find`, `replace`, `edit_id`, `evidence` and
`applied_version`, which machines need, come after. The tick and the pattern stay in view as the rest
scrolls. Proposed edits come first; rejected ones follow, greyed, with no checkbox and no diff.

- The change: an addition shows only the new line, in green, after `Add:`; a rewrite shows the old
  passage struck through in red after `Before:` and the new one beneath it in green after `After:`
  (a long passage with a small change: both lines, only the changed words marked); a rejected edit
  shows why it was rejected, not a diff. The labels say in words what the formatting shows, so a
  workbook saved by a tool that keeps values but not rich text (a script, a CSV round trip) still
  tells the old passage from the new.
- The reviewers' words (`cited_comments`): each cited failure on a line of its own, as its ticket
  id, the ticket's first words and what the reviewer said.
- A link to each case (`case_1`, `case_2`, …): a local workbook links a whole cell, never a stretch
  of one, and LibreOffice shows a linked cell on one line, so each case has a short cell of its own
  holding its ticket id: each cited failure linked to its Drafts row, then, in red, each success the
  replay did worse on, linked to its Replay row. `check` names those successes too, as plain text.

The Replay tab holds one block per edit under a heading row that names it (pattern, change, figures);
each case row gives the verdict in words (better with the edit, better without, no difference),
coloured, the logged draft and the new one side by side, and the draft without the edit after them,
the words the edit changed marked in both; rows are as tall as their text (up to a cap).
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime

from loop import schema
from loop.cell_values import DOWN, UP
from loop.config import Settings
from loop.improver.edits import PROPOSED, REJECTED, Edit
from loop.improver.replay import CITED, CONTROL, HELD_OUT, SUCCESS, ReplayReport
from loop.sheets import Append, CellUpdate, NewTab, RichText, Run, WriteBatch
from loop.sheets.base import Styled

REMOVED, ADDED = "C00000", "00B050"  # red and green
WORSE = "C00000"
VERDICT_LOOKS = {  # verdict → (text colour, fill)
    "candidate": ("00692E", "E2F0D9"), "control": ("C00000", "FBE4E4"), "tie": ("595959", None),
    "not replayed": ("9C5700", "FFEB9C")}
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
COMMENT_CHARS = 120
COMMENTED = 6  # cited failures quoted in cited_comments; every one has its case link
TICKET_WORDS = 8
WORD_DIFF_CHARS = 120  # a one-line passage longer than this, changed in a few words, reads best as a word diff
# What each line of a change is, in words as well as in its look.
ADD, REMOVE, BEFORE, AFTER = "Add: ", "Remove: ", "Before: ", "After: "


def run_batch(report, settings: Settings, now: datetime) -> WriteBatch:
    """The Edits tab, the Replay tab (when edits were replayed), the Runs row and each failure's pattern
    on its Drafts row, written together."""
    replay, replay_rows = (replay_tab(report) if report.replay and report.replay.outcomes else (None, {}))
    tabs = [edits_tab(report, replay_rows)] + ([replay] if replay else [])
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


def ordered_edits(report) -> list[Edit]:
    return sorted(report.edits, key=lambda e: e.status != PROPOSED)  # proposed first, in their order


def worse_outcomes(report, edit_id: str) -> list:
    """The successes the replay found better without the edit."""
    replayed = report.replay
    if not replayed or replayed.not_replayed:
        return []
    return [o for o in replayed.outcomes if o.label == edit_id and o.case.kind == SUCCESS and o.verdict == CONTROL]


def edits_tab(report, replay_rows: dict[tuple[str, str], int] | None = None) -> NewTab:
    """`replay_rows`: (edit id, trace id) → the row of that case on the Replay tab."""
    replay_rows = replay_rows or {}
    window = report.window
    drafts = {d.trace_id: d for d in window.drafts}
    patterns = {p.name.casefold(): p for p in report.patterns}
    replay_title_ = replay_title(report.edits_tab)
    ordered = ordered_edits(report)
    cells_of = []
    for edit in ordered:
        worse = worse_outcomes(report, edit.edit_id) if edit.status == PROPOSED else []
        cases = [case_cell(drafts.get(t), t) for t in edit.evidence]
        cases += [worse_cell(o.case.draft, replay_title_, replay_rows.get((edit.edit_id, o.case.draft.trace_id)))
                  for o in worse]
        if len(cases) > schema.MOST_CASES:
            rest = len(cases) - schema.MOST_CASES + 1
            cases = cases[:schema.MOST_CASES - 1] + [f"+{rest} more (evidence)"]
        cells_of.append((edit, cases, worse))
    count = max((len(cases) for _, cases, _ in cells_of), default=0)
    headers = schema.edit_headers(count)
    rows = []
    for edit, cases, worse in cells_of:
        rationale = edit.rationale
        if edit.evidence and all(t in window.judge_only for t in edit.evidence):
            rationale = f"[evidence is judge-only] {rationale}"
        figures = report.replay.figures(edit.edit_id) if report.replay else None
        figure = figures.cells() if figures else {}
        pattern = patterns.get(edit.pattern.casefold())
        values = {
            "approve": False if edit.status == PROPOSED else None,
            "pattern": edit.pattern,
            "failures": Styled(pattern.count, align="left") if pattern else None,
            "change": change(edit),
            "fixed_cited": figure.get("fixed_cited", ""),
            "fixed_held_out": figure.get("fixed_held_out", ""),
            "regressed": (Styled(figure["regressed"], bold=True, color=WORSE) if figures and figures.regressed[0]
                          else figure.get("regressed", "")),
            "cited_comments": cited_comments(edit, drafts),
            "rationale": rationale,
            "check": check_cell(edit.check, worse),
            "status": edit.status,
            "find": edit.find,
            "replace": edit.replace,
            "edit_id": edit.edit_id,
            "evidence": ", ".join(edit.evidence),
            "applied_version": "",
            "about_pattern": about_pattern(edit, pattern),
        }
        values.update({schema.CASE_COLUMN.format(n): cell for n, cell in enumerate(cases, start=1)})
        rows.append([values.get(h) for h in headers])
    cases = [schema.CASE_COLUMN.format(n) for n in range(1, count + 1)]
    return NewTab(report.edits_tab, headers, rows, checkbox_column="approve",
                  column_widths=schema.edit_widths(count), wrap=set(schema.EDIT_WRAPPED),
                  muted_rows={i for i, edit in enumerate(ordered) if edit.status != PROPOSED},
                  frozen_columns=schema.EDIT_FROZEN, most_lines=schema.EDIT_LINES)


def first_words(text: str, words: int = TICKET_WORDS) -> str:
    found = " ".join(text.split())
    parts = found.split(" ")
    return found if len(parts) <= words else " ".join(parts[:words]) + "…"


def case_name(draft, trace_id: str) -> str:
    """How a case is named for a reviewer: its ticket id, or the start of its trace id."""
    if draft is not None and draft.ticket_id:
        return draft.ticket_id
    return trace_id[:8]


def case_cell(draft, trace_id: str) -> RichText | str:
    """A cited failure's link: its ticket id, linked to its Drafts row."""
    if draft is None or not draft.row:
        return case_name(draft, trace_id)  # archived, or not in the window: no row to link to
    return RichText((Run(case_name(draft, trace_id), link=(schema.DRAFTS, draft.row)),))


def worse_cell(draft, replay_tab_title: str, row: int | None) -> RichText:
    """A success the edit did worse on, in red, linked to its row on the Replay tab."""
    return RichText((Run(f"{case_name(draft, draft.trace_id)} worse", color=WORSE,
                         link=(replay_tab_title, row) if row else None),))


def cited_comments(edit: Edit, drafts: dict) -> RichText | str:
    """What the reviewers said of the cited failures: a line each, its ticket id (bold), the ticket's
    first words and the comment."""
    runs = []
    for trace_id in edit.evidence[:COMMENTED]:
        draft = drafts.get(trace_id)
        if draft is None:
            continue
        runs += [Run("\n")] if runs else []
        comment = excerpt(draft.comment, COMMENT_CHARS) if draft.comment else "(no comment)"
        runs += [Run(case_name(draft, trace_id), bold=True),
                 Run(f" “{first_words(draft.ticket)}” {score_mark(draft.score)} {comment}")]
    more = len(edit.evidence) - COMMENTED
    if more > 0:
        runs.append(Run(f"\n… and {more} more"))
    return RichText(tuple(runs)) if runs else ""


def check_cell(check: str, worse: list) -> str:
    """`check`, naming the successes the edit did worse on (each has a red case cell linking to its
    Replay row: a linked cell shows on one line in LibreOffice, so `check` itself stays plain text)."""
    if not worse:
        return check
    names = ", ".join(case_name(o.case.draft, o.case.draft.trace_id) for o in worse)
    return f"{check}\nworse on: {names}" if check else f"worse on: {names}"


def score_mark(score: str | None) -> str:
    return {DOWN: "👎", UP: "👍"}.get(score or "", "•")


def change(edit: Edit) -> RichText:
    """The edit as a reviewer reads it (see the module's docstring)."""
    if edit.status == REJECTED:
        return RichText((Run(f"not shown: rejected — {edit.check}" if edit.check else "not shown: rejected"),))
    return diff(edit.find, edit.replace)


def diff(find: str, replace: str) -> RichText:
    """`find` turned into `replace`: an addition as its new text only (green), a removal struck (red),
    a rewrite as the old text struck above the new (line by line when both span lines; both lines with
    only the changed words marked when one long line changes in a few words). Each old or new line
    starts with a label that says which it is."""
    if replace.startswith(find) and len(replace) > len(find):
        return _each_line(ADD, replace[len(find):], color=ADDED)
    if replace.endswith(find) and len(replace) > len(find):
        return _each_line(ADD, replace[:len(replace) - len(find)], color=ADDED)
    if not replace.strip():
        return _each_line(REMOVE, find, strike=True, color=REMOVED)
    if "\n" in find.strip("\n") or "\n" in replace.strip("\n"):
        return _line_diff(find, replace)
    before, after = _TOKEN.findall(find), _TOKEN.findall(replace)
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    if len(find) > WORD_DIFF_CHARS and matcher.ratio() >= 0.6:
        return _word_diff(before, after, matcher)
    return RichText((*_labelled(BEFORE, Run(find.strip("\n"), strike=True, color=REMOVED)), Run("\n"),
                     *_labelled(AFTER, Run(replace.strip("\n"), color=ADDED))))


def _labelled(label: str, *runs: Run) -> tuple[Run, ...]:
    """A line of a change: its label in bold, then its runs, neighbours of one look joined."""
    joined: list[Run] = []
    for run in (r for r in runs if r.text):
        if joined and (joined[-1].strike, joined[-1].color) == (run.strike, run.color):
            joined[-1] = Run(joined[-1].text + run.text, strike=run.strike, color=run.color)
        else:
            joined.append(run)
    return (Run(label, bold=True), *joined)


def _each_line(label: str, text: str, **look) -> RichText:
    """Every line of `text` after its label, in one look."""
    return _joined([_labelled(label, Run(line, **look)) for line in text.strip("\n").split("\n")])


def _joined(lines: list[tuple[Run, ...]]) -> RichText:
    runs: list[Run] = []
    for index, line in enumerate(lines):
        runs += [Run("\n")] if index else []
        runs += line
    return RichText(tuple(r for r in runs if r.text))


def _line_diff(find: str, replace: str) -> RichText:
    before, after = find.strip("\n").split("\n"), replace.strip("\n").split("\n")
    lines: list[tuple[Run, ...]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal":
            lines += [(Run(line),) for line in before[i1:i2]]
            continue
        lines += [_labelled(BEFORE, Run(line, strike=True, color=REMOVED)) for line in before[i1:i2]]
        lines += [_labelled(AFTER, Run(line, color=ADDED)) for line in after[j1:j2]]
    return _joined(lines)


def _word_diff(before: list[str], after: list[str], matcher) -> RichText:
    """Both lines whole, the old one with the words the edit drops struck in red, the new one with the
    words it adds in green."""
    old, new = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        removed, added = "".join(before[i1:i2]), "".join(after[j1:j2])
        if tag == "equal":
            old.append(Run(removed))
            new.append(Run(added))
            continue
        old.append(Run(removed, strike=True, color=REMOVED))
        new.append(Run(added, color=ADDED))
    return RichText((*_labelled(BEFORE, *old), Run("\n"), *_labelled(AFTER, *new)))


def about_pattern(edit: Edit, pattern) -> str:
    """"Too long: 10 failures; this edit cites 4. Drafts run long." """
    if pattern is None:
        return ""
    cited = len([t for t in edit.evidence if t in set(pattern.trace_ids)])
    size = f"{pattern.count} failure{'s' if pattern.count != 1 else ''}"
    text = f"{pattern.name}: {size}; this edit cites {cited}."
    return f"{text} {pattern.description}".strip()


def replay_tab(report) -> tuple[NewTab, dict[tuple[str, str], int]]:
    """The Replay tab, and the row of each case on it: (edit id, trace id) → row."""
    replayed: ReplayReport = report.replay
    drafts_rows = {d.trace_id: d.row for d in report.window.drafts}
    edits = {e.edit_id: e for e in report.edits}
    labels = list(dict.fromkeys(o.label for o in replayed.outcomes))
    order = {e.edit_id: i for i, e in enumerate(ordered_edits(report))}
    labels.sort(key=lambda label: order.get(label, len(order)))
    kinds = {CITED: 0, HELD_OUT: 1, SUCCESS: 2}
    headers = schema.REPLAY_HEADERS
    rows, sections, where = [], set(), {}
    for number, label in enumerate(labels, start=1):
        sections.add(len(rows))
        heading = {"verdict": block_heading(number, len(labels), edits.get(label), replayed.figures(label)),
                   "edit_id": label}
        rows.append([heading.get(h) for h in headers])
        mine = [o for o in replayed.outcomes if o.label == label]
        mine.sort(key=lambda o: (o.verdict != CONTROL, kinds.get(o.case.kind, 3)))  # what got worse first
        for outcome in mine:
            draft = outcome.case.draft
            where[(label, draft.trace_id)] = len(rows) + 2
            row = drafts_rows.get(draft.trace_id)
            link = (schema.DRAFTS, row) if row else None
            candidate, control = draft_diff(outcome.candidate, outcome.control)
            color, fill = VERDICT_LOOKS.get(outcome.verdict, (None, None))
            values = {
                "verdict": Styled(schema.VERDICT_WORDS.get(outcome.verdict, outcome.verdict), bold=True,
                                  color=color, fill=fill),
                "kind": outcome.case.kind,
                "case": (RichText((Run(case_name(draft, draft.trace_id), link=link),)) if link
                         else case_name(draft, draft.trace_id)),
                "ticket": excerpt(draft.ticket, schema.EXCERPT_CHARS),
                "comment": f"{score_mark(draft.score)} {draft.comment}".strip(),
                "logged_draft": draft.draft,
                "candidate_draft": candidate,
                "control_draft": control,
                "reason": outcome.reason,
                "edit_id": label,
                "trace_id": draft.trace_id,
            }
            rows.append([values.get(h) for h in headers])
    tab = NewTab(replay_title(report.edits_tab), headers, rows,
                 column_widths={name: width for name, width, _ in schema.REPLAY_COLUMNS},
                 wrap=set(schema.REPLAY_WRAPPED), frozen_columns=schema.REPLAY_FROZEN, section_rows=sections,
                 most_lines=schema.REPLAY_LINES)
    return tab, where


def block_heading(number: int, total: int, edit: Edit | None, figures) -> str:
    """"Edit 2 of 4 · Tone · + “Guard against tone…” · fixed 3/3 cited, 2/3 held out; worse on 0/5 successes"."""
    parts = [f"Edit {number} of {total}"]
    if edit is not None:
        parts.append(edit.pattern)
        parts.append(short_change(edit))
    if figures is not None:
        cells = figures.cells()
        parts.append(f"fixed {cells['fixed_cited']} cited, {cells['fixed_held_out']} held out; "
                     f"worse on {cells['regressed']} successes")
    return " · ".join(p for p in parts if p)


def short_change(edit: Edit, limit: int = 90) -> str:
    """The change on one line: `+ “new line”` for an addition, `“old” → “new”` for a rewrite."""
    find, replace = edit.find, edit.replace
    if replace.startswith(find) and len(replace) > len(find):
        return f"+ “{excerpt(replace[len(find):], limit)}”"
    if replace.endswith(find) and len(replace) > len(find):
        return f"+ “{excerpt(replace[:len(replace) - len(find)], limit)}”"
    return f"“{excerpt(find, limit // 2)}” → “{excerpt(replace, limit // 2)}”"


def draft_diff(candidate: str, control: str) -> tuple[RichText | str, RichText | str]:
    """The new draft with the words the draft without the edit lacks in green, and that draft with the
    words the new one dropped in red: side by side, each stays readable on its own."""
    if not candidate or not control or candidate == control:
        return candidate, control
    new, old = _TOKEN.findall(candidate), _TOKEN.findall(control)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    new_runs, old_runs = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        kept = tag == "equal"
        if i2 > i1:
            old_runs.append(Run("".join(old[i1:i2]), color=None if kept else REMOVED))
        if j2 > j1:
            new_runs.append(Run("".join(new[j1:j2]), color=None if kept else ADDED))
    return RichText(tuple(_merged(new_runs))), RichText(tuple(_merged(old_runs)))


def _merged(runs: list[Run]) -> list[Run]:
    """Neighbouring runs of one look joined, and whitespace-only runs given the look of the text before."""
    merged: list[Run] = []
    for run in runs:
        if merged and (merged[-1].color == run.color or not run.text.strip()):
            merged[-1] = Run(merged[-1].text + run.text, color=merged[-1].color)
        else:
            merged.append(run)
    return merged


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
