"""`loop apply` and `loop rollback`: ticked edits become one new prompt version, and back.

The prompt history, not the status column, decides what is in the prompt: an edit is already applied
when a version in the current lineage holds an edit with its id and the same find and replace. So if
marking the rows failed after a version was written, the next apply marks them and applies nothing
twice, and rows of a version that was rolled back are marked `rolled back`, ready to be ticked again.
An edit_id is applied once, whichever tabs hold it: a reviewer who copies an Edits tab and ticks the
edit in both gets it once, and the copy is reported (and marked applied when its text is the same).
Everything that could refuse the command is checked before the prompt changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from loop.config import Settings
from loop.improver.edits import (APPLIED, PROPOSED, REJECTED, ROLLED_BACK, STALE, EditRow, NotLocated, apply_one,
                                edit_rows, edit_titles)
from loop.prompt_store import CanaryRunning, Rollback, Version
from loop.store.prompts import Canary, ServingChanged
from loop.sheets import CellUpdate, WriteBatch
from loop.workspace import Workspace

_ATTEMPTS = 5


@dataclass
class ApplyReport:
    version: Version | None = None
    previous: Version | None = None
    applied: list[EditRow] = field(default_factory=list)
    already_applied: list[EditRow] = field(default_factory=list)
    stale: list[EditRow] = field(default_factory=list)
    ignored: list[EditRow] = field(default_factory=list)  # ticked, but rejected by validation
    rolled_back: list[EditRow] = field(default_factory=list)
    # ticked copies of an edit_id another row holds (a duplicated tab): (the copy, the row that went
    # first), or (the copy, None) when the prompt holds that edit_id already with other text
    duplicates: list[tuple[EditRow, EditRow | None]] = field(default_factory=list)
    # versions this run recorded of the file as it found it: a hand edit (or the first version, "initial")
    recorded: list[Version] = field(default_factory=list)
    canary_share: float | None = None  # the applied version runs as a canary of this share
    notes: list[str] = field(default_factory=list)  # what was done to the file first (brought up, imported)



def _read_rows(workspace: Workspace) -> list[EditRow]:
    workbook = workspace.workbook
    return edit_rows(workbook.read(edit_titles(workbook)))


def apply(where: Settings | Workspace, canary_share: float | None = None) -> ApplyReport:
    """Apply every ticked edit as one new version: made current, or, with `canary_share`, served to
    that share of units as a canary. Decided again from the start when another host changed the
    prompt meanwhile, so two applies at once never apply an edit twice."""
    workspace = Workspace.of(where)
    store, workbook = workspace.prompt, workspace.workbook
    workbook.ensure_writable()
    store.ensure_writable()
    for attempt in range(_ATTEMPTS):
        try:
            report = _apply_once(workspace, canary_share)
        except ServingChanged:
            if attempt == _ATTEMPTS - 1:
                raise
            continue
        workspace.write(_marks(report))
        return report


def _apply_once(workspace: Workspace, canary_share: float | None) -> ApplyReport:
    store = workspace.prompt
    report = ApplyReport(canary_share=canary_share)
    known = set(store.versions())
    current = store.bring_up()
    serving = store.serving()
    report.recorded = [v for n, v in sorted(store.versions().items()) if n not in known]
    report.notes = list(store.notes)
    report.previous = report.version = current
    rows = _read_rows(workspace)
    lineage = store.lineage(with_canary=True)
    in_prompt = {e["edit_id"]: (v.label, e.get("find"), e.get("replace")) for v in reversed(lineage) for e in v.edits}
    labels = {v.label for v in lineage}
    report.rolled_back = [r for r in rows if r.edit.status == APPLIED and r.edit.applied_version not in labels]
    text = store.text_of(current.number)
    taken: dict[str, EditRow] = {}  # edit_id → the row this run applied or found applied
    for item in rows:
        if not item.ticked:
            continue
        if item.edit.status == REJECTED:
            report.ignored.append(item)
            continue
        if item.edit.status not in (PROPOSED, ROLLED_BACK):
            continue
        first = taken.get(item.edit.edit_id)
        if first:  # the same edit_id ticked again, in a copied tab: applied once
            report.duplicates.append((item, first))
            continue
        taken[item.edit.edit_id] = item
        label, find, replace = in_prompt.get(item.edit.edit_id, (None, None, None))
        if label and (find, replace) == (item.edit.find, item.edit.replace):
            item.edit.applied_version = label
            report.already_applied.append(item)
            continue
        if label:  # a copy whose text was changed, of an edit the prompt holds already
            item.edit.applied_version = label
            report.duplicates.append((item, None))
            continue
        try:
            text = apply_one(text, item.edit)
        except NotLocated as problem:
            item.edit.check = f"stale: {problem}"
            report.stale.append(item)
            continue
        report.applied.append(item)
    if report.applied:
        if serving.canary is not None:
            raise CanaryRunning(
                f"{len(report.applied)} ticked edits wait, but the canary {serving.canary.label} "
                f"({serving.canary.share:.0%} since {serving.canary.started_at}) is running; finish it first with "
                "`loop promote` or `loop rollback`, then apply. Nothing was changed.")
        report.version = store.commit(
            text,
            source="apply",
            edits=[
                {"edit_id": i.edit.edit_id, "tab": i.tab, "pattern": i.edit.pattern, "find": i.edit.find,
                 "replace": i.edit.replace, "evidence": i.edit.evidence}
                for i in report.applied
            ],
            canary_share=canary_share,
            expected=serving,
        )
        for item in report.applied:
            item.edit.applied_version = report.version.label
            if canary_share is not None:
                item.edit.check = f"canary at {canary_share:.0%} since {report.version.created_at}"
    return report


def _marks(report: ApplyReport) -> WriteBatch:
    batch = WriteBatch()
    for item in report.applied + report.already_applied:
        batch.updates += [
            CellUpdate(item.tab, item.row, "status", APPLIED),
            CellUpdate(item.tab, item.row, "applied_version", item.edit.applied_version),
            CellUpdate(item.tab, item.row, "check", item.edit.check if item in report.applied else ""),
        ]
    for item in report.stale:
        batch.updates += [
            CellUpdate(item.tab, item.row, "status", STALE),
            CellUpdate(item.tab, item.row, "check", item.edit.check),
        ]
    for item, first in report.duplicates:
        if duplicate_applied(report, item, first):
            batch.updates += [
                CellUpdate(item.tab, item.row, "status", APPLIED),
                CellUpdate(item.tab, item.row, "applied_version", first.edit.applied_version),
                CellUpdate(item.tab, item.row, "check", duplicate_reason(report, item, first)),
            ]
        else:
            batch.updates += [
                CellUpdate(item.tab, item.row, "status", STALE),
                CellUpdate(item.tab, item.row, "check", f"stale: {duplicate_reason(report, item, first)}"),
            ]
    batch.updates += _rolled_back_marks(report.rolled_back)
    return batch


def duplicate_applied(report: ApplyReport, item: EditRow, first: EditRow | None) -> bool:
    """Whether a copy is the very edit of a row that is in the prompt now (it is marked applied, else stale)."""
    return (first is not None and any(first is done for done in report.applied + report.already_applied)
            and (item.edit.find, item.edit.replace) == (first.edit.find, first.edit.replace))


def duplicate_reason(report: ApplyReport, item: EditRow, first: EditRow | None) -> str:
    """What became of a ticked copy of an edit_id: an edit_id is applied once, whichever tabs hold it."""
    if first is None:
        return (f"{item.edit.applied_version} holds edit_id {item.edit.edit_id} with other text; an edit_id "
                "is applied once, so this copy is not")
    if duplicate_applied(report, item, first):
        return f"a copy of {first.tab!r} row {first.row}: applied once, in {first.edit.applied_version}"
    return (f"a copy of {first.tab!r} row {first.row}, which went first and is not applied; an edit_id is applied "
            "once, so this copy is not")


def _rolled_back_marks(rows: list[EditRow]) -> list[CellUpdate]:
    """Rows whose version is no longer in the prompt: unticked, so applying them again is a new decision."""
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    updates = []
    for item in rows:
        updates += [
            CellUpdate(item.tab, item.row, "status", ROLLED_BACK),
            CellUpdate(item.tab, item.row, "approve", False),
            CellUpdate(item.tab, item.row, "check",
                       f"rolled back from {item.edit.applied_version} ({today}); tick it to apply it again"),
            CellUpdate(item.tab, item.row, "applied_version", ""),
        ]
    return updates


@dataclass
class RollbackReport:
    undone: Version | None
    current: Version
    rows: list[EditRow] = field(default_factory=list)
    canary: Canary | None = None  # the canary it ended, when one ran
    notes: list[str] = field(default_factory=list)


def rollback(where: Settings | Workspace) -> RollbackReport:
    """End a running canary, or restore the version before the current one; mark the edits it undid
    `rolled back`."""
    workspace = Workspace.of(where)
    store, workbook = workspace.prompt, workspace.workbook
    workbook.ensure_writable()
    store.ensure_writable()
    result: Rollback = store.rollback()
    labels = {v.label for v in store.lineage(with_canary=True)}
    rows = [r for r in _read_rows(workspace) if r.edit.status == APPLIED and r.edit.applied_version not in labels]
    if rows:
        workspace.write(WriteBatch(updates=_rolled_back_marks(rows)))
    return RollbackReport(result.undone, result.current, rows, result.canary, list(store.notes))

