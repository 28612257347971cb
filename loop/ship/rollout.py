"""The Rollout tab: a row per canary of the prompt, where a reviewer promotes or stops it by a tick.

Rows are in the order the canaries started, a new one appended below the others, each found again by
its `canary_id`; a row is rewritten in place, never doubled, and columns the tab has that loop does not
know are never touched. The ticks of a running canary are left as the reviewer set them until they are
acted on (`act`): a ticked `stop` stops it, a ticked `promote` makes its version current; both ticked,
stop wins. Ticks on a canary that already ended are cleared and noted. Acting on a tick goes through
the same commands a person would run (`loop promote`, a stop), so the store's one-change-at-a-time rule
holds: two hosts acting on one tick at once change the prompt once.

The side-by-side figures (reviews per arm, the difference, the verdict) come from a `figures`
callable given the canary's version; without one those cells stay as they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Mapping

from loop import schema
from loop.cell_values import as_text, is_ticked, normalize_header, shown
from loop.errors import LoopError, TitleTaken
from loop.sheets import Append, CellUpdate, NewTab, Table, WriteBatch
from loop.ship.canary import percent
from loop.store.prompts import RUNNING, Canary, Records

log = logging.getLogger("loop")
WHO = "Rollout tick"
STOP_REASON = "stopped by a tick in the Rollout tab"
Figures = Callable[[int], Mapping[str, object] | None]


@dataclass(frozen=True)
class Tick:
    """What a row's ticks did: `done` is promoted, stopped, ignored or failed."""

    canary: Canary
    done: str
    note: str


def records_of(workspace) -> Records:
    """The prompt's records in the store, under the name every host agrees on."""
    return workspace.prompt.records


def tab_title(workbook) -> str | None:
    """The workbook's Rollout tab, whatever its case and spacing."""
    wanted = normalize_header(schema.ROLLOUT)
    return next((t for t in workbook.titles() if normalize_header(t) == wanted), None)


def act(workspace, figures: Figures | None = None) -> list[Tick]:
    """Act on the Rollout tab's ticks, then bring its rows up to date (the tab is added once the prompt
    has had a canary). Returns what each ticked row did."""
    records = records_of(workspace)
    if not records.canaries():
        return []  # nothing to show or act on: the sheet is not even read
    workbook = workspace.workbook
    title = tab_title(workbook)
    table = workbook.read([title])[title] if title else None
    ticks = [_act_on(workspace, records, canary_id, promote, stop)
             for canary_id, (promote, stop) in _ticked(table).items()]
    _write_rows(workspace, records, table, {t.canary.id: t for t in ticks}, figures)
    return ticks


def said(ticks: list[Tick]) -> list[str]:
    """What the ticks did, a line each, as a command reports it."""
    return [f"Rollout tab, canary {shown(t.canary.label)} (id {t.canary.id}): {shown(t.note)}." for t in ticks]


def act_and_log(workspace) -> None:
    """`act`, for a running `loop sync --watch`: what the ticks did goes to the log."""
    for line in said(act(workspace)):
        log.info(line)


def refresh(workspace, figures: Figures | None = None) -> None:
    """Bring the tab's rows up to date without acting on ticks (after a command started or ended a canary)."""
    records = records_of(workspace)
    if records.canaries():
        title = tab_title(workspace.workbook)
        _write_rows(workspace, records, workspace.workbook.read([title])[title] if title else None, {}, figures)


def _write_rows(workspace, records: Records, table: Table | None, ticks, figures: Figures | None) -> None:
    """Write the rows; when another command added the tab since it was read, into that tab."""
    try:
        workspace.write(rows_batch(records, table, ticks, figures))
    except TitleTaken:
        title = tab_title(workspace.workbook)
        workspace.write(rows_batch(records, workspace.workbook.read([title])[title], ticks, figures))


def _ticked(table: Table | None) -> dict[int, tuple[bool, bool]]:
    """canary id → (promote ticked, stop ticked), for rows with a tick."""
    found = {}
    for _, record in (table.records() if table else ()):
        canary_id = _canary_id(record.get("canaryid"))
        promote, stop = is_ticked(record.get("promote")), is_ticked(record.get("stop"))
        if canary_id is not None and (promote or stop):
            found[canary_id] = (promote, stop)
    return found


def _act_on(workspace, records: Records, canary_id: int, promote: bool, stop: bool) -> Tick:
    from loop.ship import canary as canaries

    try:
        canary = records.canary(canary_id)
    except IndexError:
        canary = None
    if canary is None:
        return Tick(Canary(canary_id, 0, 0, 0.0, "", "", None, "unknown"), "ignored",
                    "no canary of this prompt has this id; nothing done")
    if canary.outcome != RUNNING:
        return Tick(canary, "ignored", f"ticked after it ended ({canary.outcome}); nothing done")
    try:
        if stop:
            canaries.stop(workspace, reason=STOP_REASON, who=WHO)
        else:
            canaries.promote(workspace, who=WHO)
    except LoopError as problem:
        now = records.canary(canary_id)
        if now.outcome != RUNNING:  # another command ended it meanwhile
            return Tick(now, "ignored", f"it ended meanwhile ({now.outcome}); nothing done")
        return Tick(now, "failed", f"{'stop' if stop else 'promote'} failed: {problem}")
    both = " (promote was ticked too: stop wins)" if stop and promote else ""
    return Tick(records.canary(canary_id), "stopped" if stop else "promoted",
                f"{'stopped' if stop else 'promoted'} by a tick{both}")


def rows_batch(records: Records, table: Table | None, ticks: Mapping[int, Tick] | None = None,
               figures: Figures | None = None) -> WriteBatch:
    """The write that brings the tab to the store's canaries: the whole tab when it has none yet, else
    the cells that changed and a row appended per new canary. Ticks are cleared where they were acted
    on or ignored, and set unticked on new rows; a running canary's other ticks are left alone."""
    ticks = ticks or {}
    wanted = {c.id: _values(records, c, ticks.get(c.id), figures) for c in records.canaries()}
    if table is None:
        return WriteBatch(new_tabs=[_new_tab(list(wanted.values()))])
    have = {}
    for row, record in table.records():
        canary_id = _canary_id(record.get("canaryid"))
        if canary_id is not None and canary_id not in have:
            have[canary_id] = (row, record)
    batch = WriteBatch()
    for canary_id, values in wanted.items():
        if canary_id not in have:
            batch.appends.append(Append(table.title, schema.ROLLOUT_HEADERS, values, key="canary_id",
                                        checkboxes=schema.ROLLOUT_TICKS))
            continue
        row, record = have[canary_id]
        if canary_id not in ticks:  # ticks nobody acted on are the reviewer's: kept
            values = {k: v for k, v in values.items() if k not in schema.ROLLOUT_TICKS}
        batch.updates += [CellUpdate(table.title, row, name, value, key=("canary_id", str(canary_id)))
                          for name, value in values.items()
                          if as_text(record.get(normalize_header(name))) != as_text(value)
                          or (name in schema.ROLLOUT_TICKS and record.get(normalize_header(name)) is not False)]
    return batch


def _values(records: Records, canary: Canary, tick: Tick | None, figures: Figures | None) -> dict[str, object]:
    values = {
        "promote": False, "stop": False,
        "version": canary.label, "base": f"v{canary.base}",
        "share": percent(canary.share if canary.outcome == RUNNING else _last_share(records, canary)),
        "since": _moment(canary.started_at), "ended": _moment(canary.ended_at),
        "status": canary.outcome, "reason": canary.reason, "canary_id": canary.id,
    }
    if tick is not None:
        values["note"] = tick.note
    shown = figures(canary.version) if figures else None
    if shown:
        values.update({name: shown.get(name, "") for name in schema.ROLLOUT_FIGURES})
    return values


def _new_tab(rows: list[dict[str, object]]) -> NewTab:
    headers = schema.ROLLOUT_HEADERS
    return NewTab(schema.ROLLOUT, headers, [[values.get(h) for h in headers] for values in rows],
                  checkbox_column=schema.ROLLOUT_TICKS[0], checkbox_columns=schema.ROLLOUT_TICKS[1:],
                  column_widths={name: width for name, width, _ in schema.ROLLOUT_COLUMNS},
                  wrap=set(schema.ROLLOUT_WRAPPED), frozen_columns=len(schema.ROLLOUT_TICKS))


def _last_share(records: Records, canary: Canary) -> float:
    """The share an ended canary last served (its own row says 0 once it ended)."""
    shares = [e["share"] for e in records.events() if e["canary"] == canary.version and e["share"]]
    return float(shares[-1]) if shares else 0.0


def _moment(text: str | None) -> str:
    """2026-12-07T13:04:03Z → 2026-12-07 13:04 (UTC, as the header says)."""
    return (text or "").replace("T", " ")[:16]


def _canary_id(value) -> int | None:
    try:
        return int(float(as_text(value)))
    except ValueError:
        return None
