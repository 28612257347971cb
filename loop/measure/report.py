"""`loop report`: did the agent get better? Measured per prompt version, per applied edit, and for
the judge against people, from what reviewers already scored; written to a Dashboard tab.

- Per version: drafts written with it, drafts people reviewed, the 👍 rate with its 95% Wilson
  interval, and the change from the version before with a two-proportion test (`proportions.py`).
  Scores only the judge gave are counted apart, never mixed into people's.
- Per applied edit: the share of failures in the pattern it targeted, among failures of the version
  before it and of the version that applied it (patterns come from each failure's `pattern` cell,
  written by improve runs), and a plain verdict: helped, worse, no clear change, too few to tell.
- The judge against people: on drafts both scored, agreement, Cohen's kappa and the confusion counts,
  per rubric version, so a team knows how far to trust `--include-judge`.
It warns when the newest version is significantly worse than the one before, and never acts.

The Dashboard opens with one line that answers "did the last change help?" (`headline`): the current
version, since when, its 👍 rate with its interval and reviews, its change from the version it
replaced with the verdict, and the verdict on its edits. The current version and every version that
was rolled back are marked in the versions table and on the chart's axis; applied edits are shown as
their change; each column has one number format and is aligned with its header; verdicts and the
warning are coloured and worded as in the headline.
"""

from __future__ import annotations

import logging

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from loop import schema
from loop.cell_values import DOWN, UP
from loop.config import Settings
from loop.errors import UsageError
from loop.improver.edits import APPLIED
from loop.improver.edits import edit_rows, edit_titles
from loop.improver.review_tabs import diff
from loop.measure import proportions, side_by_side
from loop.ship import rollout
from loop.measure.side_by_side import CanaryFigures
from loop.reviews import Draft
from loop.store.prompts import RUNNING
from loop.sheets import Chart, Grid, RichText, Run, WriteBatch
from loop.sheets.base import Styled, text_lines
from loop.workspace import Workspace

log = logging.getLogger("loop")
DASHBOARD = "Dashboard"
TITLE_MARK = "Dashboard, refreshed"  # its second cell (the first, before the headline came): how a refresh knows it
CHART_ROWS = 18  # rows the chart covers (8 cm at the default row height)
CHART_ROW = 5  # the chart's top row: under the headline, the mark, the warning and a blank row
CURRENT, ROLLED_BACK, CANARY, STOPPED_CANARY = "current", "rolled back", "canary", "stopped canary"
VERSION_HEADERS = ["version", "current from", "until", "drafts", "reviewed", "👍", "👍 rate %", "low %", "high %",
                   "change (points)", "compared with", "p", "verdict", "judge only", "judge 👍 rate %"]
EDIT_HEADERS = ["change", "pattern", "applied in", "compared with", "failures before", "in pattern before",
                "share before %", "failures after", "in pattern after", "share after %", "verdict", "edit_id"]
JUDGE_HEADERS = ["rubric", "both scored", "agree", "agreement %", "kappa", "person 👍 judge 👍",
                 "person 👍 judge 👎", "person 👎 judge 👍", "person 👎 judge 👎"]
# The verdicts as the Dashboard and its headline word them (the figures' `verdict` stays as it is).
VERDICT_WORDS = {"better": "better", "worse": "worse", "helped": "helped", "no clear change": "no clear change",
                 "too few to tell": "too few reviews to tell"}
GOOD, BAD, NEUTRAL = "00692E", "C00000", "595959"
VERDICT_COLORS = {"better": GOOD, "helped": GOOD, "worse": BAD, "no clear change": NEUTRAL, "too few to tell": NEUTRAL}
CURRENT_FILL, MUTED = "E2F0D9", "808080"
# one number format per column, Excel's codes (Google takes the same patterns)
WHOLE, POINTS, KAPPA = "0", "+0;-0;0", "0.00"
READING = [
    "How to read this",
    "The first line answers \"did the last change help?\": the current version, its 👍 rate, its change from the "
    "version it replaced and the verdict on its edits, in the same words as the tables below.",
    "version: (current) is the prompt in use; (rolled back) versions were undone by `loop rollback`, on the chart too; "
    "(canary) is being tried on a share of tickets, (stopped canary) only ever ran as a canary that was stopped.",
    "Canary: its 👍 rate against the current version's on the same days, drafts written during the canary only; "
    "the interval of the difference holds at every look (docs/canary.md), so reading it daily raises no false alarm.",
    "👍 rate: people's 👍 among the drafts people reviewed; low–high is its 95% Wilson interval. With few "
    "reviews the interval is wide: trust it, not the rate.",
    "change: points from the version it replaced (compared with); p and verdict from a two-sided two-proportion "
    "test at 5%. \"too few reviews to tell\" means under 5 expected 👍 or 👎 in either version.",
    "judge only: drafts only the LLM judge scored. They are never counted in the 👍 rate.",
    "Applied edits: the share of a version's failures (with a pattern) that fall in the edit's pattern, before "
    "and after it. A version's failures get patterns when the next `loop improve` reads them.",
    "Judge against people: on drafts both scored. kappa is agreement beyond chance (1 perfect, 0 chance).",
]


@dataclass
class VersionFigures:
    version: str
    current_from: str
    current_until: str  # "now" while current
    drafts: int
    reviewed: int
    up: int
    rate: float | None
    low: float | None
    high: float | None
    change: float | None  # rate − the previous version's rate
    p_value: float | None
    verdict: str  # better, worse, no clear change, too few to tell ("" for the first)
    judged: int  # scored by the judge only
    judge_up: int
    judge_rate: float | None
    state: str = ""  # current, rolled back, or "" (an earlier version of the prompt in use)
    compared_with: str = ""  # the version it replaced (the nearest before it with reviews)


@dataclass
class EditFigures:
    edit_id: str
    version: str
    pattern: str
    before: str  # the version before it
    failures_before: int
    pattern_before: int
    failures_after: int
    pattern_after: int
    verdict: str  # helped, worse, no clear change, too few to tell
    find: str = ""
    replace: str = ""

    @property
    def share_before(self) -> float | None:
        return self.pattern_before / self.failures_before if self.failures_before else None

    @property
    def share_after(self) -> float | None:
        return self.pattern_after / self.failures_after if self.failures_after else None


@dataclass
class JudgeFigures:
    rubric: str
    both: int
    agree: int
    agreement: float | None
    kappa: float | None
    confusion: dict[str, int]  # "person up, judge down" → count


@dataclass
class Report:
    versions: list[VersionFigures] = field(default_factory=list)
    edits: list[EditFigures] = field(default_factory=list)
    judge: list[JudgeFigures] = field(default_factory=list)
    warning: str = ""
    current: str = ""  # the current version's label
    since: str = ""  # when it first became current (ISO text)
    canary: CanaryFigures | None = None  # the running canary (or the last one stopped) against the current version
    drafts: list[Draft] = field(default_factory=list, repr=False)  # what the figures were made from

    @property
    def headline(self) -> str:
        return str(headline(self))

    def as_json(self) -> dict:
        edits = [dict(asdict(e), share_before=e.share_before, share_after=e.share_after) for e in self.edits]
        return {"versions": [asdict(v) for v in self.versions], "edits": edits,
                "judge": [asdict(j) for j in self.judge], "warning": self.warning, "headline": self.headline,
                "canary": self.canary.as_json() if self.canary else None}


def report(where: Settings | Workspace, guard_dashboard: bool = False) -> Report:
    """The figures, from the Drafts tab, the Edits tabs and the prompt history, in one read of the
    workbook. With `guard_dashboard`, refuse before anything is written if a tab called Dashboard
    exists that this tool did not write: replacing it would lose someone's work."""
    workspace = Workspace.of(where)
    workbook = workspace.workbook
    titles = edit_titles(workbook)
    existing = next((t for t in workbook.titles() if t.casefold() == DASHBOARD.casefold()), None)
    extra = [existing] if guard_dashboard and existing else []
    tables = workbook.read([schema.DRAFTS, *titles, *extra])
    if extra and not _ours(tables.get(existing), existing):
        raise UsageError(f"The workbook has a tab {existing!r} that loop did not write, and `loop report` writes "
                         f"its Dashboard there; rename that tab and run again.")
    drafts, _ = workspace.drafts(tables.get(schema.DRAFTS))
    applied = [r.edit for r in edit_rows({t: tables[t] for t in titles}) if r.edit.status == APPLIED]
    result = Report()
    result.versions = version_figures(drafts, workspace.prompt)
    store = workspace.prompt
    current = store.current() if store.exists() else None
    if current is not None:
        spans = store.periods().get(current.number, [])
        result.current, result.since = current.label, spans[0][0] if spans else ""
    result.edits = edit_figures(drafts, applied, workspace.prompt)
    result.judge = judge_figures(drafts)
    result.warning = warning(result.versions)
    if store.exists() or store.serving() is not None:
        shown = side_by_side.canary_of(store.records.canaries(), current.number if current else None)
        result.canary = side_by_side.figures(shown, drafts) if shown else None
    result.drafts = drafts
    return result


def _ours(table, title: str) -> bool:
    """A Dashboard this tool wrote: a worksheet of that exact name whose first or second cell is the mark
    `loop report` writes. Anything else — a user's tab, an empty one, a chart sheet (which has no cells
    to read) — was not written by loop and is never replaced."""
    if title != DASHBOARD or table is None:
        return False
    rows = [table.headers, *table.rows]
    cells = [value for row in rows[:3] for value in row[:1] if value not in (None, "")]
    return any(str(cell).startswith(TITLE_MARK) for cell in cells[:2])


def version_figures(drafts: list[Draft], store) -> list[VersionFigures]:
    history = store.versions() if store.exists() else {}
    periods = store.periods() if history else {}
    lineage = {v.label for v in store.lineage()} if history else set()
    current = store.current().label if history else ""
    canaries = store.records.canaries() if history else []
    running = next((c.version for c in canaries if c.outcome == RUNNING), None)
    stopped = {c.version for c in canaries if c.outcome != RUNNING}
    by_version = _by_version(drafts)
    labels = {f"v{n}" for n in history} | set(by_version)
    figures, previous = [], None
    reviewed_figures: dict[str, VersionFigures] = {}
    for label in sorted(labels, key=_version_order):
        written = by_version.get(label, [])
        people = proportions.tally([d.score for d in written], UP)
        reviewed, up, low, high = [d for d in written if d.score is not None], people.up, people.low, people.high
        judged = [d for d in written if d.score is None and d.judge_score is not None]
        judge_up = sum(d.judge_score == UP for d in judged)
        spans = periods.get(_version_number(label), [])
        base = _replaced(label, history, reviewed_figures) if _version_number(label) in history else previous
        change = None
        if base is not None and base.reviewed and reviewed:
            change = proportions.compare(base.up, base.reviewed, up, len(reviewed))
        number = _version_number(label)
        state = (CURRENT if label == current else CANARY if number == running
                 else STOPPED_CANARY if number in stopped and number not in periods
                 else ROLLED_BACK if label in _labels(history) - lineage else "")
        figures.append(VersionFigures(
            label, spans[0][0][:16].replace("T", " ") if spans else "", _until(spans), len(written), len(reviewed),
            up, up / len(reviewed) if reviewed else None, low, high, change.difference if change else None,
            change.p_value if change else None, change.verdict if change else "", len(judged), judge_up,
            judge_up / len(judged) if judged else None, state, base.version if change else ""))
        if reviewed:
            previous = figures[-1]
            reviewed_figures[label] = figures[-1]
    return figures


def _labels(history: dict) -> set[str]:
    return {f"v{n}" for n in history}


def _replaced(label: str, history: dict, reviewed: dict[str, VersionFigures]) -> VersionFigures | None:
    """The version `label` replaced, or the nearest of its ancestors with reviews; None when the
    history does not say (a label without a recorded version), and the version before it counts."""
    number = _version_number(label)
    if number not in history:
        return None
    parent = history[number].parent
    while parent is not None:
        if f"v{parent}" in reviewed:
            return reviewed[f"v{parent}"]
        parent = history[parent].parent if parent in history else None
    return None


def edit_figures(drafts: list[Draft], applied, store) -> list[EditFigures]:
    history = store.versions() if store.exists() else {}
    placed = _by_version([d for d in drafts if d.score == DOWN and d.pattern])  # failures with a pattern
    figures = []
    for edit in applied:
        number = _version_number(edit.applied_version)
        parent = history[number].parent if number in history else None
        before = f"v{parent}" if parent else ""
        old, new = placed.get(before, []), placed.get(edit.applied_version, [])
        in_old = sum(d.pattern.casefold() == edit.pattern.casefold() for d in old)
        in_new = sum(d.pattern.casefold() == edit.pattern.casefold() for d in new)
        # the share of failures falling in the pattern: lower after the edit is what helped means
        verdict = proportions.compare(len(old) - in_old, len(old), len(new) - in_new, len(new)).verdict
        verdict = {"better": "helped", "worse": "worse"}.get(verdict, verdict)
        figures.append(EditFigures(edit.edit_id, edit.applied_version, edit.pattern, before, len(old), in_old,
                                   len(new), in_new, verdict, edit.find, edit.replace))
    return figures


def judge_figures(drafts: list[Draft]) -> list[JudgeFigures]:
    by_rubric: dict[str, list[tuple[str, str]]] = {}
    for draft in drafts:
        if draft.score is not None and draft.judge_score is not None:
            by_rubric.setdefault(draft.judge_version or "—", []).append((draft.score, draft.judge_score))
    figures = []
    for rubric in sorted(by_rubric, key=_version_order):
        found = proportions.agreement(by_rubric[rubric])
        confusion = {f"person {p}, judge {j}": n for (p, j), n in found.confusion.items()}
        figures.append(JudgeFigures(rubric, found.both, found.agree, found.rate if found.both else None,
                                    found.kappa, confusion))
    return figures


def warning(versions: list[VersionFigures]) -> str:
    """Said when the current version (without a prompt history: the newest reviewed one) is significantly
    worse than the version it replaced; never acted on. A version already rolled back is not warned of."""
    reviewed = [v for v in versions if v.reviewed]
    known = any(v.state for v in versions)
    newest = next((v for v in reviewed if v.state == CURRENT), None) if known else (reviewed[-1] if reviewed else None)
    if newest is None or newest.verdict != "worse":
        return ""
    before = next((v for v in reviewed if v.version == newest.compared_with), None)
    if before is None:
        return ""
    return (f"{newest.version}'s 👍 rate ({newest.rate:.0%} of {newest.reviewed}) is significantly below "
            f"{before.version}'s ({before.rate:.0%} of {before.reviewed}, {p_text(newest.p_value)}); "
            f"`loop rollback` restores the version before it.")


def headline(found: Report) -> RichText:
    """One line that answers "did the last change help?", e.g. "Now v3, since 26 Oct 2026: 28% 👍 (17–42%)
    of 50 reviews; +4 points on v2, no clear change (p = 0.648); its edit: too few reviews to tell". The
    verdicts are coloured as in the tables."""
    if not found.versions:
        return RichText((Run("No drafts carry a prompt version yet: `loop log` records the version each draft was "
                             "written with.", bold=True),))
    current = next((v for v in found.versions if v.version == found.current), None) or found.versions[-1]
    runs = [Run(f"Now {current.version}", bold=True)]
    if found.since:
        runs.append(Run(f", since {_day(found.since)}", bold=True))
    undone = [v for v in found.versions
              if v.state == ROLLED_BACK and _version_order(v.version) > _version_order(current.version)]
    if undone:
        runs.append(Run(f" ({'; '.join(f'{v.version} rolled back on {_day(v.current_until)}' for v in undone)})",
                        bold=True))
    if not current.reviewed:
        runs.append(Run(": no reviews yet", bold=True))
    else:
        runs.append(Run(f": {current.rate:.0%} 👍 ({current.low * 100:.0f}–{current.high:.0%}) of {current.reviewed} "
                        f"review{'s' if current.reviewed != 1 else ''}", bold=True))
        if current.change is not None:
            p_value = f" ({p_text(current.p_value)})" if current.p_value is not None else ""
            runs += [Run(f"; {current.change * 100:+.0f} points on {current.compared_with}, ", bold=True),
                     Run(VERDICT_WORDS.get(current.verdict, current.verdict) + p_value, bold=True,
                         color=VERDICT_COLORS.get(current.verdict))]
        elif len([v for v in found.versions if v.reviewed]) == 1:
            runs.append(Run("; the first version with reviews", bold=True))
    edits = [e for e in found.edits if e.version == current.version]
    if edits:
        runs.append(Run(f"; its edit{'s' if len(edits) > 1 else ''}: ", bold=True))
        for index, edit in enumerate(edits):
            runs += [Run(", ", bold=True)] if index else []
            runs.append(Run(VERDICT_WORDS.get(edit.verdict, edit.verdict), bold=True,
                            color=VERDICT_COLORS.get(edit.verdict)))
    return RichText(tuple(runs))


def dashboard(found: Report, now: datetime | None = None) -> Grid:
    """The Dashboard tab: the headline, the chart, then versions, applied edits, the judge against people,
    and how to read them. Rates are percentages so the chart's axis reads plainly."""
    now = now or datetime.now(timezone.utc)
    rows: list[list[object]] = [
        [headline(found)],
        [Styled(f"{TITLE_MARK} {now:%Y-%m-%d %H:%M} UTC by `loop report`", color=MUTED, italic=True)],
        [Styled(f"⚠ {found.warning}", bold=True, color=BAD)] if found.warning else [],
        [_canary_line(found.canary)] if found.canary else [],
    ]
    bold: set[int] = set()
    lines: dict[int, int] = {}
    if found.versions:
        rows += [[] for _ in range(CHART_ROWS)]  # the chart sits over these rows

    headers_at: set[int] = set()

    def section(title: str, headers: list[str], numbers: set[str]) -> None:
        rows.extend([[], [title], [Styled(h, align="right") if h in numbers else Styled(h, align="center")
                                   if h in LABELS else h for h in headers]])
        bold.add(len(rows) - 1)
        headers_at.add(len(rows))

    def number(value, code: str = WHOLE):
        return "" if value in (None, "") else Styled(value, number_format=code, align="right")

    def verdict(word: str):
        return Styled(VERDICT_WORDS.get(word, word), bold=word in ("better", "worse", "helped"),
                      color=VERDICT_COLORS.get(word), align="center") if word else ""

    def label(text: str):  # a short label between numbers: centred, so it never reads as part of one
        return Styled(text, align="center") if text else ""

    section("Prompt versions", VERSION_HEADERS,
            set(VERSION_HEADERS[3:10]) | {"p", "judge only", "judge 👍 rate %"})
    first_version = len(rows) + 1
    for v in found.versions:
        mark = f"{v.version} ({v.state})" if v.state else v.version
        look = ({"bold": True, "fill": CURRENT_FILL} if v.state == CURRENT
                else {"color": MUTED, "italic": True} if v.state == ROLLED_BACK else {})
        rows.append([Styled(mark, **look) if look else mark, v.current_from, v.current_until, number(v.drafts),
                     number(v.reviewed), number(v.up), number(_percent(v.rate)), number(_percent(v.low)),
                     number(_percent(v.high)), number(_points(v.change), POINTS), label(v.compared_with),
                     Styled(_p(v.p_value), align="right") if v.p_value is not None else "", verdict(v.verdict),
                     number(v.judged), number(_percent(v.judge_rate))])
    last_version = len(rows)
    if not found.versions:
        rows.append(["No drafts carry a prompt version yet."])
    section("Applied edits", EDIT_HEADERS, set(EDIT_HEADERS[4:10]))
    for e in found.edits:
        change = diff(e.find, e.replace) if (e.find or e.replace) else e.edit_id
        rows.append([Styled(change, wrap=True), e.pattern, label(e.version), label(e.before), number(e.failures_before),
                     number(e.pattern_before), number(_percent(e.share_before)), number(e.failures_after),
                     number(e.pattern_after), number(_percent(e.share_after)), verdict(e.verdict), e.edit_id])
        lines[len(rows)] = text_lines({"change": str(change)}, {"change": EDIT_CHANGE_WIDTH}, {"change"}, 6)
    if not found.edits:
        rows.append(["No applied edit yet."])
    section("Judge against people", JUDGE_HEADERS, set(JUDGE_HEADERS[1:]))
    for j in found.judge:
        rows.append([j.rubric, number(j.both), number(j.agree), number(_percent(j.agreement)),
                     number(_round(j.kappa, 2), KAPPA),
                     *(number(j.confusion.get(f"person {p}, judge {q}", 0)) for p in (UP, DOWN) for q in (UP, DOWN))])
    if not found.judge:
        rows.append(["No draft scored by both the judge and a person yet."])
    rows.append([])
    bold.add(len(rows) + 1)
    rows += [[line] for line in READING]
    chart = None
    if found.versions:
        chart = Chart("👍 rate per prompt version, with its 95% interval", categories=1, series=[7, 8, 9],
                      first_row=first_version, last_row=last_version, anchor=(CHART_ROW, 1),
                      y_title="👍 rate %", y_range=(0, 100), dashed={1, 2})
    widths = _widths([r for n, r in enumerate(rows, start=1) if n not in headers_at and n > 4])
    if widths and found.edits:
        widths[0] = max(widths[0], EDIT_CHANGE_WIDTH)
    return Grid(DASHBOARD, rows, bold_rows=bold, header_rows=headers_at, chart=chart, column_widths=widths,
                row_lines=lines)


def _canary_line(canary: CanaryFigures) -> Styled:
    color = BAD if canary.stopped or canary.verdict == "worse" else GOOD if canary.verdict == "better" else NEUTRAL
    return Styled(canary.summary, bold=True, color=color)


EDIT_CHANGE_WIDTH = 36
LABELS = {"compared with", "applied in", "verdict"}  # short labels, centred under their centred headers


def _day(moment: str) -> str:
    """"2026-10-26T09:30:00+00:00" (or "2026-10-26 09:30") → "26 Oct 2026"."""
    try:
        found = datetime.fromisoformat(moment.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return moment[:10]
    return f"{found.day} {found:%b %Y}"


def _p(p_value: float) -> str:
    """A p-value as the warning and the headline write it, without its "p": "0.317", "< 0.001"."""
    text = p_text(p_value)[2:]
    return text[2:] if text.startswith("= ") else text


def _shown(value) -> str:
    """A cell's text as a reader sees it (numbers in their column's format)."""
    if isinstance(value, Styled):
        inner = value.value
        if isinstance(inner, (int, float)) and value.number_format == WHOLE:
            return f"{inner:.0f}"
        if isinstance(inner, (int, float)) and value.number_format == POINTS:
            return f"{inner:+.0f}"
        if isinstance(inner, (int, float)) and value.number_format == KAPPA:
            return f"{inner:.2f}"
        return str(inner)
    return str(value)


def _widths(rows: list[list[object]]) -> list[int]:
    """Each column as wide as its longest value as shown (headers wrap; single-cell lines of prose overflow;
    wrapped cells wrap)."""
    widths: list[int] = []
    for row in rows:
        if len(row) < 2:
            continue
        for position, value in enumerate(row):
            if position == len(widths):
                widths.append(10)
            if isinstance(value, Styled) and value.wrap:
                continue
            widths[position] = min(max(widths[position], len(_shown(value)) + 2), 40)
    return widths


def refresh(where: Settings | Workspace, now: datetime | None = None) -> Report:
    """Measure, stop a canary the evidence says is worse (the guardrail), then rewrite the Dashboard
    tab in one write (delivering any pending drafts with it)."""
    workspace = Workspace.of(where)
    found = report(workspace, guard_dashboard=True)
    if found.canary is not None and not found.canary.stopped:
        found.canary = side_by_side.guard(workspace.prompt.records, found.drafts)
        if found.canary.stopped:
            found.versions = version_figures(found.drafts, workspace.prompt)
    workspace.write(WriteBatch(grids=[dashboard(found, now)]))
    rollout.refresh(workspace, rollout_figures(workspace.prompt.records, found.drafts))
    return found


def rollout_figures(records, drafts: list[Draft]):
    """The Rollout tab's side-by-side cells for a canary's version, from the same figures as the Dashboard's."""
    canaries = {c.version: c for c in records.canaries()}

    def figures(version: int) -> dict | None:
        found = side_by_side.figures(canaries[version], drafts)
        return {"reviews_current": found.current.reviewed, "reviews_canary": found.canary.reviewed,
                "difference": f"{found.points:+.0f} points [{found.low:+.0f}, {found.high:+.0f}]",
                "verdict": found.verdict}

    return figures


def watch_round(workspace: Workspace) -> None:
    """What a running `loop sync --watch` does besides delivering, every half minute: act on the
    Rollout tab's ticks, and every GUARD_EVERY seconds let the guardrail stop a canary the evidence
    says is worse (it reads the Drafts tab, so not every round)."""
    import time

    rollout.act_and_log(workspace)
    last = getattr(workspace, "_guarded_at", None)
    if last is not None and time.monotonic() - last < GUARD_EVERY:
        return
    workspace._guarded_at = time.monotonic()
    store = workspace.prompt
    if store.canary() is None:
        return
    drafts, _ = workspace.drafts(workspace.workbook.read([schema.DRAFTS]).get(schema.DRAFTS))
    found = side_by_side.guard(store.records, drafts)
    if found is not None and found.stopped:
        log.warning("%s", found.summary)
        rollout.refresh(workspace, rollout_figures(store.records, drafts))


GUARD_EVERY = 300.0


def _percent(rate: float | None) -> float | str:
    return "" if rate is None else round(rate * 100, 1)


def _points(change: float | None) -> float | str:
    return "" if change is None else round(change * 100, 1)


def _round(value: float | None, digits: int) -> float | str:
    return "" if value is None else round(value, digits)


def _by_version(drafts: list[Draft]) -> dict[str, list[Draft]]:
    grouped: dict[str, list[Draft]] = {}
    for draft in drafts:
        if draft.prompt_version:
            grouped.setdefault(draft.prompt_version, []).append(draft)
    return grouped


def p_text(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _version_number(label: str) -> int | None:
    return int(label[1:]) if label[:1] == "v" and label[1:].isdigit() else None


def _version_order(label: str) -> tuple[int, str]:
    number = _version_number(label)
    return (number if number is not None else 10**9, label)


def _until(spans: list[tuple[str, str | None]]) -> str:
    if not spans:
        return ""
    last = spans[-1][1]
    return "now" if last is None else last[:16].replace("T", " ")
