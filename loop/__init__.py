"""Improve an LLM support agent's prompt from human review.

The library behind the `loop` command: everything the CLI does is a plain function here.
"""

from .approval import apply, rollback
from .config import Settings, resolve
from .improver import improve
from .traces import log_draft, log_drafts
from .workspace import Workspace

__all__ = ["Settings", "Workspace", "apply", "improve", "log_draft", "log_drafts", "resolve", "rollback"]
