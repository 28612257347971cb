"""`loop import` and `loop export` (CONTRACT §7b): drafts and the scores people gave them, in from a
tracing tool (Phoenix, Langfuse, LangSmith); the reviews made in the sheet, back out to it as that
tool's human feedback. docs/tracing-tools.md has the rules.

Each tool is an adapter (`phoenix.py`, `langfuse.py`, `langsmith.py`) that lists draft rows from a
moment on and the scores of some drafts, and sends one review. What is shared lives here:

- Drafts are committed through `traces.log_traced`, so a trace imported twice is one draft.
- A person's score there (by default any score a person gave; `LOOP_IMPORT_REVIEW_NAMES` names the
  ones that count) is the row's review; an automated one is a judge score. A new draft arrives with
  its review. For one already in the sheet, a review changed there is written over the sheet's only
  while the sheet still shows what the last import wrote: once a person here has reviewed it, the
  sheet's review stands.
- Resumable: each import keeps the time of the newest draft it took (`trace_sources`); the next one
  starts there (a few minutes earlier: traces finish late), or at `--since` if that is later. Scores
  are read again for every draft of the window, so a score changed there is seen.
- Export sends each person's review once and again only when it changes (`trace_reviews` keeps what
  was sent), never a review that came from the tool itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from loop import schema
from loop.cell_values import DOWN, UP
from loop.collect import span_drafts, traces
from loop.errors import LoopError, UsageError

SCORE_MARKS = {UP: "👍", DOWN: "👎"}
OVERLAP = timedelta(minutes=10)  # a resumed import looks this far behind its cursor: traces end late
CORRECTION_NAMES = ("correction", "final_reply", "corrected_reply", "expected_output")


@dataclass
class Score:
    """One score the tool holds for a draft (named by the draft's `origin_id`)."""
    origin_id: str
    name: str
    human: bool
    label: str | None = None
    value: float | bool | None = None
    comment: str = ""
    author: str = ""
    at: str = ""  # ISO time, for choosing the newest
    text: str = ""  # a correction's text


@dataclass
class ImportReport:
    drafts: int = 0  # new drafts
    known: int = 0  # already in the store
    reviews: int = 0  # reviews written (with new drafts or over the sheet's)
    kept: int = 0  # reviews changed there that a person here had reviewed since
    judged: int = 0
    refused: list[str] = field(default_factory=list)


@dataclass
class Review:
    score: str  # up / down
    comment: str = ""
    final_reply: str = ""
    reviewer: str = ""

    def key(self) -> str:
        return json.dumps([self.score, self.comment, self.final_reply], ensure_ascii=False)


def review_names() -> set[str] | None:
    """The score names that count as a person's review (LOOP_IMPORT_REVIEW_NAMES), None for any."""
    raw = os.environ.get("LOOP_IMPORT_REVIEW_NAMES", "").strip()
    return {name.strip() for name in raw.split(",") if name.strip()} or None


def person_review(scores: list[Score], names: set[str] | None) -> Review | None:
    """The newest person's score as a review, with the newest correction (there) as its final reply."""
    corrections = [s for s in scores if s.human and (s.text or (s.name.casefold() in CORRECTION_NAMES and s.comment))]
    rated = [s for s in scores if s.human and (names is None or s.name in names)
             and span_drafts.thumb(s.label, s.value)]
    if not rated:
        return None
    newest = max(rated, key=lambda s: s.at)
    fix = max(corrections, key=lambda s: s.at) if corrections else None
    return Review(span_drafts.thumb(newest.label, newest.value), newest.comment,
                  (fix.text or fix.comment) if fix else "", newest.author)


def judge_score(scores: list[Score]) -> dict:
    automated = [s for s in scores if not s.human and span_drafts.thumb(s.label, s.value)]
    if not automated:
        return {}
    newest = max(automated, key=lambda s: s.at)
    return {"judge_score": span_drafts.thumb(newest.label, newest.value), "judge_comment": newest.comment,
            "judge_version": newest.name}


class Ledger:
    """The store's memory of each tool: its cursor, and per draft the review imported and exported."""

    def __init__(self, db, source: str):
        self.db, self.source = db, source

    def cursor(self) -> datetime | None:
        rows = self.db.execute("SELECT cursor FROM trace_sources WHERE source = ?", (self.source,))
        return datetime.fromisoformat(rows[0][0]) if rows else None

    def advance(self, moment: datetime) -> None:
        from loop.store import now_text

        with self.db.transaction() as db:
            db.execute("INSERT INTO trace_sources (source, cursor, at) VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE "
                       "SET cursor = excluded.cursor, at = excluded.at", (self.source, moment.isoformat(), now_text()))

    def reviews(self) -> dict[str, tuple[str, str]]:
        rows = self.db.execute("SELECT trace_id, imported, exported FROM trace_reviews WHERE source = ?", (self.source,))
        return {trace_id: (imported, exported) for trace_id, imported, exported in rows}

    def note(self, trace_id: str, column: str, value: str) -> None:
        from loop.store import now_text

        with self.db.transaction() as db:
            db.execute(f"INSERT INTO trace_reviews (trace_id, source, {column}, at) VALUES (?, ?, ?, ?) "
                       f"ON CONFLICT (trace_id, source) DO UPDATE SET {column} = excluded.{column}, at = excluded.at",
                       (trace_id, self.source, value, now_text()))


def import_from(adapter, settings, since: str = "14d") -> ImportReport:
    """Pull the drafts of the window (from the cursor on) and the scores of every draft of the window."""
    from loop.cell_values import window_start
    from loop.reviews import read_drafts
    from loop.sheets import CellUpdate, WriteBatch
    from loop.workspace import Workspace

    workspace = Workspace.of(settings)
    start = window_start(since)
    ledger = Ledger(workspace.store.db, adapter.name)
    cursor = ledger.cursor()
    fetch_from = max(start, cursor - OVERLAP) if cursor else start
    rows = adapter.drafts(fetch_from)
    report = ImportReport()
    known = _known(workspace, [r["trace_id"] for r in rows])
    ours = _drafts_of(workspace, adapter.origins, start)  # every draft of this tool in the window
    ours.update({r["trace_id"]: r["origin_id"] for r in rows})
    scores: dict[str, list[Score]] = {}
    for score in adapter.scores(sorted(set(ours.values()))):
        scores.setdefault(score.origin_id, []).append(score)
    names = review_names()
    previous = ledger.reviews()
    fresh = []
    for row in rows:
        if row["trace_id"] in known:
            continue
        found = scores.get(row["origin_id"], [])
        review = person_review(found, names)
        if review:
            row.update(score=review.score, comment=review.comment, final_reply=review.final_reply,
                       reviewer=review.reviewer)
        row.update(judge_score(found))
        fresh.append(row)
    kept, report.refused = traces.log_traced(fresh, workspace)
    report.drafts, report.known = len(kept), len(rows) - len(fresh)
    kept_rows = {r["trace_id"]: r for r in fresh if r["trace_id"] in set(kept)}
    for trace_id, row in kept_rows.items():
        if row.get("score"):
            report.reviews += 1
            ledger.note(trace_id, "imported", Review(row["score"], row["comment"], row["final_reply"]).key())
        report.judged += bool(row.get("judge_score"))
    # drafts already in the sheet: a review changed there reaches the row unless a person here reviewed it
    updates = []
    sheet = {d.trace_id: d for d in read_drafts(workspace.workbook.read([schema.DRAFTS]).get(schema.DRAFTS))[0]}
    for trace_id, origin_id in ours.items():
        draft = sheet.get(trace_id)
        if draft is None or trace_id in kept_rows:
            continue
        review = person_review(scores.get(origin_id, []), names)
        if review is None:
            continue
        before = previous.get(trace_id, ("", ""))[0]
        if review.key() == before:
            continue
        shown = Review(draft.score, draft.comment, draft.final_reply).key() if draft.score else ""
        if shown and shown != before:
            report.kept += 1  # a person here reviewed it since: theirs stands
            continue
        for column, value in (("score", SCORE_MARKS[review.score]), ("comment", review.comment),
                              ("final_reply", review.final_reply), ("reviewer", review.reviewer)):
            updates.append(CellUpdate(schema.DRAFTS, draft.row, column, value, key=("trace_id", trace_id)))
        ledger.note(trace_id, "imported", review.key())
        report.reviews += 1
    workspace.write(WriteBatch(updates=updates))
    newest = max((datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in rows), default=None)
    if newest is not None and (cursor is None or newest > cursor):
        ledger.advance(newest)
    return report


def export_to(adapter, settings, since: str = "14d") -> tuple[int, int]:
    """Send every person's review of a draft from this tool (created in the window) that it does not
    hold yet; returns (sent, already there)."""
    from loop.cell_values import window_start
    from loop.reviews import read_drafts
    from loop.workspace import Workspace

    workspace = Workspace.of(settings)
    start = window_start(since)
    ledger = Ledger(workspace.store.db, adapter.name)
    ours = _drafts_of(workspace, adapter.origins, start)
    previous = ledger.reviews()
    sheet = read_drafts(workspace.workbook.read([schema.DRAFTS]).get(schema.DRAFTS))[0]
    sent = same = 0
    for draft in sheet:
        if draft.trace_id not in ours or draft.score is None:
            continue
        review = Review(draft.score, draft.comment, draft.final_reply, draft.reviewer)
        imported, exported = previous.get(draft.trace_id, ("", ""))
        if review.key() in (imported, exported):
            same += 1
            continue
        adapter.send(ours[draft.trace_id], review)
        ledger.note(draft.trace_id, "exported", review.key())
        sent += 1
    return sent, same


def _known(workspace, trace_ids: list[str]) -> set[str]:
    found: set[str] = set()
    ids = sorted(set(trace_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update(row[0] for row in workspace.store.db.execute(
            f"SELECT trace_id FROM drafts WHERE workbook_id = ? AND trace_id IN ({', '.join('?' * len(chunk))})",
            (workspace.traces.id, *chunk)))
    return found


def _drafts_of(workspace, origins: tuple[str, ...], start: datetime) -> dict[str, str]:
    """This workbook's drafts that came from the tool, created since `start`: trace id → origin id."""
    from loop.store import utc_text

    marks = ", ".join("?" * len(origins))
    rows = workspace.store.db.execute(
        f"SELECT trace_id, origin_id FROM drafts WHERE workbook_id = ? AND origin IN ({marks}) AND origin_id <> '' "
        "AND created_at >= ?", (workspace.traces.id, *origins, utc_text(start)))
    return dict(rows)


def utc(moment: str | datetime | None) -> str:
    """A tool's timestamp as the store keeps it."""
    from loop.store import utc_text

    if moment is None:
        return utc_text(datetime.now(timezone.utc))
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return utc_text(moment)


def unreachable(tool: str, setting: str, error: Exception) -> LoopError:
    """A tool that cannot be reached or refuses: one line naming it, what it said, and the setting."""
    from loop.errors import RunFailure

    return RunFailure(f"{tool} cannot be reached or refused the request ({str(error).splitlines()[0][:200]}); "
                      f"check {setting}. Nothing was changed.")


def need(variable: str, tool: str, example: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise UsageError(f"{tool} needs {variable} (for instance {example}); set it as its own SDK reads it.")
    return value
