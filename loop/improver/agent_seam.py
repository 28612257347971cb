"""The agent seam: what re-drafts a ticket with a given prompt, for the replay check.

`LOOP_AGENT` names the user's own agent, so edits are tried on the agent that will run them:
- `package.module:function`: called as `function(prompt, ticket)` with the prompt text and the
  ticket record (a dict with `ticket`, `ticket_id`, `thread`, `trace_id`), returning the draft;
- anything else is a command: it gets one JSON object on stdin (`prompt` and the ticket record's
  fields) and prints the draft on stdout.
Unset, the bundled support agent (`agent.py`) drafts, with the knowledge base in LOOP_KB (or `kb/`);
see `knowledge_base` for what happens when there is none.

A user's agent is untrusted code as far as the run is concerned: whatever one case does (raise,
call sys.exit, return something that is not a draft, hang), that case fails with the reason and
the run goes on. Each case has LOOP_AGENT_TIMEOUT seconds; a command still running then is killed
with its whole process group.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol

from loop.collect.knowledge_base import knowledge_base
from loop.errors import UsageError

log = logging.getLogger(__name__)
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
TIMEOUT_VARIABLE = "LOOP_AGENT_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 120.0
MAX_TIMEOUT_SECONDS = 24 * 3600.0


class AgentFailed(Exception):
    """The agent could not draft this case: it raised, exited, timed out, or gave no draft."""


class Agent(Protocol):
    name: str

    def draft(self, prompt: str, ticket: dict) -> str:
        """The reply to `ticket`, drafted with `prompt` as the agent's instructions."""


def ticket_record(draft) -> dict:
    """What an agent is given of a logged draft: the customer's side, never the old reply or review."""
    return {"ticket": draft.ticket, "ticket_id": draft.ticket_id, "thread": draft.thread,
            "trace_id": draft.trace_id}


def agent_timeout(env: Mapping[str, str] | None = None) -> float:
    """Seconds one case of a user's agent may take (LOOP_AGENT_TIMEOUT, default 120); a value that
    is not a positive number of seconds is a UsageError."""
    text = (os.environ if env is None else env).get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= MAX_TIMEOUT_SECONDS):  # also refuses nan and inf
        raise UsageError(f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds between 0 and "
                         f"{MAX_TIMEOUT_SECONDS:.0f}; set it to e.g. {DEFAULT_TIMEOUT_SECONDS:.0f}.")
    return seconds


@dataclass
class BundledAgent:
    """The reference support agent, drafting with the run's model and the knowledge base."""

    model: object
    kb: object | None
    name: str = "the bundled agent"

    def draft(self, prompt: str, ticket: dict) -> str:
        from loop.collect.support_agent import DraftFailed, Ticket, draft_reply

        try:
            return draft_reply(self.model, self.kb, prompt, Ticket(ticket["ticket"], ticket.get("ticket_id", ""),
                                                                   ticket.get("thread", ""))).draft
        except DraftFailed as failure:
            raise AgentFailed(f"{self.name}: {failure}") from None


@dataclass
class CallableAgent:
    function: Callable[[str, dict], str]
    name: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def draft(self, prompt: str, ticket: dict) -> str:
        """The function's draft, run in a thread of its own so a case that hangs is given up after
        `timeout` (the thread cannot be killed: it is left to finish, and its answer is ignored)."""
        outcome: dict = {}

        def call() -> None:
            try:
                outcome["reply"] = self.function(prompt, dict(ticket))
            except SystemExit as stop:  # the user's code asked to end the process: this case failed
                outcome["error"] = f"{self.name} called sys.exit({stop.code!r})"
            except Exception as error:  # noqa: BLE001 -- the user's code: any failure fails this case
                outcome["error"] = f"{self.name} raised {error.__class__.__name__}: {error}"

        worker = threading.Thread(target=call, name=f"LOOP_AGENT {self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise AgentFailed(f"{self.name} took more than {self.timeout:g} s ({TIMEOUT_VARIABLE})")
        if "error" in outcome:
            raise AgentFailed(outcome["error"][:300])
        return _a_draft(self.name, outcome.get("reply"))


@dataclass
class CommandAgent:
    command: list[str]
    name: str
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def draft(self, prompt: str, ticket: dict) -> str:
        """The command's stdout. It runs in a session (process group) of its own, which is killed
        when the case ends, so nothing it started outlives the case, and a hang ends at `timeout`."""
        payload = json.dumps({"prompt": prompt, **ticket}, ensure_ascii=False)
        try:
            process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                                       start_new_session=True)
        except OSError as error:
            raise AgentFailed(f"{self.name} could not run ({error})") from None
        try:
            stdout, stderr = process.communicate(payload, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise AgentFailed(f"{self.name} took more than {self.timeout:g} s ({TIMEOUT_VARIABLE}); "
                              "it was stopped") from None
        finally:
            _kill_group(process)
        if process.returncode != 0:
            last = (stderr.strip().splitlines() or ["no message"])[-1][:200]
            raise AgentFailed(f"{self.name} exited {process.returncode} ({last})")
        return _a_draft(self.name, stdout)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the agent's whole process group (what it started too), then reap the agent."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already
    else:  # pragma: no cover -- Windows: no process groups to kill
        process.kill()
    for stream in (process.stdin, process.stdout, process.stderr):
        try:
            if stream:
                stream.close()
        except OSError:
            pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover -- a process SIGKILL cannot end (stuck in the kernel)
        pass


def _a_draft(name: str, reply) -> str:
    """The reply if it is a draft: non-empty text; anything else fails the case."""
    if not isinstance(reply, str):
        raise AgentFailed(f"{name} returned {type(reply).__name__}, not a draft (text)")
    if not reply.strip():
        raise AgentFailed(f"{name} returned no draft (empty text)")
    return reply.strip()


NO_KB = "the bundled agent, without a knowledge base"



def resolve_agent(spec: str | None, model_factory: Callable[[], object], kb_folder: str | Path | None,
                  kb_named: bool = False) -> Agent:
    """The agent LOOP_AGENT names, or the bundled one (with its knowledge base by `knowledge_base`'s
    rule); a UsageError says why a named one is unusable."""
    if not spec:
        kb = knowledge_base(kb_folder, kb_named) if kb_folder else None
        return BundledAgent(model_factory(), kb, "the bundled agent" if kb else NO_KB)
    timeout = agent_timeout()
    if _CALLABLE.match(spec):
        module_name, _, attribute = spec.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise UsageError(f"LOOP_AGENT={spec}: cannot import it ({error}); check the module is importable.") from None
        except (Exception, SystemExit) as error:  # noqa: BLE001 -- the user's module failed as it loaded
            raise UsageError(f"LOOP_AGENT={spec}: importing it failed ({error.__class__.__name__}: {error}).") from None
        if not callable(function):
            raise UsageError(f"LOOP_AGENT={spec} is not callable.")
        return CallableAgent(function, spec, timeout)
    try:
        command = shlex.split(spec)
    except ValueError as error:
        raise UsageError(f"LOOP_AGENT={spec!r} is not a command line ({error}).") from None
    if not command or not (os.path.exists(command[0]) or shutil.which(command[0])):
        raise UsageError(f"LOOP_AGENT: no command {command[0] if command else spec!r}; give a path or a command on PATH.")
    return CommandAgent(command, spec, timeout)
