"""The workbook template (`sheets_template.xlsx`, and what `loop init` creates)."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
from openpyxl.styles import Alignment, Font

from loop import schema
from loop.sheets import NewTab
from loop.sheets.package import Package

ABOUT_TITLE = "About"
_ABOUT_INTRO = [
    "This workbook feeds `loop`, which turns reviews of a support agent's drafts into small, evidence-backed prompt edits.",
    "Drafts: one row per draft: the ticket, the draft, then your `score` (👍 or 👎) and in `comment` what was wrong; "
    "`loop improve` learns from both. Ids and what loop writes sit further right.",
    "Edits …: each `loop improve` run adds a tab of proposed edits, laid out to decide from left to right: the pattern, "
    "the change, its replay figures, the cases behind it (each linked to its draft). Tick `approve` on the ones you "
    "want, then run `loop apply`.",
    "Replay …: how each edit did when the agent drafted the tickets again with it, one block per edit: the verdict in "
    "words, the logged draft beside the new one, what the edit changed marked.",
    "Runs: one row per `loop improve` run. Headers match case-insensitively; column order is free; extra columns are left alone.",
]


def template_tabs() -> list[NewTab]:
    """The Drafts and Runs tabs, as `loop init` creates them on either backend."""
    return [
        NewTab(schema.DRAFTS, schema.DRAFT_HEADERS, [],
               column_widths={name: width for name, _, width, _ in schema.DRAFT_COLUMNS},
               dropdowns={"score": schema.SCORE_CHOICES}, wrap=set(schema.DRAFT_WRAPPED), filter=True,
               frozen_columns=schema.DRAFT_FROZEN, most_lines=schema.DRAFT_LINES),
        NewTab(schema.RUNS, schema.RUN_HEADERS, [],
               column_widths={name: max(12, len(name) + 4) for name, _ in schema.RUN_COLUMNS}),
    ]


def build(path: str | Path) -> None:
    """Write a fresh workbook with the Drafts and Runs tabs (made as every new tab is made) and About."""
    book = openpyxl.Workbook()
    about = book.active
    about.title = ABOUT_TITLE
    about.column_dimensions["A"].width = 18
    about.column_dimensions["B"].width = 16
    about.column_dimensions["C"].width = 100
    row = 1
    for line in _ABOUT_INTRO:
        about.cell(row, 1, line)
        row += 1
    row += 1
    for column, header in enumerate(["tab", "column", "what it holds"], start=1):
        about.cell(row, column, header).font = Font(bold=True)
    row += 1
    entries = (
        [(schema.DRAFTS, name + ("" if required else " (optional)"), text) for name, required, _, text in schema.DRAFT_COLUMNS]
        + [("Edits …", "case_1, case_2, …" if name == "cases" else name, text) for name, _, text in schema.EDIT_COLUMNS]
        + [("Replay …", name, text) for name, _, text in schema.REPLAY_COLUMNS]
        + [(schema.RUNS, name, text) for name, text in schema.RUN_COLUMNS]
    )
    for tab, column, text in entries:
        about.cell(row, 1, tab)
        about.cell(row, 2, column)
        about.cell(row, 3, text).alignment = Alignment(wrap_text=True)
        row += 1
    buffer = io.BytesIO()
    book.save(buffer)
    package = Package(buffer)
    for position, tab in enumerate(template_tabs()):
        package.add_tab(tab, index=position)
    package.save(path)

