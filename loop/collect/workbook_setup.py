"""`loop init`: a new local workbook from the template, or the Drafts and Runs tabs added to a
Google Sheet without touching its other tabs; and a starter prompt and judge rubric when there are none."""

from __future__ import annotations

from pathlib import Path

from loop import files, schema
from loop.collect import workbook_template
from loop.config import Settings
from loop.errors import UsageError
from loop.sheets import WriteBatch
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


def init(where: Settings | Workspace, force: bool = False) -> list[str]:
    """Set up the workbook, the prompt and the judge's rubric; returns what was done, a line each."""
    workspace = Workspace.of(where)
    settings = workspace.settings
    done = []
    if is_google(settings.sheet):
        existing = set(workspace.workbook.titles())
        missing = [tab for tab in workbook_template.template_tabs() if tab.title not in existing]
        workspace.write(WriteBatch(new_tabs=missing))
        added = ", ".join(t.title for t in missing)
        done.append(f"Added the {added} tab(s) to the Google Sheet." if missing else "The Google Sheet already has the Drafts and Runs tabs.")
    else:
        path = Path(settings.sheet)
        if path.exists() and not force:
            raise UsageError(f"{path} already exists; use --force to replace it, or --sheet to pick another name.")
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
