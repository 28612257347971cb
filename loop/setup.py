"""`loop init`: a new local workbook from the template, or the Drafts and Runs tabs added to a
Google Sheet without touching its other tabs; and a starter prompt when there is none."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import schema, template
from .config import Settings
from .errors import UsageError
from .sheets import WriteBatch, is_google, open_workbook

STARTER_PROMPT = """You are a customer-support agent. Read the whole ticket and its thread, search the knowledge base,
and draft a reply the support team can send.

- Answer the customer's actual question first.
- Use only facts, settings and menu paths from the knowledge base; never invent them.
- If you are not sure, say what you will check and escalate to a person.
"""


def init(settings: Settings, force: bool = False, warn: Callable[[str], None] = lambda m: None) -> list[str]:
    """Set up the workbook and prompt; returns what was done, a line each."""
    done = []
    if is_google(settings.sheet):
        workbook = open_workbook(settings.sheet, warn=warn, credentials=settings.credentials)
        existing = set(workbook.titles())
        missing = [tab for tab in template.template_tabs() if tab.title not in existing]
        workbook.write(WriteBatch(new_tabs=missing))
        added = ", ".join(t.title for t in missing)
        done.append(f"Added the {added} tab(s) to the Google Sheet." if missing else "The Google Sheet already has the Drafts and Runs tabs.")
    else:
        path = Path(settings.sheet)
        if path.exists() and not force:
            raise UsageError(f"{path} already exists; use --force to replace it, or --sheet to pick another name.")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.new")
        template.build(temporary)
        temporary.replace(path)
        done.append(f"Created {path} with the {schema.DRAFTS}, {schema.RUNS} and About tabs.")
    if not settings.prompt.exists():
        settings.prompt.parent.mkdir(parents=True, exist_ok=True)
        settings.prompt.write_text(STARTER_PROMPT, encoding="utf-8")
        done.append(f"Created a starter prompt at {settings.prompt}; replace it with your agent's prompt.")
    return done
