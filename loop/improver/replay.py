"""The replay check: every proposed edit is tried before anyone ticks it.

For each edit, the agent drafts again, with the candidate prompt (the current prompt plus that edit
alone), the failures the edit cites, a few failures of its pattern it does not cite (held out, so an
edit that only fits its own evidence shows it) and a sample of successes shared by every edit. Each
case is also drafted once with the current prompt: the control, shared by every edit, so what the
edit changes is told apart from what drafting again changes anyway. A pairwise judge compares
control and candidate in both orders; a verdict that flips with the order is a tie.

`fixed_cited` and `fixed_held_out` count the failures where the candidate won; `regressed` counts
the successes where the control won. A case whose draft the agent could not make (it raised, exited,
hung past LOOP_AGENT_TIMEOUT, returned no text) is "not replayed": left out of those counts, counted
on its own and named in the edit's `check`; the other cases go on. An agent that fails on its first
cases without a single draft ends the replay early, with the reason. `loop check` runs the same
trial for the ticked edits together.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict

from loop import review_records
from loop.collect.support_agent import fit_thread
from loop.errors import LoopError, UsageError
from loop.improver.agent_seam import Agent, AgentFailed, BundledAgent, ticket_record
from loop.improver.patterns import Pattern
from loop.improver.proposals import sample_successes
from loop.model import Usage, dumps_data
from loop.prompt_templates import data_room, messages
from loop.reviews import Draft

log = logging.getLogger(__name__)

CITED, HELD_OUT, SUCCESS = "cited", "held out", "success"
CANDIDATE, CONTROL, TIE = "candidate", "control", "tie"
NOT_REPLAYED = "not replayed"  # the verdict of a case the agent could not draft
# An agent that fails this many drafts before it makes one is not tried on the remaining cases.
FAIL_FAST = 3
# What one draft by the bundled agent usually costs (search, read, answer), for planning the budget.
CALLS_PER_DRAFT = 3
_CONTROL = None  # the label of the drafts made with the current prompt


class PairwiseVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    winner: Literal["A", "B", "tie"]
    reason: str


@dataclass(frozen=True)
class Case:
    kind: str  # cited, held out or success
    draft: Draft  # the logged draft: its ticket, the reviewer's verdict and words


@dataclass
class Trial:
    """A candidate prompt and the cases to try it on; `label` is the edit id (or "ticked edits")."""

    label: str
    prompt: str
    cases: list[Case]


@dataclass
class Outcome:
    label: str
    case: Case
    control: str
    candidate: str
    verdict: str  # candidate, control, tie, or not replayed (the reason says why)
    reason: str


@dataclass
class Figures:
    fixed_cited: tuple[int, int] = (0, 0)
    fixed_held_out: tuple[int, int] = (0, 0)
    regressed: tuple[int, int] = (0, 0)
    not_replayed: int = 0  # cases the agent could not draft: in none of the counts above
    why_not: str = ""  # the first such case's reason

    def cells(self) -> dict[str, str]:
        return {name: f"{k}/{n}" for name, (k, n) in
                (("fixed_cited", self.fixed_cited), ("fixed_held_out", self.fixed_held_out), ("regressed", self.regressed))}

    def flag(self) -> str:
        """Why a reviewer should look twice: it fixed none of the failures, or did worse on a success."""
        problems = []
        tried = self.fixed_cited[1] + self.fixed_held_out[1]
        if tried and not self.fixed_cited[0] + self.fixed_held_out[0]:
            problems.append(f"fixed none of the {tried} failures it was tried on")
        if self.regressed[0]:
            problems.append(f"did worse on {self.regressed[0]} of {self.regressed[1]} successes")
        if self.not_replayed:
            problems.append(f"{self.not_replayed} case{'s' if self.not_replayed != 1 else ''} not replayed "
                            f"({self.why_not})")
        return "replay: " + "; ".join(problems) if problems else ""


@dataclass
class ReplayReport:
    trials: list[Trial] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    agent: str = ""
    not_replayed: str = ""  # why there are no figures, when there are none
    dropped: int = 0  # cases left out to stay within the budget

    def figures(self, label: str) -> Figures | None:
        mine = [o for o in self.outcomes if o.label == label]
        if not mine or self.not_replayed:
            return None
        failed = [o for o in mine if o.verdict == NOT_REPLAYED]
        judged = [o for o in mine if o.verdict != NOT_REPLAYED]

        def count(kind: str, winner: str) -> tuple[int, int]:
            of_kind = [o for o in judged if o.case.kind == kind]
            return sum(o.verdict == winner for o in of_kind), len(of_kind)

        return Figures(count(CITED, CANDIDATE), count(HELD_OUT, CANDIDATE), count(SUCCESS, CONTROL),
                       len(failed), failed[0].reason if failed else "")


@dataclass(frozen=True)
class Sizes:
    cited: int = 5
    held_out: int = 3
    successes: int = 5

    @classmethod
    def of(cls, settings) -> Sizes:
        return cls(settings.replay_cited, settings.replay_held_out, settings.replay_successes)


def plan(evidence_ids: list[str], pattern: Pattern | None, failures: dict[str, Draft], successes: list[Draft],
         sizes: Sizes) -> list[Case]:
    """The cases to try one candidate on: failures it cites, failures of its pattern it does not
    cite (the newest), and the run's shared sample of successes."""
    cited = [failures[t] for t in evidence_ids if t in failures][:sizes.cited]
    others = [failures[t] for t in (pattern.trace_ids if pattern else []) if t in failures and t not in evidence_ids]
    held_out = sorted(others, key=lambda d: d.created_at, reverse=True)[:sizes.held_out]
    return ([Case(CITED, d) for d in cited] + [Case(HELD_OUT, d) for d in held_out]
            + [Case(SUCCESS, d) for d in sample_successes(successes, sizes.successes)])


def planned_calls(trials: list[Trial], per_draft: int) -> int:
    """Model calls the replay of `trials` would make: each case's control once, each candidate, and
    two judge calls per pair."""
    controls = {c.draft.trace_id for t in trials for c in t.cases}
    pairs = sum(len(t.cases) for t in trials)
    return per_draft * (len(controls) + pairs) + 2 * pairs


def fit_budget(trials: list[Trial], per_draft: int, budget: int | None) -> int:
    """Drop cases until the replay fits `budget` model calls: held-out failures first, then
    successes, then cited failures, from the trial with the most cases. Returns how many were dropped."""
    dropped = 0
    order = {HELD_OUT: 0, SUCCESS: 1, CITED: 2}
    while budget is not None and planned_calls(trials, per_draft) > budget:
        largest = max(trials, key=lambda t: len(t.cases), default=None)
        if largest is None or not largest.cases:
            break
        victim = min(reversed(largest.cases), key=lambda c: order[c.kind])
        largest.cases.remove(victim)
        dropped += 1
    return dropped


class BudgetSpent(Exception):
    """The replay reached its cap on model calls."""


class CappedModel:
    """The run's model client, refusing calls past a cap."""

    def __init__(self, model, budget: int | None):
        self._model, self._budget, self._calls = model, budget, 0
        self._lock = threading.Lock()
        self.max_input_tokens = model.max_input_tokens

    def _spend(self) -> None:
        with self._lock:
            if self._budget is not None and self._calls >= self._budget:
                raise BudgetSpent()
            self._calls += 1

    def ask(self, *args, **kwargs):
        self._spend()
        return self._model.ask(*args, **kwargs)

    def chat(self, *args, **kwargs):
        self._spend()
        return self._model.chat(*args, **kwargs)

    @property
    def calls(self) -> int:
        return self._calls


def judge_pair(model, case: Case, first: str, second: str) -> PairwiseVerdict:
    kind = "success" if case.kind == SUCCESS else "failure"
    room = data_room("pairwise.j2", model.max_input_tokens, kind=kind, case="", draft_a="", draft_b="")
    draft = case.draft
    if kind == "failure":
        record = {"ticket": draft.ticket, "thread": fit_thread(draft.thread), "rejected_reply": draft.draft,
                  "reviewer_comment": draft.comment, "corrected_reply": draft.final_reply}
    else:
        record = {"ticket": draft.ticket, "thread": fit_thread(draft.thread), "approved_reply": draft.draft,
                  "reviewer_comment": draft.comment}
    record = {k: review_records.cut(v, max(room // 2 // len(record), 200), keep_end=k == "thread") for k, v in record.items() if v}
    share = max(room // 4 - 40, 200)
    return model.ask("pairwise_verdict", PairwiseVerdict, messages(
        "pairwise.j2", kind=kind, case=dumps_data(record),
        draft_a=dumps_data({"reply": review_records.cut(first, share)}),
        draft_b=dumps_data({"reply": review_records.cut(second, share)})))


def verdict(control_first: PairwiseVerdict, candidate_first: PairwiseVerdict) -> tuple[str, str]:
    """One verdict from both orders: control as A then as B. A winner that changes with the order is a tie."""
    first = {"A": CONTROL, "B": CANDIDATE, "tie": TIE}[control_first.winner]
    second = {"A": CANDIDATE, "B": CONTROL, "tie": TIE}[candidate_first.winner]
    if first == second:
        return first, control_first.reason.strip()
    if TIE in (first, second):
        return TIE, f"one order called it a tie: {control_first.reason.strip()}"
    return TIE, "the judge picked whichever draft came first (position bias): a tie"


def run(agent: Agent, model, current_prompt: str, trials: list[Trial], concurrency: int = 4,
        budget: int | None = None, on_start: Callable[[int], None] = lambda total: None,
        on_done: Callable[[], None] = lambda: None) -> ReplayReport:
    """Draft every case with the current prompt and each trial's prompt, then judge each pair.
    A model that stays unreachable raises (nothing is written); a draft the agent fails is a case
    not replayed, with the reason (an agent that fails every case ends the replay with
    `not_replayed` saying why); cases past the budget are left out and counted in `dropped`."""
    per_draft = CALLS_PER_DRAFT if isinstance(agent, BundledAgent) else 0
    report = ReplayReport(trials=trials, agent=agent.name)
    report.dropped = fit_budget(trials, per_draft, budget)
    capped = CappedModel(model, budget)
    if isinstance(agent, BundledAgent):
        agent = BundledAgent(capped, agent.kb, agent.name)
    cases = {c.draft.trace_id: c for t in trials for c in t.cases}
    to_draft = [(_CONTROL, trace_id, current_prompt, case) for trace_id, case in cases.items()]
    to_draft += [(t.label, c.draft.trace_id, t.prompt, c) for t in trials for c in t.cases]
    pairs = [(t.label, c) for t in trials for c in t.cases]
    on_start(len(to_draft) + 2 * len(pairs))
    usage_before = _usage(model)
    failed: dict = {}
    try:
        drafts = _run_all(concurrency, on_done, {
            (label, trace_id): (lambda p=prompt, c=case: agent.draft(p, ticket_record(c.draft)))
            for label, trace_id, prompt, case in to_draft}, failed=failed)
        if failed and not drafts:
            first = next(iter(failed.values()))
            log.warning("%s; the edits were not replayed.", first)
            report.not_replayed = f"not replayed: {first}"
            return report
        judged = _run_all(concurrency, on_done, _judging(pairs, drafts, capped))
    finally:
        report.usage = _usage_since(model, usage_before)
    for label, case in pairs:
        key = (label, case.draft.trace_id)
        control, candidate = (_CONTROL, case.draft.trace_id), key
        problem = (f"control draft: {failed[control]}" if control in failed
                   else f"candidate draft: {failed[candidate]}" if candidate in failed else None)
        if problem:
            report.outcomes.append(Outcome(label, case, drafts.get(control, ""), drafts.get(candidate, ""),
                                           NOT_REPLAYED, problem))
            continue
        both = (judged.get((*key, "control first")), judged.get((*key, "candidate first")))
        if None in both:
            report.dropped += 1
            continue
        decided, reason = verdict(*both)
        report.outcomes.append(Outcome(label, case, drafts[(_CONTROL, case.draft.trace_id)], drafts[key], decided, reason))
    if failed:
        log.warning("%d of %d drafts by %s failed (first: %s); their cases count as not replayed.",
                    len(failed), len(to_draft), agent.name, next(iter(failed.values())))
    if budget is not None and capped.calls >= budget:
        log.warning("The replay reached its budget of %d model calls (--check-budget); %d case(s) were left out.",
                    budget, report.dropped)
    return report


def _judging(pairs: list[tuple[str, Case]], drafts: dict, model) -> dict:
    """Two judge calls for each pair whose drafts were both made: the control shown first, then second."""
    jobs = {}
    for label, case in pairs:
        trace_id = case.draft.trace_id
        control, candidate = drafts.get((_CONTROL, trace_id)), drafts.get((label, trace_id))
        if control is None or candidate is None:
            continue
        jobs[(label, trace_id, "control first")] = lambda a=control, b=candidate, c=case: judge_pair(model, c, a, b)
        jobs[(label, trace_id, "candidate first")] = lambda a=candidate, b=control, c=case: judge_pair(model, c, a, b)
    return jobs


def _run_all(concurrency: int, on_done: Callable[[], None], jobs: dict, failed: dict | None = None) -> dict:
    """Run every job with at most `concurrency` in flight; the results of those that finished.
    A job past the budget is left out; a model failure stops them all. With `failed`, a job whose
    agent failed puts its reason there and the others go on (until FAIL_FAST failures with no
    result at all: then the jobs not started are not tried); without it, an agent failure stops
    them all too."""
    results = {}
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        futures = {pool.submit(job): key for key, job in jobs.items()}
        for future in as_completed(futures):
            key = futures[future]
            try:
                results[key] = future.result()
            except BudgetSpent:
                pass
            except CancelledError:
                failed[key] = f"not tried: the agent failed the first {FAIL_FAST} cases it was given"
            except AgentFailed as failure:
                if failed is None:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                failed[key] = str(failure)
                if len(failed) >= FAIL_FAST and not results:
                    for pending in futures:
                        pending.cancel()
            except LoopError:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            finally:
                on_done()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def _usage(model) -> Usage:
    usage = getattr(model, "usage", None) or Usage()
    return Usage(usage.calls, usage.input_tokens, usage.output_tokens)


def _usage_since(model, before: Usage) -> Usage:
    now = _usage(model)
    return Usage(now.calls - before.calls, now.input_tokens - before.input_tokens, now.output_tokens - before.output_tokens)


def replay_edits(workspace, prompt: str, edits, window, patterns: list[Pattern], concurrency: int = 4,
                 on_start: Callable[[int], None] = lambda total: None,
                 on_done: Callable[[], None] = lambda: None) -> ReplayReport:
    """Try each proposed edit alone on its own cases (`loop improve`)."""
    from loop.improver.edits import apply_one

    settings = workspace.settings
    try:
        agent = agent_for(workspace)
    except UsageError as problem:
        log.warning("%s The edits were not replayed.", problem)
        return ReplayReport(not_replayed=f"not replayed: {problem}")
    sizes = Sizes.of(settings)
    failures = {d.trace_id: d for d in window.failures}
    by_name = {p.name.casefold(): p for p in patterns}
    trials = [Trial(edit.edit_id, apply_one(prompt, edit),
                    plan(edit.evidence, by_name.get(edit.pattern.casefold()), failures, window.successes, sizes))
              for edit in edits]
    log.info("Replaying %d edit%s with %s.", len(trials), "" if len(trials) == 1 else "s", agent.name)
    return run(agent, workspace.model, prompt, trials, concurrency, settings.check_budget, on_start, on_done)


def agent_for(workspace) -> Agent:
    """The agent for this workspace's replays (LOOP_AGENT, else the bundled agent with LOOP_KB)."""
    from loop.improver.agent_seam import resolve_agent

    settings = workspace.settings
    return resolve_agent(settings.agent, lambda: workspace.model, settings.kb, settings.kb_named)


@dataclass
class CheckReport:
    """`loop check`: the ticked edits tried together as one candidate prompt."""

    edits: list = field(default_factory=list)  # the ticked edits that apply to the prompt as it is now
    stale: list = field(default_factory=list)  # ticked edits whose passage is gone
    replay: ReplayReport | None = None
    since: datetime | None = None  # the start of the review window the cases came from
    runs: list[str] = field(default_factory=list)  # the improve runs whose window it is (none: --since or 14 days)
    # cited failures the window leaves out: before its start, scored by the judge only, or in no draft at all
    earlier: list = field(default_factory=list)  # the cited drafts created before the window's start
    judge_only: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def figures(self) -> Figures | None:
        return self.replay.figures(TICKED) if self.replay else None


TICKED = "ticked edits"
DEFAULT_WINDOW = "14d"  # improve's default window: what a run without a Runs row looked back over
_RUN_TIME = re.compile(r"^(\d{8}-\d{6})-")


def proposing_window(rows, runs_table, now: datetime | None = None) -> tuple[datetime, list[str]]:
    """The review window of the improve runs that proposed `rows` (ticked edit rows): the earliest
    `since` of their Runs rows, found by the Edits tab the run wrote or by the run id that starts each
    edit id. A run with no Runs row looked back 14 days from its own time (from the edit id); with no
    run to go by at all, the window is the 14 days before `now`. Returns the start and the run ids."""
    from loop.cell_values import BadValue, as_text, normalize_header, parse_timestamp, window_start

    by_tab, by_id = {}, {}
    for _, record in (runs_table.records() if runs_table is not None else []):
        run_id = as_text(record.get(normalize_header("run_id")))
        try:
            since = parse_timestamp(record.get("since"))
        except BadValue:
            continue
        by_id[run_id] = since
        tab = as_text(record.get(normalize_header("edits_tab")))
        if tab:
            by_tab[tab] = (run_id, since)
    starts, runs = [], []
    for row in rows:
        edit_id = row.edit.edit_id
        found = by_tab.get(row.tab) or next(((r, t) for r, t in by_id.items() if r and edit_id.startswith(r + "-")),
                                            None)
        if found is None:
            stamp = _RUN_TIME.match(edit_id)
            if not stamp:
                continue
            try:
                run_time = datetime.strptime(stamp.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            found = (edit_id.rsplit("-", 1)[0], window_start(DEFAULT_WINDOW, run_time))
        if found[0] not in runs:
            runs.append(found[0])
        starts.append(found[1])
    if not starts:
        return window_start(DEFAULT_WINDOW, now), []
    return min(starts), runs


def check(where, since: str | None = None, concurrency: int = 4, now=None, include_judge: bool = False,
          on_start: Callable[[int], None] = lambda total: None,
          on_done: Callable[[], None] = lambda: None) -> CheckReport:
    """Replay the edits ticked right now, together, on the failures they cite, failures they do not
    cite (held out) and a sample of successes: do the chosen edits conflict? Writes nothing.

    The cases come from the review window of the improve runs that proposed the ticked edits (see
    `proposing_window`), or from `since` when it is given. Cited failures the window leaves out are
    listed in the report, so the CLI can say how many and what brings them in."""
    from loop import schema
    from loop.improver.edits import edit_rows, edit_titles
    from loop.improver.edits import PROPOSED, ROLLED_BACK, NotLocated, apply_one
    from loop.reviews import select_window
    from loop.cell_values import window_start
    from loop.workspace import Workspace

    workspace = Workspace.of(where)
    settings = workspace.settings
    workbook = workspace.workbook
    titles = edit_titles(workbook)
    tables = workbook.read([schema.DRAFTS, schema.RUNS, *titles])
    drafts, _ = workspace.drafts(tables.get(schema.DRAFTS))
    prompt = workspace.prompt.read()
    report = CheckReport()
    candidate = prompt
    ticked = []
    for row in edit_rows({t: tables[t] for t in titles if t in tables}):
        if not row.ticked or row.edit.status not in (PROPOSED, ROLLED_BACK):
            continue
        try:
            candidate = apply_one(candidate, row.edit)
            report.edits.append(row.edit)
            ticked.append(row)
        except NotLocated as problem:
            row.edit.check = str(problem)
            report.stale.append(row.edit)
    if not report.edits:
        return report
    if since:
        start = window_start(since, now)
    else:
        start, report.runs = proposing_window(ticked, tables.get(schema.RUNS), now)
    report.since = start
    window = select_window(drafts, start, include_judge)
    sizes = Sizes.of(settings)
    failures = {d.trace_id: d for d in window.failures}
    by_id = {d.trace_id: d for d in drafts}
    for trace_id in dict.fromkeys(t for e in report.edits for t in e.evidence):
        if trace_id in failures:
            continue
        found = by_id.get(trace_id)
        if found is None:
            report.missing.append(trace_id)
        elif found.created_at < start:
            report.earlier.append(found)
        elif found.score is None and found.judge_score and not include_judge:
            report.judge_only.append(trace_id)
    cited = list(dict.fromkeys(t for e in report.edits for t in e.evidence[:sizes.cited] if t in failures))
    uncited = Pattern("uncited", "", [d.trace_id for d in window.failures if d.trace_id not in cited])
    cases = plan(cited, uncited, failures, window.successes, Sizes(len(cited), sizes.held_out, sizes.successes))
    agent = agent_for(workspace)
    report.replay = run(agent, workspace.model, prompt, [Trial(TICKED, candidate, cases)], concurrency,
                        settings.check_budget, on_start, on_done)
    return report
