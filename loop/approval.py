"""`loop apply` and `loop rollback`: ticked edits become one new prompt version.

The prompt history, not the status column, decides whether an edit is already in the prompt: if
marking the rows failed after a version was written, the next apply marks them and applies nothing
twice. The whole command runs under the prompt store's lock, so concurrent applies serialize.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import schema
from .config import Settings
from .edits import APPLIED, PROPOSED, STALE, Edit, NotLocated, apply_one
from .prompt_store import PromptStore, Version
from .sheets import CellUpdate, Table, WriteBatch, open_workbook
from .values import as_text, is_ticked, normalize_header


@dataclass
class ApprovedEdit:
    tab: str
    row: int
    edit: Edit


@dataclass
class ApplyReport:
    version: Version | None = None
    previous: Version | None = None
    applied: list[ApprovedEdit] = field(default_factory=list)
    already_applied: list[ApprovedEdit] = field(default_factory=list)
    stale: list[ApprovedEdit] = field(default_factory=list)


def approved_edits(tables: dict[str, Table]) -> list[ApprovedEdit]:
    """Ticked rows whose status is still `proposed`, in tab then row order."""
    found = []
    for title, table in tables.items():
        for row, record in table.records():
            if not is_ticked(record.get("approve")) or as_text(record.get("status")).lower() != PROPOSED:
                continue
            text = {key: as_text(value) if key not in ("find", "replace") else _raw(value) for key, value in record.items()}
            edit = Edit(
                edit_id=text.get(normalize_header("edit_id"), "") or f"{title}!{row}",
                pattern=text.get("pattern", ""),
                find=text.get("find", ""),
                replace=text.get("replace", ""),
                evidence=[t.strip() for t in text.get("evidence", "").split(",") if t.strip()],
            )
            found.append(ApprovedEdit(title, row, edit))
    return found


def _raw(value: object) -> str:
    """find/replace keep their exact whitespace: they must match the prompt character for character."""
    return "" if value is None else str(value)


def apply(settings: Settings, warn: Callable[[str], None] = lambda message: None) -> ApplyReport:
    store = PromptStore(settings.prompt)
    workbook = open_workbook(settings.sheet, warn=warn, credentials=settings.credentials)
    report = ApplyReport()
    with store.lock():
        current = store.sync()
        report.previous = report.version = current
        titles = [t for t in workbook.titles() if t.startswith(schema.EDITS_PREFIX)]
        approved = approved_edits(workbook.read(titles))
        if not approved:
            return report
        in_history = store.applied_edits()
        text = store.read()
        for item in approved:
            if item.edit.edit_id in in_history:
                item.edit.applied_version = in_history[item.edit.edit_id]
                report.already_applied.append(item)
                continue
            try:
                text = apply_one(text, item.edit)
            except NotLocated as problem:
                item.edit.check = f"stale: {problem}"
                report.stale.append(item)
                continue
            report.applied.append(item)
        if report.applied:
            report.version = store.commit(
                text,
                source="apply",
                edits=[
                    {"edit_id": i.edit.edit_id, "tab": i.tab, "pattern": i.edit.pattern, "find": i.edit.find,
                     "replace": i.edit.replace, "evidence": i.edit.evidence}
                    for i in report.applied
                ],
            )
            for item in report.applied:
                item.edit.applied_version = report.version.label
        workbook.write(_marks(report))
    return report


def _marks(report: ApplyReport) -> WriteBatch:
    batch = WriteBatch()
    for item in report.applied + report.already_applied:
        batch.updates += [
            CellUpdate(item.tab, item.row, "status", APPLIED),
            CellUpdate(item.tab, item.row, "applied_version", item.edit.applied_version),
            CellUpdate(item.tab, item.row, "check", ""),
        ]
    for item in report.stale:
        batch.updates += [
            CellUpdate(item.tab, item.row, "status", STALE),
            CellUpdate(item.tab, item.row, "check", item.edit.check),
        ]
    return batch


def rollback(settings: Settings) -> tuple[Version, Version]:
    """Restore the version before the current one; returns (rolled back, restored)."""
    store = PromptStore(settings.prompt)
    with store.lock():
        return store.rollback()
