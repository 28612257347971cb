"""The agent seam: what re-drafts a ticket with a given prompt, for the replay check.

`LOOP_AGENT` names the user's own agent, so edits are tried on the agent that will run them:
- `package.module:function`: called as `function(prompt, ticket)` with the prompt text and the
  ticket record (a dict with `ticket`, `ticket_id`, `thread`, `trace_id`), returning the draft;
- anything else is a command: it gets one JSON object on stdin (`prompt` and the ticket record's
  fields) and prints the draft on stdout.
Unset, the bundled support agent (`agent.py`) drafts, with the knowledge base in LOOP_KB (or `kb/`)
when there is one.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from .errors import RunFailure, UsageError

_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
COMMAND_TIMEOUT_SECONDS = 600


class AgentFailed(Exception):
    """The user's agent raised, exited non-zero or printed nothing: it cannot be used for this run."""


class Agent(Protocol):
    name: str

    def draft(self, prompt: str, ticket: dict) -> str:
        """The reply to `ticket`, drafted with `prompt` as the agent's instructions."""


def ticket_record(draft) -> dict:
    """What an agent is given of a logged draft: the customer's side, never the old reply or review."""
    return {"ticket": draft.ticket, "ticket_id": draft.ticket_id, "thread": draft.thread,
            "trace_id": draft.trace_id}


@dataclass
class BundledAgent:
    """The reference support agent, drafting with the run's model and the knowledge base."""

    model: object
    kb: object | None
    name: str = "the bundled agent"

    def draft(self, prompt: str, ticket: dict) -> str:
        from .agent import Ticket, draft_reply

        return draft_reply(self.model, self.kb, prompt, Ticket(ticket["ticket"], ticket.get("ticket_id", ""),
                                                               ticket.get("thread", ""))).draft


@dataclass
class CallableAgent:
    function: Callable[[str, dict], str]
    name: str

    def draft(self, prompt: str, ticket: dict) -> str:
        try:
            reply = self.function(prompt, dict(ticket))
        except (RunFailure, UsageError):
            raise
        except Exception as error:  # noqa: BLE001 -- the user's code: any failure means it cannot be used
            raise AgentFailed(f"{self.name} raised {error.__class__.__name__}: {error}") from None
        if not isinstance(reply, str) or not reply.strip():
            raise AgentFailed(f"{self.name} returned {type(reply).__name__}, not a draft")
        return reply.strip()


@dataclass
class CommandAgent:
    command: list[str]
    name: str

    def draft(self, prompt: str, ticket: dict) -> str:
        payload = json.dumps({"prompt": prompt, **ticket}, ensure_ascii=False)
        try:
            done = subprocess.run(self.command, input=payload, capture_output=True, text=True, encoding="utf-8",
                                  errors="replace", timeout=COMMAND_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise AgentFailed(f"{self.name} could not run ({error})") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
            raise AgentFailed(f"{self.name} exited {done.returncode} ({last})")
        if not done.stdout.strip():
            raise AgentFailed(f"{self.name} printed no draft")
        return done.stdout.strip()


def resolve_agent(spec: str | None, model_factory: Callable[[], object], kb_folder: str | Path | None) -> Agent:
    """The agent LOOP_AGENT names, or the bundled one; a UsageError says why a named one is unusable."""
    if not spec:
        from .kb import KnowledgeBase

        folder = Path(kb_folder) if kb_folder else None
        return BundledAgent(model_factory(), KnowledgeBase(folder) if folder and folder.is_dir() else None)
    if _CALLABLE.match(spec):
        module_name, _, attribute = spec.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise UsageError(f"LOOP_AGENT={spec}: cannot import it ({error}); check the module is importable.") from None
        if not callable(function):
            raise UsageError(f"LOOP_AGENT={spec} is not callable.")
        return CallableAgent(function, spec)
    try:
        command = shlex.split(spec)
    except ValueError as error:
        raise UsageError(f"LOOP_AGENT={spec!r} is not a command line ({error}).") from None
    if not command or not (os.path.exists(command[0]) or shutil.which(command[0])):
        raise UsageError(f"LOOP_AGENT: no command {command[0] if command else spec!r}; give a path or a command on PATH.")
    return CommandAgent(command, spec)
