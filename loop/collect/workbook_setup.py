"""`loop init`: a new local workbook from the template, or the Drafts and Runs tabs (and a Drafts tab's
required columns) added to an existing workbook, a Google Sheet or a local one, without touching its
other tabs; and a starter prompt and judge rubric when there are none."""

from __future__ import annotations

from pathlib import Path

from loop import files, schema
from loop.collect import workbook_template
from loop.config import Settings
from loop.errors import UsageError
from loop.sheets import CellUpdate, WriteBatch
from loop.sheets.base import is_google
from loop.workspace import Workspace

STARTER_PROMPT = """You are a customer-support agent. Read the whole ticket and its thread, search the knowledge base,
and draft a reply the support team can send.

- Answer the customer's actual question first.
- Use only facts, settings and menu paths from the knowledge base; never invent them.
- If you are not sure, say what you will check and escalate to a person.
"""

STARTER_RUBRIC = """# Judge rubric

A draft is good ("up") only if all of these hold:

- It answers the customer's actual question, as of the newest message in the thread.
- It is short: two to five sentences unless the customer asked for steps.
- Every menu path, setting and plan name it mentions comes from the knowledge base.
- It suggests no workaround that does not apply to this customer's problem.
- The tone is friendly and professional.

Otherwise it is "down"; name the first rule it breaks.
"""


def _completed(workspace: Workspace, name: str) -> list[str]:
    """An existing workbook (a Google Sheet, or a local one) given the Drafts and Runs tabs it lacks,
    after its other tabs, and an existing Drafts tab the required columns it lacks, after its last
    header; every other tab, cell, style, chart and name stays as it is."""
    existing = {table.title: table for table in workspace.workbook.read([schema.DRAFTS]).values()}
    titles = workspace.workbook.titles()
    missing = [tab for tab in workbook_template.template_tabs() if tab.title not in titles]
    drafts = existing.get(schema.DRAFTS)
    columns = [c for c in schema.REQUIRED_DRAFT_COLUMNS if drafts is not None and drafts.column(c) is None]
    workspace.write(WriteBatch(new_tabs=missing, updates=[CellUpdate(schema.DRAFTS, 1, c, c) for c in columns]))
    done = []
    if missing:
        done.append(f"Added the {' and '.join(t.title for t in missing)} tab{'s' if len(missing) > 1 else ''} to {name}.")
    if columns:
        done.append(f"Added the columns {', '.join(columns)} to its {schema.DRAFTS} tab.")
    return done or [f"{name[0].upper() + name[1:]} already has the {schema.DRAFTS} and {schema.RUNS} tabs; nothing "
                    "to add (--force replaces a local workbook)."]


def init(where: Settings | Workspace, force: bool = False) -> list[str]:
    """Set up the workbook, the prompt and the judge's rubric; returns what was done, a line each."""
    workspace = Workspace.of(where)
    settings = workspace.settings
    done = []
    path = None if is_google(settings.sheet) else Path(settings.sheet)
    if path is None or (path.exists() and not force):
        done += _completed(workspace, "the Google Sheet" if path is None else str(path))
    else:
        if path.is_dir():
            raise UsageError(f"{path} is a folder, not a workbook; pass --sheet with an .xlsx file name.")
        path.parent.mkdir(parents=True, exist_ok=True)
        with files.atomic_path(path) as temporary:
            workbook_template.build(temporary)
        done.append(f"Created {path} with the {schema.DRAFTS}, {schema.RUNS} and About tabs.")
    for target, text, what in ((settings.prompt, STARTER_PROMPT, "prompt"),
                               (settings.judge_prompt, STARTER_RUBRIC, "judge rubric")):
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            files.write_text(target, text)
            done.append(f"Created a starter {what} at {target}; replace it with your own.")
    return done
