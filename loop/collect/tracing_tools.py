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
import types
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from loop import schema
from loop.cell_values import SCORE_MARKS
from loop.collect import span_drafts, traces
from loop.errors import LoopError, UsageError

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

    def note(self, column: str, values: dict[str, str]) -> None:
        """Record, per draft, the review imported from or exported to the tool, in one transaction."""
        from loop.store import now_text

        if not values:
            return
        stamp = now_text()
        with self.db.transaction() as db:
            db.executemany(f"INSERT INTO trace_reviews (trace_id, source, {column}, at) VALUES (?, ?, ?, ?) "
                           f"ON CONFLICT (trace_id, source) DO UPDATE SET {column} = excluded.{column}, "
                           "at = excluded.at", [(trace_id, self.source, value, stamp) for trace_id, value in values.items()])


def import_from(adapter, settings, since: str = "14d") -> ImportReport:
    """Pull the drafts of the window (from the cursor on) and the scores of every draft of the window."""
    from loop.cell_values import window_start
    from loop.sheets import WriteBatch
    from loop.workspace import Workspace

    workspace = Workspace.of(settings)
    start = window_start(since)
    ledger = Ledger(workspace.store.db, adapter.name)
    cursor = ledger.cursor()
    rows = adapter.drafts(max(start, cursor - OVERLAP) if cursor else start)
    known = _known(workspace, [r["trace_id"] for r in rows])
    ours = _drafts_of(workspace, adapter.origins, start)  # every draft of this tool in the window
    ours.update({r["trace_id"]: r["origin_id"] for r in rows})
    scores: dict[str, list[Score]] = {}
    for score in adapter.scores(sorted(set(ours.values()))):
        scores.setdefault(score.origin_id, []).append(score)
    names = review_names()
    report = ImportReport()
    fresh = [_with_scores(row, scores.get(row["origin_id"], []), names) for row in rows if row["trace_id"] not in known]
    kept, report.refused = traces.log_traced(fresh, workspace)
    kept = set(kept)
    report.drafts, report.known = len(kept), len(rows) - len(fresh)
    noted = {}
    for row in fresh:
        if row["trace_id"] in kept:
            report.judged += bool(row.get("judge_score"))
            if row.get("score"):
                noted[row["trace_id"]] = Review(row["score"], row["comment"], row["final_reply"]).key()
    updates, changed, report.kept = _review_updates(workspace, ours, scores, names, ledger.reviews(), kept)
    report.reviews = len(noted) + len(changed)
    workspace.write(WriteBatch(updates=updates))
    ledger.note("imported", {**noted, **changed})  # once the sheet has them: a failed write is tried again
    newest = max((datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in rows), default=None)
    if newest is not None and (cursor is None or newest > cursor):
        ledger.advance(newest)
    return report


def _with_scores(row: dict, scores: list[Score], names) -> dict:
    """A new draft with its review and judge score as the tool holds them."""
    review = person_review(scores, names)
    if review:
        row.update(score=review.score, comment=review.comment, final_reply=review.final_reply, reviewer=review.reviewer)
    return {**row, **judge_score(scores)}


def _review_updates(workspace, ours: dict[str, str], scores: dict[str, list[Score]], names, previous, new: set[str]):
    """For drafts already in the sheet (one read), the cells of each review changed in the tool since
    the last import, unless a person here reviewed the row since: (updates, reviews written, kept)."""
    from loop.reviews import read_drafts
    from loop.sheets import CellUpdate

    sheet = {d.trace_id: d for d in read_drafts(workspace.workbook.read([schema.DRAFTS]).get(schema.DRAFTS))[0]}
    updates, changed, kept = [], {}, 0
    for trace_id, origin_id in ours.items():
        draft, review = sheet.get(trace_id), person_review(scores.get(origin_id, []), names)
        if draft is None or trace_id in new or review is None:
            continue
        before = previous.get(trace_id, ("", ""))[0]
        shown = Review(draft.score, draft.comment, draft.final_reply).key() if draft.score else ""
        if review.key() == before:
            continue
        if shown == review.key():  # the sheet shows it already (its draft arrived with it)
            changed[trace_id] = review.key()
            continue
        if shown and shown != before:
            kept += 1  # a person here reviewed it since: theirs stands
            continue
        updates += [CellUpdate(schema.DRAFTS, draft.row, column, value, key=("trace_id", trace_id))
                    for column, value in (("score", SCORE_MARKS[review.score]), ("comment", review.comment),
                                          ("final_reply", review.final_reply), ("reviewer", review.reviewer))]
        changed[trace_id] = review.key()
    return updates, changed, kept


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
        ledger.note("exported", {draft.trace_id: review.key()})  # at once: a failure later keeps what was sent
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


class Adapter:
    """What the three tools share: their client's calls made into one-line errors, and their records
    read as spans into draft rows by the rules `loop serve` uses."""

    name = ""  # as on the command line
    title = ""  # as a person writes it
    setting = ""  # the variables to check when it cannot be reached
    origins: tuple[str, ...] = ()  # the drafts' origins this tool holds

    def client_module(self, module: str, package: str):
        import importlib

        try:
            return importlib.import_module(module)
        except ImportError:
            raise UsageError(f"Importing from {self.title} needs its client: pip install {package}") from None

    def missing(self, error: Exception) -> str | None:
        """The usage error to give when `error` says the project does not exist, else None."""
        return None

    def call(self, call, *args, **kwargs):
        try:
            result = call(*args, **kwargs)
        except Exception as error:  # each client raises its own family (httpx's, requests', its API errors)
            message = self.missing(error)
            if message:
                raise UsageError(message) from None
            raise unreachable(self.title, self.setting, error) from None
        return list(result) if isinstance(result, types.GeneratorType) else result

    def rows(self, spans: list) -> list[dict]:
        rows = span_drafts.drafts_of(spans, span_drafts.choice()).rows
        for row in rows:
            row["origin"] = self.name
        return rows


def text_of(value) -> str:
    """A tool's message content as text: parts joined, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in value)
    return json.dumps(value, ensure_ascii=False, default=str)


def nanoseconds(moment) -> int:
    """A tool's timestamp (ISO text or a datetime, UTC when it names no zone) as Unix nanoseconds."""
    if not moment:
        return 0
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1e9)
