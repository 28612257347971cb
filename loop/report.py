"""`loop report`: did the agent get better? Measured per prompt version, per applied edit, and for
the judge against people, from what reviewers already scored; written to a Dashboard tab.

- Per version: drafts written with it, drafts people reviewed, the 👍 rate with its 95% Wilson
  interval, and the change from the version before with a two-proportion test (`stats.py`).
  Scores only the judge gave are counted apart, never mixed into people's.
- Per applied edit: the share of failures in the pattern it targeted, among failures of the version
  before it and of the version that applied it (patterns come from each failure's `pattern` cell,
  written by improve runs), and a plain verdict: helped, worse, no clear change, too few to tell.
- The judge against people: on drafts both scored, agreement, Cohen's kappa and the confusion counts,
  per rubric version, so a team knows how far to trust `--include-judge`.
It warns when the newest version is significantly worse than the one before, and never acts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from . import schema, stats
from .approval import edit_rows, edit_titles
from .config import Settings
from .edits import APPLIED
from .errors import UsageError
from .reviews import Draft
from .sheets import Chart, Grid, WriteBatch
from .values import DOWN, UP
from .workspace import Workspace

DASHBOARD = "Dashboard"
TITLE_MARK = "Dashboard, refreshed"  # its first cell: how a refresh knows the tab is its own to replace
CHART_ROWS = 18  # rows the chart covers (8 cm at the default row height)
VERSION_HEADERS = ["version", "current from", "until", "drafts", "reviewed", "👍", "👍 rate %", "low %", "high %",
                   "change (points)", "p", "verdict", "judge only", "judge 👍 rate %"]
EDIT_HEADERS = ["edit_id", "applied in", "pattern", "compared with", "failures before", "in pattern before",
                "share before %", "failures after", "in pattern after", "share after %", "verdict"]
JUDGE_HEADERS = ["rubric", "both scored", "agree", "agreement %", "kappa", "person 👍 judge 👍",
                 "person 👍 judge 👎", "person 👎 judge 👍", "person 👎 judge 👎"]
READING = [
    "How to read this",
    "👍 rate: people's 👍 among the drafts people reviewed; low–high is its 95% Wilson interval. With few "
    "reviews the interval is wide: trust it, not the rate.",
    "change: points from the previous version with reviews; p and verdict from a two-sided two-proportion "
    "test at 5%. \"too few to tell\" means under 5 expected 👍 or 👎 in either version.",
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

    def as_json(self) -> dict:
        edits = [dict(asdict(e), share_before=e.share_before, share_after=e.share_after) for e in self.edits]
        return {"versions": [asdict(v) for v in self.versions], "edits": edits,
                "judge": [asdict(j) for j in self.judge], "warning": self.warning}


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
    result.edits = edit_figures(drafts, applied, workspace.prompt)
    result.judge = judge_figures(drafts)
    result.warning = warning(result.versions)
    return result


def _ours(table, title: str) -> bool:
    """A Dashboard this tool wrote (its first cell says so), or an empty tab of that exact name."""
    if title != DASHBOARD:
        return False
    rows = [table.headers, *table.rows] if table else []
    cells = [value for row in rows for value in row if value not in (None, "")]
    return not cells or str(cells[0]).startswith(TITLE_MARK)


def version_figures(drafts: list[Draft], store) -> list[VersionFigures]:
    history = store.versions() if store.exists() else {}
    periods = store.periods() if history else {}
    by_version = _by_version(drafts)
    labels = {f"v{n}" for n in history} | set(by_version)
    figures, previous = [], None
    for label in sorted(labels, key=_version_order):
        written = by_version.get(label, [])
        reviewed = [d for d in written if d.score is not None]
        up = sum(d.score == UP for d in reviewed)
        judged = [d for d in written if d.score is None and d.judge_score is not None]
        judge_up = sum(d.judge_score == UP for d in judged)
        low, high = stats.wilson(up, len(reviewed)) if reviewed else (None, None)
        spans = periods.get(_version_number(label), [])
        change = None
        if previous is not None and previous.reviewed and reviewed:
            change = stats.compare(previous.up, previous.reviewed, up, len(reviewed))
        figures.append(VersionFigures(
            label, spans[0][0][:16].replace("T", " ") if spans else "", _until(spans), len(written), len(reviewed),
            up, up / len(reviewed) if reviewed else None, low, high, change.difference if change else None,
            change.p_value if change else None, change.verdict if change else "", len(judged), judge_up,
            judge_up / len(judged) if judged else None))
        if reviewed:
            previous = figures[-1]
    return figures


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
        verdict = stats.compare(len(old) - in_old, len(old), len(new) - in_new, len(new)).verdict
        verdict = {"better": "helped", "worse": "worse"}.get(verdict, verdict)
        figures.append(EditFigures(edit.edit_id, edit.applied_version, edit.pattern, before, len(old), in_old,
                                   len(new), in_new, verdict))
    return figures


def judge_figures(drafts: list[Draft]) -> list[JudgeFigures]:
    by_rubric: dict[str, list[tuple[str, str]]] = {}
    for draft in drafts:
        if draft.score is not None and draft.judge_score is not None:
            by_rubric.setdefault(draft.judge_version or "—", []).append((draft.score, draft.judge_score))
    figures = []
    for rubric in sorted(by_rubric, key=_version_order):
        found = stats.agreement(by_rubric[rubric])
        confusion = {f"person {p}, judge {j}": n for (p, j), n in found.confusion.items()}
        figures.append(JudgeFigures(rubric, found.both, found.agree, found.rate if found.both else None,
                                    found.kappa, confusion))
    return figures


def warning(versions: list[VersionFigures]) -> str:
    """Said when the newest reviewed version is significantly worse than the one before; never acted on."""
    reviewed = [v for v in versions if v.reviewed]
    if len(reviewed) < 2 or reviewed[-1].verdict != "worse":
        return ""
    newest, before = reviewed[-1], reviewed[-2]
    return (f"{newest.version}'s 👍 rate ({newest.rate:.0%} of {newest.reviewed}) is significantly below "
            f"{before.version}'s ({before.rate:.0%} of {before.reviewed}, {p_text(newest.p_value)}); "
            f"`loop rollback` restores the version before it.")


def dashboard(found: Report, now: datetime | None = None) -> Grid:
    """The Dashboard tab: the chart first, then versions, applied edits, the judge against people,
    and how to read them. Rates are percentages so the chart's axis reads plainly."""
    now = now or datetime.now(timezone.utc)
    rows: list[list[object]] = [[f"{TITLE_MARK} {now:%Y-%m-%d %H:%M} UTC by `loop report`"],
                                [f"⚠ {found.warning}"] if found.warning else []]
    bold = {1, 2}
    if found.versions:
        rows += [[] for _ in range(CHART_ROWS)]  # the chart sits over these rows
    chart_row = 4

    headers_at: set[int] = set()

    def section(title: str, headers: list[str]) -> None:
        rows.extend([[], [title], headers])
        bold.add(len(rows) - 1)
        headers_at.add(len(rows))

    section("Prompt versions", VERSION_HEADERS)
    first_version = len(rows) + 1
    for v in found.versions:
        rows.append([v.version, v.current_from, v.current_until, v.drafts, v.reviewed, v.up, _percent(v.rate),
                     _percent(v.low), _percent(v.high), _points(v.change), _round(v.p_value, 3), v.verdict,
                     v.judged, _percent(v.judge_rate)])
    last_version = len(rows)
    if not found.versions:
        rows.append(["No drafts carry a prompt version yet."])
    section("Applied edits", EDIT_HEADERS)
    for e in found.edits:
        rows.append([e.edit_id, e.version, e.pattern, e.before, e.failures_before, e.pattern_before,
                     _percent(e.share_before), e.failures_after, e.pattern_after, _percent(e.share_after), e.verdict])
    if not found.edits:
        rows.append(["No applied edit yet."])
    section("Judge against people", JUDGE_HEADERS)
    for j in found.judge:
        rows.append([j.rubric, j.both, j.agree, _percent(j.agreement), _round(j.kappa, 2),
                     *(j.confusion.get(f"person {p}, judge {q}", 0) for p in (UP, DOWN) for q in (UP, DOWN))])
    if not found.judge:
        rows.append(["No draft scored by both the judge and a person yet."])
    rows.append([])
    bold.add(len(rows) + 1)
    rows += [[line] for line in READING]
    chart = None
    if found.versions:
        chart = Chart("👍 rate per prompt version, with its 95% interval", categories=1, series=[7, 8, 9],
                      first_row=first_version, last_row=last_version, anchor=(chart_row, 1),
                      y_title="👍 rate %", y_range=(0, 100), dashed={1, 2})
    return Grid(DASHBOARD, rows, bold_rows=bold, header_rows=headers_at, chart=chart,
                column_widths=_widths([r for number, r in enumerate(rows, start=1) if number not in headers_at]))


def _widths(rows: list[list[object]]) -> list[int]:
    """Each column as wide as its longest value (headers wrap; single-cell lines of prose overflow)."""
    widths: list[int] = []
    for row in rows:
        if len(row) < 2:
            continue
        for position, value in enumerate(row):
            if position == len(widths):
                widths.append(10)
            widths[position] = min(max(widths[position], len(str(value)) + 2), 40)
    return widths


def refresh(where: Settings | Workspace, now: datetime | None = None) -> Report:
    """Measure, then rewrite the Dashboard tab in one write (delivering any pending drafts with it)."""
    workspace = Workspace.of(where)
    found = report(workspace, guard_dashboard=True)
    workspace.write(WriteBatch(grids=[dashboard(found, now)]))
    return found


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
